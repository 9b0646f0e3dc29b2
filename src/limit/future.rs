//! The response future of [`AdaptiveLimit`](super::AdaptiveLimit).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::LimitExceeded;
use super::algorithm::Sample;
use super::limiter::Limiter;
use super::state::Snapshot;
use crate::BoxError;
use crate::classify::{Classify, Outcome, is_local_rejection};
use crate::completion::polled_after_completion;
use crate::sync::Arc;

/// An admitted call's slot: given back exactly once, when the call ends or its future is dropped.
pub(crate) struct Slot<C> {
    limiter: Arc<Limiter<C>>,
    /// When the call started: read for a timed call, and under AIMD for every call (its
    /// cancellation rule needs the age of whichever call is cancelled).
    start: Option<Instant>,
    /// Calls in flight at admission, this one included.
    in_flight: u32,
    /// One of the calls the sampling period picks: its latency is a sample.
    timed: bool,
    /// The call ended and gave its slot back: `drop` does nothing.
    finished: bool,
}

impl<C> Slot<C> {
    /// The slot of the call `admitted` numbered.
    #[inline]
    pub(crate) fn new(limiter: Arc<Limiter<C>>, admitted: Snapshot) -> Self {
        let timed = limiter.is_timed(admitted);
        let start = (timed || limiter.cancel_timeout.is_some())
            // Below a timeout's `call`, the instant it read (see `clock::call_now`).
            .then(crate::clock::call_now);
        Self {
            limiter,
            start,
            in_flight: admitted.in_flight(),
            timed,
            finished: false,
        }
    }

    /// Gives the slot back first (the next call need not wait for the sampling), then
    /// samples the call if it is timed, or reports its drop if it is not.
    #[inline]
    fn finish<T, E: 'static>(&mut self, result: &Result<T, E>)
    where
        C: Classify<T, E>,
    {
        self.finished = true;
        self.limiter.release();
        let dropped = match result {
            // Never a latency sample: the call did not reach the service behind this limit.
            Err(error) if is_local_rejection(error) => return,
            Err(error) if is_timeout(error) => true,
            _ => match self.limiter.classifier.classify(result) {
                Outcome::Success => false,
                Outcome::Failure => true,
                Outcome::Ignored => return,
            },
        };
        match self.start {
            Some(start) if self.timed => {
                let now = Instant::now();
                let sample = Sample {
                    rtt: now.saturating_duration_since(start),
                    in_flight: self.in_flight,
                    dropped,
                };
                self.limiter.sample(sample, now);
            }
            _ if dropped => self.limiter.drop_untimed(),
            _ => {}
        }
    }

    /// A cancelled call: a drop for AIMD if it outlived AIMD's timeout, otherwise nothing.
    #[cold]
    fn cancelled(&self) {
        let (Some(timeout), Some(start)) = (self.limiter.cancel_timeout, self.start) else {
            return;
        };
        let now = Instant::now();
        let rtt = now.saturating_duration_since(start);
        if rtt <= timeout {
            return;
        }
        if self.timed {
            let sample = Sample {
                rtt,
                in_flight: self.in_flight,
                dropped: true,
            };
            self.limiter.sample(sample, now);
        } else {
            self.limiter.drop_untimed();
        }
    }
}

impl<C> Drop for Slot<C> {
    #[inline]
    fn drop(&mut self) {
        if !self.finished {
            self.limiter.release();
            self.cancelled();
        }
    }
}

impl<C> fmt::Debug for Slot<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("start", &self.start)
            .field("in_flight", &self.in_flight)
            .field("timed", &self.timed)
            .finish_non_exhaustive()
    }
}

/// Whether an error of any type is a timeout that fired during the call: an
/// [`Elapsed`](crate::timeout::Elapsed) from a timeout inside, either as the error itself or
/// boxed. (One whose deadline had passed before the call is a local rejection, sorted out
/// before this is asked.)
fn is_timeout<E: 'static>(error: &E) -> bool {
    #[cfg(feature = "timeout")]
    {
        let any = error as &dyn std::any::Any;
        if any.is::<crate::timeout::Elapsed>() {
            return true;
        }
        if let Some(boxed) = any.downcast_ref::<BoxError>() {
            return boxed.is::<crate::timeout::Elapsed>();
        }
    }
    let _ = error;
    false
}

pin_project! {
    /// The response future of [`AdaptiveLimit`](super::AdaptiveLimit): the inner service's
    /// future with the call's slot, or the rejection of a call over the limit.
    ///
    /// The slot is given back, and the call's latency sampled, the moment the inner future
    /// completes; dropped before that, the slot is given back and nothing is sampled (except
    /// under AIMD, see [`Aimd`](super::Aimd)).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called {
            #[pin]
            future: F,
            slot: Option<Slot<C>>,
        },
        Rejected {
            error: LimitExceeded,
        },
        Done,
    }
}

impl<F, C> ResponseFuture<F, C> {
    #[inline]
    pub(crate) fn called(future: F, slot: Slot<C>) -> Self {
        Self {
            kind: Kind::Called {
                future,
                slot: Some(slot),
            },
        }
    }

    pub(crate) fn rejected(error: LimitExceeded) -> Self {
        Self {
            kind: Kind::Rejected { error },
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError> + 'static,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // One inner future: the inner service's. The slot is not a future; it is sampled and
        // given back as soon as that future is ready.
        let mut kind = self.project().kind;
        let output = match kind.as_mut().project() {
            KindProj::Called { future, slot } => {
                let result = ready!(future.poll(cx));
                if let Some(mut slot) = slot.take() {
                    slot.finish(&result);
                }
                result.map_err(Into::into)
            }
            KindProj::Rejected { error } => Err(Box::new(error.clone()) as BoxError),
            KindProj::Done => polled_after_completion("limit::ResponseFuture"),
        };
        kind.set(Kind::Done);
        Poll::Ready(output)
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Called { slot, .. } => f
                .debug_struct("ResponseFuture")
                .field("holds_slot", &slot.is_some())
                .finish_non_exhaustive(),
            Kind::Rejected { error } => f
                .debug_struct("ResponseFuture")
                .field("rejected", error)
                .finish(),
            Kind::Done => f.debug_struct("ResponseFuture").finish_non_exhaustive(),
        }
    }
}
