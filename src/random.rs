//! The crate's one source of randomness: SplitMix64, for jitter, chaos decisions and random
//! tie-breaks.
//!
//! SplitMix64 walks a counter by the golden ratio and mixes each step through a bijection, so
//! the `n`-th number of a seed is computable directly ([`nth`]), a shared generator is one
//! `fetch_add` ([`AtomicSplitMix64`]), and a fixed seed gives the same sequence every run. It is
//! not cryptographic; nothing here needs that. The `rand` crate is not used for this because it
//! would pull a dependency into every feature for a dozen lines.
#![allow(dead_code)] // each middleware uses its own subset

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::sync::{AtomicU64, Ordering};

/// SplitMix64's increment, the golden ratio in 64 bits.
pub(crate) const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective mix of 64 bits.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `n`-th number (from 0) of the sequence seeded with `seed`.
pub(crate) fn nth(seed: u64, n: u64) -> u64 {
    mix(seed.wrapping_add(n.wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// A uniform fraction in [0, 1) from the top 53 bits of `z`.
pub(crate) fn unit(z: u64) -> f64 {
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A value in `[0, span]` from `z`, by multiply-and-shift (no division, no float).
pub(crate) fn up_to(z: u64, span: u64) -> u64 {
    ((u128::from(z) * (u128::from(span) + 1)) >> 64) as u64
}

/// A seed that differs between generators and runs: `RandomState`'s per-process keys, mixed
/// with `salt` (an address or a counter) so that generators made at once differ too.
pub(crate) fn random_seed(salt: usize) -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_usize(salt);
    hasher.finish()
}

thread_local! {
    /// The state of [`thread_seed`]'s generator (0: not seeded yet).
    static THREAD_STATE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A seed for a value made often (a service clone per request): the next number of a
/// generator of this thread's, seeded once by [`random_seed`]. A few arithmetic steps, where
/// `random_seed` hashes (tens of nanoseconds); every call gives another number, so clones made
/// one after another at one address still differ.
pub(crate) fn thread_seed() -> u64 {
    THREAD_STATE
        .try_with(|state| {
            let mut s = state.get();
            if s == 0 {
                s = random_seed(state as *const _ as usize) | 1;
            }
            s = s.wrapping_add(GOLDEN);
            state.set(s);
            mix(s)
        })
        // During thread teardown the thread-local may be gone.
        .unwrap_or_else(|_| random_seed(0))
}

/// Where the generators of a shared value's clones (a pool's, one per clone) get their seeds.
/// Given a seed (for reproducible runs), the `n`-th generator made takes the `n`-th number of
/// its sequence: one shared `fetch_add` per clone, in the order the clones are made. Without
/// one, each takes a [`thread_seed`], which writes nothing shared.
#[derive(Debug)]
pub(crate) struct CloneSeeds {
    seed: Option<u64>,
    /// Generators made from `seed` so far (unused without one).
    made: AtomicU64,
}

impl CloneSeeds {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Self {
            seed,
            made: AtomicU64::new(0),
        }
    }

    /// The seed of the next clone's generator.
    #[inline]
    pub(crate) fn next(&self) -> u64 {
        match self.seed {
            Some(seed) => nth(seed, self.made.fetch_add(1, Ordering::Relaxed)),
            None => thread_seed(),
        }
    }

    /// A number for one other use than the clones' draws (a timer's phase): from the seed's
    /// sequence at a place no clone reaches, or [`random_seed`]`(salt)` without a seed.
    pub(crate) fn other(&self, salt: usize) -> u64 {
        match self.seed {
            Some(seed) => nth(seed, u64::MAX),
            None => random_seed(salt),
        }
    }
}

/// A generator owned by one value (a service clone), stepped through `&mut self`.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// A uniform fraction in [0, 1).
    pub(crate) fn next_unit(&mut self) -> f64 {
        unit(self.next_u64())
    }
}

/// A generator shared by threads: one `Relaxed` `fetch_add` per number, so it is lock-free and,
/// under a fixed seed and a fixed order of calls, exact. (`Relaxed`: the counter orders nothing
/// else; each caller only needs a distinct step.)
#[derive(Debug)]
pub(crate) struct AtomicSplitMix64 {
    state: AtomicU64,
}

impl AtomicSplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let step = self
            .state
            .fetch_add(GOLDEN, Ordering::Relaxed)
            .wrapping_add(GOLDEN);
        mix(step)
    }

    /// A uniform fraction in [0, 1).
    pub(crate) fn next_unit(&self) -> f64 {
        unit(self.next_u64())
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn thread_seeds_differ_call_after_call_and_between_threads() {
        let (a, b) = (thread_seed(), thread_seed());
        assert_ne!(a, b);
        let there = std::thread::spawn(thread_seed).join().unwrap();
        assert!(there != a && there != b);
    }

    proptest! {
        #[test]
        fn the_owned_and_the_shared_generator_agree_with_nth(seed in any::<u64>(), n in 0u64..64) {
            let mut owned = SplitMix64::new(seed);
            let shared = AtomicSplitMix64::new(seed);
            for i in 0..=n {
                prop_assert_eq!(owned.next_u64(), nth(seed, i));
                prop_assert_eq!(shared.next_u64(), nth(seed, i));
            }
        }

        #[test]
        fn unit_is_a_fraction_below_one(z in any::<u64>()) {
            let u = unit(z);
            prop_assert!((0.0..1.0).contains(&u));
        }

        #[test]
        fn up_to_stays_in_range(z in any::<u64>(), span in any::<u64>()) {
            prop_assert!(up_to(z, span) <= span);
        }

        #[test]
        fn up_to_reaches_both_ends(span in 0u64..1_000_000) {
            prop_assert_eq!(up_to(0, span), 0);
            prop_assert_eq!(up_to(u64::MAX, span), span);
        }

        #[test]
        fn a_seed_gives_one_sequence(seed in any::<u64>(), n in 0u64..10_000) {
            prop_assert_eq!(nth(seed, n), nth(seed, n));
            prop_assert_ne!(nth(seed, n), nth(seed, n + 1));
        }
    }

    #[test]
    fn the_extremes_of_the_range_are_exact() {
        assert_eq!(up_to(u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(up_to(1 << 63, 1), 1);
        assert_eq!(up_to((1 << 63) - 1, 1), 0);
    }
}
