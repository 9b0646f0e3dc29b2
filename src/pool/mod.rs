//! Pool: one service over many replicas of a backend, so that a call answers fresh while one of
//! them is down.
//!
//! A [`Pool`] sends each call to one of its endpoints, chosen by power of two choices: two
//! eligible endpoints drawn at random, the one with fewer calls in flight wins (a tie at
//! random). Each worker thread weighs the calls it sent itself, as independent clients of one
//! backend each balance their own, so that a call reads no cache line another core writes;
//! [`Pool::endpoints`] reports every thread's calls together. An endpoint that fails `consecutive_failures` times in a row is *ejected* (passive
//! outlier detection) for a time that grows with each ejection; an optional health check marks
//! endpoints *unhealthy* and brings them back. Endpoints come in tiers (zones, regions): traffic
//! stays in tier 0 while it is healthy and spills into the next tier as it loses capacity. A
//! retry above the pool sends each attempt to an endpoint the request has not tried yet.
//! Endpoints can be inserted and removed at run time, by hand or from a
//! [`Discover`](tower::discover::Discover) stream ([`Pool::follow`]).
//!
//! Use a pool when there are replicas to spread over and fail over to; a
//! [fallback](crate#the-order-of-a-full-stack) when there is none. A pool goes innermost in a
//! stack, with a per-endpoint attempt timeout (or bulkhead) inside each endpoint's service:
//! fallback → retry → timeout → breaker → bulkhead → **pool** → attempt timeout → endpoint.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use steadfast::BoxError;
//! use steadfast::pool::{Endpoint, EndpointState, Pool};
//! use tower::{Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let replica = |id: &'static str| {
//!     service_fn(move |n: u32| async move {
//!         if id == "b" { Err::<String, BoxError>("b is down".into()) } else { Ok(format!("{id}:{n}")) }
//!     })
//! };
//! let mut pool = Pool::builder()
//!     .consecutive_failures(1)
//!     .base_ejection_time(Duration::from_secs(30))
//!     .max_ejected_fraction(0.5)
//!     .build([
//!         Endpoint::new("a", replica("a")),
//!         Endpoint::new("b", replica("b")),
//!         Endpoint::new("c", replica("c")).tier(1), // another zone: only when tier 0 lacks capacity
//!     ])?;
//!
//! // Sooner or later a call lands on "b", fails, and ejects it.
//! while pool.endpoints().iter().all(|e| e.state() == EndpointState::Healthy) {
//!     let _ = pool.ready().await?.call(1).await;
//! }
//! // Now every call lands on "a" (tier 1's "c" takes what "a" alone cannot: 1.4 × ½ = 70 %
//! // stays in tier 0, 30 % spills).
//! for _ in 0..10 {
//!     let answer = pool.ready().await?.call(2).await?;
//!     assert!(answer == "a:2" || answer == "c:2");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Defaults
//!
//! | setter | default | allowed |
//! |---|---|---|
//! | [`consecutive_failures`](Builder::consecutive_failures) | [5](DEFAULT_CONSECUTIVE_FAILURES) | `[1, 4095]` |
//! | [`base_ejection_time`](Builder::base_ejection_time) | [30 s](DEFAULT_BASE_EJECTION_TIME) | ≥ 1 ms |
//! | [`max_ejection_time`](Builder::max_ejection_time) | [300 s](DEFAULT_MAX_EJECTION_TIME) | ≥ `base_ejection_time` |
//! | [`max_ejected_fraction`](Builder::max_ejected_fraction) | [0.1](DEFAULT_MAX_EJECTED_FRACTION) | `[0, 1]` (at least one may be ejected) |
//! | [`failure_rate`](Builder::failure_rate) | off | threshold in (0, 1], calls in `[1, 10000]` |
//! | [`panic_threshold`](Builder::panic_threshold) | [0.5](DEFAULT_PANIC_THRESHOLD) | `[0, 1]`, 0 = off |
//! | [`health_check`](Builder::health_check) | none | interval ≥ 1 ms |
//! | [`unhealthy_threshold`](Builder::unhealthy_threshold) | [2](DEFAULT_UNHEALTHY_THRESHOLD) | `[1, 65535]` |
//! | [`healthy_threshold`](Builder::healthy_threshold) | [2](DEFAULT_HEALTHY_THRESHOLD) | `[1, 65535]` |
//! | [`classify`](Builder::classify) | [`ErrorsAsFailures`] | any [`Classify`] |
//! | [`name`](Builder::name) | [`"default"`](DEFAULT_NAME) | non-empty |
//! | [`seed`](Builder::seed) | a random seed per clone | any `u64` |
//!
//! # Outlier ejection
//!
//! Each endpoint counts its failures in a row (what a failure is, the
//! [`classify`](Builder::classify)r says; a local rejection such as a per-endpoint
//! [`BulkheadFull`](crate::bulkhead::BulkheadFull) never counts; a success ends the run). At
//! `consecutive_failures` it is ejected: its `n`-th ejection (counted since it was inserted, see
//! [`EndpointSnapshot::ejections`]) lasts `n × base_ejection_time`, at most
//! `max_ejection_time`, and it is eligible again exactly when that time is over, with its run
//! of failures at zero. Outcomes of calls sent before an ejection are not counted after it.
//! At most `max(1, ⌊max_ejected_fraction × endpoints⌋)` endpoints are ejected at once; a
//! failure that would eject one more keeps the run at the threshold, so the next failure
//! tries again. Unhealthy endpoints do not count toward the cap.
//!
//! With [`failure_rate(threshold, calls)`](Builder::failure_rate), an endpoint is also ejected
//! when at least `threshold` of its last `calls` calls failed: its health *is* a breaker's count
//! window (the same code), emptied at each ejection.
//!
//! # Tiers
//!
//! Envoy's priority levels: a tier whose eligible fraction is `f` has a health of
//! `min(1, 1.4 × f)` (the overprovisioning factor 1.4). Tier 0 takes that share of the traffic,
//! tier 1 takes its own health of what is left, and so on; when the tiers together cannot take
//! it all, the shares are scaled up in proportion. So tier 0 keeps all the traffic until fewer
//! than 1/1.4 (71 %) of its endpoints are eligible, and then spills in proportion to the
//! capacity it lost.
//!
//! **Panic routing**: when fewer than `panic_threshold` of all endpoints are eligible, the pool
//! sends calls to all of them, ejected and unhealthy ones included, as Envoy does: with most of
//! a backend marked bad the marks are more likely wrong than the backend, and a few survivors
//! would be overwhelmed. It logs a `warn!` and sets `steadfast_pool_panic_routing` when it
//! starts. With `panic_threshold(0.0)` and nothing eligible, calls fail with
//! [`NoEndpointAvailable`].
//!
//! # Active health checks
//!
//! With [`health_check(interval, probe)`](Builder::health_check), a task on the tokio runtime
//! that [`build`](Builder::build) runs in calls `probe(key)` for every endpoint, all at once,
//! every `interval`; the first round within the first interval (at a random point, so pools
//! built together do not probe in step). `unhealthy_threshold` failed probes in a row (a probe
//! that takes longer than `interval` failed) mark the endpoint
//! [`Unhealthy`](EndpointState::Unhealthy) (ending an ejection, if any); `healthy_threshold`
//! passed ones bring it back, its run of failures at zero. The task holds the pool weakly and
//! is aborted when the last clone of the pool is dropped.
//!
//! # Live reload
//!
//! With the `serde` feature, [`Pool::reconfigure`] applies a reloaded [`Config`] to a running
//! pool and every clone: `consecutive_failures`, `base_ejection_time`, `max_ejection_time`,
//! `max_ejected_fraction`, `panic_threshold`, the failure-rate `threshold`,
//! `unhealthy_threshold` and `healthy_threshold` change at once, and the pool keeps its
//! endpoints, their calls in flight and ejection counts, the ejections in progress (each keeps
//! the end it was given; the next is timed with the new base and maximum) and the health
//! check's streaks. A new `name`, turning `failure_rate` on or off or changing its `calls` is
//! refused: each endpoint's failure-rate window is sized when the endpoint is made. A refused
//! config changes nothing.
//!
//! # Retry across replicas
//!
//! A [`RetryLayer`](crate::retry::RetryLayer) directly above the pool (other layers may sit in
//! between, as long as they call their inner service within their own `call`) lends the pool
//! the endpoints the request has tried: each retry goes to an endpoint the request has not
//! tried yet whenever an eligible one exists, and to the least loaded eligible one when all
//! were tried. Endpoints are told apart by an id modulo 64, so in a pool of more than 64
//! endpoints two may be taken for one. A `Buffer` between the retry and the pool moves the
//! pool's `call` to another task and breaks this link (the retry then goes anywhere, as a first
//! attempt does).
//!
//! # Telemetry
//!
//! | kind | name | when | fields / labels |
//! |---|---|---|---|
//! | `tracing` event, `WARN` | `pool endpoint ejected` | an endpoint is ejected | `pool.name`, `pool.endpoint`, `pool.ejections`, `pool.ejection_ms`, `pool.cause` (`consecutive_failures` or `failure_rate`) |
//! | `tracing` event, `INFO` | `pool endpoint returned from ejection` | an ejection ends | `pool.name`, `pool.endpoint`, `pool.ejections` |
//! | `tracing` event, `WARN` | `pool endpoint unhealthy: its health check failed` | a health check marks it unhealthy | `pool.name`, `pool.endpoint`, `pool.was_ejected` |
//! | `tracing` event, `INFO` | `pool endpoint healthy again: its health check passed` | a health check brings it back | `pool.name`, `pool.endpoint` |
//! | `tracing` event, `WARN` / `INFO` | `pool panic routing…` / `pool panic routing ended` | panic routing starts / ends | `pool.name`, `pool.eligible`, `pool.endpoints` |
//! | `tracing` event, `INFO` | `pool endpoint inserted` / `pool endpoint removed` | membership changes | `pool.name`, `pool.endpoint`, `pool.tier` |
//! | `tracing` event, `DEBUG` | `pool has no endpoint available` | a call is rejected | `pool.name`, `pool.endpoints` |
//! | `tracing` event, `TRACE` | `pool health probe` | a probe ends | `pool.name`, `pool.endpoint`, `pool.probe_passed` |
//! | gauge | `steadfast_pool_endpoints` | endpoints per state | `name`, `state` (`healthy`, `ejected`, `unhealthy`) |
//! | counter | `steadfast_pool_ejections_total` | ejections | `name` |
//! | gauge | `steadfast_pool_panic_routing` | 1 while panic routing, else 0 | `name` |
//! | gauge | `steadfast_pool_endpoint_state` | 1 for the endpoint's state, 0 for the others (all 0 once removed) | `name`, `endpoint`, `state` |
//! | counter | `steadfast_pool_endpoint_ejections_total` | this endpoint's ejections | `name`, `endpoint` |
//! | gauge | `steadfast_pool_endpoint_in_flight` | its calls in flight, as of the last [`endpoints()`](Pool::endpoints) | `name`, `endpoint` |
//!
//! Metrics need the `metrics` feature; their handles are registered once, when the pool is built
//! (an endpoint's, when it is inserted), and no call touches them. The `endpoint` label is the
//! key's `Debug` text, without the quotes of a string key: one set of series per endpoint, so
//! keep keys few and stable (addresses, not request data).
//!
//! # Readiness
//!
//! The pool's [`poll_ready`](tower_service::Service::poll_ready) is always `Ready(Ok(()))`: the
//! endpoint is chosen in `call`, and the response future drives that endpoint's (a clone's)
//! `poll_ready` and then its `call`. An endpoint whose `poll_ready` fails counts a failure (unless
//! the error is a local rejection), is not called, and the call fails with that error. An
//! endpoint that is slow to become ready holds the call; bound it with a timeout above.
//!
//! # Cancel safety
//!
//! A call counts in its endpoint's in-flight load from `call` until its future completes or is
//! dropped, whichever comes first; a dropped future counts no outcome. A removed endpoint's
//! calls in flight run to the end on the clone they hold.
//!
//! # Errors
//!
//! The error type is [`BoxError`]. Errors of an endpoint (and of its `poll_ready`) pass through
//! boxed, not wrapped. A call that no endpoint can take (an empty pool, or nothing eligible and
//! no panic routing) fails at once with [`NoEndpointAvailable`], a local rejection.
//!
//! # Differences from `tower::balance::p2c::Balance`
//!
//! - Clones share one set of endpoints and their state (tower's `Balance` is one owner of its
//!   services); `poll_ready` never waits and never fails; the endpoint is chosen in `call`.
//! - Load is in-flight calls counted by the pool itself, not a `Load` the services implement.
//! - Outlier ejection, health checks, tiers, panic routing and retries to untried endpoints.
//! - No lock, no allocation on the call path: a call reads a routing table computed when the
//!   membership or an endpoint's health last changed.
//! - Endpoint services must be `Clone` (each call drives its own clone), and `Send + Sync` for
//!   the pool to be `Send`; wrap a service that is not `Sync` in a `BoxCloneSyncService`.

