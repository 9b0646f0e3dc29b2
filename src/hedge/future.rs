//! The response future of [`Hedge`](super::Hedge).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};
use tower_service::Service;

use super::config::HedgeCore;
use super::live::{DelayMode, Settings};
use super::policy::HedgePolicy;
use super::telemetry::{self, Cause, Skip};
use crate::classify::is_local_rejection;
use crate::completion::polled_after_completion;
use crate::deadline::Deadline;
use crate::retry::state::{BudgetState, Withdraw, Withdrawal};
use crate::sync::Arc;

/// What one hedge service and its clones share with their futures: the layer's configuration
/// and a replica of the inner service, made when the layer wrapped it.
///
/// Hedges are sent on a clone of the replica, made when the first hedge of a call is due, so a
/// call answered before its delay clones nothing. The lock is taken only to make that clone; it
/// lets a service that is `Send` but not `Sync` be shared with futures that are `Send`.
pub(crate) struct Core<S, P> {
    config: Arc<HedgeCore<P>>,
    replica: Mutex<S>,
}

impl<S, P> Core<S, P> {
    pub(crate) fn new(config: Arc<HedgeCore<P>>, replica: S) -> Self {
        Self {
            config,
            replica: Mutex::new(replica),
        }
    }

    #[inline(always)]
    pub(crate) fn config(&self) -> &HedgeCore<P> {
        &self.config
    }

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

impl<S, P> fmt::Debug for Core<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The hedges of one call, allocated when the first one is due (or the first attempt fails):
/// a call answered before its delay never makes one.
struct Hedges<S, F, E> {
    /// The clone hedges go through, made from the replica when the first is due.
    service: Option<S>,
    /// Hedges in flight, in the order sent; a slot is emptied when its attempt ends.
    attempts: Vec<Option<Pin<Box<F>>>>,
    /// The error of the attempt that failed last.
    last_error: Option<E>,
    /// The token of a hedge waiting for the service to be ready; refunded if dropped unsent.
    paid: Option<Withdrawal>,
    /// Whether a hedge is waiting for the service to be ready (paid for, or with no budget).
    awaiting_ready: bool,
    /// No further hedge may be sent: the service failed `poll_ready`, or the request can no
    /// longer be copied.
    stopped: bool,
}

impl<S, F, E> Hedges<S, F, E> {
    fn new() -> Self {
        Self {
            service: None,
            attempts: Vec::new(),
            last_error: None,
            paid: None,
            awaiting_ready: false,
            stopped: false,
        }
    }

