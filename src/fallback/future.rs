//! The response futures of [`Fallback`](super::Fallback) and [`Failover`](super::Failover).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_service::Service;

use super::{FallbackCore, Predicate};
use crate::BoxError;
use crate::completion::polled_after_completion;

pin_project! {
    /// The response future of [`Fallback`](super::Fallback): the inner service's future, whose
    /// error, if the predicate accepts it, is answered by the fallback function.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<Fut, F, P> {
        #[pin]
        state: State<Fut>,
        shared: Arc<FallbackCore<F, P>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut> {
        // The inner service's call.
        Called {
            #[pin]
            future: Fut,
        },
        // The inner service failed in `poll_ready`: the fallback answers without a call.
        Failed {
            error: Option<BoxError>,
        },
        // Answered.
        Done,
    }
}

impl<Fut, F, P> ResponseFuture<Fut, F, P> {
    pub(crate) fn called(future: Fut, shared: Arc<FallbackCore<F, P>>) -> Self {
        Self {
            state: State::Called { future },
            shared,
        }
    }

    pub(crate) fn failed(error: BoxError, shared: Arc<FallbackCore<F, P>>) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
            shared,
        }
    }
}

impl<Fut, F, P, Res, E> Future for ResponseFuture<Fut, F, P>
where
    Fut: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    F: Fn(BoxError) -> Result<Res, BoxError>,
    P: Predicate,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Only one future is ever polled: the inner service's. The fallback function is called
        // synchronously, once, with its error.
        let mut this = self.project();
        let result = match this.state.as_mut().project() {
            StateProj::Called { future } => ready!(future.poll(cx)),
            StateProj::Failed { error } => match error.take() {
                Some(error) => {
                    // Accepted by the predicate in `poll_ready`.
                    this.state.set(State::Done);
                    this.shared.answering(&error, "function");
                    return Poll::Ready((this.shared.f)(error));
                }
                None => polled_after_completion("fallback::ResponseFuture"),
            },
            StateProj::Done => polled_after_completion("fallback::ResponseFuture"),
        };
        this.state.set(State::Done);
        // A predicate-declined error is returned below, unchanged.
        let error = match result {
            Ok(response) => return Poll::Ready(Ok(response)),
            Err(error) => error.into(),
        };
        if this.shared.predicate.should_fallback(&error) {
            this.shared.answering(&error, "function");
            Poll::Ready((this.shared.f)(error))
        } else {
            Poll::Ready(Err(error))
        }
    }
}

impl<Fut, F, P> fmt::Debug for ResponseFuture<Fut, F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Failed { .. } => "failed in poll_ready",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The response future of [`Failover`](super::Failover): the primary's call, then, if it
    /// failed with an error the predicate accepts, the backup's readiness and call.
    #[must_use = "futures do nothing unless polled"]
    pub struct FailoverFuture<Fut, B, Req, P>
    where
        B: Service<Req>,
    {
        #[pin]
        state: FailoverState<Fut, B::Future>,
        // The backup and the copy of the request, until the backup is called.
        backup: Option<B>,
        request: Option<Req>,
        shared: Arc<FallbackCore<(), P>>,
    }
}

pin_project! {
    #[project = FailoverStateProj]
    enum FailoverState<Fut, BFut> {
        // The primary's call.
        Primary {
            #[pin]
            future: Fut,
        },
        // The primary failed: waiting for the backup to be ready.
        BackupReady,
        // The backup's call.
        Backup {
            #[pin]
            future: BFut,
        },
        // Answered.
        Done,
    }
}

impl<Fut, B, Req, P> FailoverFuture<Fut, B, Req, P>
where
    B: Service<Req>,
{
    pub(crate) fn primary(
        future: Fut,
        backup: B,
        request: Req,
        shared: Arc<FallbackCore<(), P>>,
    ) -> Self {
        Self {
            state: FailoverState::Primary { future },
            backup: Some(backup),
            request: Some(request),
            shared,
        }
    }

    /// The primary failed in `poll_ready` with an error the predicate accepted: go straight to
    /// the backup.
    pub(crate) fn backup(backup: B, request: Req, shared: Arc<FallbackCore<(), P>>) -> Self {
        Self {
            state: FailoverState::BackupReady,
            backup: Some(backup),
            request: Some(request),
            shared,
        }
    }
}

impl<Fut, B, Req, P, Res, E> Future for FailoverFuture<Fut, B, Req, P>
where
    Fut: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    B: Service<Req, Response = Res>,
    B::Error: Into<BoxError>,
    P: Predicate,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The primary is polled first, and alone: this is failover, not hedging, so the backup
        // takes no load until the primary has failed. Then the backup's readiness, then its call.
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                FailoverStateProj::Primary { future } => match ready!(future.poll(cx)) {
                    Ok(response) => {
                        this.state.set(FailoverState::Done);
                        return Poll::Ready(Ok(response));
                    }
                    Err(error) => {
                        let error = error.into();
                        if !this.shared.predicate.should_fallback(&error) {
                            this.state.set(FailoverState::Done);
                            return Poll::Ready(Err(error));
                        }
                        this.shared.answering(&error, "backup");
                        this.state.set(FailoverState::BackupReady);
                    }
                },
                FailoverStateProj::BackupReady => {
                    let Some(backup) = this.backup.as_mut() else {
                        polled_after_completion("fallback::FailoverFuture")
                    };
                    if let Err(error) = ready!(backup.poll_ready(cx)) {
                        *this.backup = None;
                        *this.request = None;
                        this.state.set(FailoverState::Done);
                        return Poll::Ready(Err(error.into()));
                    }
                    let (Some(mut backup), Some(request)) =
                        (this.backup.take(), this.request.take())
                    else {
                        polled_after_completion("fallback::FailoverFuture")
                    };
                    let future = backup.call(request);
                    this.state.set(FailoverState::Backup { future });
                }
                FailoverStateProj::Backup { future } => {
                    let result = ready!(future.poll(cx));
                    this.state.set(FailoverState::Done);
                    return Poll::Ready(result.map_err(Into::into));
                }
                FailoverStateProj::Done => polled_after_completion("fallback::FailoverFuture"),
            }
        }
    }
}

impl<Fut, B, Req, P> fmt::Debug for FailoverFuture<Fut, B, Req, P>
where
    B: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            FailoverState::Primary { .. } => "primary",
            FailoverState::BackupReady => "waiting for the backup to be ready",
            FailoverState::Backup { .. } => "backup",
            FailoverState::Done => "done",
        };
        f.debug_struct("FailoverFuture")
            .field("state", &state)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}