mod config;
#[cfg(feature = "serde")]
mod config_file;
mod discover;
mod endpoint;
pub mod error;
pub mod future;
mod health;
mod live;
mod load;
mod member;
#[cfg(any(feature = "http", feature = "tonic"))]
pub mod probe;
mod routing;
mod state;
#[cfg(feature = "metrics")]
mod telemetry;

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use tokio::task::AbortHandle;
use tower_service::Service;

pub use self::config::{
    Builder, DEFAULT_BASE_EJECTION_TIME, DEFAULT_CONSECUTIVE_FAILURES, DEFAULT_HEALTHY_THRESHOLD,
    DEFAULT_MAX_EJECTED_FRACTION, DEFAULT_MAX_EJECTION_TIME, DEFAULT_NAME, DEFAULT_PANIC_THRESHOLD,
    DEFAULT_UNHEALTHY_THRESHOLD, HealthCheck, NoHealthCheck,
};
#[cfg(feature = "serde")]
pub use self::config_file::{Config, FailureRate};
pub use self::discover::Follow;
pub use self::endpoint::{Endpoint, EndpointSnapshot, EndpointState};
pub use self::error::NoEndpointAvailable;
pub use self::future::ResponseFuture;

use self::load::{Entry, InFlight};
use self::member::{Core, Member};
use self::routing::{Routable, Routing};
use crate::BoxError;
use crate::classify::{Classify, ErrorsAsFailures};
use crate::random::{CloneSeeds, SplitMix64};
use crate::sync::Ordering;

