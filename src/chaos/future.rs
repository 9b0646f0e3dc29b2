//! The response future of [`Chaos`](super::Chaos).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::InjectedFault;
use crate::BoxError;
use crate::completion::polled_after_completion;

pin_project! {
    /// The response future of [`Chaos`](super::Chaos): the inner service's future, after an
    /// injected delay if there is one, or an injected fault that is ready at once.
    ///
    /// Dropping it during the delay drops the inner future before it was ever polled.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ResponseFuture<F, Res> {
        #[pin]
        kind: Kind<F, Res>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, Res> {
        // Delaying while `delay` is `Some`, then calling. The sleep is boxed: only delayed
        // calls pay for it (an allocation beside a delay of milliseconds), and the future of
        // every other call stays the inner future plus a word, instead of growing by the
        // 100-odd bytes of a `Sleep`.
        Calling {
            delay: Option<Pin<Box<Sleep>>>,
            #[pin]
            future: F,
        },
        Failing {
            fault: InjectedFault,
            response: Option<Res>,
        },
        // Answered; the inner future is gone.
        Done,
    }
}

impl<F, Res> ResponseFuture<F, Res> {
    #[inline]
    pub(crate) fn called(future: F, delay: Option<Pin<Box<Sleep>>>) -> Self {
        Self {
            kind: Kind::Calling { delay, future },
        }
    }

    pub(crate) fn failed(fault: InjectedFault, response: Option<Res>) -> Self {
        Self {
            kind: Kind::Failing { fault, response },
        }
    }
}

impl<F, Res, E> Future for ResponseFuture<F, Res>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        let result = match kind.as_mut().project() {
            KindProj::Calling { delay, future } => {
                // The delay is polled first, and the inner future only once it is over: the
                // injected latency comes before any work of the inner service's future.
                if let Some(sleep) = delay {
                    ready!(sleep.as_mut().poll(cx));
                    *delay = None;
                }
                ready!(future.poll(cx)).map_err(Into::into)
            }
            // A response made by `error_response`, or the fault itself.
            KindProj::Failing { fault, response } => match response.take() {
                Some(response) => Ok(response),
                None => Err(Box::new(*fault) as BoxError),
            },
            KindProj::Done => polled_after_completion("chaos::ResponseFuture"),
        };
        kind.set(Kind::Done);
        Poll::Ready(result)
    }
}

impl<F, Res> fmt::Debug for ResponseFuture<F, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ResponseFuture");
        match &self.kind {
            Kind::Calling { delay, .. } => debug
                .field(
                    "state",
                    &if delay.is_some() {
                        "delaying"
                    } else {
                        "calling"
                    },
                )
                .finish_non_exhaustive(),
            Kind::Failing { fault, .. } => debug
                .field("state", &"failing")
                .field("fault", fault)
                .finish_non_exhaustive(),
            Kind::Done => debug.field("state", &"done").finish_non_exhaustive(),
        }
    }
}
