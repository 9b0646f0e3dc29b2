//! The response future of [`Bulkhead`](super::Bulkhead).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::BulkheadFull;
use super::state::Permit;
use crate::BoxError;
use crate::completion::polled_after_completion;

pin_project! {
    /// The response future of [`Bulkhead`](super::Bulkhead): the inner service's future with the
    /// call's permit, or the rejection of a call that got no permit.
    ///
    /// The permit is given back the moment the inner future completes (with a response or an
    /// error), or when this future is dropped before that.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called {
            #[pin]
            future: F,
            permit: Option<Permit>,
        },
        Rejected {
            error: BulkheadFull,
        },
        // Answered; the inner future and the permit are gone.
        Done,
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(crate) fn called(future: F, permit: Permit) -> Self {
        Self {
            kind: Kind::Called {
                future,
                permit: Some(permit),
            },
        }
    }

    pub(crate) fn rejected(error: BulkheadFull) -> Self {
        Self {
            kind: Kind::Rejected { error },
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
        // There is one inner future to poll: the inner service's. The permit is not a future; it
        // is dropped (given back) as soon as that future is ready.
        let mut kind = self.project().kind;
        let result = match kind.as_mut().project() {
            KindProj::Called { future, permit } => {
                let result = ready!(future.poll(cx));
                drop(permit.take());
                result.map_err(Into::into)
            }
            KindProj::Rejected { error } => Err(Box::new(error.clone()) as BoxError),
            KindProj::Done => polled_after_completion("bulkhead::ResponseFuture"),
        };
        kind.set(Kind::Done);
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Called { permit, .. } => f
                .debug_struct("ResponseFuture")
                .field("holds_permit", &permit.is_some())
                .finish_non_exhaustive(),
            Kind::Rejected { error } => f
                .debug_struct("ResponseFuture")
                .field("rejected", error)
                .finish(),
            Kind::Done => f.debug_struct("ResponseFuture").finish_non_exhaustive(),
        }
    }
}