/// The endpoints, in tier order.
type Members<K, S> = Arc<[Arc<Entry<K, S>>]>;

/// One version of the pool: its endpoints and the routing over them.
struct View<K, S> {
    version: u64,
    members: Members<K, S>,
    routing: Routing,
}

/// What every clone of a pool shares: the roster of endpoints (the current view) and the
/// health task.
///
/// # Memory ordering
///
/// A view is never changed once published; `core.version` (`Acquire` loads, bumped `AcqRel`)
/// says when it is out of date. A health transition bumps the version without computing a view,
/// so the slot may lag it: the first reader to see that computes the view. The slot is written
/// only under `writer`, and each view stored carries the version loaded under that lock after
/// the change it shows, so the slot's versions only grow. `arc-swap` orders a store before any
/// load that returns it, so a reader sees a view whole; a view replaced while a call borrows it
/// lives until the borrow ends, and a call's hold on its endpoint is its own `Arc` (see
/// [`load`](self::load)), so a removed endpoint's calls in flight finish.
pub(crate) struct Roster<K, S> {
    core: Arc<Core>,
    /// The current view, replaced (never changed in place) when the membership or the health of
    /// an endpoint changed. Read without a lock, and borrowed without a reference count, by the
    /// first call of every clone: axum clones a route's service for every request, so a lock
    /// word or a count here would move between the cores on every call.
    view: ArcSwap<View<K, S>>,
    /// Taken by whoever replaces the view (a membership edit, or the first clone to see a new
    /// version), so that two of them never store views out of order. Calls never take it.
    writer: Mutex<()>,
    health_task: Mutex<Option<AbortHandle>>,
    /// The seeds of the clones' draws, and of the health check's phase.
    seeds: CloneSeeds,
}

