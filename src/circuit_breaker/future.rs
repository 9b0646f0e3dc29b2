//! The response future of [`CircuitBreaker`](super::CircuitBreaker).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::breaker::{Breaker, PackedRejection, Permission, PermissionKind};
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
pub(crate) struct Judge<C> {
    pub(crate) breaker: Arc<Breaker>,
    classifier: C,
    /// Whether calls are timed for slow-call detection (read once here, not through the breaker).
    times_calls: bool,
}

impl<C> Judge<C> {
    pub(crate) fn new(breaker: Arc<Breaker>, classifier: C) -> Self {
        Self {
            times_calls: breaker.fixed().slow_calls,
            breaker,
            classifier,
        }
    }

    pub(crate) fn classifier(&self) -> &C {
        &self.classifier
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
        let end = breaker.needs_end_time().then(Instant::now);
        // `start` is set only when calls are timed, so the live duration is read only then.
        let slow = match (self.start, end) {
            (Some(start), Some(end)) => {
                end.saturating_duration_since(start) >= breaker.live().slow_call_duration()
            }
            _ => false,
        };
        if outcome == Outcome::Success && !slow && breaker.absorbs_success(permit) {
            return; // the healthy path: one load, see `CountWindow::absorbs_success`
        }
        breaker.record(permit, outcome, slow, end);
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
