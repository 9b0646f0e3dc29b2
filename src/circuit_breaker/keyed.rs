//! One breaker per key: the keyed layer and its service.
//!
//! Each key's breaker is the same [`Breaker`] as the plain layer's, made from the same validated
//! config on the key's first call, and each call goes through the same [`Guard`] and
//! [`ResponseFuture`]: a keyed breaker differs only in where its breaker comes from.
//!
//! The map holds each key's [`Judge`]: its breaker, with the window calls record into. When a
//! reload gives a key's breaker a new window (`keyed_reload.rs`), it also replaces the key's
//! judge, and a call that took the old judge just before checks, after its admission, that
//! its window is still the breaker's, as the plain service does (see `shape.rs`).

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::breaker::{Admission, Breaker};
use super::config::Config;
use super::future::{Guard, Judge, ResponseFuture};
#[cfg(feature = "serde")]
use super::live::Fixed;
use super::telemetry::{KeyCounts, Listener};
use super::{Builder, Snapshot, State};
use crate::BoxError;
use crate::ConfigError;
use crate::classify::{Classify, ErrorsAsFailures};
use crate::keyed::{Evict, KeyedMap};

impl<C> Evict for Judge<C> {
    /// Open, half-open and forced-open breakers are busy: evicting one would close it (a new
    /// breaker starts closed) and send a key's traffic back to a failing service.
    fn is_busy(&self, _: Instant) -> bool {
        !matches!(self.breaker.state(), State::Closed | State::Disabled)
    }
}

/// What every clone of a keyed layer and its services share.
pub(crate) struct Keyed<K, F, C> {
    pub(crate) breakers: KeyedMap<K, Judge<C>>,
    key: F,
    /// The settings a new key's breaker is made with. Read only when a key's breaker is made,
    /// under its shard's lock (never on a call of a key that has one); replaced by a reload.
    settings: Mutex<Config>,
    /// The breakers' name, which no reload changes.
    pub(super) name: Arc<str>,
    /// How every key's breaker starts, which no reload changes.
    #[cfg(feature = "serde")]
    pub(super) fixed: Fixed,
    /// Held by a reload from its check to its last key: reloads apply one after another.
    #[cfg(feature = "serde")]
    pub(crate) reloads: crate::config::Reloads,
    classifier: C,
    listener: Option<Listener>,
    /// What the keys' breakers report together (see [`KeyCounts`]).
    counts: Arc<KeyCounts>,
}

impl<K: Hash + Eq, F, C: Clone> Keyed<K, F, C> {
    /// `key`'s breaker, made if it has none; marks it used at `now`.
    #[inline]
    pub(super) fn breaker(&self, key: K, now: Instant) -> Arc<Judge<C>> {
        // The map runs this under the key's shard's lock: see `keyed_reload.rs` for why a key
        // made while a reload runs ends with the new settings.
        self.breakers.get_or_insert_with(key, now, || {
            let breaker = Breaker::keyed(
                self.settings(),
                self.listener.clone(),
                Arc::clone(&self.counts),
            );
            Judge::new(Arc::new(breaker), self.classifier.clone())
        })
    }
}

impl<K, F, C> Keyed<K, F, C> {
    /// A copy of the settings a new key's breaker is made with.
    fn settings(&self) -> Config {
        // Written whole under the lock: a poisoned lock still holds one config.
        let settings = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        settings.clone()
    }

    /// Makes `settings` those of every key's breaker made from now on.
    #[cfg(feature = "serde")]
    pub(super) fn set_settings(&self, settings: Config) {
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = settings;
    }
}

