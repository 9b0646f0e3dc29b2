//! The layer that makes a stack infallible.

use std::convert::Infallible;
use std::fmt;
use std::task::{Context, Poll};

use ::http::Response;
use tower_layer::Layer;
use tower_service::Service;

use super::future;
use super::{MakeBody, RejectionResponses};
use crate::BoxError;

/// Turns every error of the service below into a response, so the stack's error type becomes
/// [`Infallible`], as axum's `Router::layer` needs; see the [module docs](super).
///
/// The layer holds only the mapping (no shared state): clones and the services it makes each
/// copy it.
#[derive(Clone, Copy)]
pub struct RejectionsAsResponsesLayer<M = ()> {
    responses: RejectionResponses<M>,
}

impl RejectionsAsResponsesLayer {
    /// The layer with the default mapping ([`RejectionResponses::new`]).
    pub const fn new() -> Self {
        Self {
            responses: RejectionResponses::new(),
        }
    }
}

impl Default for RejectionsAsResponsesLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> RejectionsAsResponsesLayer<M> {
    /// The layer with the mapping `responses`.
    pub fn with_responses(responses: RejectionResponses<M>) -> Self {
        Self { responses }
    }

    /// The mapping.
    pub fn responses(&self) -> &RejectionResponses<M> {
        &self.responses
    }
}

impl<M> fmt::Debug for RejectionsAsResponsesLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionsAsResponsesLayer")
            .field("responses", &self.responses)
            .finish()
    }
}

impl<S, M: Clone> Layer<S> for RejectionsAsResponsesLayer<M> {
    type Service = RejectionsAsResponses<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        RejectionsAsResponses {
            inner,
            responses: self.responses.clone(),
            not_ready: None,
        }
    }
}

/// A service whose errors become responses; made by [`RejectionsAsResponsesLayer`].
pub struct RejectionsAsResponses<S, M = ()> {
    inner: S,
    responses: RejectionResponses<M>,
    /// The error of the inner service's `poll_ready`, answered by the next `call`.
    not_ready: Option<BoxError>,
}

impl<S, M> RejectionsAsResponses<S, M> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, M: Clone> Clone for RejectionsAsResponses<S, M> {
    /// A clone holds no `poll_ready` error: it must be polled ready itself.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            responses: self.responses.clone(),
            not_ready: None,
        }
    }
}

impl<S: fmt::Debug, M> fmt::Debug for RejectionsAsResponses<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionsAsResponses")
            .field("inner", &self.inner)
            .field("responses", &self.responses)
            .field("not_ready", &self.not_ready)
            .finish()
    }
}

impl<S, M, Req, B> Service<Req> for RejectionsAsResponses<S, M>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
    M: MakeBody<B> + Clone,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = future::ResponseFuture<S::Future, M>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.not_ready.is_none() {
            match self.inner.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => self.not_ready = Some(error.into()),
            }
        }
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        match self.not_ready.take() {
            Some(error) => future::ResponseFuture::not_ready(error, self.responses.clone()),
            None => {
                future::ResponseFuture::called(self.inner.call(request), self.responses.clone())
            }
        }
    }
}