    fn in_flight(&self) -> bool {
        self.attempts.iter().any(Option::is_some)
    }
}

pin_project! {
    /// The response future of [`Hedge`](super::Hedge): the first attempt and its hedges.
    ///
    /// Resolves to the first success, dropping every other attempt at once; or, when every
    /// attempt failed and no further hedge may be sent, to the error of the one that failed
    /// last. Dropping it drops every attempt in flight and gives back the budget token of a
    /// hedge not yet sent.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ResponseFuture<Req, S, P>
    where
        P: HedgePolicy<Req>,
        S: Service<P::Sent>,
    {
        #[pin]
        first: Attempt<S::Future>,
        #[pin]
        timer: Option<Sleep>,
        hedges: Option<Box<Hedges<S, S::Future, S::Error>>>,
        // What copies are made from; `None` for a request that is sent once.
        kept: Option<P::Kept>,
        core: Arc<Core<S, P>>,
        // The layer's settings when the call was made: its delay kind and attempts.
        settings: Settings,
        // When the call started to wait: the first poll that found the first attempt pending,
        // or saw it fail. `None` for a call answered at its first poll, which reads no clock.
        start: Option<Instant>,
        // The delay between timed hedges, read with `start`; `None`: no timed hedge.
        delay: Option<Duration>,
        // Attempts sent, the first included.
        sent: u32,
        // Attempts that should have been sent by now: raised by the timer and by failures.
        target: u32,
        // The number of the next timed hedge: it is due `tick × delay` after `start`.
        tick: u32,
    }
}

pin_project! {
    #[project = AttemptProj]
    enum Attempt<F> {
        Running { #[pin] future: F },
        Ended,
    }
}

impl<Req, S, P> ResponseFuture<Req, S, P>
where
    P: HedgePolicy<Req>,
    S: Service<P::Sent>,
{
    #[inline]
    pub(crate) fn new(
        future: S::Future,
        kept: Option<P::Kept>,
        core: Arc<Core<S, P>>,
        settings: Settings,
    ) -> Self {
        Self {
            first: Attempt::Running { future },
            timer: None,
            hedges: None,
            kept,
            core,
            settings,
            start: None,
            delay: None,
            sent: 1,
            target: 1,
            tick: 1,
        }
    }
}

/// What sending a hedge came to.
enum Sending {
    /// Sent: poll it.
    Sent,
    /// Waiting for the service to be ready.
    NotReady,
    /// Not sent, and none is due any more until the next tick (budget, deadline), or ever.
    Skipped,
}

impl<Req, S, P> Future for ResponseFuture<Req, S, P>
where
    P: HedgePolicy<Req>,
    S: Service<P::Sent> + Clone,
    S::Error: 'static,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let config = this.core.config();
        let max_attempts = this.settings.max_attempts();
        let records = this.settings.delay() == DelayMode::Percentile;

        // The first attempt ended and no hedge is left only once an answer was given: every
        // exit clears them.
        if matches!(*this.first, Attempt::Ended) && this.hedges.is_none() {
            polled_after_completion("hedge::ResponseFuture");
        }

        // Poll order: the first attempt, then the hedges in the order sent, then the timer. An
        // answer that is ready wins over a hedge that is due in the same instant, and the first
        // attempt is polled before any timer exists, so a call answered at once arms none.
        loop {
            if let AttemptProj::Running { future } = this.first.as_mut().project() {
                match future.poll(cx) {
                    Poll::Ready(Ok(response)) => {
                        this.first.set(Attempt::Ended);
                        if records {
                            record_latency(config, *this.start);
                        }
                        if this.hedges.is_some() || this.timer.is_some() {
                            *this.hedges = None;
                            this.timer.set(None);
                        }
                        return Poll::Ready(Ok(response));
                    }
                    Poll::Ready(Err(error)) => {
                        this.first.set(Attempt::Ended);
                        if this.kept.is_none() {
                            return Poll::Ready(Err(error));
                        }
                        begin(config, *this.settings, this.start, this.delay);
                        failed(this.hedges, this.target, *this.sent, max_attempts, error);
                    }
                    Poll::Pending => {
                        // The call waits: its latency and its timer count from now.
                        if this.kept.is_some() || records {
                            begin(config, *this.settings, this.start, this.delay);
                        }
                        if this.kept.is_none() {
                            return Poll::Pending;
                        }
                    }
                }
            }

            if let Some(hedges) = this.hedges.as_mut() {
                let mut failures = Vec::new();
                for (index, slot) in hedges.attempts.iter_mut().enumerate() {
                    let Some(future) = slot else { continue };
                    match future.as_mut().poll(cx) {
                        Poll::Ready(Ok(response)) => {
                            // The winner: every other attempt is dropped now, not when the
                            // caller drops this future, so what they hold comes back at once.
                            *slot = None;
                            telemetry::won(config, index as u32 + 2);
                            if records {
                                record_latency(config, *this.start);
                            }
                            this.first.set(Attempt::Ended);
                            *this.hedges = None;
                            this.timer.set(None);
                            return Poll::Ready(Ok(response));
                        }
                        Poll::Ready(Err(error)) => {
                            *slot = None;
                            failures.push(error);
                        }
                        Poll::Pending => {}
                    }
                }
                for error in failures {
                    failed(this.hedges, this.target, *this.sent, max_attempts, error);
                }
            }

            // The timer: the k-th hedge is due k × delay after the start.
            if *this.sent >= max_attempts {
                if this.timer.is_some() {
                    this.timer.set(None);
                }
            } else if let (Some(start), Some(delay)) = (*this.start, *this.delay) {
                if delay.is_zero() {
                    if *this.tick < max_attempts {
                        *this.target = max_attempts;
                        *this.tick = max_attempts;
                    }
                } else {
                    loop {
                        // Hedges already sent (after failures) need no tick of their own.
                        while *this.tick < *this.sent {
                            *this.tick += 1;
                            this.timer.set(None);
                        }
                        if *this.tick >= max_attempts {
                            break;
                        }
                        if this.timer.is_none() {
                            let due = start + delay.saturating_mul(*this.tick);
                            this.timer.set(Some(sleep_until(due)));
                        }
                        let Some(timer) = this.timer.as_mut().as_pin_mut() else {
                            break;
                        };
                        if timer.poll(cx).is_pending() {
                            break;
                        }
                        *this.target = (*this.tick + 1).max(*this.target);
                        *this.tick += 1;
                        this.timer.set(None);
                    }
                }
            }

            // Send what is due.
            let mut sent_one = false;
            while *this.sent < *this.target {
                let Some(kept) = this.kept.as_ref() else {
                    break;
                };
                let hedges = this.hedges.get_or_insert_with(|| Box::new(Hedges::new()));
                let cause = if *this.sent < *this.tick {
                    Cause::Delay
                } else {
                    Cause::Failure
                };
                match send(this.core, hedges, kept, *this.sent + 1, cause, cx) {
                    Sending::Sent => {
                        *this.sent += 1;
                        sent_one = true;
                    }
                    Sending::NotReady => break,
                    Sending::Skipped => {
                        *this.target = *this.sent;
                        break;
                    }
                }
            }
            if sent_one {
                // Poll the new attempts (and re-arm the timer for the next tick).
                continue;
            }

            let Some(hedges) = this.hedges.as_mut() else {
                // Only the first attempt is in flight.
                return Poll::Pending;
            };
            let first_running = matches!(*this.first, Attempt::Running { .. });
            if first_running || hedges.in_flight() || hedges.awaiting_ready {
                return Poll::Pending;
            }
            // Every attempt failed and no hedge may follow now: the last error is the answer.
            // (A failure always stored it; were it missing, this future would stay pending
            // rather than panic.)
            this.timer.set(None);
            return match hedges.last_error.take() {
                Some(error) => {
                    *this.hedges = None;
                    Poll::Ready(Err(error))
                }
                None => Poll::Pending,
            };
        }
    }
}

