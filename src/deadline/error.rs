//! The error a passed deadline fails a call with: [`Elapsed`], from a
//! [`TimeoutLayer`](crate::timeout::TimeoutLayer), retry or the deadline layers.

use std::fmt;

/// The call did not finish before its deadline.
///
/// One type for both ways a deadline can pass, so one downcast finds every timeout;
/// [`kind`](Elapsed::kind) tells them apart:
///
/// - [`ElapsedKind::Timeout`]: this layer's own timeout fired (the service was slow for the
///   budget this layer gave it);
/// - [`ElapsedKind::InheritedDeadline`]: a deadline set further out (an outer timeout, or one
///   read from `grpc-timeout` where the request came in) passed first, or had already passed when
///   the call was made, in which case the inner service was never called.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use steadfast::deadline::{Elapsed, ElapsedKind};
/// use steadfast::timeout::TimeoutLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let svc = TimeoutLayer::new(Duration::from_millis(10)).layer(service_fn(|()| async {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     Ok::<_, std::convert::Infallible>(())
/// }));
/// let err = svc.oneshot(()).await.unwrap_err();
/// let elapsed = err.downcast_ref::<Elapsed>().expect("a timeout");
/// assert_eq!(elapsed.kind(), ElapsedKind::Timeout);
/// assert_eq!(elapsed.to_string(), "request timed out");
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Elapsed {
    kind: ElapsedKind,
    before_call: bool,
}

/// Which deadline passed: see [`Elapsed::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ElapsedKind {
    /// The timeout of the layer that failed the call fired.
    ///
    /// When the layer's own deadline and the inherited one fall on the same instant, the layer
    /// reports its own timeout.
    Timeout,
    /// A deadline inherited from further out (see [`Deadline::current`]) passed, before or
    /// during the call.
    ///
    /// [`Deadline::current`]: crate::deadline::Deadline::current
    InheritedDeadline,
}

impl ElapsedKind {
    /// A short lowercase label: `"timeout"` or `"deadline"` (the value of the `kind` metric
    /// label and of the `timeout.kind` tracing field).
    pub fn as_str(self) -> &'static str {
        match self {
            ElapsedKind::Timeout => "timeout",
            ElapsedKind::InheritedDeadline => "deadline",
        }
    }
}

impl Elapsed {
    /// The layer's own timeout fired.
    #[allow(dead_code)] // used by other layers of the crate as they land
    pub(crate) fn new() -> Self {
        Self::timeout()
    }

    /// The layer's own timeout fired.
    #[allow(dead_code)] // used by the timeout layer
    pub(crate) fn timeout() -> Self {
        Self::with_kind(ElapsedKind::Timeout)
    }

    /// An inherited deadline passed (or had passed before the call).
    #[allow(dead_code)] // used by the deadline layers (feature `http`) and retry
    pub(crate) fn inherited_deadline() -> Self {
        Self::with_kind(ElapsedKind::InheritedDeadline)
    }

    #[allow(dead_code)] // used by the timeout layer
    pub(crate) fn with_kind(kind: ElapsedKind) -> Self {
        Self {
            kind,
            before_call: false,
        }
    }

    /// The deadline had already passed when the call was made, so it was failed without being
    /// sent.
    #[allow(dead_code)] // used by the timeout, retry and deadline layers
    pub(crate) fn not_sent(mut self) -> Self {
        self.before_call = true;
        self
    }

    /// Which deadline passed: this layer's own timeout, or an inherited deadline.
    pub fn kind(&self) -> ElapsedKind {
        self.kind
    }

    /// Whether an inherited deadline passed, rather than this layer's own timeout.
    ///
    /// Useful to decide whether a timeout is worth a retry: once the inherited deadline has
    /// passed, nobody is waiting for the answer any more.
    pub fn is_inherited(&self) -> bool {
        self.kind == ElapsedKind::InheritedDeadline
    }

    /// Whether the deadline had already passed when the call was made, so that the inner
    /// service was never called.
    ///
    /// Such a call says nothing about the service: it is a local rejection (see
    /// [`is_rejection`](crate::is_rejection)), so a circuit breaker does not count it and retry
    /// does not retry it.
    pub fn before_call(&self) -> bool {
        self.before_call
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ElapsedKind::Timeout => f.write_str("request timed out"),
            ElapsedKind::InheritedDeadline => f.write_str("request deadline has passed"),
        }
    }
}

impl std::error::Error for Elapsed {}