impl<K, S> Roster<K, S> {
    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while the view was replaced left the old one, which is whole.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn members(&self) -> Members<K, S> {
        Arc::clone(&self.view.load().members)
    }

    fn set_health_task(&self, handle: AbortHandle) {
        *self
            .health_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }

    /// Whether `view` is of the current version.
    #[inline]
    fn is_current(&self, view: &View<K, S>) -> bool {
        self.core.version.load(Ordering::Acquire) == view.version
    }

    /// Whether `view` may route a call now: of the current version, and no ejection was due to
    /// end (one that was is ended here, which moves the version).
    #[inline]
    fn is_routable(&self, view: &View<K, S>) -> bool
    where
        K: fmt::Debug,
    {
        self.is_current(view) && !self.core.return_due(&view.members)
    }

    /// Keeps in `held` a view that may route a call now, and returns it: `held`'s own if it is
    /// current, else the current one; and the current one again if an ejection ended.
    #[cold]
    fn keep_current<'a>(&self, held: &'a mut Option<Arc<View<K, S>>>) -> &'a View<K, S>
    where
        K: fmt::Debug,
    {
        let view = match held.take() {
            Some(view) if self.is_current(&view) => view,
            _ => self.current(),
        };
        let view = if self.core.return_due(&view.members) {
            self.current()
        } else {
            view
        };
        held.insert(view)
    }

    /// The view of the current version: the slot's, without a lock, unless no clone computed
    /// it yet.
    fn current(&self) -> Arc<View<K, S>> {
        let view = self.view.load_full();
        if self.is_current(&view) {
            return view;
        }
        self.recompute()
    }

    /// Computes the view of the current version under the writer lock, unless another clone
    /// did while this one waited for it.
    #[cold]
    fn recompute(&self) -> Arc<View<K, S>> {
        let _writer = self.lock_writer();
        let version = self.core.version.load(Ordering::Acquire);
        let view = self.view.load_full();
        if view.version == version {
            return view;
        }
        let next = Arc::new(self.compute(version, Arc::clone(&view.members)));
        self.view.store(Arc::clone(&next));
        next
    }

    /// Makes reloaded settings live, and moves the version so that every clone recomputes its
    /// routing (with the new `panic_threshold`) at its next call. The settings are stored before
    /// the version moves (see [`live`](self::live)).
    #[cfg(feature = "serde")]
    fn reconfigure(&self, settings: &live::Settings) {
        self.core.live.store(settings);
        self.core.bump_version();
        // Computed now, so that a start or end of panic routing is reported at the reload.
        drop(self.current());
    }

    fn compute(&self, version: u64, members: Members<K, S>) -> View<K, S> {
        let mut routing = Routing::default();
        routing.compute(&members, self.core.live.panic_threshold());
        self.core
            .set_panicking(routing.panic, routing.eligible, members.len());
        View {
            version,
            members,
            routing,
        }
    }
}

