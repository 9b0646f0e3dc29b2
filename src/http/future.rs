//! The response future of [`RejectionsAsResponses`](super::RejectionsAsResponses).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ::http::Response;
use pin_project_lite::pin_project;

use super::{MakeBody, RejectionResponses};
use crate::BoxError;
use crate::completion::polled_after_completion;

pin_project! {
    /// The response of the inner service, or the response for its error.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, M> {
        #[pin]
        kind: Kind<F>,
        responses: RejectionResponses<M>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        // The inner service was called: its future is the only one polled.
        Called { #[pin] future: F },
        // The inner service failed `poll_ready`: answered without calling it.
        NotReady { error: Option<BoxError> },
        // Answered.
        Done,
    }
}

impl<F, M> ResponseFuture<F, M> {
    pub(super) fn called(future: F, responses: RejectionResponses<M>) -> Self {
        Self {
            kind: Kind::Called { future },
            responses,
        }
    }

    pub(super) fn not_ready(error: BoxError, responses: RejectionResponses<M>) -> Self {
        Self {
            kind: Kind::NotReady { error: Some(error) },
            responses,
        }
    }
}

impl<F, M, B, E> Future for ResponseFuture<F, M>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    M: MakeBody<B>,
{
    type Output = Result<Response<B>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = match this.kind.as_mut().project() {
            KindProj::Called { future } => match ready!(future.poll(cx)) {
                Ok(response) => response,
                Err(error) => respond(this.responses, error.into()),
            },
            KindProj::NotReady { error } => match error.take() {
                Some(error) => respond(this.responses, error),
                None => polled_after_completion("http::ResponseFuture"),
            },
            KindProj::Done => polled_after_completion("http::ResponseFuture"),
        };
        this.kind.set(Kind::Done);
        Poll::Ready(Ok(response))
    }
}

/// The error path, kept out of `poll` so the success path stays small.
#[cold]
#[inline(never)]
fn respond<B, M: MakeBody<B>>(responses: &RejectionResponses<M>, error: BoxError) -> Response<B> {
    responses.to_response(&error)
}

impl<F, M> fmt::Debug for ResponseFuture<F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
