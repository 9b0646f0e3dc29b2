//! The rate a local limiter's calls obey, changed live by `reconfigure`: one copy per service,
//! checked against one generation word per call.
//!
//! # Why a copy per service
//!
//! A call needs three numbers that change together (the emission interval `T`, the tolerance
//! `τ` and the allowed wait), 55 bits each at most: they do not fit in one atomic word, and
//! reading three words would let a call racing a reload see a mix (the new `T` with the old
//! `τ`). So every service keeps its own copy ([`CachedRate`]), which its `call` (holding
//! `&mut self`) reads as plain fields, and the layer keeps the current rate under a lock with a
//! *generation*, bumped by each reload. A call loads the generation once; only when it differs
//! from its copy's does the call take the lock and copy the rate and the generation together.
//! The common call pays one relaxed load of a word that nobody writes between reloads.
//!
//! # Memory ordering
//!
//! `generation` is `Relaxed` both ways: it publishes nothing by itself. The rate is read and
//! written only under `current`'s lock, which orders it, and a copy takes the rate and the
//! generation from inside the lock, never the loaded value: a copy is always one reload's
//! rate, wholly. A call that loads the generation a moment before a reload's store becomes
//! visible decides with the rate before it, as if it had come just before the reload.

use std::fmt;
use std::sync::PoisonError;
use std::time::Duration;

use super::state::Gcra;
use crate::sync::{AtomicU64, Mutex, Ordering};

/// What a call decides with: the GCRA rate and the longest wait allowed, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) gcra: Gcra,
    pub(crate) max_wait: u64,
}

impl Rate {
    /// How long a call at `now` would wait on a limiter whose TAT is `tat` (both in ns since
    /// the limiter's epoch).
    pub(crate) fn wait_at(self, tat: u64, now: u64) -> Duration {
        Duration::from_nanos(tat.saturating_sub(now).saturating_sub(self.gcra.tolerance))
    }
}

/// A service's copy of the rate, and the generation it was copied at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachedRate {
    rate: Rate,
    generation: u64,
}

impl CachedRate {
    /// The copied rate.
    #[inline]
    pub(crate) fn rate(&self) -> Rate {
        self.rate
    }
}

/// The current rate of a layer, shared by all its services. See the [module docs](self).
pub(crate) struct LiveRate {
    /// Which reload `current` holds: 0 as built, then one more per reload. Only written under
    /// `current`'s lock.
    generation: AtomicU64,
    current: Mutex<CachedRate>,
}

impl fmt::Debug for LiveRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveRate")
            .field("current", &self.copy())
            .finish()
    }
}

impl LiveRate {
    pub(crate) fn new(rate: Rate) -> Self {
        Self {
            generation: AtomicU64::new(0),
            current: Mutex::new(CachedRate {
                rate,
                generation: 0,
            }),
        }
    }

    /// A copy of the current rate, for a new service (or to read it off the call path).
    pub(crate) fn copy(&self) -> CachedRate {
        // The lock guards two plain numbers, written whole: a poisoned lock holds one rate.
        *self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current rate, read off the call path.
    pub(crate) fn rate(&self) -> Rate {
        self.copy().rate
    }

    /// Brings a service's copy up to date, if a reload happened since it was made: one relaxed
    /// load when none did.
    #[inline]
    pub(crate) fn refresh(&self, cached: &mut CachedRate) {
        if self.generation.load(Ordering::Relaxed) != cached.generation {
            *cached = self.copy();
        }
    }

    /// Makes `rate` the rate of every call from now on (each service copies it at its next
    /// call).
    #[cfg(any(feature = "serde", test))]
    pub(crate) fn set(&self, rate: Rate) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = current.generation.wrapping_add(1);
        *current = CachedRate { rate, generation };
        self.generation.store(generation, Ordering::Relaxed);
    }
}

/// loom model of the reload race: `RUSTFLAGS="--cfg steadfast_loom" cargo test --lib loom`.
#[cfg(all(test, steadfast_loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    const OLD: Rate = Rate {
        gcra: Gcra {
            interval: 10,
            tolerance: 0,
        },
        max_wait: 0,
    };
    const NEW: Rate = Rate {
        gcra: Gcra {
            interval: 20,
            tolerance: 40,
        },
        max_wait: 100,
    };

    /// A call racing a reload decides with the old rate or the new one, wholly; once the
    /// reload is done, the next call sees the new one.
    #[test]
    fn loom_a_call_racing_a_reload_sees_one_rate_wholly() {
        loom::model(|| {
            let live = Arc::new(LiveRate::new(OLD));
            let mut cached = live.copy();
            let reload = {
                let live = Arc::clone(&live);
                thread::spawn(move || live.set(NEW))
            };
            live.refresh(&mut cached);
            let seen = cached.rate();
            assert!(seen == OLD || seen == NEW, "{seen:?}");
            reload.join().unwrap();
            live.refresh(&mut cached);
            assert_eq!(cached.rate(), NEW);
        });
    }

    /// Two reloads racing: every service ends on the one that came last, whichever it was.
    #[test]
    fn loom_racing_reloads_leave_one_rate() {
        loom::model(|| {
            let live = Arc::new(LiveRate::new(OLD));
            let mut cached = live.copy();
            let other = {
                let live = Arc::clone(&live);
                thread::spawn(move || live.set(OLD))
            };
            live.set(NEW);
            other.join().unwrap();
            live.refresh(&mut cached);
            assert_eq!(cached.rate(), live.rate());
            assert_eq!(cached.generation, 2);
        });
    }
}
