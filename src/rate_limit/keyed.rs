//! One limiter per key: the keyed layer and its service.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::config::LocalPolicy;
use super::future::{ResponseFuture, respond, verdict};
use super::layer::wait_time;
use super::live::CachedRate;
use super::state::Limiter;
use crate::BoxError;
use crate::keyed::{Bounds, KeyedMap};

/// What every clone of a keyed layer and its services share.
struct Keyed<K, F> {
    policy: Arc<LocalPolicy>,
    limiters: KeyedMap<K, Limiter>,
    key: F,
    /// Held by `reconfigure`, which stores the rate and the map's bounds.
    #[cfg(feature = "serde")]
    reloads: crate::config::Reloads,
}

/// Applies one rate limit per key to a service; made by
/// [`Builder::build_keyed`](super::Builder::build_keyed).
///
/// Every clone of the layer and every service it makes share one map of limiters. Each key's
/// limiter has the same rate, burst and wait; keys are bounded in number (see the
/// [module docs](super#keyed-limits)).
pub struct KeyedRateLimitLayer<K, F> {
    keyed: Arc<Keyed<K, F>>,
}

impl<K: Hash + Eq + Clone, F> KeyedRateLimitLayer<K, F> {
    pub(crate) fn new(policy: LocalPolicy, bounds: Bounds, key: F) -> Self {
        Self {
            keyed: Arc::new(Keyed {
                policy: Arc::new(policy),
                limiters: KeyedMap::new(bounds),
                key,
                #[cfg(feature = "serde")]
                reloads: crate::config::Reloads::default(),
            }),
        }
    }

    /// How long a call for `key` made now would wait for its turn; `None` if the key has no
    /// limiter (a call would go at once).
    pub fn wait_time(&self, key: &K) -> Option<Duration> {
        let limiter = self.keyed.limiters.get(key)?;
        Some(wait_time(&self.keyed.policy, &limiter, Instant::now()))
    }

    /// The keys that have a limiter now, in no particular order.
    pub fn keys(&self) -> Vec<K> {
        let limiters = self.keyed.limiters.entries();
        limiters.into_iter().map(|(key, _)| key).collect()
    }

    /// How many keys have a limiter now.
    pub fn len(&self) -> usize {
        self.keyed.limiters.len()
    }

    /// Whether no key has a limiter.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The limiter's name, as given to [`Builder::name`](super::Builder::name).
    pub fn name(&self) -> &str {
        self.keyed.policy.telemetry.name()
    }

    /// The live rate and the map of limiters, for `reconfigure`.
    #[cfg(feature = "serde")]
    pub(crate) fn parts(&self) -> (&LocalPolicy, &KeyedMap<K, Limiter>) {
        (&self.keyed.policy, &self.keyed.limiters)
    }

    /// What orders this layer's reloads.
    #[cfg(feature = "serde")]
    pub(crate) fn reloads(&self) -> &crate::config::Reloads {
        &self.keyed.reloads
    }
}

impl<K, F> Clone for KeyedRateLimitLayer<K, F> {
    fn clone(&self) -> Self {
        Self {
            keyed: Arc::clone(&self.keyed),
        }
    }
}

impl<K, F> fmt::Debug for KeyedRateLimitLayer<K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitLayer")
            .field("policy", &self.keyed.policy)
            .field("limiters", &self.keyed.limiters)
            .finish_non_exhaustive()
    }
}

impl<S, K, F> Layer<S> for KeyedRateLimitLayer<K, F> {
    type Service = KeyedRateLimit<S, K, F>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedRateLimit {
            inner,
            rate: self.keyed.policy.live.copy(),
            keyed: Arc::clone(&self.keyed),
        }
    }
}

/// A service behind one rate limit per key; made by [`KeyedRateLimitLayer`].
pub struct KeyedRateLimit<S, K, F> {
    inner: S,
    /// This service's copy of the live rate; see `live.rs`.
    rate: CachedRate,
    keyed: Arc<Keyed<K, F>>,
}

impl<S, K, F> KeyedRateLimit<S, K, F> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Clone, K, F> Clone for KeyedRateLimit<S, K, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            rate: self.rate,
            keyed: Arc::clone(&self.keyed),
        }
    }
}

impl<S: fmt::Debug, K, F> fmt::Debug for KeyedRateLimit<S, K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimit")
            .field("inner", &self.inner)
            .field("limiters", &self.keyed.limiters)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, Req> Service<Req> for KeyedRateLimit<S, K, F>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    K: Hash + Eq + Clone,
    F: Fn(&Req) -> K,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.keyed.key)(&request);
        let policy = &self.keyed.policy;
        policy.live.refresh(&mut self.rate);
        let rate = self.rate.rate();
        let now = crate::clock::call_now();
        // Decided under the shard's lock (one CAS), so a hit takes no reference count; the
        // inner service is called after the lock is released.
        let verdict = self.keyed.limiters.with(
            key,
            now,
            || Limiter::new(now),
            |limiter| verdict(rate, limiter, now),
        );
        respond(policy, verdict, now, &mut self.inner, request)
    }
}
