//! The settings each hedged call reads once, changed live by `reconfigure`: one packed word.
//!
//! # Bit layout
//!
//! ```text
//!  63   62      59 58                                                  0
//! +----+----------+-----------------------------------------------------+
//! | P  | attempts |  fixed delay, nanoseconds                           |
//! +----+----------+-----------------------------------------------------+
//! ```
//!
//! - `P`: 1 when the delay is the latency window's percentile; the delay bits are then zero.
//! - `attempts`: attempts per call, the first included, in `[2, 11]`.
//! - the fixed delay, in nanoseconds up to `2^59 − 1` (about 18 years); a longer delay is
//!   stored as that, which no process lives to see pass.
//!
//! A call loads the word once, in `call`, and keeps the [`Settings`] for its whole life, so a
//! call racing a reload hedges wholly by the old settings or wholly by the new.
//!
//! # Memory ordering
//!
//! `Relaxed` both ways: the word is self-contained and guards no other memory. The percentile
//! delay itself is the latency window's own word (see `state.rs`); a reload that switches to a
//! percentile makes the window before it stores the word, and a call that finds the bit set
//! but no window yet (possible only in the instant of that first switch, on a weakly ordered
//! machine) sends no timed hedge, as a window with too few samples does.

use std::time::Duration;

use crate::field::Field;
use crate::sync::{AtomicU64, Ordering};

const DELAY: Field = Field::new(0, 59);
const ATTEMPTS: Field = DELAY.next(4);
const PERCENTILE: Field = ATTEMPTS.next(1);
const _: () = assert!(PERCENTILE.end() == 64);

/// How a call's delay is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DelayMode {
    Fixed(Duration),
    Percentile,
}

/// One call's settings: a snapshot of the word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings(u64);

impl Settings {
    /// Packs `delay` and `max_attempts` (the first included; at most 15, the builder allows
    /// 11).
    pub(crate) fn new(delay: DelayMode, max_attempts: u32) -> Self {
        let attempts = ATTEMPTS.put(ATTEMPTS.wrap(u64::from(max_attempts)));
        let delay = match delay {
            DelayMode::Fixed(delay) => DELAY.put(crate::clock::nanos(delay).min(DELAY.max())),
            DelayMode::Percentile => PERCENTILE.put(1),
        };
        Self(attempts | delay)
    }

    /// Attempts per call, the first included.
    #[inline]
    pub(crate) fn max_attempts(self) -> u32 {
        ATTEMPTS.get(self.0) as u32
    }

    #[inline]
    pub(crate) fn delay(self) -> DelayMode {
        if PERCENTILE.is_set(self.0) {
            DelayMode::Percentile
        } else {
            DelayMode::Fixed(Duration::from_nanos(DELAY.get(self.0)))
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("delay", &self.delay())
            .field("max_attempts", &self.max_attempts())
            .finish()
    }
}

/// The layer's current [`Settings`]. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct LiveSettings(AtomicU64);

impl LiveSettings {
    pub(crate) fn new(settings: Settings) -> Self {
        Self(AtomicU64::new(settings.0))
    }

    /// The settings of a call made now: one relaxed load.
    #[inline]
    pub(crate) fn load(&self) -> Settings {
        Settings(self.0.load(Ordering::Relaxed))
    }

    /// Makes `settings` those of every call from now on.
    #[cfg(any(feature = "serde", test))]
    pub(crate) fn store(&self, settings: Settings) {
        self.0.store(settings.0, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_saturate() {
        let fixed = Settings::new(DelayMode::Fixed(Duration::from_millis(50)), 11);
        assert_eq!(fixed.max_attempts(), 11);
        assert_eq!(fixed.delay(), DelayMode::Fixed(Duration::from_millis(50)));
        let percentile = Settings::new(DelayMode::Percentile, 2);
        assert_eq!(percentile.max_attempts(), 2);
        assert_eq!(percentile.delay(), DelayMode::Percentile);
        let zero = Settings::new(DelayMode::Fixed(Duration::ZERO), 3);
        assert_eq!(zero.delay(), DelayMode::Fixed(Duration::ZERO));
        let never = Settings::new(DelayMode::Fixed(Duration::MAX), 2);
        assert_eq!(
            never.delay(),
            DelayMode::Fixed(Duration::from_nanos(DELAY.max()))
        );
        assert_eq!(never.max_attempts(), 2);
        assert!(Duration::from_nanos(DELAY.max()) > Duration::from_secs(18 * 365 * 24 * 3600));
    }
}

/// loom model of the reload race: `RUSTFLAGS="--cfg steadfast_loom" cargo test --lib loom`.
#[cfg(all(test, steadfast_loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// A call racing a reload reads the old settings or the new ones, wholly: never the new
    /// delay with the old number of attempts.
    #[test]
    fn loom_a_call_racing_a_reload_sees_one_setting_wholly() {
        loom::model(|| {
            let old = Settings::new(DelayMode::Fixed(Duration::from_millis(50)), 2);
            let new = Settings::new(DelayMode::Percentile, 4);
            let live = Arc::new(LiveSettings::new(old));
            let reload = {
                let live = Arc::clone(&live);
                thread::spawn(move || live.store(new))
            };
            let seen = live.load();
            assert!(seen == old || seen == new, "{seen:?}");
            reload.join().unwrap();
            assert_eq!(live.load(), new);
        });
    }
}
