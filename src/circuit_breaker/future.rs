//! The response future of [`CircuitBreaker`](super::CircuitBreaker).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::breaker::{Breaker, PackedRejection, Permission, PermissionKind};
use super::shape::Window;
use crate::BoxError;
use crate::classify::{Classify, Outcome};
use crate::completion::polled_after_completion;
use crate::sync::Arc;

/// What a service instance shares with the futures it makes: the breaker, and the classifier
/// that judges each outcome.
///
/// Each `layer()` makes one, and each clone that lives on makes its own (see
/// `CircuitBreaker`'s `Sharing`), so that the reference count a future takes is on a cache line
/// no other thread writes: futures of services used from different threads do not contend on
/// the breaker's own `Arc`.
///
/// It also holds the breaker's window as it was when it was made, and that window's version:
/// the service checks the version once per call and makes a new `Judge` when `reconfigure`
/// replaced the window (see `shape.rs`), so that no call takes the window's lock.
pub(crate) struct Judge<C> {
    pub(crate) breaker: Arc<Breaker>,
    classifier: C,
    window: Arc<Window>,
    window_version: u64,
    /// Whether calls are timed for slow-call detection (read once here, not per call).
    times_calls: bool,
    /// Whether an outcome needs the time it ended (slow calls, or a time window).
    needs_end_time: bool,
}

impl<C> Judge<C> {
    /// A judge of the breaker's current window; takes the window's lock.
    pub(crate) fn new(breaker: Arc<Breaker>, classifier: C) -> Self {
        let (version, window) = breaker.window().load();
        Self::with_window(breaker, classifier, version, window)
    }

    fn with_window(
        breaker: Arc<Breaker>,
        classifier: C,
        window_version: u64,
        window: Arc<Window>,
    ) -> Self {
        Self {
            times_calls: window.shape().slow_calls,
            needs_end_time: window.needs_end_time(),
            breaker,
            classifier,
            window,
            window_version,
        }
    }

    /// A judge of its own with the same classifier, of the current window: this one's if it
    /// is still current (no lock), else the cell's.
    pub(crate) fn renewed(&self) -> Self
    where
        C: Clone,
    {
        let breaker = Arc::clone(&self.breaker);
        if self.is_current() {
            let window = Arc::clone(&self.window);
            Self::with_window(
                breaker,
                self.classifier.clone(),
                self.window_version,
                window,
            )
        } else {
            Self::new(breaker, self.classifier.clone())
        }
    }

    /// Whether its window is the breaker's current one: one `Relaxed` load.
    #[inline(always)]
    pub(crate) fn is_current(&self) -> bool {
        self.breaker.window().version() == self.window_version
    }
}

/// A permitted call that has not finished: it records the outcome, or gives back its probe slot
/// if it is dropped first.
pub(crate) struct Guard<C> {
    shared: Arc<Judge<C>>,
    permit: Permission,
    start: Option<Instant>,
}

impl<C> Guard<C> {
    /// Permission for a call that starts now (the slow-call clock starts here, if calls are
    /// timed).
    #[inline]
    pub(crate) fn new(shared: Arc<Judge<C>>, permit: Permission) -> Self {
        // Below a timeout's `call`, the instant it read (see `clock::call_now`).
        let start = shared.times_calls.then(crate::clock::call_now);
        Self {
            shared,
            permit,
            start,
        }
    }

    #[inline]
    fn finish<T, E>(&mut self, result: &Result<T, E>)
    where
        C: Classify<T, E>,
    {
        let breaker = &self.shared.breaker;
        let outcome = self.shared.classifier.classify(result);
        // Recorded below: nothing left for `drop` to give back.
        let permit = std::mem::replace(&mut self.permit.kind, PermissionKind::Passthrough);
        let permit = Permission {
            kind: permit,
            generation: self.permit.generation,
        };
        let end = self.shared.needs_end_time.then(Instant::now);
        // `start` is set only when calls are timed, so the live duration is read only then.
        let slow = match (self.start, end) {
            (Some(start), Some(end)) => {
                end.saturating_duration_since(start) >= breaker.live().slow_call_duration()
            }
            _ => false,
        };
        let window = &self.shared.window;
        if outcome == Outcome::Success && !slow && breaker.absorbs_success(window, permit) {
            return; // the healthy path: one load, see `CountWindow::absorbs_success`
        }
        breaker.record(window, permit, outcome, slow, end);
    }
}

impl<C> Drop for Guard<C> {
    #[inline]
    fn drop(&mut self) {
        self.shared.breaker.release(self.permit);
    }
}

impl<C> fmt::Debug for Guard<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("permit", &self.permit)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The response future of [`CircuitBreaker`](super::CircuitBreaker): the inner service's
    /// future, whose outcome it records, or a rejection that is ready at once.
    ///
    /// Dropping it before it completes records nothing; a half-open probe gives its slot back.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F>,
        guard: Option<Guard<C>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Rejected { rejection: PackedRejection },
        // Answered; the inner future is gone.
        Done,
    }
}

impl<F, C> ResponseFuture<F, C> {
    #[inline]
    pub(crate) fn called(future: F, guard: Guard<C>) -> Self {
        Self {
            kind: Kind::Called { future },
            guard: Some(guard),
        }
    }

    pub(crate) fn rejected(rejection: PackedRejection) -> Self {
        Self {
            kind: Kind::Rejected { rejection },
            guard: None,
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = match this.kind.as_mut().project() {
            KindProj::Called { future } => {
                let result = ready!(future.poll(cx));
                // Finished in place rather than moved out: the guard is dropped with the future.
                if let Some(guard) = this.guard.as_mut() {
                    guard.finish(&result);
                }
                result.map_err(Into::into)
            }
            KindProj::Rejected { rejection } => Err(Box::new(rejection.error()) as BoxError),
            KindProj::Done => polled_after_completion("circuit_breaker::ResponseFuture"),
        };
        this.kind.set(Kind::Done);
        Poll::Ready(result)
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Rejected { .. } => "rejected",
            Kind::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .field("guard", &self.guard)
            .finish()
    }
}
