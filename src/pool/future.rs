//! The response future of [`Pool`](super::Pool).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_service::Service;

use super::NoEndpointAvailable;
use super::load::InFlight;
use crate::BoxError;
use crate::classify::{Classify, Outcome};
use crate::completion::polled_after_completion;

pin_project! {
    /// The response future of [`Pool`](super::Pool): drives the chosen endpoint's `poll_ready`,
    /// then its `call`, then its response; or the rejection of a call no endpoint could take.
    ///
    /// The call counts in its endpoint's in-flight load until this future completes or is
    /// dropped, whichever comes first.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<K, S, Req, C>
    where
        S: Service<Req>,
    {
        #[pin]
        step: Step<S, Req>,
        in_flight: Option<InFlight<K, S>>,
        classify: C,
    }
}

pin_project! {
    #[project = StepProj]
    enum Step<S, Req>
    where
        S: Service<Req>,
    {
        // Waiting for the endpoint's own readiness; the request is sent once it is ready.
        Readying { service: S, request: Option<Req> },
        Called { #[pin] future: S::Future },
        Rejected { endpoints: usize },
        Done,
    }
}

impl<K, S, Req, C> ResponseFuture<K, S, Req, C>
where
    S: Service<Req>,
{
    #[inline]
    pub(crate) fn new(service: S, request: Req, in_flight: InFlight<K, S>, classify: C) -> Self {
        Self {
            step: Step::Readying {
                service,
                request: Some(request),
            },
            in_flight: Some(in_flight),
            classify,
        }
    }

    pub(crate) fn rejected(endpoints: usize, classify: C) -> Self {
        Self {
            step: Step::Rejected { endpoints },
            in_flight: None,
            classify,
        }
    }
}

impl<K, S, Req, C> Future for ResponseFuture<K, S, Req, C>
where
    K: fmt::Debug,
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // One inner future at a time: the endpoint's readiness, then its response.
        loop {
            match this.step.as_mut().project() {
                StepProj::Readying { service, request } => {
                    match ready!(service.poll_ready(cx)) {
                        Ok(()) => {
                            // Taken only here, and the step leaves `Readying` right after: gone
                            // only if the endpoint's `call` panicked and the future is polled
                            // again.
                            let Some(request) = request.take() else {
                                polled_after_completion("pool::ResponseFuture");
                            };
                            let future = service.call(request);
                            this.step.set(Step::Called { future });
                        }
                        Err(error) => {
                            // The endpoint could not take the call: a failure of the endpoint,
                            // unless it is a local rejection (a bulkhead per endpoint).
                            let error: BoxError = error.into();
                            let outcome = if crate::is_rejection(&*error) {
                                Outcome::Ignored
                            } else {
                                Outcome::Failure
                            };
                            finish(this.in_flight, outcome);
                            this.step.set(Step::Done);
                            return Poll::Ready(Err(error));
                        }
                    }
                }
                StepProj::Called { future } => {
                    let result = ready!(future.poll(cx));
                    let mut outcome = this.classify.classify(&result);
                    let result = result.map_err(Into::into);
                    if let Err(error) = &result {
                        if outcome == Outcome::Failure && crate::is_rejection(&**error) {
                            outcome = Outcome::Ignored;
                        }
                    }
                    finish(this.in_flight, outcome);
                    this.step.set(Step::Done);
                    return Poll::Ready(result);
                }
                StepProj::Rejected { endpoints } => {
                    let error = NoEndpointAvailable::new(*endpoints);
                    this.step.set(Step::Done);
                    return Poll::Ready(Err(Box::new(error)));
                }
                StepProj::Done => polled_after_completion("pool::ResponseFuture"),
            }
        }
    }
}

/// Counts the outcome against the endpoint and ends its in-flight count.
#[inline]
fn finish<K: fmt::Debug, S>(in_flight: &mut Option<InFlight<K, S>>, outcome: Outcome) {
    if let Some(in_flight) = in_flight.take() {
        in_flight.member().record(outcome, in_flight.sent());
    }
}

impl<K: fmt::Debug, S, Req, C> fmt::Debug for ResponseFuture<K, S, Req, C>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = match self.step {
            Step::Readying { .. } => "Readying",
            Step::Called { .. } => "Called",
            Step::Rejected { .. } => "Rejected",
            Step::Done => "Done",
        };
        f.debug_struct("ResponseFuture")
            .field("step", &step)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}
