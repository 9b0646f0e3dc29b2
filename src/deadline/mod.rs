//! A deadline that travels with a call: [`Deadline`], an absolute instant on tokio's clock.
//!
//! Code running inside a call can ask how long it has left with [`Deadline::current`]: a
//! [`TimeoutLayer`](crate::timeout::TimeoutLayer) sets it for its inner service (the earlier of its
//! own timeout and any deadline it inherited), and retry reads it so that it never starts a
//! backoff or an attempt that cannot finish in time.
//!
//! At the edges, with the `http` feature, the deadline crosses the wire:
//! [`InboundDeadlineLayer`] (server side) reads it from `grpc-timeout` or a configured header
//! (such as Envoy's [`ENVOY_EXPECTED_RQ_TIMEOUT_MS`]) into the call's scope and the request's
//! extensions, and [`PropagateDeadlineLayer`] (client side, with the `timeout` feature as well)
//! writes the time left onto outgoing requests and fails at once a call whose deadline has
//! passed. [`parse_grpc_timeout`] and [`format_grpc_timeout`] implement the wire format.
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
//!
//! # Where the deadline lives
//!
//! - **The scope** ([`Deadline::current`], a task-local in effect: set while a [`Scoped`] future
//!   polls, like `tokio::task_local!`) is the authority. Every layer of this crate
//!   that sets a deadline runs both its inner service's `call` and the inner future in the scope,
//!   so the layers below it and the handler see it, narrowed by each timeout on the way in.
//! - **The request's extensions** hold the deadline [`InboundDeadlineLayer`] received. A
//!   [`TimeoutLayer`](crate::timeout::TimeoutLayer) is generic over the request type and does not
//!   touch them; to have them follow the deadline it narrowed, put
//!   [`InboundDeadlineLayer::current_only`] under it (it records [`Deadline::current`] there).
//!   [`PropagateDeadlineLayer`] takes the earlier of the scope and the extension.
//!
//! # Defaults
//!
//! | setting | default | constant |
//! |---|---|---|
//! | `InboundDeadlineLayer::grpc_timeout` | `true` | |
//! | `InboundDeadlineLayer::header` | none | |
//! | `InboundDeadlineLayer::safety_margin` | zero | `DEFAULT_SAFETY_MARGIN` |
//! | `PropagateDeadlineLayer::grpc_timeout` | `true` | |
//! | `PropagateDeadlineLayer::header` | none | |
//!
//! # Telemetry
//!
//! | kind | name | level | fields |
//! |---|---|---|---|
//! | event | `ignored a malformed deadline header` | `debug` | `deadline.header`, `deadline.value` |
//! | event | `call failed: deadline passed` (outbound, before the call) | `debug` | `timeout.kind = "deadline"`, `timeout.before_call = true` |
//!
//! Events have the target `steadfast::deadline`. The deadline layers register no metrics; a
//! [`TimeoutLayer`](crate::timeout::TimeoutLayer) counts the calls it fails.
//!
//! # Errors
//!
//! [`InboundDeadlineLayer`] adds no way to fail and keeps the inner error type; a malformed header
//! is ignored, never an error. [`PropagateDeadlineLayer`] returns `BoxError`: an
//! [`Elapsed`](crate::timeout::Elapsed) of kind
//! [`InheritedDeadline`](crate::timeout::ElapsedKind::InheritedDeadline) when the deadline has
//! passed, or the inner error, boxed.
//!
//! # Readiness
//!
//! Both layers answer `poll_ready` with their inner service's readiness. The propagating layer
//! fails a call whose deadline has passed in `call`, never in `poll_ready`.
//!
//! # Cancel safety
//!
//! The futures hold nothing but the inner future; dropping them drops it. A [`Scoped`] future
//! sets the deadline only while it polls its inner future, so the inner future is dropped
//! outside the scope (unlike `tokio::task_local!`, which drops it inside).
//!
//! (The HTTP layers need the `http` feature; [`PropagateDeadlineLayer`] needs `timeout` too.)
//!
#![cfg_attr(
    not(feature = "http"),
    doc = "[`InboundDeadlineLayer`]: self",
    doc = "[`InboundDeadlineLayer::current_only`]: self",
    doc = "[`ENVOY_EXPECTED_RQ_TIMEOUT_MS`]: self"
)]
#![cfg_attr(
    not(all(feature = "http", feature = "timeout")),
    doc = "[`PropagateDeadlineLayer`]: self"
)]

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::LocalKey;
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;

mod grpc_timeout;
#[cfg(all(feature = "http", feature = "timeout"))]
pub(crate) use grpc_timeout::format_grpc_timeout_into;
pub use grpc_timeout::{format_grpc_timeout, parse_grpc_timeout};

#[cfg(feature = "http")]
pub mod future;
#[cfg(feature = "http")]
mod header;
#[cfg(feature = "http")]
mod layer;

#[cfg(feature = "http")]
pub use header::{ENVOY_EXPECTED_RQ_TIMEOUT_MS, GRPC_TIMEOUT};
#[cfg(feature = "http")]
pub use layer::{DEFAULT_SAFETY_MARGIN, InboundDeadline, InboundDeadlineLayer};
#[cfg(all(feature = "http", feature = "timeout"))]
pub use layer::{PropagateDeadline, PropagateDeadlineLayer};