impl<K, S> Roster<K, S>
where
    K: Eq + fmt::Debug,
{
    /// Replaces the membership under the lock: `edit` gets the current endpoints.
    fn edit(&self, edit: impl FnOnce(&[Arc<Entry<K, S>>]) -> Vec<Arc<Entry<K, S>>>) {
        let writer = self.lock_writer();
        let mut members = edit(&self.view.load().members);
        // Stable: within a tier, the order of insertion.
        members.sort_by_key(|m| m.tier);
        self.core.total.store(
            u32::try_from(members.len()).unwrap_or(u32::MAX),
            Ordering::Release,
        );
        // Bumped under the lock, so the view stored here carries the version that announces it.
        self.core.bump_version();
        let version = self.core.version.load(Ordering::Acquire);
        self.view
            .store(Arc::new(self.compute(version, members.into())));
        drop(writer);
        self.core.publish_counts();
    }

    fn insert(&self, endpoint: Endpoint<K, S>) {
        let member = Arc::new(Entry::new(
            Member::new(
                endpoint.key,
                endpoint.service,
                endpoint.tier,
                Arc::clone(&self.core),
            ),
            self.core.stripes,
        ));
        tracing::info!(
            pool.name = %self.core.name,
            pool.endpoint = ?member.key,
            pool.tier = member.tier,
            "pool endpoint inserted"
        );
        let inserted = Arc::clone(&member);
        self.edit(|members| {
            let mut next = Vec::with_capacity(members.len() + 1);
            for m in members {
                if m.key == member.key {
                    m.remove();
                } else {
                    next.push(Arc::clone(m));
                }
            }
            next.push(member);
            next
        });
        // A replaced endpoint of the same key zeroed the gauges they share as it left.
        inserted.publish_state();
    }

    fn remove(&self, key: &K) -> bool {
        let mut found = false;
        self.edit(|members| {
            let mut next = Vec::with_capacity(members.len());
            for m in members {
                if m.key == *key {
                    m.remove();
                    found = true;
                    tracing::info!(
                        pool.name = %self.core.name,
                        pool.endpoint = ?m.key,
                        pool.tier = m.tier,
                        "pool endpoint removed"
                    );
                } else {
                    next.push(Arc::clone(m));
                }
            }
            next
        });
        found
    }
}

