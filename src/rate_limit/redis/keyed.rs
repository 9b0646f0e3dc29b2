//! One global limit per key (a tenant, a client) shared by every process: the keyed layer and
//! its service.

use std::fmt::{self, Display};
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;

use tower_layer::Layer;
use tower_service::Service;

use super::config::RedisBackend;
use super::lease::{Lease, Take};
use super::task::{self, KeyedLease, Meter, RefillState, Sizing};
use super::{Task, connect, empty, respond};
use crate::BoxError;
use crate::keyed::{Bounds, KeyedMap};
use crate::rate_limit::config::Policy;
use crate::rate_limit::future::ResponseFuture;
use crate::{ConfigError, rate_limit::Builder};

/// What every clone of a keyed global layer and its services share.
struct KeyedGlobal<K, F> {
    policy: Arc<Policy>,
    shared: Arc<RefillState>,
    leases: KeyedMap<K, KeyedLease>,
    /// Leases to refill, to the refill task.
    queue: mpsc::UnboundedSender<Arc<KeyedLease>>,
    /// `{prefix}:{{name}}:key:`, followed by the key.
    key_prefix: String,
    key: F,
    _task: Task,
}

impl<K, F> KeyedGlobal<K, F> {
    /// Queues a refill of `lease` unless one is queued already.
    fn refill(&self, lease: &Arc<KeyedLease>) {
        if lease.lease.request_refill() {
            // Fails only once the task is gone, with the last layer.
            let _ = self.queue.send(Arc::clone(lease));
        }
    }
}

/// Applies one global rate limit per key, shared through Redis by every process; made by
/// [`Builder::build_keyed_global`].
///
/// Each key has its own lease (as the [whole-service layer](super::GlobalRateLimitLayer) has
/// one) and its own GCRA state in Redis, which expires once the key is idle. The process
/// holds at most [`max_keys`](Builder::max_keys) leases; a lease that holds no cell is evicted
/// when idle. Degradation is per layer: one failed call to Redis degrades every key, each to
/// its local share.
pub struct KeyedGlobalRateLimitLayer<K, F> {
    keyed: Arc<KeyedGlobal<K, F>>,
}

impl<K, F> Clone for KeyedGlobalRateLimitLayer<K, F> {
    fn clone(&self) -> Self {
        Self {
            keyed: Arc::clone(&self.keyed),
        }
    }
}

impl<K, F> fmt::Debug for KeyedGlobalRateLimitLayer<K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedGlobalRateLimitLayer")
            .field("policy", &self.keyed.policy)
            .field("mode", &self.keyed.shared.mode)
            .field("leases", &self.keyed.leases)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, F> KeyedGlobalRateLimitLayer<K, F> {
    /// The limiter's name, as given to [`Builder::name`].
    pub fn name(&self) -> &str {
        self.keyed.policy.telemetry.name()
    }

    /// Whether the limiter runs without Redis now.
    pub fn is_degraded(&self) -> bool {
        self.keyed.shared.mode.is_degraded()
    }

    /// The processes sharing the limit, as Redis last reported them (at least 1).
    pub fn processes(&self) -> u32 {
        self.keyed.shared.mode.processes()
    }

    /// The cells this process holds for `key`; `None` if the key has no lease.
    pub fn leased_cells(&self, key: &K) -> Option<u64> {
        Some(self.keyed.leases.get(key)?.lease.cells())
    }

    /// How many keys have a lease now.
    pub fn len(&self) -> usize {
        self.keyed.leases.len()
    }

    /// Whether no key has a lease.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<S, K, F> Layer<S> for KeyedGlobalRateLimitLayer<K, F> {
    type Service = KeyedGlobalRateLimit<S, K, F>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedGlobalRateLimit {
            inner,
            keyed: Arc::clone(&self.keyed),
        }
    }
}

/// A service behind one global rate limit per key; made by [`KeyedGlobalRateLimitLayer`].
pub struct KeyedGlobalRateLimit<S, K, F> {
    inner: S,
    keyed: Arc<KeyedGlobal<K, F>>,
}

impl<S, K, F> KeyedGlobalRateLimit<S, K, F> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Clone, K, F> Clone for KeyedGlobalRateLimit<S, K, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            keyed: Arc::clone(&self.keyed),
        }
    }
}