/// Records an attempt's failure: its error becomes the last one, and unless it is a local
/// rejection (an open breaker, a full bulkhead: a hedge would meet the same), the next hedge is
/// due at once.
fn failed<S, F, E: 'static>(
    hedges: &mut Option<Box<Hedges<S, F, E>>>,
    target: &mut u32,
    sent: u32,
    max_attempts: u32,
    error: E,
) {
    if !is_local_rejection(&error) {
        // One more attempt per failure, beyond whatever is already due.
        *target = ((*target).max(sent) + 1).min(max_attempts);
    }
    hedges
        .get_or_insert_with(|| Box::new(Hedges::new()))
        .last_error = Some(error);
}

/// Sends hedge number `attempt - 1` if the budget, the deadline, the service and the policy
/// allow: the budget first, so that a service polled ready is always called.
fn send<Req, S, P>(
    core: &Core<S, P>,
    hedges: &mut Hedges<S, S::Future, S::Error>,
    kept: &P::Kept,
    attempt: u32,
    cause: Cause,
    cx: &mut Context<'_>,
) -> Sending
where
    P: HedgePolicy<Req>,
    S: Service<P::Sent> + Clone,
{
    let config = core.config();
    if hedges.stopped {
        return Sending::Skipped;
    }
    // Checked again while the service is not ready: the deadline may pass meanwhile.
    if Deadline::current().is_some_and(|deadline| deadline.remaining().is_zero()) {
        hedges.awaiting_ready = false;
        hedges.paid = None;
        telemetry::skipped(config, attempt, Skip::Deadline);
        return Sending::Skipped;
    }
    if !hedges.awaiting_ready {
        match BudgetState::withdraw(&config.budget) {
            Withdraw::Unlimited => {}
            Withdraw::Paid(paid) => hedges.paid = Some(paid),
            Withdraw::Exhausted => {
                telemetry::skipped(config, attempt, Skip::Budget);
                return Sending::Skipped;
            }
        }
        hedges.awaiting_ready = true;
    }

    let service = hedges.service.get_or_insert_with(|| core.replica());
    match service.poll_ready(cx) {
        Poll::Pending => return Sending::NotReady,
        Poll::Ready(Err(error)) => {
            // A service that failed `poll_ready` may not be called again: this error counts as
            // the attempt's, and no further hedge is sent. The token goes back.
            hedges.awaiting_ready = false;
            hedges.paid = None;
            hedges.stopped = true;
            hedges.last_error = Some(error);
            return Sending::Skipped;
        }
        Poll::Ready(Ok(())) => {}
    }
    hedges.awaiting_ready = false;
    let Some(request) = config.policy.copy(kept) else {
        hedges.paid = None;
        hedges.stopped = true;
        telemetry::skipped(config, attempt, Skip::Uncopyable);
        return Sending::Skipped;
    };
    if let Some(paid) = hedges.paid.take() {
        paid.spend();
    }
    let future = service.call(request);
    hedges.attempts.push(Some(Box::pin(future)));
    telemetry::sent(config, attempt, cause);
    Sending::Sent
}

/// Marks the call as waiting, once: reads the clock, and the delay its timed hedges use.
fn begin<P>(
    config: &HedgeCore<P>,
    settings: Settings,
    start: &mut Option<Instant>,
    delay: &mut Option<Duration>,
) {
    if start.is_none() {
        *start = Some(Instant::now());
        *delay = config.delay(settings);
    }
}

/// Records a successful call's latency in the percentile window: zero, with no clock read, for
/// a call answered at its first poll (`start` is `None`).
fn record_latency<P>(config: &HedgeCore<P>, start: Option<Instant>) {
    // No window: a reload switched to a percentile an instant ago, on another thread.
    let Some(window) = config.window.get() else {
        return;
    };
    match start {
        None => window.record_immediate(),
        Some(start) => {
            let now = Instant::now();
            window.record(now, now.saturating_duration_since(start));
        }
    }
}

impl<Req, S, P> fmt::Debug for ResponseFuture<Req, S, P>
where
    P: HedgePolicy<Req>,
    S: Service<P::Sent>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let in_flight = usize::from(matches!(self.first, Attempt::Running { .. }))
            + self.hedges.as_ref().map_or(0, |hedges| {
                hedges.attempts.iter().filter(|slot| slot.is_some()).count()
            });
        f.debug_struct("ResponseFuture")
            .field("sent", &self.sent)
            .field("in_flight", &in_flight)
            .field("hedgeable", &self.kept.is_some())
            .field("delay", &self.delay)
            .field("timer_armed", &self.timer.is_some())
            .finish_non_exhaustive()
    }
}