impl<K, S> Drop for Roster<K, S> {
    fn drop(&mut self) {
        if let Some(task) = self
            .health_task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl<K: fmt::Debug, S> fmt::Debug for Roster<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Roster")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl<K, S> Routable for Arc<Entry<K, S>> {
    #[inline]
    fn tier(&self) -> u32 {
        self.tier
    }
    #[inline]
    fn eligible(&self) -> bool {
        self.is_eligible()
    }
    #[inline]
    fn load(&self) -> u32 {
        self.local_load()
    }
    #[inline]
    fn id(&self) -> u64 {
        self.id
    }
}

/// One service over many endpoints; built by [`Pool::builder`]. See the [module docs](self).
///
/// Cloning is cheap (one reference count and a seed for its draws) and gives a pool that shares the
/// endpoints, their state and the health check with this one. A clone's first call routes with
/// the pool's current endpoints, whatever the clone was made from.
pub struct Pool<K, S, C = ErrorsAsFailures> {
    shared: Arc<Roster<K, S>>,
    /// The view this clone routes with, kept from its second call on (see [`Pool::call`]).
    view: Option<Arc<View<K, S>>>,
    /// Whether this clone was called: its first call borrows the roster's view instead.
    called: bool,
    classify: C,
    /// Owned by this clone, so a draw is two arithmetic steps on a local, with no atomic.
    rng: SplitMix64,
}

impl Pool<(), ()> {
    /// A builder with the [defaults](self#defaults).
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl<K, S, C> Pool<K, S, C>
where
    K: Clone + Eq + Hash + fmt::Debug,
{
    pub(crate) fn from_builder<H, I>(builder: Builder<C, H>, endpoints: I) -> (Self, H)
    where
        I: IntoIterator,
        I::Item: Into<Endpoint<K, S>>,
    {
        let settings = builder.settings();
        let core = Arc::new(Core::new(builder.name, &settings));
        let empty: Members<K, S> = Arc::new([]);
        let shared = Arc::new(Roster {
            view: ArcSwap::from_pointee(View {
                version: u64::MAX,
                members: empty,
                routing: Routing::default(),
            }),
            writer: Mutex::new(()),
            core,
            health_task: Mutex::new(None),
            seeds: CloneSeeds::new(builder.seed),
        });
        // One membership change for all of them, keeping the last endpoint of a key.
        let endpoints: Vec<Endpoint<K, S>> = endpoints.into_iter().map(Into::into).collect();
        let core = Arc::clone(&shared.core);
        shared.edit(|_| {
            let mut members: Vec<Arc<Entry<K, S>>> = Vec::with_capacity(endpoints.len());
            for endpoint in endpoints {
                members.retain(|m| m.key != endpoint.key);
                members.push(Arc::new(Entry::new(
                    Member::new(
                        endpoint.key,
                        endpoint.service,
                        endpoint.tier,
                        Arc::clone(&core),
                    ),
                    core.stripes,
                )));
            }
            members
        });
        let pool = Self {
            rng: SplitMix64::new(shared.seeds.next()),
            shared,
            view: None,
            called: false,
            classify: builder.classify,
        };
        (pool, builder.health)
    }

    /// Adds an endpoint of tier 0 (or replaces the endpoint of that key, whose calls in flight
    /// finish). Use [`insert_endpoint`](Self::insert_endpoint) for another tier.
    pub fn insert(&self, key: K, service: S) {
        self.shared.insert(Endpoint::new(key, service));
    }

    /// Adds an endpoint (or replaces the endpoint of its key, whose calls in flight finish).
    pub fn insert_endpoint(&self, endpoint: Endpoint<K, S>) {
        self.shared.insert(endpoint);
    }

    /// Removes the endpoint of `key`, if any, and says whether there was one. Its calls in
    /// flight finish; no new call goes to it.
    pub fn remove(&self, key: &K) -> bool {
        self.shared.remove(key)
    }

    /// Applies the changes of a [`Discover`](tower::discover::Discover) stream
    /// (`Change::Insert`, `Change::Remove`) to this pool's membership, as they come: spawn the
    /// returned future, or await it. It ends with the stream, on the stream's error, or at the
    /// first change after the last clone of the pool was dropped. Inserted endpoints are in
    /// tier 0.
    pub fn follow<D>(&self, discover: D) -> Follow<D, K, S>
    where
        D: tower::discover::Discover<Key = K, Service = S>,
    {
        Follow::new(discover, Arc::downgrade(&self.shared))
    }
}

impl<K, S, C> Pool<K, S, C>
where
    K: Clone + fmt::Debug,
{
    /// A snapshot of every endpoint, in tier order: key, state, calls in flight, ejections.
    /// An ejection that is over is ended first, so the states are those of this instant.
    pub fn endpoints(&self) -> Vec<EndpointSnapshot<K>> {
        let members = self.shared.members();
        self.shared.core.return_due(&members);
        members
            .iter()
            .filter_map(|m| m.snapshot(m.in_flight()))
            .collect()
    }

    /// The number of endpoints.
    pub fn len(&self) -> usize {
        self.shared.core.total.load(Ordering::Acquire) as usize
    }

    /// Whether the pool has no endpoint.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K, S, C: Clone> Clone for Pool<K, S, C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            view: None,
            called: false,
            classify: self.classify.clone(),
            // Cheap unless seeded: axum clones a route's service for every request.
            rng: SplitMix64::new(self.shared.seeds.next()),
        }
    }
}

