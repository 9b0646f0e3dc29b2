//! The timeout each call gets: fixed when the layer was made, or live, in a word that the
//! layer's [`reconfigure`](super::TimeoutLayer::reconfigure) can change while calls run.
//!
//! # Layout
//!
//! A live timeout is one `AtomicU64` of nanoseconds (saturating: a timeout longer than 584
//! years reads as 584 years, which no deadline can tell apart). It is leaked when the layer is
//! built, like the instance's telemetry, so that services hold a plain `&'static` and a clone of
//! a service (axum clones one per request) costs no reference count. Layers are built a few
//! times per process, so the leak is a word per layer built, not per call.
//!
//! # Memory ordering
//!
//! `Relaxed` both ways: the word guards no other data, and a call that starts as a new timeout
//! is stored may take the old one or the new one; either is a timeout the operator asked for.
//! It is a std atomic even under loom: a word leaked for the life of the process cannot belong
//! to one loom model, and a single `Relaxed` word has no interleaving to explore.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A timeout's duration.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timing {
    /// Set when the layer was made (`TimeoutLayer::new`, a stack given a `Duration`).
    Fixed(Duration),
    /// Set by the builder, changed by `reconfigure`.
    Live(&'static AtomicU64),
}

impl Timing {
    /// A live timing starting at `timeout`.
    pub(crate) fn live(timeout: Duration) -> Self {
        Self::Live(Box::leak(Box::new(AtomicU64::new(nanos(timeout)))))
    }

    /// The timeout now.
    #[inline]
    pub(crate) fn get(self) -> Duration {
        match self {
            Self::Fixed(timeout) => timeout,
            Self::Live(nanos) => Duration::from_nanos(nanos.load(Ordering::Relaxed)),
        }
    }

    /// Sets a live timeout; returns whether this timing is live.
    pub(crate) fn set(self, timeout: Duration) -> bool {
        match self {
            Self::Fixed(_) => false,
            Self::Live(word) => {
                word.store(nanos(timeout), Ordering::Relaxed);
                true
            }
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
