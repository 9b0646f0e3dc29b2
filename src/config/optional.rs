//! A layer that a file may leave out: [`OptionalLayer`] applies its layer when present and
//! nothing when absent, so one type covers both.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;

/// A layer that is present or absent at run time (a section of a [`StackConfig`] that the
/// file may leave out), as one type. Its services are [`Optional`].
///
/// [`StackConfig`]: super::StackConfig
#[derive(Clone, Debug)]
pub struct OptionalLayer<L> {
    inner: Option<L>,
}

impl<L> OptionalLayer<L> {
    /// `Some(layer)` applies `layer`; `None` leaves services as they are.
    pub fn new(inner: Option<L>) -> Self {
        Self { inner }
    }

    /// The layer, if present.
    pub fn get(&self) -> Option<&L> {
        self.inner.as_ref()
    }
}

impl<S, L: Layer<S>> Layer<S> for OptionalLayer<L> {
    type Service = Optional<L::Service, S>;

    fn layer(&self, service: S) -> Self::Service {
        match &self.inner {
            Some(layer) => Optional::Present(layer.layer(service)),
            None => Optional::Absent(service),
        }
    }
}

/// The service of an [`OptionalLayer`]: the layered service, or the service itself. Its error is
/// [`BoxError`], into which both errors go unchanged (boxed, not wrapped).
#[derive(Clone)]
pub enum Optional<P, A> {
    /// The layer was present.
    Present(P),
    /// The layer was absent.
    Absent(A),
}

impl<P, A> fmt::Debug for Optional<P, A>
where
    P: fmt::Debug,
    A: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Present(service) => f.debug_tuple("Present").field(service).finish(),
            Self::Absent(service) => f.debug_tuple("Absent").field(service).finish(),
        }
    }
}

impl<P, A, Request> Service<Request> for Optional<P, A>
where
    P: Service<Request>,
    A: Service<Request, Response = P::Response>,
    P::Error: Into<BoxError>,
    A::Error: Into<BoxError>,
{
    type Response = P::Response;
    type Error = BoxError;
    type Future = OptionalFuture<P::Future, A::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::Present(service) => service.poll_ready(cx).map_err(Into::into),
            Self::Absent(service) => service.poll_ready(cx).map_err(Into::into),
        }
    }

    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        match self {
            Self::Present(service) => OptionalFuture {
                inner: Inner::Present {
                    future: service.call(request),
                },
            },
            Self::Absent(service) => OptionalFuture {
                inner: Inner::Absent {
                    future: service.call(request),
                },
            },
        }
    }
}

pin_project! {
    /// The response future of [`Optional`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct OptionalFuture<P, A> {
        #[pin]
        inner: Inner<P, A>,
    }
}

pin_project! {
    #[project = InnerProj]
    #[derive(Debug)]
    enum Inner<P, A> {
        Present { #[pin] future: P },
        Absent { #[pin] future: A },
    }
}

impl<P, A, T, EP, EA> Future for OptionalFuture<P, A>
where
    P: Future<Output = Result<T, EP>>,
    A: Future<Output = Result<T, EA>>,
    EP: Into<BoxError>,
    EA: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match self.project().inner.project() {
            InnerProj::Present { future } => ready!(future.poll(cx)).map_err(Into::into),
            InnerProj::Absent { future } => ready!(future.poll(cx)).map_err(Into::into),
        })
    }
}
