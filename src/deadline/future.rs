//! The response futures of the deadline layers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::Elapsed;
use super::Scoped;
use crate::BoxError;
use crate::completion::polled_after_completion;

pin_project! {
    /// The response future of [`InboundDeadline`](super::InboundDeadline): the inner future,
    /// run in the received deadline's scope when the request had one.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct InboundResponseFuture<F> {
        #[pin]
        kind: Inbound<F>,
    }
}

pin_project! {
    #[project = InboundProj]
    enum Inbound<F> {
        Scoped { #[pin] future: Scoped<F> },
        Plain { #[pin] future: F },
    }
}

impl<F> InboundResponseFuture<F> {
    pub(crate) fn scoped(future: Scoped<F>) -> Self {
        Self {
            kind: Inbound::Scoped { future },
        }
    }

    pub(crate) fn plain(future: F) -> Self {
        Self {
            kind: Inbound::Plain { future },
        }
    }
}

impl<F: Future> Future for InboundResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Only one future: the inner one (inside its scope, when there is a deadline).
        match self.project().kind.project() {
            InboundProj::Scoped { future } => future.poll(cx),
            InboundProj::Plain { future } => future.poll(cx),
        }
    }
}

impl<F> std::fmt::Debug for InboundResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scoped = matches!(self.kind, Inbound::Scoped { .. });
        f.debug_struct("InboundResponseFuture")
            .field("scoped", &scoped)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The response future of [`PropagateDeadline`](crate::deadline::PropagateDeadline): the
    /// inner future with its error boxed, or an [`Elapsed`] at once if the deadline had
    /// passed when the call was made.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct PropagateResponseFuture<F> {
        #[pin]
        state: Propagate<F>,
    }
}

pin_project! {
    #[project = PropagateProj]
    enum Propagate<F> {
        Called { #[pin] future: F },
        Passed,
        Done,
    }
}

impl<F> PropagateResponseFuture<F> {
    pub(crate) fn called(future: F) -> Self {
        Self {
            state: Propagate::Called { future },
        }
    }

    pub(crate) fn passed() -> Self {
        Self {
            state: Propagate::Passed,
        }
    }
}

impl<F, T, E> Future for PropagateResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        // Only one future to poll: the inner one. A passed deadline was decided in `call`.
        match state.as_mut().project() {
            PropagateProj::Called { future } => future.poll(cx).map_err(Into::into),
            PropagateProj::Passed => {
                state.set(Propagate::Done);
                Poll::Ready(Err(Elapsed::inherited_deadline().not_sent().into()))
            }
            PropagateProj::Done => polled_after_completion("deadline::PropagateResponseFuture"),
        }
    }
}

impl<F> std::fmt::Debug for PropagateResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let passed = !matches!(self.state, Propagate::Called { .. });
        f.debug_struct("PropagateResponseFuture")
            .field("deadline_passed", &passed)
            .finish_non_exhaustive()
    }
}