impl<C> Builder<C> {
    /// Checks every setting and builds a layer with one breaker per key, where `key` computes
    /// the key of each request (a host, a tenant, a route). Every key's breaker has this
    /// builder's settings, and is made on the key's first call.
    ///
    /// At most [`max_keys`](Self::max_keys) keys have a breaker at once. A closed (or disabled)
    /// breaker unused for [`idle_timeout`](Self::idle_timeout) is evicted when a new key arrives
    /// (sweeps run at most once per `idle_timeout`, and whenever the map is full). When the map
    /// is full, a new key evicts the least recently used closed breaker; open, half-open and
    /// forced-open breakers are kept while any closed one can go, and only when every breaker
    /// is open does the least recently used one go (the bound on memory wins).
    ///
    /// Every key's breaker reports under this builder's [`name`](Self::name), and the
    /// [`on_transition`](Self::on_transition) listener is called for every key.
    ///
    /// # Example
    ///
    /// ```
    /// use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, State};
    /// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// // One breaker per host, each opening on its own.
    /// let breakers = CircuitBreakerLayer::builder()
    ///     .minimum_calls(2)
    ///     .max_keys(1_000)
    ///     .build_keyed(|(host, _): &(&'static str, bool)| *host)?;
    ///
    /// let mut service = ServiceBuilder::new()
    ///     .layer(breakers.clone())
    ///     .service(service_fn(|(_, fail): (&str, bool)| async move {
    ///         if fail { Err("down") } else { Ok("fine") }
    ///     }));
    ///
    /// for _ in 0..2 {
    ///     let _ = service.ready().await?.call(("a.example", true)).await;
    /// }
    /// assert_eq!(breakers.state(&"a.example"), Some(State::Open));
    /// let err = service.ready().await?.call(("a.example", false)).await.unwrap_err();
    /// assert!(err.is::<CircuitOpen>());
    /// // Another host has its own breaker, still closed.
    /// assert_eq!(service.ready().await?.call(("b.example", false)).await?, "fine");
    /// assert_eq!(breakers.state(&"b.example"), Some(State::Closed));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setter whose value is out of range, `max_keys` and
    /// `idle_timeout` included.
    pub fn build_keyed<Req, K, F>(
        self,
        key: F,
    ) -> Result<KeyedCircuitBreakerLayer<K, F, C>, ConfigError>
    where
        F: Fn(&Req) -> K,
        K: Hash + Eq + Clone,
    {
        let (config, classifier, listener, bounds) = self.validate_keyed()?;
        Ok(KeyedCircuitBreakerLayer {
            keyed: Arc::new(Keyed {
                breakers: KeyedMap::new(bounds),
                key,
                counts: Arc::new(KeyCounts::new(&config.name)),
                name: Arc::clone(&config.name),
                #[cfg(feature = "serde")]
                fixed: Fixed::of(&config),
                #[cfg(feature = "serde")]
                reloads: crate::config::Reloads::default(),
                settings: Mutex::new(config),
                classifier,
                listener,
            }),
        })
    }
}

/// Applies one circuit breaker per key to a service; made by [`Builder::build_keyed`].
///
/// Every clone of the layer and every service it makes share one map of breakers. The layer is
/// also their handle: read a key's [`state`](Self::state) or [`snapshot`](Self::snapshot), all
/// of them with [`snapshots`](Self::snapshots), or force a key open, disable or reset it.
pub struct KeyedCircuitBreakerLayer<K, F, C = ErrorsAsFailures> {
    keyed: Arc<Keyed<K, F, C>>,
}

impl<K: Hash + Eq + Clone, F, C: Clone> KeyedCircuitBreakerLayer<K, F, C> {
    /// `key`'s breaker state, or `None` if the key has no breaker (its next call makes a closed
    /// one). Reading it makes the transitions that time alone makes, as
    /// [`CircuitBreakerLayer::state`](super::CircuitBreakerLayer::state) does.
    pub fn state(&self, key: &K) -> Option<State> {
        Some(self.keyed.breakers.get(key)?.breaker.state())
    }

    /// `key`'s state and the counts behind it, or `None` if the key has no breaker.
    pub fn snapshot(&self, key: &K) -> Option<Snapshot> {
        Some(self.keyed.breakers.get(key)?.breaker.snapshot())
    }

    /// Every key with a breaker, with its snapshot, in no particular order.
    pub fn snapshots(&self) -> Vec<(K, Snapshot)> {
        let breakers = self.keyed.breakers.entries();
        breakers
            .into_iter()
            .map(|(key, shared)| (key, shared.breaker.snapshot()))
            .collect()
    }

    /// The keys that have a breaker now, in no particular order.
    pub fn keys(&self) -> Vec<K> {
        let breakers = self.keyed.breakers.entries();
        breakers.into_iter().map(|(key, _)| key).collect()
    }

    /// How many keys have a breaker now.
    pub fn len(&self) -> usize {
        self.keyed.breakers.len()
    }