impl<K: fmt::Debug, S, C> fmt::Debug for Pool<K, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("shared", &self.shared)
            .field("version", &self.view.as_ref().map(|view| view.version))
            .finish_non_exhaustive()
    }
}

impl<K, S, C, Req> Service<Req> for Pool<K, S, C>
where
    K: Clone + fmt::Debug,
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<K, S, Req, C>;

    /// Always ready: the endpoint is chosen, and its readiness awaited, in the call.
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    /// A clone's first call routes with the roster's current view, borrowed: no reference count
    /// moves, which matters because axum clones a route's service for every request and calls
    /// each clone once. From its second call on, a clone keeps the view and only checks that it
    /// is still current.
    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let borrowed;
        let view: &View<K, S> = match &self.view {
            Some(view) if self.shared.is_routable(view) => view,
            None if !self.called => {
                self.called = true;
                borrowed = self.shared.view.load();
                if self.shared.is_routable(&borrowed) {
                    &borrowed
                } else {
                    self.shared.keep_current(&mut self.view)
                }
            }
            _ => self.shared.keep_current(&mut self.view),
        };
        let tried = crate::tried::get().unwrap_or(0);
        match view.routing.pick(&view.members, &mut self.rng, tried) {
            Some(index) => {
                let member = &view.members[index];
                crate::tried::add(member.id);
                ResponseFuture::new(
                    member.service.clone(),
                    request,
                    InFlight::new(member),
                    self.classify.clone(),
                )
            }
            None => {
                tracing::debug!(
                    pool.name = %self.shared.core.name,
                    pool.endpoints = view.members.len(),
                    "pool has no endpoint available"
                );
                ResponseFuture::rejected(view.members.len(), self.classify.clone())
            }
        }
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests;
#[cfg(all(test, not(steadfast_loom)))]
mod view_tests;