impl<S: fmt::Debug, K, F> fmt::Debug for KeyedGlobalRateLimit<S, K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedGlobalRateLimit")
            .field("inner", &self.inner)
            .field("leases", &self.keyed.leases)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, Req> Service<Req> for KeyedGlobalRateLimit<S, K, F>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    K: Hash + Eq + Clone + Display,
    F: Fn(&Req) -> K,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let keyed = &*self.keyed;
        let now = crate::clock::call_now();
        let make = || KeyedLease {
            lease: Lease::new(now),
            redis_key: OnceLock::new(),
            meter: Mutex::new(Meter::new(now)),
        };
        // Decided under the shard's lock: one CAS, and a refill queued at most once.
        let decided = keyed
            .leases
            .with((keyed.key)(&request), now, make, |lease| {
                if lease.redis_key.get().is_none() {
                    return Decided::New(Arc::clone(lease));
                }
                Decided::Done(match lease.lease.take() {
                    Take::Admitted => Ok(()),
                    Take::AdmittedLow => {
                        keyed.refill(lease);
                        Ok(())
                    }
                    Take::Empty => {
                        keyed.refill(lease);
                        empty(&keyed.policy, &keyed.shared, &lease.lease)
                    }
                })
            });
        let admitted = match decided {
            Decided::Done(admitted) => admitted,
            Decided::New(lease) => keyed.first_call(&lease, &request),
        };
        respond(&keyed.policy, admitted, &mut self.inner, request)
    }
}

/// What a keyed call found under the shard's lock.
enum Decided {
    Done(Result<(), Duration>),
    /// A lease with no Redis key yet: the key's first call.
    New(Arc<KeyedLease>),
}

impl<K: Display, F> KeyedGlobal<K, F> {
    /// A key's first call (or one racing it): names the lease's Redis key, outside the shard's
    /// lock, by computing the key again (the map took it by value; cloning it on every call
    /// could allocate), queues its first refill, and decides on what it holds: nothing yet.
    #[cold]
    fn first_call<Req>(&self, lease: &Arc<KeyedLease>, request: &Req) -> Result<(), Duration>
    where
        F: Fn(&Req) -> K,
    {
        let key = (self.key)(request);
        // A racing first call may have named it already: the same name.
        let _ = lease
            .redis_key
            .set(Arc::from(format!("{}{key}", self.key_prefix)));
        self.refill(lease);
        empty(&self.policy, &self.shared, &lease.lease)
    }
}

impl Builder {
    /// Checks every setting and builds a layer with one global limit per key, shared through
    /// `backend` by every process with the same [`name`](Self::name); `key` computes each
    /// request's key, whose `Display` form names it in Redis (`key` runs once per call, and once
    /// more on a key's first call, to name it). Keys are bounded in this process
    /// by [`max_keys`](Self::max_keys) and [`idle_timeout`](Self::idle_timeout); in Redis,
    /// each key's state expires once it is idle.
    ///
    /// Must run inside a tokio runtime, as [`build_global`](Self::build_global).
    ///
    /// # Errors
    ///
    /// As [`build_global`](Self::build_global), and for `max_keys` and `idle_timeout`.
    pub fn build_keyed_global<Req, K, F>(
        self,
        backend: RedisBackend,
        key: F,
    ) -> Result<KeyedGlobalRateLimitLayer<K, F>, ConfigError>
    where
        F: Fn(&Req) -> K,
        K: Hash + Eq + Clone + Display,
    {
        let bounds: Bounds = self.bounds()?;
        let (policy, backend, runtime) = self.global_parts(backend)?;
        let (shared, redis) = connect(&policy, &backend)?;
        let (queue, receiver) = mpsc::unbounded_channel();
        let task = runtime.spawn(task::run_keyed(
            Arc::clone(&shared),
            receiver,
            queue.downgrade(),
            Sizing::new(&backend, policy.gcra.interval),
            redis,
        ));
        let key_prefix = format!(
            "{}:{{{}}}:key:",
            backend.key_prefix,
            policy.telemetry.name()
        );
        Ok(KeyedGlobalRateLimitLayer {
            keyed: Arc::new(KeyedGlobal {
                policy: Arc::new(policy),
                shared,
                leases: KeyedMap::new(bounds),
                queue,
                key_prefix,
                key,
                _task: Task(task.abort_handle()),
            }),
        })
    }
}
