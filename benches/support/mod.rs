//! Shims shared by the benches: the thinnest tower adapters for what the peers lack.
//!
//! Each bench uses only some of them.
#![allow(dead_code)]

use std::future::Ready;
use std::task::{Context, Poll};

use tower::Service;

/// failsafe has no tower layer: this is the thinnest one possible (no boxing).
#[derive(Clone)]
pub(crate) struct FailsafeService<S, B> {
    inner: S,
    breaker: B,
}

impl<S, B> FailsafeService<S, B> {
    pub(crate) fn new(inner: S, breaker: B) -> Self {
        Self { inner, breaker }
    }
}

impl<S, B, Req> Service<Req> for FailsafeService<S, B>
where
    S: Service<Req>,
    B: failsafe::futures::CircuitBreaker,
{
    type Response = S::Response;
    type Error = failsafe::Error<S::Error>;
    type Future = failsafe::futures::ResponseFuture<
        S::Future,
        B::FailurePolicy,
        B::Instrument,
        failsafe::Any,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(failsafe::Error::Inner)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.breaker.call(self.inner.call(request))
    }
}

/// A policy for tower's `Retry` that never retries (it still clones each request, as a retry
/// policy must).
#[derive(Clone)]
pub(crate) struct NeverRetry;

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for NeverRetry {
    type Future = Ready<()>;

    fn retry(&mut self, _request: &mut Req, _result: &mut Result<Res, E>) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}
