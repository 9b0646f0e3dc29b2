//! The error a chaos layer fails a call with.

use std::fmt;

/// What kind of fault a [`ChaosLayer`](super::ChaosLayer) injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// A call picked at random by [`error_rate`](super::Builder::error_rate).
    Error,
    /// A call made during an outage: a window set by [`outage_at`](super::Builder::outage_at),
    /// or one started by hand with [`ChaosHandle::start_outage`](super::ChaosHandle::start_outage).
    Outage,
}

impl FaultKind {
    /// The label of this kind in events and metrics: `"error"` or `"outage"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Outage => "outage",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The chaos layer failed the call on purpose, instead of sending it.
///
/// Returned boxed in a [`BoxError`](crate::BoxError); downcast it to tell an injected fault from
/// a real one. It simulates the service behind the layer failing, so it is **not** a local
/// rejection in the sense of [`is_rejection`](crate::is_rejection): a circuit breaker counts it
/// as a failure and retry retries it, exactly as they would a real failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InjectedFault {
    kind: FaultKind,
}

impl InjectedFault {
    pub(crate) fn new(kind: FaultKind) -> Self {
        Self { kind }
    }

    /// Whether the call fell to the error rate or to an outage.
    pub fn kind(&self) -> FaultKind {
        self.kind
    }
}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FaultKind::Error => f.write_str("injected fault: error"),
            FaultKind::Outage => f.write_str("injected fault: outage"),
        }
    }
}

impl std::error::Error for InjectedFault {}
