//! A deadline that travels with a call: [`Deadline`], an absolute instant on tokio's clock.
//!
//! Code running inside a call can ask how long it has left with [`Deadline::current`]: a
//! [`TimeoutLayer`](crate::timeout::TimeoutLayer) sets it for its inner service (the earlier of its
//! own timeout and any deadline it inherited), and retry reads it so that it never starts a
//! backoff or an attempt that cannot finish in time.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use steadfast::deadline::Deadline;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! assert_eq!(Deadline::current(), None);
//!
//! let deadline = Deadline::after(Duration::from_secs(2));
//! deadline
//!     .scope(async {
//!         let current = Deadline::current().expect("set by the scope");
//!         assert_eq!(current.remaining(), Duration::from_secs(2));
//!     })
//!     .await;
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static CURRENT: Deadline;
}

/// An absolute point on tokio's clock by which a call must be finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Instant,
}

/// The future returned by [`Deadline::scope`].
pub type Scoped<F> = tokio::task::futures::TaskLocalFuture<Deadline, F>;

impl Deadline {
    /// A deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Self { at: instant }
    }

    /// A deadline `timeout` from now. A timeout too large for the clock saturates at about 30 years.
    pub fn after(timeout: Duration) -> Self {
        Self {
            at: saturating_add(Instant::now(), timeout),
        }
    }

    /// The deadline of the call in progress, if any layer set one.
    ///
    /// Inside a [`TimeoutLayer`](crate::timeout::TimeoutLayer)'s inner service this is the earlier
    /// of that timeout and any inherited deadline.
    pub fn current() -> Option<Deadline> {
        CURRENT.try_with(|deadline| *deadline).ok()
    }

    /// The instant of the deadline.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// Time left until the deadline; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed (it is due at or before now).
    pub fn has_passed(&self) -> bool {
        self.at <= Instant::now()
    }

    /// The earlier of `self` and `other`.
    pub fn min(self, other: Option<Deadline>) -> Deadline {
        match other {
            Some(other) if other.at < self.at => other,
            _ => self,
        }
    }

    /// Runs `future` with `self` as the [current](Deadline::current) deadline.
    ///
    /// The caller decides whether an inherited deadline is earlier; see [`Deadline::min`].
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        CURRENT.scope(self, future)
    }

    /// Runs the closure `f` with `self` as the [current](Deadline::current) deadline, and returns
    /// what it returns.
    ///
    /// For code that makes a call synchronously, such as a layer's `Service::call` that calls its
    /// inner service: the inner `call` sees the deadline, though its future does not (wrap that in
    /// [`scope`](Deadline::scope)).
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }
}

/// `now + timeout`, saturating at about 30 years for a timeout too large for the clock.
pub(crate) fn saturating_add(now: Instant, timeout: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}
