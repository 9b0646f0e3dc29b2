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
        let now = Instant::now();
        let at = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 3600));
        Self { at }
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
}