// The deadline of the future being polled on this thread. A task-local in effect: a `Scoped`
// future sets it for the length of each of its polls and puts the previous value back, exactly
// as `tokio::task_local!` does, but in a `const`-initialized `Cell` (no lazy initialization, no
// `RefCell` flag, no destructor to register), which makes entering a scope two plain
// thread-local stores. `Option<Deadline>` is `Copy`, so reading it never borrows.
thread_local! {
    static CURRENT: Cell<Option<Deadline>> = const { Cell::new(None) };
}

#[cfg(any(
    feature = "timeout",
    feature = "circuit-breaker",
    feature = "rate-limit"
))]
thread_local! {
    // The instant the innermost `Timeout::call` on this thread read, while its inner `call` runs
    // (see `call_scope`); `None` outside one.
    static CALL_NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Now, as read by the innermost timeout whose inner `call` is running on this thread, or
/// from the clock outside one.
///
/// A call goes down a stack synchronously: the `call` of every layer below a timeout runs
/// within nanoseconds of the instant the timeout read. Reusing it makes one clock read serve
/// a call through any number of nested timeouts (an overall and a per-attempt one) and the
/// breaker's slow-call timing below them. What it gets is early by the time the synchronous
/// `call`s in between take (nanoseconds, for layers that do not block in `call`): a nested
/// deadline that much earlier, a call timed that much longer; never the other way.
#[cfg(any(
    feature = "timeout",
    feature = "circuit-breaker",
    feature = "rate-limit"
))]
#[inline]
pub(crate) fn call_now() -> Instant {
    CALL_NOW.get().unwrap_or_else(Instant::now)
}

/// Runs `f` (a layer's inner `call`) with `deadline` as the current deadline and `now`, the
/// instant the layer read, as [`call_now`].
#[cfg(feature = "timeout")]
#[inline]
pub(crate) fn call_scope<R>(deadline: Deadline, now: Instant, f: impl FnOnce() -> R) -> R {
    let _now = Enter::new(&CALL_NOW, now);
    deadline.sync_scope(f)
}

/// Sets one of this module's thread-locals until dropped, then restores the previous value
/// (also when the code in the scope panics).
struct Enter<T: Copy + 'static> {
    key: &'static LocalKey<Cell<Option<T>>>,
    previous: Option<T>,
}

impl<T: Copy + 'static> Enter<T> {
    #[inline]
    fn new(key: &'static LocalKey<Cell<Option<T>>>, value: T) -> Self {
        Self {
            key,
            previous: key.replace(Some(value)),
        }
    }
}

impl<T: Copy + 'static> Drop for Enter<T> {
    #[inline]
    fn drop(&mut self) {
        self.key.set(self.previous);
    }
}

pin_project! {
    /// The future returned by [`Deadline::scope`]: `F`, polled with the deadline as
    /// [`Deadline::current`].
    ///
    /// Like a `tokio::task_local!` scope, the deadline is set only while `F` is being polled;
    /// `F` is dropped outside it.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Scoped<F> {
        #[pin]
        future: F,
        deadline: Deadline,
    }
}

impl<F> Scoped<F> {
    /// The deadline this future runs with.
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _enter = Enter::new(&CURRENT, *this.deadline);
        this.future.poll(cx)
    }
}

impl<F> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// An absolute point on tokio's clock by which a call must be finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Instant,
}

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
        CURRENT.get()
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
        Scoped {
            future,
            deadline: self,
        }
    }

    /// Runs the closure `f` with `self` as the [current](Deadline::current) deadline, and returns
    /// what it returns.
    ///
    /// For code that makes a call synchronously, such as a layer's `Service::call` that calls its
    /// inner service: the inner `call` sees the deadline, though its future does not (wrap that in
    /// [`scope`](Deadline::scope)).
    #[inline]
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        let _enter = Enter::new(&CURRENT, self);
        f()
    }
}

/// `now + timeout`, saturating at about 30 years for a timeout too large for the clock.
pub(crate) fn saturating_add(now: Instant, timeout: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

#[cfg(all(test, feature = "timeout", not(steadfast_loom)))]
mod tests {
    use super::*;

    // Instants an hour ahead, which the clock cannot reach during the test (and which, unlike
    // one an hour back, exist on a machine that booted minutes ago).
    fn ahead(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(3600 + secs)
    }

    #[test]
    fn a_call_scope_lends_its_instant_to_the_calls_below_it_and_takes_it_back() {
        let (lent, nested_lent) = (ahead(0), ahead(5));
        let deadline = Deadline::at(ahead(10));
        let (inside, nested) = call_scope(deadline, lent, || {
            let nested = call_scope(deadline, nested_lent, call_now);
            (call_now(), nested)
        });
        assert_eq!(inside, lent);
        assert_eq!(nested, nested_lent);
        assert!(call_now() < lent, "the clock, outside");
        assert_eq!(Deadline::current(), None);
    }

    #[test]
    fn a_call_scope_is_left_on_a_panic() {
        let lent = ahead(0);
        let result =
            std::panic::catch_unwind(|| call_scope(Deadline::at(lent), lent, || panic!("in call")));
        assert!(result.is_err());
        assert!(call_now() < lent);
        assert_eq!(Deadline::current(), None);
    }
}
