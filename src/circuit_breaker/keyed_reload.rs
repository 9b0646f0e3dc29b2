//! A reloaded config on a running keyed layer: [`KeyedCircuitBreakerLayer::reconfigure`].
//!
//! # What a reload does, in order
//!
//! 1. Checks the whole config, as the plain layer's `reconfigure` does (the same function) and
//!    the bounds as `build_keyed` does; a refused config stops here, having changed nothing.
//! 2. Replaces the settings that a new key's breaker is made with.
//! 3. Applies the settings to every key's breaker, as the plain layer applies them to its one
//!    (the same function): live settings at once, a new window where the window's shape changed.
//! 4. Replaces, in the map, the judge of every key whose breaker got a new window, so that the
//!    key's calls record into it.
//! 5. Applies `max_keys` and `idle_timeout` to the map.
//!
//! Reloads hold a lock from 1 to 5, so two of them apply one after the other, never
//! interleaved key by key. Calls take no part in it: a call of a key that has a breaker never
//! reads the settings of step 2, and never takes this lock.
//!
//! # A key made while a reload runs
//!
//! A key's breaker is made, and inserted, under its shard's lock, and reads the settings of
//! step 2 there, whole, under their own lock. Step 3 visits the keys through each shard's
//! lock too, after step 2. So a key made while a reload runs either is made before step 3
//! visits its shard, and step 3 then applies the new settings to it, or after, and then reads
//! the new settings of step 2. Either way it ends with the new settings, wholly, by the time
//! the reload returns; and between step 2 and the end, a key made with the old ones runs with
//! the old ones until step 3 reaches it. No breaker is made from a mix: the settings are one
//! value, copied under one lock.
//!
//! While step 3 stores a breaker's settings, a call of that key may judge with some old
//! settings and some new, as a call racing the plain layer's reload may (see `live.rs`); the
//! next judgement uses the new ones.
//!
//! # A call that took the old judge
//!
//! A call takes its key's judge from the map, then asks the breaker for admission. A reload's
//! step 3 may replace the window in between, and step 4 the judge: the call, admitted under
//! the new window, then holds a judge of the old one. It checks after its admission, as the
//! plain service does, and records into the new window (see `keyed.rs`).

use std::hash::Hash;

use super::KeyedCircuitBreakerLayer;
use super::config_file::{Config, apply, check_settings};
use crate::ConfigError;

impl<K: Hash + Eq + Clone, F, C: Clone> KeyedCircuitBreakerLayer<K, F, C> {
    /// Applies a reloaded config to this running keyed layer, shared by every clone and every
    /// service it made: every key's breaker takes the new settings and keeps its state, keys
    /// made afterwards get them, and the map takes the new bounds.
    ///
    /// Each key's breaker changes as a plain breaker's does on
    /// [`CircuitBreakerLayer::reconfigure`](super::CircuitBreakerLayer::reconfigure): a new
    /// threshold judges the key's window as it is, a new window shape starts a new window
    /// (for every key), open and half-open breakers keep their timers and probes. `seed` is
    /// used when a key's breaker is made: keys made after the reload use the new one.
    ///
    /// A new `max_keys` or `idle_timeout` holds at once: a lower `max_keys` evicts down to it as
    /// new keys come (never at once), and a new `idle_timeout` applies from a sweep that is due
    /// at once. See the [module docs](super#live-reload) for a key made while a reload runs.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field, and nothing changes (no key's breaker, no bound, no
    /// setting of keys to come), when the config is one [`build_keyed`](super::Builder::build_keyed)
    /// refuses, when it renames the breakers (`name`), or when it changes `initial_state`: what
    /// the plain breaker's `reconfigure` refuses, and a `max_keys` or `idle_timeout` out of
    /// range.
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        let keyed = self.keyed();
        let _one_at_a_time = keyed.reloads.one_at_a_time();
        let new = check_settings(&keyed.name, &keyed.fixed, config)?;
        let bounds = config.to_builder().bounds()?;

