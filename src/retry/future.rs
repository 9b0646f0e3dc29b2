//! The response future of [`Retry`](super::Retry).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::PoisonError;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep};
use tower_service::Service;

use super::config::RetryCore;
use super::policy::{Decision, OnRetry, RetryPolicy};
use super::replay::Resend;
use super::state::{BudgetState, Withdraw, Withdrawal};
use super::telemetry::AttemptEnd;
use crate::classify::is_local_rejection;
use crate::completion::polled_after_completion;
use crate::deadline::Deadline;
use crate::sync::{Arc, Mutex};

/// What one retry service and its clones share with their futures: the layer's configuration
/// and a replica of the inner service, made when the layer wrapped it.
///
/// A retry is sent on a clone of the replica, made when the first retry is due, so that a call
/// that needs none clones nothing. The lock is taken only to make that clone; it lets a
/// service that is `Send` but not `Sync` (a `BoxCloneService`) be shared with futures that are
/// `Send`.
pub(crate) struct ServiceShared<S, P, H, M> {
    config: Arc<RetryCore<P, H, M>>,
    replica: Mutex<S>,
}

impl<S, P, H, M> ServiceShared<S, P, H, M> {
    pub(crate) fn new(config: Arc<RetryCore<P, H, M>>, replica: S) -> Self {
        Self {
            config,
            replica: Mutex::new(replica),
        }
    }

    #[inline(always)]
    pub(crate) fn config(&self) -> &RetryCore<P, H, M> {
        &self.config
    }

