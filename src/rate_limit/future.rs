//! The response future of the rate limiter's services.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::config::LocalPolicy;
use super::error::RateLimited;
use super::live::Rate;
use super::state::{Decision, Limiter};
use crate::BoxError;
use crate::completion::polled_after_completion;
use crate::deadline::Deadline;

/// What the limiter decided for one call; a reservation holds the limiter, to give its slot
/// back with.
pub(crate) enum Verdict {
    Admitted,
    Rejected {
        retry_after: u64,
    },
    Reserved {
        wait: u64,
        tat: u64,
        interval: u64,
        limiter: Arc<Limiter>,
    },
}

/// Decides a call at `now` on `limiter` at `rate`. Takes a reference count only for a
/// reservation, so a keyed limiter can decide under its shard's lock without one.
#[inline]
pub(crate) fn verdict(rate: Rate, limiter: &Arc<Limiter>, now: Instant) -> Verdict {
    // With no wait allowed the deadline cannot matter: no thread-local read.
    let max_wait = if rate.max_wait == 0 {
        0
    } else {
        allowed_wait(rate.max_wait, now)
    };
    match limiter.acquire(rate.gcra, limiter.ns_since_epoch(now), max_wait) {
        Decision::Admitted => Verdict::Admitted,
        Decision::Rejected { retry_after } => Verdict::Rejected { retry_after },
        Decision::Reserved { wait, tat } => Verdict::Reserved {
            wait,
            tat,
            interval: rate.gcra.interval,
            limiter: Arc::clone(limiter),
        },
    }
}

/// Makes the future of a decided call: the inner call at once, a wait for its reserved slot,
/// or a rejection.
#[inline]
pub(crate) fn respond<S, Req>(
    policy: &Arc<LocalPolicy>,
    verdict: Verdict,
    now: Instant,
    inner: &mut S,
    request: Req,
) -> ResponseFuture<S, Req>
where
    S: Service<Req> + Clone,
{
    match verdict {
        Verdict::Admitted => {
            policy.telemetry.admitted();
            ResponseFuture::called(inner.call(request))
        }
        Verdict::Rejected { retry_after } => ResponseFuture::rejected_by(policy, retry_after),
        Verdict::Reserved {
            wait,
            tat,
            interval,
            limiter,
        } => {
            let reservation = Reservation {
                policy: Arc::clone(policy),
                limiter,
                tat,
                interval,
            };
            ResponseFuture::waiting(reservation, now, Duration::from_nanos(wait), inner, request)
        }
    }
}

/// The longest wait allowed now: `max_wait`, and short of the current deadline (a call whose
/// turn comes at or after its deadline could not finish in time).
#[cold]
fn allowed_wait(max_wait: u64, now: Instant) -> u64 {
    match Deadline::current() {
        Some(deadline) => {
            let left = deadline.instant().saturating_duration_since(now);
            let left = crate::clock::nanos(left);
            max_wait.min(left.saturating_sub(1))
        }
        None => max_wait,
    }
}

/// A slot reserved by a waiting call: given back if the call is dropped before its turn.
struct Reservation {
    policy: Arc<LocalPolicy>,
    limiter: Arc<Limiter>,
    /// The TAT the reservation wrote.
    tat: u64,
    /// What it added to the TAT: the emission interval when it reserved.
    interval: u64,
}

impl Reservation {
    /// The turn came: the slot is spent.
    fn spend(self) {
        self.policy.telemetry.admitted();
        std::mem::forget(self);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let refunded = self.limiter.refund(self.interval, self.tat);
        self.policy.telemetry.cancelled(refunded);
    }
}

/// A call waiting for its turn: the ready service (swapped out of the caller's), its request,
/// and the deadline that was current at `call`, to restore around the inner `call`.
struct Pending<S, Req> {
    service: S,
    request: Req,
    deadline: Option<Deadline>,
    reservation: Reservation,
}

pin_project! {
    /// The response future of [`RateLimit`](super::RateLimit) and
    /// [`KeyedRateLimit`](super::KeyedRateLimit): the inner service's future, a wait for a
    /// reserved slot before it, or a rejection that is ready at once.
    ///
    /// Dropping it while it waits gives the slot back (if no later call reserved after it).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        kind: Kind<S, Req>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, Req>
    where
        S: Service<Req>,
    {
        Called { #[pin] future: S::Future },
        // Boxed: a wait is the rare path, and the timer is larger than the rest of the future.
        Waiting { sleep: Pin<Box<Sleep>>, pending: Option<Box<Pending<S, Req>>> },
        Rejected { error: RateLimited },
        Done,
    }
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    #[inline]
    pub(super) fn called(future: S::Future) -> Self {
        Self {
            kind: Kind::Called { future },
        }
    }

    #[cold]
    pub(super) fn rejected(error: RateLimited) -> Self {
        Self {
            kind: Kind::Rejected { error },
        }
    }

    /// A rejection reported to `policy`'s telemetry; out of line, so that the admitted path
    /// stays small.
    #[cold]
    #[inline(never)]
    fn rejected_by(policy: &LocalPolicy, retry_after: u64) -> Self {
        let retry_after = Duration::from_nanos(retry_after);
        policy.telemetry.rejected(retry_after);
        Self::rejected(RateLimited::new(retry_after))
    }

    #[cold]
    fn waiting(
        reservation: Reservation,
        now: Instant,
        wait: Duration,
        inner: &mut S,
        request: Req,
    ) -> Self
    where
        S: Clone,
    {
        reservation.policy.telemetry.waiting(wait);
        // The polled-ready service goes with the request; the caller keeps a fresh clone,
        // which its next `poll_ready` readies (tower's advice for calls made later).
        let clone = inner.clone();
        let service = std::mem::replace(inner, clone);
        Self {
            kind: Kind::Waiting {
                sleep: Box::pin(tokio::time::sleep_until(now + wait)),
                pending: Some(Box::new(Pending {
                    service,
                    request,
                    deadline: Deadline::current(),
                    reservation,
                })),
            },
        }
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let future = match self.as_mut().project().kind.project() {
                KindProj::Called { future } => {
                    let output = ready!(future.poll(cx)).map_err(Into::into);
                    self.as_mut().project().kind.set(Kind::Done);
                    return Poll::Ready(output);
                }
                KindProj::Rejected { error } => {
                    let error = Box::new(error.clone());
                    self.as_mut().project().kind.set(Kind::Done);
                    return Poll::Ready(Err(error));
                }
                KindProj::Done => polled_after_completion("rate_limit::ResponseFuture"),
                KindProj::Waiting { sleep, pending } => {
                    ready!(sleep.as_mut().poll(cx));
                    let Some(pending) = pending.take() else {
                        // Taken only here, and the kind leaves `Waiting` right after: gone only
                        // if the inner `call` panicked and the future is polled again.
                        polled_after_completion("rate_limit::ResponseFuture");
                    };
                    let Pending {
                        mut service,
                        request,
                        deadline,
                        reservation,
                    } = *pending;
                    reservation.spend();
                    match deadline {
                        Some(deadline) => deadline.sync_scope(|| service.call(request)),
                        None => service.call(request),
                    }
                }
            };
            self.as_mut().project().kind.set(Kind::Called { future });
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Waiting { .. } => "waiting",
            Kind::Rejected { .. } => "rejected",
            Kind::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
