//! Time, decided once: how an instant plus a duration saturates, how a duration becomes
//! milliseconds, and the instant a timeout lends to the layers below its `call`.
//!
//! Every layer reads tokio's clock (`tokio::time::Instant`), so paused-time tests are exact.
#![allow(dead_code)] // each middleware uses its own subset

use std::cell::Cell;
use std::thread::LocalKey;
use std::time::Duration;

use tokio::time::Instant;

/// How far "never" is: about 30 years, what tokio's own timers use for a far deadline.
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `now + duration`, saturating at [`FAR_FUTURE`] from now for a duration too large for the
/// clock (a `Duration::MAX` timeout, a `max_wait` of "forever").
#[inline]
pub(crate) fn saturating_add(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// Whole nanoseconds, saturating at `u64::MAX` (584 years): for durations kept in atomic words.
#[inline]
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Whole milliseconds, rounded down, saturating at `u64::MAX`: for event fields and budgets.
#[inline]
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Whole milliseconds, rounded up, saturating at `u64::MAX`: for hints a client waits on
/// (`grpc-retry-pushback-ms`) and for ends of intervals, so that nobody comes back early and
/// an interval that ends between two milliseconds is over at the later one.
#[inline]
pub(crate) fn millis_ceil(duration: Duration) -> u64 {
    let ceil = duration.as_millis() + u128::from(duration.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ceil).unwrap_or(u64::MAX)
}

thread_local! {
    // The instant the innermost `Timeout::call` on this thread read, while its inner `call` runs
    // (see `lend`); `None` outside one.
    static CALL_NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Now, as read by the innermost timeout whose inner `call` is running on this thread, or
/// from the clock outside one.
///
/// A call goes down a stack synchronously: the `call` of every layer below a timeout runs
/// within nanoseconds of the instant the timeout read. Reusing it makes one clock read serve
/// a call through any number of nested timeouts (an overall and a per-attempt one) and the
/// breaker's slow-call timing below them. What it gets is early by the time the synchronous
/// `call`s in between take (nanoseconds, for layers that do not block in `call`): a nested
/// deadline that much earlier, a call timed that much longer; never the other way.
#[inline]
pub(crate) fn call_now() -> Instant {
    CALL_NOW.get().unwrap_or_else(Instant::now)
}

/// Lends `now` as [`call_now`] until the guard is dropped.
#[cfg(feature = "timeout")]
#[inline]
pub(crate) fn lend(now: Instant) -> Enter<Instant> {
    Enter::new(&CALL_NOW, now)
}

/// Sets a thread-local until dropped, then restores the previous value (also when the code in
/// the scope panics): the one scope guard of the crate's lent values (the deadline, the lent
/// instant).
pub(crate) struct Enter<T: Copy + 'static> {
    key: &'static LocalKey<Cell<Option<T>>>,
    previous: Option<T>,
}

impl<T: Copy + 'static> Enter<T> {
    #[inline]
    pub(crate) fn new(key: &'static LocalKey<Cell<Option<T>>>, value: T) -> Self {
        Self {
            key,
            previous: key.replace(Some(value)),
        }
    }
}

impl<T: Copy + 'static> Drop for Enter<T> {
    #[inline]
    fn drop(&mut self) {
        self.key.set(self.previous);
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;

    #[test]
    fn millis_round_down_and_up_and_saturate() {
        assert_eq!(millis(Duration::from_micros(1_999)), 1);
        assert_eq!(millis_ceil(Duration::from_micros(1_001)), 2);
        assert_eq!(millis_ceil(Duration::from_millis(250)), 250);
        assert_eq!(millis_ceil(Duration::ZERO), 0);
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(millis_ceil(Duration::MAX), u64::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn an_instant_plus_a_huge_duration_saturates_far_ahead() {
        let now = Instant::now();
        assert_eq!(
            saturating_add(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert_eq!(saturating_add(now, Duration::MAX), now + FAR_FUTURE);
    }
}