        keyed.set_settings(new.clone());
        let breakers = keyed.breakers.entries();
        let mut new_windows = 0;
        for (_, judge) in &breakers {
            if apply(&judge.breaker, &new) {
                new_windows += 1;
            }
        }
        if new_windows > 0 {
            keyed
                .breakers
                .replace_values(|judge| (!judge.is_current()).then(|| judge.renewed()));
        }
        if keyed.breakers.bounds() != bounds {
            keyed.breakers.set_bounds(bounds);
        }
        tracing::info!(
            circuit_breaker.name = %keyed.name,
            circuit_breaker.failure_rate_threshold = new.failure_rate_threshold,
            circuit_breaker.minimum_calls = new.minimum_calls,
            circuit_breaker.half_open_calls = new.half_open_calls,
            circuit_breaker.keys = breakers.len(),
            circuit_breaker.new_windows = new_windows,
            circuit_breaker.max_keys = bounds.max_keys,
            circuit_breaker.idle_timeout_ms = crate::clock::millis(bounds.idle_timeout),
            "keyed circuit breaker reconfigured"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::circuit_breaker::shape::Shape;
    use crate::circuit_breaker::{CircuitBreakerLayer, SlidingWindow};

    fn config(window: u32, threshold: f64, half_open_calls: u32) -> Config {
        Config {
            sliding_window: SlidingWindow::Count(window),
            failure_rate_threshold: threshold,
            half_open_calls,
            ..Config::default()
        }
    }

    /// Two threads make keys over and over (each removed and made again) while a third
    /// reloads between two configs, ending on the second: every key, made before, during or
    /// after the last reload, ends with the second's settings and window, wholly, and its
    /// judge in the map records into that window.
    #[test]
    fn keys_made_during_reloads_end_with_the_last_settings() {
        const KEYS: u32 = 512;
        let old = config(10, 0.25, 2);
        let new = config(20, 0.75, 4);
        let layer = Arc::new(old.to_builder().build_keyed(|n: &u32| *n).unwrap());
        for key in 0..KEYS {
            let _ = layer.keyed().breaker(key, Instant::now());
        }
        let done = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicUsize::new(0));
        let makers: Vec<_> = (0..2u32)
            .map(|thread| {
                let (layer, done, made) =
                    (Arc::clone(&layer), Arc::clone(&done), Arc::clone(&made));
                std::thread::spawn(move || {
                    let mut key = thread;
                    while !done.load(Ordering::Relaxed) {
                        layer.remove(&key);
                        let _ = layer.keyed().breaker(key, Instant::now());
                        made.fetch_add(1, Ordering::Relaxed);
                        key = (key + 2) % KEYS;
                    }
                })
            })
            .collect();
        // At least 400 reloads, and on until the makers made 20 000 keys in the meantime.
        let mut reloads = 0;
        while reloads < 400 || made.load(Ordering::Relaxed) < 20_000 {
            let config = if reloads % 2 == 0 { &old } else { &new };
            layer.reconfigure(config).unwrap();
            reloads += 1;
        }
        // The last reload changes the settings, while keys are being made.
        layer.reconfigure(&old).unwrap();
        layer.reconfigure(&new).unwrap();
        done.store(true, Ordering::Relaxed);
        for maker in makers {
            maker.join().unwrap();
        }

        let settings = new.to_builder().settings().unwrap();
        let shape = Shape::of(&settings);
        let breakers = layer.keyed().breakers.entries();
        assert_eq!(breakers.len(), KEYS as usize);
        for (key, judge) in breakers {
            let live = judge.breaker.live();
            assert_eq!(
                (live.failure_rate_threshold(), live.half_open_calls()),
                (0.75, 4),
                "key {key}"
            );
            let (_, window) = judge.breaker.window().load();
            assert!(window.shape().same_as(&shape), "key {key}");
            assert!(judge.is_current(), "key {key}");
        }
    }

    /// A key made after a reload is made with the reloaded settings.
    #[test]
    fn a_key_made_after_a_reload_is_made_with_its_settings() {
        let layer = CircuitBreakerLayer::builder()
            .build_keyed(|n: &u32| *n)
            .unwrap();
        let mut new = config(7, 0.5, 3);
        new.wait_in_open = Duration::from_secs(2);
        layer.reconfigure(&new).unwrap();
        let judge = layer.keyed().breaker(1, Instant::now());
        assert_eq!(judge.breaker.live().half_open_calls(), 3);
        assert_eq!(judge.breaker.live().wait_in_open(), Duration::from_secs(2));
        let (_, window) = judge.breaker.window().load();
        assert_eq!(window.shape().window, SlidingWindow::Count(7));
    }
}