    /// A fresh clone of the inner service, for a retry.
    fn replica(&self) -> S
    where
        S: Clone,
    {
        // A panic in a clone leaves the replica as it was: the lock's poison says nothing here.
        self.replica
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<S, P, H, M> fmt::Debug for ServiceShared<S, P, H, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceShared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the future needs to send another attempt; absent for a request that is sent once.
pub(crate) struct Retrying<S, K> {
    /// The clone retries go through, made from the replica when the first one is due. Boxed
    /// then, so that the futures of calls that need no retry (most) do not carry a service's
    /// worth of bytes, which every move of the future would copy.
    service: Option<Box<S>>,
    kept: K,
    /// The replicas of a pool below that earlier attempts went to (see `crate::tried`).
    #[cfg(feature = "pool")]
    tried: u64,
}

impl<S, K> Retrying<S, K> {
    pub(crate) fn new(kept: K) -> Self {
        Self {
            service: None,
            kept,
            #[cfg(feature = "pool")]
            tried: 0,
        }
    }

    /// The replicas the first attempt went to (see `crate::tried`).
    #[cfg(feature = "pool")]
    pub(crate) fn with_tried(mut self, tried: u64) -> Self {
        self.tried = tried;
        self
    }
}

pin_project! {
    /// The response future of [`Retry`](super::Retry): the attempts of one call.
    ///
    /// Resolves to the first result the policy accepts, or to the last attempt's result when no
    /// further retry is allowed. Dropping it cancels the backoff sleep or the attempt in flight
    /// (and gives back the budget of a retry not yet sent).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<Req, S, P, H, M>
    where
        M: Resend<Req>,
        S: Service<M::Sent>,
    {
        #[pin]
        state: State<S::Future, S::Response, S::Error>,
        retry: Option<Retrying<S, M::Kept>>,
        shared: Arc<ServiceShared<S, P, H, M>>,
        // The number of the attempt in flight or last made: 1 for the first.
        attempt: u32,
        previous_delay: Duration,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, Res, E> {
        // An attempt is in flight.
        Called { #[pin] future: F },
        // Waiting out the backoff; `last` is returned if the retry cannot be sent after all.
        Waiting {
            #[pin]
            sleep: Sleep,
            last: Option<Result<Res, E>>,
            paid: Option<Withdrawal>,
        },
        // Waiting for the service to be ready for the retry.
        Checking {
            last: Option<Result<Res, E>>,
            paid: Option<Withdrawal>,
        },
        // The result was returned.
        Done,
    }
}

impl<Req, S, P, H, M> ResponseFuture<Req, S, P, H, M>
where
    M: Resend<Req>,
    S: Service<M::Sent>,
{
    pub(crate) fn new(
        future: S::Future,
        retry: Option<Retrying<S, M::Kept>>,
        shared: Arc<ServiceShared<S, P, H, M>>,
    ) -> Self {
        Self {
            state: State::Called { future },
            retry,
            shared,
            attempt: 1,
            previous_delay: Duration::ZERO,
        }
    }
}

/// What to do after an attempt.
enum Next<Res, E> {
    Return(Result<Res, E>),
    Retry {
        delay: Duration,
        paid: Option<Withdrawal>,
        last: Result<Res, E>,
    },
}

fn record<P, H, M>(shared: &RetryCore<P, H, M>, outcome: AttemptEnd) {
    #[cfg(feature = "metrics")]
    shared.metrics.attempt(outcome);
    #[cfg(not(feature = "metrics"))]
    let _ = (shared, outcome);
}

fn cause<Res, E>(result: &Result<Res, E>) -> &'static str {
    if result.is_ok() { "response" } else { "error" }
}

/// Judges an attempt's result: return it, or schedule a retry (paid for from the budget).
fn judge<Req, S, P, H, M>(
    shared: &RetryCore<P, H, M>,
    retry: Option<&Retrying<S, M::Kept>>,
    attempt: u32,
    previous_delay: &mut Duration,
    result: Result<S::Response, S::Error>,
) -> Next<S::Response, S::Error>
where
    M: Resend<Req>,
    S: Service<M::Sent>,
    S::Error: 'static,
    P: RetryPolicy<Req, S::Response, S::Error>,
    H: OnRetry<S::Response, S::Error>,
{
    let stop = |outcome: AttemptEnd, result| {
        record(shared, outcome);
        Next::Return(result)
    };

    let rejection = matches!(&result, Err(error) if is_local_rejection(error));
    if rejection && !shared.retry_rejections() {
        return stop(AttemptEnd::NotRetryable, result);
    }
    let decision = shared.policy.decide(&result);
    if decision == Decision::Accept {
        return stop(AttemptEnd::Accepted, result);
    }
    if attempt >= shared.max_attempts() {
        return stop(AttemptEnd::Exhausted, result);
    }
    let Some(retrying) = retry else {
        return stop(AttemptEnd::NotRetryable, result);
    };
    if !shared.resend.can_resend(&retrying.kept) {
        return stop(AttemptEnd::NotRetryable, result);
    }

    let delay = match decision {
        Decision::RetryAfter(pushback) => pushback.min(shared.backoff().cap()),
        _ => shared.backoff_delay(attempt, *previous_delay),
    };

    if let Some(deadline) = Deadline::current() {
        let remaining = deadline.remaining();
        let fits = remaining
            .checked_sub(delay)
            .is_some_and(|left| !left.is_zero() && left >= shared.min_attempt_time());
        if !fits {
            tracing::debug!(
                retry.name = %shared.name,
                retry.attempt = attempt + 1,
                retry.delay_ms = crate::clock::millis(delay),
                retry.remaining_ms = crate::clock::millis(remaining),
                retry.outcome = AttemptEnd::Deadline.as_str(),
                "retry skipped: it cannot finish before the deadline"
            );
            return stop(AttemptEnd::Deadline, result);
        }
    }

    let paid = match BudgetState::withdraw(&shared.budget) {
        Withdraw::Unlimited => None,
        Withdraw::Paid(paid) => Some(paid),
        Withdraw::Exhausted => {
            tracing::debug!(
                retry.name = %shared.name,
                retry.attempt = attempt + 1,
                retry.outcome = AttemptEnd::BudgetExhausted.as_str(),
                "retry skipped: the retry budget is exhausted"
            );
            return stop(AttemptEnd::BudgetExhausted, result);
        }
    };

    *previous_delay = delay;
    shared.on_retry.on_retry(attempt + 1, delay, &result);
    tracing::debug!(
        retry.name = %shared.name,
        retry.attempt = attempt + 1,
        retry.max_attempts = shared.max_attempts(),
        retry.delay_ms = crate::clock::millis(delay),
        retry.cause = cause(&result),
        "retrying"
    );
    record(shared, AttemptEnd::Retried);
    Next::Retry {
        delay,
        paid,
        last: result,
    }
}

impl<Req, S, P, H, M> Future for ResponseFuture<Req, S, P, H, M>
where
    M: Resend<Req>,
    S: Service<M::Sent> + Clone,
    S::Error: 'static,
    P: RetryPolicy<Req, S::Response, S::Error>,
    H: OnRetry<S::Response, S::Error>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // One inner future at a time: an attempt, then the backoff sleep, then the service's
        // readiness, then the next attempt. Nothing else is polled, so the order is that of the
        // states.
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let result = ready!(future.poll(cx));
                    match judge(
                        this.shared.config(),
                        this.retry.as_ref(),
                        *this.attempt,
                        this.previous_delay,
                        result,
                    ) {
                        Next::Return(result) => {
                            this.state.set(State::Done);
                            return Poll::Ready(result);
                        }
                        Next::Retry { delay, paid, last } => this.state.set(State::Waiting {
                            sleep: sleep(delay),
                            last: Some(last),
                            paid,
                        }),
                    }
                }
                StateProj::Waiting { sleep, last, paid } => {
                    ready!(sleep.poll(cx));
                    let (last, paid) = (last.take(), paid.take());
                    this.state.set(State::Checking { last, paid });
                }
                StateProj::Checking { last, paid } => {
                    let Some(retrying) = this.retry.as_mut() else {
                        let last = last.take();
                        return finish(this.state, last);
                    };
                    let service = retrying
                        .service
                        .get_or_insert_with(|| Box::new(this.shared.replica()));
                    // Readiness is polled again before every attempt.
                    if let Err(error) = ready!(service.poll_ready(cx)) {
                        // Dropping the state gives back the budget.
                        this.state.set(State::Done);
                        return Poll::Ready(Err(error));
                    }
                    if let Some(deadline) = Deadline::current() {
                        let remaining = deadline.remaining();
                        let shared = this.shared.config();
                        if remaining.is_zero() || remaining < shared.min_attempt_time() {
                            tracing::debug!(
                                retry.name = %shared.name,
                                retry.attempt = *this.attempt + 1,
                                retry.remaining_ms = crate::clock::millis(remaining),
                                "retry abandoned: too little time left before the deadline"
                            );
                            let last = last.take();
                            return finish(this.state, last);
                        }
                    }
                    let Some(request) = this.shared.config().resend.next(&retrying.kept) else {
                        tracing::debug!(
                            retry.name = %this.shared.config().name,
                            retry.attempt = *this.attempt + 1,
                            "retry abandoned: the request can no longer be sent"
                        );
                        let last = last.take();
                        return finish(this.state, last);
                    };
                    if let Some(paid) = paid.take() {
                        paid.spend();
                    }
                    // The previous result is dropped only now that the next attempt is sent.
                    *last = None;
                    *this.attempt += 1;
                    #[cfg(not(feature = "pool"))]
                    let future = service.call(request);
                    #[cfg(feature = "pool")]
                    let future = crate::tried::scope(&mut retrying.tried, || service.call(request));
                    this.state.set(State::Called { future });
                }
                StateProj::Done => polled_after_completion("retry::ResponseFuture"),
            }
        }
    }
}

/// Returns the last result (and gives back the unspent budget by dropping the state).
fn finish<F, Res, E>(
    mut state: Pin<&mut State<F, Res, E>>,
    last: Option<Result<Res, E>>,
) -> Poll<Result<Res, E>> {
    state.set(State::Done);
    match last {
        Some(result) => Poll::Ready(result),
        // `last` is taken only here, as the state becomes `Done`.
        None => polled_after_completion("retry::ResponseFuture"),
    }
}

impl<Req, S, P, H, M> fmt::Debug for ResponseFuture<Req, S, P, H, M>
where
    M: Resend<Req>,
    S: Service<M::Sent>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Called { .. } => "Called",
            State::Waiting { .. } => "Waiting",
            State::Checking { .. } => "Checking",
            State::Done => "Done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("attempt", &self.attempt)
            .field("retryable", &self.retry.is_some())
            .finish_non_exhaustive()
    }
}