    /// Whether no key has a breaker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens `key`'s breaker until it is reset: every call with that key is rejected. Makes the
    /// key's breaker if it has none, so a key can be shut before its first call. A forced-open
    /// breaker is busy: it is evicted only when every breaker in the map is open.
    pub fn force_open(&self, key: K) {
        self.keyed.breaker(key, Instant::now()).breaker.force_open();
    }

    /// Lets every call with `key` through and records nothing, until it is reset; whether the
    /// key had a breaker. A disabled breaker may be evicted when idle (its key then gets a new,
    /// closed one), as a closed one may.
    pub fn disable(&self, key: &K) -> bool {
        self.keyed
            .breakers
            .get(key)
            .map(|shared| shared.breaker.disable())
            .is_some()
    }

    /// Closes `key`'s breaker with an empty window; whether the key had a breaker.
    pub fn reset(&self, key: &K) -> bool {
        self.keyed
            .breakers
            .get(key)
            .map(|shared| shared.breaker.reset())
            .is_some()
    }

    /// Forgets `key`'s breaker, whatever its state; whether it had one. Its next call makes a
    /// new, closed breaker. Calls in flight finish on the old one.
    pub fn remove(&self, key: &K) -> bool {
        self.keyed.breakers.remove(key)
    }

    /// The breakers' name, as given to [`Builder::name`].
    pub fn name(&self) -> &str {
        &self.keyed.name
    }

    /// What every clone shares, for `reconfigure`.
    #[cfg(feature = "serde")]
    pub(crate) fn keyed(&self) -> &Keyed<K, F, C> {
        &self.keyed
    }
}

impl<K, F, C> Clone for KeyedCircuitBreakerLayer<K, F, C> {
    fn clone(&self) -> Self {
        Self {
            keyed: Arc::clone(&self.keyed),
        }
    }
}

impl<K, F, C> fmt::Debug for KeyedCircuitBreakerLayer<K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerLayer")
            .field("name", &self.keyed.name)
            .field("breakers", &self.keyed.breakers)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C> Layer<S> for KeyedCircuitBreakerLayer<K, F, C> {
    type Service = KeyedCircuitBreaker<S, K, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker {
            inner,
            keyed: Arc::clone(&self.keyed),
        }
    }
}

/// A service behind one circuit breaker per key; made by [`KeyedCircuitBreakerLayer`].
///
/// # Readiness
///
/// The key is known only in `call`, so `poll_ready` is the inner service's, and the breaker
/// decides in `call`: a call whose key's breaker is open fails at once with
/// [`CircuitOpen`](super::CircuitOpen), without calling the inner service (which was polled
/// ready, and stays ready for the next call).
pub struct KeyedCircuitBreaker<S, K, F, C = ErrorsAsFailures> {
    inner: S,
    keyed: Arc<Keyed<K, F, C>>,
}

impl<S, K, F, C> KeyedCircuitBreaker<S, K, F, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Clone, K, F, C> Clone for KeyedCircuitBreaker<S, K, F, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            keyed: Arc::clone(&self.keyed),
        }
    }
}

impl<S: fmt::Debug, K, F, C> fmt::Debug for KeyedCircuitBreaker<S, K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreaker")
            .field("inner", &self.inner)
            .field("breakers", &self.keyed.breakers)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C, Req> Service<Req> for KeyedCircuitBreaker<S, K, F, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq,
    F: Fn(&Req) -> K,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.keyed.key)(&request);
        let shared = self.keyed.breaker(key, crate::clock::call_now());
        match shared.breaker.admit() {
            Admission::Permitted(permit) => {
                // Checked after the admission, whose load makes a new window's version visible
                // (`shape.rs`): a judge taken from the map just before a reload replaced it
                // would record into a window nobody reads.
                let shared = if shared.is_current() {
                    shared
                } else {
                    renewed(&shared)
                };
                let guard = Guard::new(shared, permit);
                ResponseFuture::called(self.inner.call(request), guard)
            }
            Admission::Rejected(open) => ResponseFuture::rejected(open),
        }
    }
}

/// A judge of the breaker's current window, for the one call that raced a reload.
#[cold]
#[inline(never)]
fn renewed<C: Clone>(judge: &Judge<C>) -> Arc<Judge<C>> {
    Arc::new(judge.renewed())
}
