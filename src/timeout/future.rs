//! The response future of [`Timeout`](super::Timeout).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep_until};

use super::telemetry::Telemetry;
use crate::BoxError;
use crate::completion::polled_after_completion;
use crate::deadline::Deadline;
use crate::deadline::{Elapsed, ElapsedKind};

pin_project! {
    /// The response future of [`Timeout`](super::Timeout): the inner future, run with the call's
    /// deadline as [`Deadline::current`](crate::deadline::Deadline::current), raced against that
    /// deadline.
    ///
    /// The timer is armed only when the inner future first returns `Pending`, so a call that is
    /// answered at once creates no timer. When the deadline passes, the inner future is dropped
    /// at once (not when this future is), and this future fails with
    /// [`Elapsed`](super::Elapsed).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        #[pin]
        sleep: Option<Sleep>,
        deadline: Deadline,
        kind: ElapsedKind,
        telemetry: Telemetry,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // The inner service was called; its future is polled inside the deadline's scope.
        Running { #[pin] inner: F },
        // The deadline had passed when the call was made: the inner service was not called.
        Expired,
        // Finished (answered, or failed with `Elapsed`); the inner future is gone.
        Done,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn running(
        inner: F,
        deadline: Deadline,
        kind: ElapsedKind,
        telemetry: Telemetry,
    ) -> Self {
        Self {
            state: State::Running { inner },
            sleep: None,
            deadline,
            kind,
            telemetry,
        }
    }

    pub(crate) fn expired(deadline: Deadline, kind: ElapsedKind, telemetry: Telemetry) -> Self {
        Self {
            state: State::Expired,
            sleep: None,
            deadline,
            kind,
            telemetry,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();

        // The inner future is polled first, as in tower's `Timeout`: an answer that is ready is
        // returned even if the deadline passed in the same instant, rather than thrown away.
        match this.state.as_mut().project() {
            StateProj::Running { inner } => {
                // Polled with the deadline as `Deadline::current()` (a `Scoped` future, inlined
                // so that the deadline is stored once).
                if let Poll::Ready(result) = this.deadline.sync_scope(|| inner.poll(cx)) {
                    this.state.set(State::Done);
                    return Poll::Ready(result.map_err(Into::into));
                }
            }
            StateProj::Expired => {
                this.state.set(State::Done);
                this.telemetry.elapsed(*this.kind, true);
                return Poll::Ready(Err(Elapsed::with_kind(*this.kind).not_sent().into()));
            }
            StateProj::Done => polled_after_completion("timeout::ResponseFuture"),
        }

        // The inner future is pending: arm the timer the first time only.
        if this.sleep.is_none() {
            this.sleep.set(Some(sleep_until(this.deadline.instant())));
        }
        if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
            ready!(sleep.poll(cx));
        }

        // Drop the inner future now: whatever it holds (a connection, a permit) is released at
        // the deadline, not whenever the caller drops this future.
        this.state.set(State::Done);
        this.sleep.set(None);
        this.telemetry.elapsed(*this.kind, false);
        Poll::Ready(Err(Elapsed::with_kind(*this.kind).into()))
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("deadline", &self.deadline)
            .field("kind", &self.kind)
            .field("timer_armed", &self.sleep.is_some())
            .finish_non_exhaustive()
    }
}
