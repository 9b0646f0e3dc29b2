//! One reload at a time per running layer.
//!
//! A reload stores several settings, each in its own word or under its own lock, so that a
//! call reads what it needs without a lock. Two reloads that interleaved would leave a mix of
//! both configs, which neither was checked as: a breaker's `minimum_calls` of one with the
//! window size of the other may never open. Every `reconfigure` that stores more than one
//! value holds its layer's [`Reloads`] from its check to its last store; calls never take it.
//! (A call racing one reload may still read some settings old and some new, once: see each
//! layer's `# Live reload` docs.)

use std::sync::{Mutex, MutexGuard, PoisonError};

/// The lock a layer's reloads take, one after another.
#[derive(Debug, Default)]
#[allow(dead_code)] // used by the reconfigurable layers, whichever features are on
pub(crate) struct Reloads(Mutex<()>);

#[allow(dead_code)] // used by the reconfigurable layers, whichever features are on
impl Reloads {
    /// Waits for a reload in progress, and holds off the next one until the guard drops.
    pub(crate) fn one_at_a_time(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data, only the order of reloads: a poisoned one orders them as
        // well.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Each layer's `reconfigure` waits for a reload in progress: with its lock held here, a
/// reload on another thread changes nothing until the lock is let go, then applies whole.
#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::Reloads;
    use crate::ConfigError;

    /// Holds `reloads`, runs `reload` on another thread, checks that it has not returned
    /// 100 ms later and that `unchanged` still holds, then lets go and checks that it returns
    /// `Ok`. A `reconfigure` that does not take the lock returns at once and fails the first
    /// check; one that does cannot fail it, however slow the machine.
    fn waits_for(
        reloads: &Reloads,
        reload: impl FnOnce() -> Result<(), ConfigError> + Send,
        unchanged: impl Fn() -> bool,
    ) {
        std::thread::scope(|scope| {
            let held = reloads.one_at_a_time();
            let (done, finished) = mpsc::channel();
            scope.spawn(move || done.send(reload()).unwrap());
            assert!(
                finished.recv_timeout(Duration::from_millis(100)).is_err(),
                "the reload did not wait for the one in progress"
            );
            assert!(unchanged(), "the reload changed something while it waited");
            drop(held);
            finished.recv().unwrap().unwrap();
        });
    }

    #[cfg(feature = "circuit-breaker")]
    #[test]
    fn a_breaker_reload_waits() {
        use crate::circuit_breaker::{CircuitBreakerLayer, Config};
        let layer = CircuitBreakerLayer::from_config(&Config::default()).unwrap();
        let new = Config {
            minimum_calls: 7,
            ..Config::default()
        };
        let minimum = || layer.breaker().live().minimum_calls();
        waits_for(
            layer.breaker().reloads(),
            || layer.reconfigure(&new),
            || minimum() != 7,
        );
        assert_eq!(minimum(), 7);
    }

    #[cfg(feature = "circuit-breaker")]
    #[test]
    fn a_keyed_breaker_reload_waits() {
        use crate::circuit_breaker::Config;
        let layer = Config::default()
            .to_builder()
            .build_keyed(|n: &u32| *n)
            .unwrap();
        let new = Config {
            max_keys: 7,
            ..Config::default()
        };
        let max_keys = || layer.keyed().breakers.bounds().max_keys;
        waits_for(
            &layer.keyed().reloads,
            || layer.reconfigure(&new),
            || max_keys() != 7,
        );
        assert_eq!(max_keys(), 7);
    }

    #[cfg(feature = "bulkhead")]
    #[test]
    fn a_bulkhead_reload_waits() {
        use crate::bulkhead::{BulkheadLayer, Config};
        let layer = BulkheadLayer::from_config(&Config::default()).unwrap();
        let new = Config {
            max_concurrent_calls: 7,
            ..Config::default()
        };
        waits_for(
            &layer.shared.reloads,
            || layer.reconfigure(&new),
            || layer.max_concurrent_calls() != 7,
        );
        assert_eq!(layer.max_concurrent_calls(), 7);
    }

    #[cfg(feature = "retry")]
    #[test]
    fn a_retry_reload_waits() {
        use crate::retry::{Config, RetryLayer};
        let layer = RetryLayer::from_config(&Config::default()).unwrap();
        let new = Config {
            max_attempts: 7,
            ..Config::default()
        };
        let attempts = || layer.shared().max_attempts();
        waits_for(
            &layer.shared().reloads,
            || layer.reconfigure(&new),
            || attempts() != 7,
        );
        assert_eq!(attempts(), 7);
    }

    #[cfg(feature = "hedge")]
    #[test]
    fn a_hedge_reload_waits() {
        use crate::hedge::{Config, HedgeLayer};
        let layer = HedgeLayer::from_config(&Config::default()).unwrap();
        let new = Config {
            max_hedged_attempts: 3,
            ..Config::default()
        };
        let settings = || layer.shared().live.load();
        let before = settings();
        waits_for(
            &layer.shared().reloads,
            || layer.reconfigure(&new),
            || settings() == before,
        );
        assert_ne!(settings(), before);
    }

    #[cfg(feature = "pool")]
    #[test]
    fn a_pool_reload_waits() {
        use crate::pool::{Config, Pool};
        let pool: Pool<u32, ()> = Config::default()
            .to_builder()
            .unwrap()
            .build(Vec::<(u32, ())>::new())
            .unwrap();
        let new = Config {
            consecutive_failures: 7,
            ..Config::default()
        };
        let threshold = || pool.core().live.consecutive_failures();
        waits_for(
            &pool.core().reloads,
            || pool.reconfigure(&new),
            || threshold() != 7,
        );
        assert_eq!(threshold(), 7);
    }

    #[cfg(feature = "rate-limit")]
    #[test]
    fn a_keyed_rate_limit_reload_waits() {
        use crate::rate_limit::{Config, Limit};
        let old = Config {
            limit: Some(Limit {
                calls: 10,
                per: Duration::from_secs(1),
            }),
            ..Config::default()
        };
        let layer = old.to_builder().build_keyed(|n: &u32| *n).unwrap();
        let new = Config {
            max_keys: 7,
            ..old.clone()
        };
        let max_keys = || layer.parts().1.bounds().max_keys;
        waits_for(
            layer.reloads(),
            || layer.reconfigure(&new),
            || max_keys() != 7,
        );
        assert_eq!(max_keys(), 7);
    }
}
