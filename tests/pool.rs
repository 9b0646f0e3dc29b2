//! The replica pool: picking, ejection, tiers, panic routing, health checks, retries across
//! replicas, membership, telemetry. All on paused time.

#[path = "support/events.rs"]
mod events;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen};
use steadfast::pool::{Endpoint, EndpointState, NoEndpointAvailable, Pool};
use steadfast::retry::{Backoff, RetryLayer};
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt};

/// How a replica answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail,
    /// Never answers.
    Hang,
    /// `poll_ready` fails.
    Broken,
}

#[derive(Debug)]
struct ReplicaState {
    name: &'static str,
    mode: Mutex<Mode>,
    calls: AtomicUsize,
}

/// A replica whose clones share their mode and their count of calls.
#[derive(Debug, Clone)]
struct Replica(Arc<ReplicaState>);

impl Replica {
    fn new(name: &'static str, mode: Mode) -> Self {
        Self(Arc::new(ReplicaState {
            name,
            mode: Mutex::new(mode),
            calls: AtomicUsize::new(0),
        }))
    }

    fn set(&self, mode: Mode) {
        *self.0.mode.lock().unwrap() = mode;
    }

    fn calls(&self) -> usize {
        self.0.calls.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct Failed(&'static str);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed", self.0)
    }
}

impl std::error::Error for Failed {}

impl Service<u32> for Replica {
    type Response = &'static str;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<&'static str, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if *self.0.mode.lock().unwrap() == Mode::Broken {
            Poll::Ready(Err(Box::new(Failed(self.0.name))))
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, _: u32) -> Self::Future {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let name = self.0.name;
        let mode = *self.0.mode.lock().unwrap();
        Box::pin(async move {
            match mode {
                Mode::Ok => Ok(name),
                Mode::Hang => std::future::pending().await,
                _ => Err(Box::new(Failed(name)) as BoxError),
            }
        })
    }
}

const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

fn replicas(n: usize) -> Vec<Replica> {
    NAMES[..n]
        .iter()
        .map(|name| Replica::new(name, Mode::Ok))
        .collect()
}

fn endpoints(replicas: &[Replica]) -> Vec<(&'static str, Replica)> {
    replicas.iter().map(|r| (r.0.name, r.clone())).collect()
}

fn state_of(pool: &Pool<&'static str, Replica>, key: &str) -> EndpointState {
    pool.endpoints()
        .into_iter()
        .find(|e| *e.key() == key)
        .map(|e| e.state())
        .expect("the endpoint is in the pool")
}

async fn call(pool: &mut Pool<&'static str, Replica>) -> Result<&'static str, BoxError> {
    pool.ready().await?.call(0).await
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn an_empty_pool_builds_and_rejects_at_once_until_an_endpoint_comes() {
    let mut pool = Pool::builder()
        .build(Vec::<(&'static str, Replica)>::new())
        .unwrap();
    assert!(pool.is_empty());
    let error = call(&mut pool).await.unwrap_err();
    let rejection = error.downcast_ref::<NoEndpointAvailable>().unwrap();
    assert_eq!(rejection.endpoints(), 0);
    assert_eq!(
        error.to_string(),
        "no endpoint available: the pool is empty"
    );

    let a = Replica::new("a", Mode::Ok);
    pool.insert("a", a.clone());
    assert_eq!(call(&mut pool).await.unwrap(), "a");
    assert_eq!(a.calls(), 1);
    assert!(pool.remove(&"a"));
    assert!(!pool.remove(&"a"));
    assert!(
        call(&mut pool)
            .await
            .unwrap_err()
            .is::<NoEndpointAvailable>()
    );
}

#[test]
fn bad_configuration_names_the_setter() {
    let none = Vec::<(&'static str, Replica)>::new;
    let field =
        |r: Result<Pool<&'static str, Replica>, steadfast::ConfigError>| r.unwrap_err().field();
    assert_eq!(
        field(Pool::builder().consecutive_failures(0).build(none())),
        "consecutive_failures"
    );
    assert_eq!(
        field(Pool::builder().consecutive_failures(4096).build(none())),
        "consecutive_failures"
    );
    assert_eq!(
        field(
            Pool::builder()
                .base_ejection_time(Duration::ZERO)
                .build(none())
        ),
        "base_ejection_time"
    );
    assert_eq!(
        field(
            Pool::builder()
                .base_ejection_time(ms(10))
                .max_ejection_time(ms(9))
                .build(none())
        ),
        "max_ejection_time"
    );
    assert_eq!(
        field(Pool::builder().max_ejected_fraction(1.5).build(none())),
        "max_ejected_fraction"
    );
    assert_eq!(
        field(Pool::builder().max_ejected_fraction(f64::NAN).build(none())),
        "max_ejected_fraction"
    );
    assert_eq!(
        field(Pool::builder().panic_threshold(-0.1).build(none())),
        "panic_threshold"
    );
    assert_eq!(
        field(Pool::builder().unhealthy_threshold(0).build(none())),
        "unhealthy_threshold"
    );
    assert_eq!(
        field(Pool::builder().healthy_threshold(0).build(none())),
        "healthy_threshold"
    );
    assert_eq!(field(Pool::builder().name("").build(none())), "name");
    assert_eq!(
        field(Pool::builder().failure_rate(0.0, 10).build(none())),
        "failure_rate"
    );
    assert_eq!(
        field(Pool::builder().failure_rate(0.5, 0).build(none())),
        "failure_rate"
    );
    assert_eq!(
        field(Pool::builder().failure_rate(0.5, 10_001).build(none())),
        "failure_rate"
    );
    let message = Pool::builder()
        .panic_threshold(2.0)
        .build(none())
        .unwrap_err()
        .to_string();
    assert!(message.contains("[0, 1]"), "{message}");

    // A health check needs a runtime, and says so instead of panicking.
    let error = Pool::builder()
        .health_check(Duration::from_secs(1), |_: &'static str| async { true })
        .build(none())
        .unwrap_err();
    assert_eq!(error.field(), "health_check");
    assert!(error.to_string().contains("tokio runtime"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_zero_health_check_interval_is_refused() {
    let error = Pool::builder()
        .health_check(Duration::ZERO, |_: &'static str| async { true })
        .build(Vec::<(&'static str, Replica)>::new())
        .unwrap_err();
    assert_eq!(error.field(), "health_check");
}

#[tokio::test(start_paused = true)]
async fn the_less_loaded_endpoint_wins_and_a_dropped_call_gives_its_load_back() {
    let rs = replicas(2);
    rs[0].set(Mode::Hang);
    rs[1].set(Mode::Hang);
    let mut pool = Pool::builder().build(endpoints(&rs)).unwrap();
    let first = pool.ready().await.unwrap().call(0);
    let second = pool.ready().await.unwrap().call(0);
    // Nothing is sent before the futures are polled, but the load counts from `call`.
    let loads: Vec<usize> = pool.endpoints().iter().map(|e| e.in_flight()).collect();
    assert_eq!(loads, [1, 1], "P2C over two endpoints picks the idle one");
    drop(first);
    let loads: Vec<usize> = pool.endpoints().iter().map(|e| e.in_flight()).collect();
    assert_eq!(loads.iter().sum::<usize>(), 1);
    drop(second);
    assert!(pool.endpoints().iter().all(|e| e.in_flight() == 0));
}

#[tokio::test(start_paused = true)]
async fn ties_are_broken_at_random() {
    let rs = replicas(2);
    let mut pool = Pool::builder().build(endpoints(&rs)).unwrap();
    for _ in 0..1000 {
        call(&mut pool).await.unwrap();
    }
    let (a, b) = (rs[0].calls(), rs[1].calls());
    assert_eq!(a + b, 1000);
    assert!((400..=600).contains(&a), "a took {a} of 1000");
}

#[tokio::test(start_paused = true)]
async fn ejection_lasts_n_times_the_base_capped_and_ends_exactly_then() {
    let rs = replicas(2);
    rs[1].set(Mode::Fail);
    let mut pool = Pool::builder()
        .consecutive_failures(3)
        .base_ejection_time(Duration::from_secs(10))
        .max_ejection_time(Duration::from_secs(25))
        .max_ejected_fraction(0.5)
        .panic_threshold(0.0)
        .build(endpoints(&rs))
        .unwrap();

    for (n, length) in [(1, 10_000), (2, 20_000), (3, 25_000), (4, 25_000)] {
        let before = rs[1].calls();
        while state_of(&pool, "b") == EndpointState::Healthy {
            let _ = call(&mut pool).await;
        }
        assert_eq!(
            rs[1].calls() - before,
            3,
            "ejection {n} after 3 failures in a row"
        );
        let b = pool
            .endpoints()
            .into_iter()
            .find(|e| *e.key() == "b")
            .unwrap();
        assert_eq!((b.state(), b.ejections()), (EndpointState::Ejected, n));
        // While ejected, every call goes to "a".
        for _ in 0..20 {
            assert_eq!(call(&mut pool).await.unwrap(), "a");
        }
        advance(ms(length - 1)).await;
        assert_eq!(state_of(&pool, "b"), EndpointState::Ejected);
        advance(ms(1)).await;
        assert_eq!(
            state_of(&pool, "b"),
            EndpointState::Healthy,
            "back exactly then"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_success_ends_the_run_and_the_count_restarts_at_zero_after_a_return() {
    let b = Replica::new("b", Mode::Fail);
    let mut pool = Pool::builder()
        .consecutive_failures(2)
        .base_ejection_time(Duration::from_secs(1))
        .panic_threshold(0.0)
        .build([("b", b.clone())])
        .unwrap();
    call(&mut pool).await.unwrap_err();
    b.set(Mode::Ok);
    call(&mut pool).await.unwrap();
    b.set(Mode::Fail);
    call(&mut pool).await.unwrap_err();
    assert_eq!(
        state_of(&pool, "b"),
        EndpointState::Healthy,
        "the success ended the run"
    );
    call(&mut pool).await.unwrap_err();
    assert_eq!(state_of(&pool, "b"), EndpointState::Ejected);
    assert!(
        call(&mut pool)
            .await
            .unwrap_err()
            .is::<NoEndpointAvailable>()
    );
    advance(Duration::from_secs(1)).await;
    call(&mut pool).await.unwrap_err();
    assert_eq!(
        state_of(&pool, "b"),
        EndpointState::Healthy,
        "one failure after the return"
    );
    call(&mut pool).await.unwrap_err();
    assert_eq!(state_of(&pool, "b"), EndpointState::Ejected);
}

#[tokio::test(start_paused = true)]
async fn never_more_than_the_fraction_is_ejected_and_at_least_one_may_be() {
    for (fraction, n, cap) in [
        (0.5, 4, 2),
        (0.0, 4, 1),
        (0.1, 8, 1),
        (1.0, 3, 3),
        (0.3, 7, 2),
    ] {
        let rs = replicas(n);
        for r in &rs {
            r.set(Mode::Fail);
        }
        let mut pool = Pool::builder()
            .consecutive_failures(1)
            .max_ejected_fraction(fraction)
            .panic_threshold(0.0)
            .build(endpoints(&rs))
            .unwrap();
        for _ in 0..200 {
            let _ = call(&mut pool).await;
        }
        let ejected = pool
            .endpoints()
            .iter()
            .filter(|e| e.state() == EndpointState::Ejected)
            .count();
        assert_eq!(ejected, cap, "fraction {fraction} of {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_local_rejection_never_counts() {
    let breaker = CircuitBreakerLayer::builder().build().unwrap();
    breaker.force_open();
    let a = breaker.layer(Replica::new("a", Mode::Ok));
    let mut pool = Pool::builder()
        .consecutive_failures(1)
        .panic_threshold(0.0)
        .build([("a", a)])
        .unwrap();
    for _ in 0..5 {
        let error = pool.ready().await.unwrap().call(0).await.unwrap_err();
        assert!(
            error.is::<CircuitOpen>(),
            "passed through unwrapped: {error}"
        );
    }
    assert_eq!(pool.endpoints()[0].state(), EndpointState::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_failed_poll_ready_counts_a_failure_and_the_call_gets_its_error() {
    let a = Replica::new("a", Mode::Broken);
    let mut pool = Pool::builder()
        .consecutive_failures(2)
        .panic_threshold(0.0)
        .build([("a", a.clone())])
        .unwrap();
    let error = call(&mut pool).await.unwrap_err();
    assert_eq!(error.downcast_ref::<Failed>().map(|f| f.0), Some("a"));
    assert_eq!(a.calls(), 0, "not called");
    call(&mut pool).await.unwrap_err();
    assert_eq!(state_of(&pool, "a"), EndpointState::Ejected);
}

#[tokio::test(start_paused = true)]
async fn a_custom_classifier_decides_what_fails() {
    let a = Replica::new("a", Mode::Ok);
    let mut pool = Pool::builder()
        .consecutive_failures(1)
        .panic_threshold(0.0)
        .classify(|result: &Result<&'static str, BoxError>| match result {
            Ok(_) => steadfast::classify::Outcome::Failure,
            Err(_) => steadfast::classify::Outcome::Success,
        })
        .build([("a", a)])
        .unwrap();
    pool.ready().await.unwrap().call(0).await.unwrap();
    assert_eq!(pool.endpoints()[0].state(), EndpointState::Ejected);
}

/// Calls per tier over `n` calls, with `down` endpoints of tier 0 (of 4) ejected.
async fn tier_split(down: usize, n: usize) -> (usize, usize) {
    let rs = replicas(6);
    for r in &rs[..down] {
        r.set(Mode::Fail);
    }
    let mut pool = Pool::builder()
        .consecutive_failures(1)
        .max_ejected_fraction(1.0)
        .panic_threshold(0.0)
        .base_ejection_time(Duration::from_secs(3600))
        .max_ejection_time(Duration::from_secs(3600))
        .build(
            rs.iter()
                .enumerate()
                .map(|(i, r)| Endpoint::new(r.0.name, r.clone()).tier(u32::from(i >= 4))),
        )
        .unwrap();
    while pool
        .endpoints()
        .iter()
        .filter(|e| e.state() == EndpointState::Ejected)
        .count()
        < down
    {
        let _ = call(&mut pool).await;
    }
    let before: Vec<usize> = rs.iter().map(Replica::calls).collect();
    for _ in 0..n {
        call(&mut pool).await.unwrap();
    }
    let taken: Vec<usize> = rs.iter().zip(before).map(|(r, b)| r.calls() - b).collect();
    (taken[..4].iter().sum(), taken[4..].iter().sum())
}

#[tokio::test(start_paused = true)]
async fn tiers_spill_in_proportion_to_the_capacity_lost() {
    // 3 of 4 eligible: 1.4 × 0.75 > 1, tier 0 keeps everything.
    assert_eq!(tier_split(1, 1000).await, (1000, 0));
    // 2 of 4: 1.4 × 0.5 = 70 % stays in tier 0.
    let (zero, one) = tier_split(2, 4000).await;
    assert!(
        (2600..=3000).contains(&zero),
        "tier 0 took {zero}, tier 1 {one}"
    );
    // None: all in tier 1.
    assert_eq!(tier_split(4, 500).await, (0, 500));
}

#[tokio::test(start_paused = true)]
async fn panic_routing_sends_to_every_endpoint_and_says_so() {
    let events = events::capture();
    let rs = replicas(4);
    for r in &rs[..3] {
        r.set(Mode::Fail);
    }
    let mut pool = Pool::builder()
        .consecutive_failures(1)
        .max_ejected_fraction(1.0)
        .name("backend")
        .build(endpoints(&rs))
        .unwrap();
    // Two ejected of four: 2 eligible is not below 0.5 × 4, no panic yet.
    while pool
        .endpoints()
        .iter()
        .filter(|e| e.state() == EndpointState::Ejected)
        .count()
        < 2
    {
        let _ = call(&mut pool).await;
    }
    assert!(!events.text().contains("panic"));
    // A third ejection would leave 1 < 2 eligible: panic routing sends calls to all four.
    while pool
        .endpoints()
        .iter()
        .filter(|e| e.state() == EndpointState::Ejected)
        .count()
        < 3
    {
        let _ = call(&mut pool).await;
    }
    let before: Vec<usize> = rs.iter().map(Replica::calls).collect();
    for _ in 0..400 {
        let _ = call(&mut pool).await;
    }
    for (r, b) in rs.iter().zip(before) {
        assert!(
            r.calls() - b > 50,
            "{} took {} calls",
            r.0.name,
            r.calls() - b
        );
    }
    let text = events.text();
    let warnings = text
        .matches("pool panic routing: too few endpoints")
        .count();
    assert_eq!(warnings, 1, "{text}");
    assert!(text.contains("pool.name=backend"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn health_checks_mark_unhealthy_and_bring_back_and_stop_with_the_pool() {
    let verdicts: Arc<Mutex<HashMap<&'static str, bool>>> =
        Arc::new(Mutex::new([("a", true), ("b", true)].into_iter().collect()));
    let probes = Arc::new(AtomicUsize::new(0));
    let probe = {
        let (verdicts, probes) = (verdicts.clone(), probes.clone());
        move |key: &'static str| {
            probes.fetch_add(1, Ordering::SeqCst);
            let pass = verdicts.lock().unwrap()[key];
            async move { pass }
        }
    };
    let rs = replicas(2);
    let mut pool = Pool::builder()
        .health_check(Duration::from_secs(1), probe)
        .unhealthy_threshold(2)
        .healthy_threshold(3)
        .build(endpoints(&rs))
        .unwrap();
    // The first round comes within one interval.
    advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(probes.load(Ordering::SeqCst), 2);

    verdicts.lock().unwrap().insert("b", false);
    advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(
        state_of(&pool, "b"),
        EndpointState::Healthy,
        "one failed probe is not enough"
    );
    advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(state_of(&pool, "b"), EndpointState::Unhealthy);
    for _ in 0..20 {
        assert_eq!(call(&mut pool).await.unwrap(), "a");
    }

    verdicts.lock().unwrap().insert("b", true);
    for _ in 0..2 {
        advance(Duration::from_secs(1)).await;
        settle().await;
    }
    assert_eq!(state_of(&pool, "b"), EndpointState::Unhealthy);
    advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(
        state_of(&pool, "b"),
        EndpointState::Healthy,
        "after 3 passes"
    );

    let clone = pool.clone();
    drop(pool);
    advance(Duration::from_secs(1)).await;
    settle().await;
    let seen = probes.load(Ordering::SeqCst);
    assert_eq!(seen % 2, 0);
    drop(clone);
    for _ in 0..3 {
        advance(Duration::from_secs(1)).await;
        settle().await;
    }
    assert_eq!(
        probes.load(Ordering::SeqCst),
        seen,
        "no probe after the last clone is gone"
    );
}

/// Lets the probe task and its probes run.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_goes_to_an_endpoint_it_has_not_tried() {
    let rs = replicas(3);
    for r in &rs {
        r.set(Mode::Fail);
    }
    let pool = Pool::builder()
        .consecutive_failures(1000)
        .build(endpoints(&rs))
        .unwrap();
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(1)))
        .build()
        .unwrap();
    // Layers that call their inner service within their own `call` keep the link.
    let mut service = tower::ServiceBuilder::new()
        .layer(retry)
        .layer(steadfast::timeout::TimeoutLayer::new(Duration::from_secs(
            1,
        )))
        .layer(
            steadfast::bulkhead::BulkheadLayer::builder()
                .build()
                .unwrap(),
        )
        .service(pool);
    for n in 1..=50 {
        let _ = service.ready().await.unwrap().call(0).await;
        for r in &rs {
            assert_eq!(
                r.calls(),
                n,
                "each request tried each of the 3 endpoints once"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn when_every_endpoint_was_tried_the_retry_goes_to_the_least_loaded() {
    let rs = replicas(2);
    rs[0].set(Mode::Fail);
    rs[1].set(Mode::Fail);
    let pool = Pool::builder()
        .consecutive_failures(1000)
        .build(endpoints(&rs))
        .unwrap();
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(1)))
        .build()
        .unwrap();
    let mut service = retry.layer(pool.clone());
    // Load "a" with a call that never ends; the third attempt then goes to "b".
    rs[0].set(Mode::Hang);
    let mut loader = pool.clone();
    let mut held = Vec::new();
    while rs[0].calls() == 0 {
        let mut f = Box::pin(loader.ready().await.unwrap().call(0));
        let _ = futures_poll(&mut f);
        held.push(f);
    }
    rs[0].set(Mode::Fail);
    let (a, b) = (rs[0].calls(), rs[1].calls());
    let _ = service.ready().await.unwrap().call(0).await;
    assert_eq!((rs[0].calls() - a, rs[1].calls() - b), (1, 2));
}

fn futures_poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let waker = std::task::Waker::noop();
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

#[tokio::test(start_paused = true)]
async fn a_removed_endpoint_finishes_its_calls_and_takes_no_more() {
    let rs = replicas(2);
    rs[0].set(Mode::Hang);
    let mut pool = Pool::builder().build([("a", rs[0].clone())]).unwrap();
    let mut in_flight = Box::pin(pool.ready().await.unwrap().call(0));
    assert!(futures_poll(&mut in_flight).is_pending());
    pool.insert("b", rs[1].clone());
    assert!(pool.remove(&"a"));
    assert_eq!(pool.len(), 1);
    for _ in 0..10 {
        assert_eq!(call(&mut pool).await.unwrap(), "b");
    }
    assert!(futures_poll(&mut in_flight).is_pending(), "still running");
    assert_eq!(rs[0].calls(), 1);
    // Inserting a key again replaces its endpoint.
    let c = Replica::new("c", Mode::Ok);
    pool.insert("b", c.clone());
    assert_eq!(call(&mut pool).await.unwrap(), "c");
    assert_eq!(pool.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_endpoints_and_their_state() {
    let rs = replicas(2);
    rs[1].set(Mode::Fail);
    let pool = Pool::builder()
        .consecutive_failures(1)
        .max_ejected_fraction(0.5)
        .build(endpoints(&rs))
        .unwrap();
    let mut clone = pool.clone();
    while state_of(&pool, "b") == EndpointState::Healthy {
        let _ = call(&mut clone).await;
    }
    pool.insert("c", Replica::new("c", Mode::Ok));
    assert_eq!(clone.endpoints().len(), 3);
}

/// axum's route service: a parent that is never called itself, cloned for every request. Each
/// clone routes by the endpoints and their states of its own time, however old the parent is.
#[tokio::test(start_paused = true)]
async fn a_clone_of_a_parent_never_called_routes_by_the_current_endpoints() {
    let rs = replicas(3);
    rs[1].set(Mode::Fail);
    let parent = Pool::builder()
        .consecutive_failures(1)
        .max_ejected_fraction(0.5)
        .build(endpoints(&rs[..2]))
        .unwrap();
    // Ejected by a clone's call: a change of health the parent has not seen.
    while state_of(&parent, "b") == EndpointState::Healthy {
        let _ = parent.clone().oneshot(0).await;
    }
    for _ in 0..20 {
        assert_eq!(parent.clone().oneshot(0).await.unwrap(), "a");
    }
    // And a change of membership: "b" is still ejected, so "c" takes every call.
    let calls_of_a = rs[0].calls();
    parent.insert("c", rs[2].clone());
    assert!(parent.remove(&"a"));
    for _ in 0..20 {
        assert_eq!(parent.clone().oneshot(0).await.unwrap(), "c");
    }
    assert_eq!(
        rs[0].calls(),
        calls_of_a,
        "a removed endpoint takes no call"
    );
}

#[tokio::test(start_paused = true)]
async fn a_discover_stream_drives_membership() {
    let rs = replicas(2);
    let pool: Pool<usize, Replica> = Pool::builder()
        .build(Vec::<(usize, Replica)>::new())
        .unwrap();
    let list = tower::discover::ServiceList::new(rs.clone());
    pool.follow(list).await.unwrap();
    let keys: Vec<usize> = pool.endpoints().iter().map(|e| *e.key()).collect();
    assert_eq!(keys, [0, 1]);
}

#[tokio::test(start_paused = true)]
async fn events_on_ejection_and_return() {
    let events = events::capture();
    let b = Replica::new("b", Mode::Fail);
    let mut pool = Pool::builder()
        .consecutive_failures(1)
        .base_ejection_time(Duration::from_secs(2))
        .panic_threshold(0.0)
        .name("search")
        .build([("b", b)])
        .unwrap();
    call(&mut pool).await.unwrap_err();
    call(&mut pool).await.unwrap_err();
    advance(Duration::from_secs(2)).await;
    call(&mut pool).await.unwrap_err();
    let text = events.text();
    // Building is not inserting: the first event is the ejection.
    let lines: Vec<&str> = std::iter::once("").chain(text.lines()).collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[1].contains("WARN") && lines[1].contains("pool endpoint ejected"),
        "{text}"
    );
    assert!(
        lines[1].contains("pool.name=search") && lines[1].contains("pool.endpoint=\"b\""),
        "{text}"
    );
    assert!(lines[1].contains("pool.ejection_ms=2000"), "{text}");
    assert!(
        lines[2].contains("DEBUG") && lines[2].contains("no endpoint available"),
        "{text}"
    );
    assert!(
        lines[3].contains("INFO") && lines[3].contains("returned from ejection"),
        "{text}"
    );
    assert!(
        lines[4].contains("WARN") && lines[4].contains("pool endpoint ejected"),
        "{text}"
    );
    assert!(lines[4].contains("pool.ejections=2"), "{text}");
}

#[cfg(feature = "metrics")]
mod metrics {
    use super::*;
    use metrics_util::CompositeKey;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    type Entry = (
        CompositeKey,
        Option<::metrics::Unit>,
        Option<::metrics::SharedString>,
        DebugValue,
    );

    fn find<'a>(
        snapshot: &'a [Entry],
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<&'a DebugValue> {
        snapshot.iter().find_map(|(key, _, _, value)| {
            let key = key.key();
            let matches = key.name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v));
            matches.then_some(value)
        })
    }

    fn gauge(value: Option<&DebugValue>) -> f64 {
        match value {
            Some(DebugValue::Gauge(g)) => g.into_inner(),
            other => panic!("not a gauge: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn metrics_count_endpoints_ejections_and_panic_routing() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _recorder = ::metrics::set_default_local_recorder(&recorder);
        let rs = replicas(4);
        for r in &rs[..3] {
            r.set(Mode::Fail);
        }
        let mut pool = Pool::builder()
            .consecutive_failures(1)
            .max_ejected_fraction(1.0)
            .name("inventory")
            .build(endpoints(&rs))
            .unwrap();
        while pool
            .endpoints()
            .iter()
            .filter(|e| e.state() == EndpointState::Ejected)
            .count()
            < 3
        {
            let _ = call(&mut pool).await;
        }
        let _ = call(&mut pool).await; // computes the panic routing
        let snapshot = snapshotter.snapshot().into_vec();
        let name = ("name", "inventory");
        let endpoints = |state| {
            gauge(find(
                &snapshot,
                "steadfast_pool_endpoints",
                &[name, ("state", state)],
            ))
        };
        assert_eq!(endpoints("healthy"), 1.0);
        assert_eq!(endpoints("ejected"), 3.0);
        assert_eq!(endpoints("unhealthy"), 0.0);
        assert_eq!(
            gauge(find(&snapshot, "steadfast_pool_panic_routing", &[name])),
            1.0
        );
        match find(&snapshot, "steadfast_pool_ejections_total", &[name]) {
            Some(DebugValue::Counter(n)) => assert_eq!(*n, 3),
            other => panic!("{other:?}"),
        }
    }

    fn counter(value: Option<&DebugValue>) -> u64 {
        match value {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("not a counter: {other:?}"),
        }
    }

    /// The per-endpoint series: a state one-hot, an ejection counter and the calls in flight
    /// as of the last `endpoints()`; a removed endpoint's state gauges all read 0, and an
    /// endpoint inserted again under the same key reads healthy.
    #[tokio::test(start_paused = true)]
    async fn metrics_per_endpoint_follow_ejections_health_and_removal() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _recorder = ::metrics::set_default_local_recorder(&recorder);
        let rs = replicas(3);
        rs[0].set(Mode::Fail);
        rs[1].set(Mode::Hang);
        let mut pool = Pool::builder()
            .consecutive_failures(1)
            .base_ejection_time(Duration::from_secs(10))
            .max_ejected_fraction(1.0)
            .panic_threshold(0.0)
            .name("inventory")
            .build(endpoints(&rs))
            .unwrap();
        let state = |snapshot: &[Entry], endpoint: &str| -> [f64; 3] {
            ["healthy", "ejected", "unhealthy"].map(|state| {
                gauge(find(
                    snapshot,
                    "steadfast_pool_endpoint_state",
                    &[
                        ("name", "inventory"),
                        ("endpoint", endpoint),
                        ("state", state),
                    ],
                ))
            })
        };
        let labels = |endpoint| [("name", "inventory"), ("endpoint", endpoint)];
        let snapshot = snapshotter.snapshot().into_vec();
        for key in ["a", "b", "c"] {
            assert_eq!(
                state(&snapshot, key),
                [1.0, 0.0, 0.0],
                "{key} starts healthy"
            );
        }

        // "a" fails once and is ejected; calls to "b" hang and stay in flight.
        let mut hanging = Vec::new();
        while state_of(&pool, "a") != EndpointState::Ejected {
            let mut fut = Box::pin(pool.ready().await.unwrap().call(0));
            if futures_poll(&mut fut).is_pending() {
                hanging.push(fut);
            }
        }
        let in_flight_b = pool
            .endpoints()
            .iter()
            .find(|e| *e.key() == "b")
            .map(|e| e.in_flight())
            .unwrap();
        assert_eq!(in_flight_b, hanging.len());
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(state(&snapshot, "a"), [0.0, 1.0, 0.0]);
        assert_eq!(
            counter(find(
                &snapshot,
                "steadfast_pool_endpoint_ejections_total",
                &labels("a")
            )),
            1
        );
        assert_eq!(
            gauge(find(
                &snapshot,
                "steadfast_pool_endpoint_in_flight",
                &labels("b")
            )),
            in_flight_b as f64
        );

        // The ejection ends: "a" reads healthy again, its counter keeps its count.
        rs[0].set(Mode::Ok);
        advance(Duration::from_secs(10)).await;
        assert_eq!(state_of(&pool, "a"), EndpointState::Healthy);
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(state(&snapshot, "a"), [1.0, 0.0, 0.0]);

        // Removed: every state gauge of "b" reads 0; its hanging calls end with their futures.
        assert!(pool.remove(&"b"));
        drop(hanging);
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(state(&snapshot, "b"), [0.0, 0.0, 0.0]);

        // Inserted again under the same key, and replaced: healthy, not zeroed by the old one.
        pool.insert("b", rs[2].clone());
        pool.insert("b", rs[2].clone());
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(state(&snapshot, "b"), [1.0, 0.0, 0.0]);
    }
}

/// Fails every other call.
#[derive(Debug, Clone)]
struct Flaky(Arc<AtomicUsize>);

impl Service<u32> for Flaky {
    type Response = &'static str;
    type Error = BoxError;
    type Future = std::future::Ready<Result<&'static str, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u32) -> Self::Future {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if n % 2 == 0 {
            Ok("flaky")
        } else {
            Err(Box::new(Failed("flaky")) as BoxError)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn failure_rate_ejects_an_endpoint_that_fails_often_but_never_in_a_row() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut pool = Pool::builder()
        .consecutive_failures(5)
        .failure_rate(0.5, 10)
        .base_ejection_time(Duration::from_secs(1))
        .panic_threshold(0.0)
        .build([("flaky", Flaky(calls.clone()))])
        .unwrap();
    for _ in 0..9 {
        let _ = pool.ready().await.unwrap().call(0).await;
    }
    assert_eq!(
        pool.endpoints()[0].state(),
        EndpointState::Healthy,
        "the window is not full yet"
    );
    let _ = pool.ready().await.unwrap().call(0).await;
    assert_eq!(
        pool.endpoints()[0].state(),
        EndpointState::Ejected,
        "5 of 10 failed"
    );
    advance(Duration::from_secs(1)).await;
    // After the return the window starts empty: 9 more calls are not enough.
    for _ in 0..9 {
        let _ = pool.ready().await.unwrap().call(0).await;
    }
    assert_eq!(pool.endpoints()[0].state(), EndpointState::Healthy);
    assert_eq!(calls.load(Ordering::SeqCst), 19);
}

/// Two pools built with one seed send the same calls to the same endpoints, the pool's own
/// calls and its clones' alike (ties of power of two choices included: every call here finds
/// every endpoint idle); another seed draws otherwise.
#[tokio::test(start_paused = true)]
async fn a_seeded_pool_draws_the_same_endpoints_run_after_run() {
    async fn run(seed: u64) -> Vec<u32> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let endpoints = (0..8u32).map(|key| {
            let log = Arc::clone(&log);
            let service = tower::service_fn(move |(): ()| {
                log.lock().unwrap().push(key);
                std::future::ready(Ok::<_, BoxError>(()))
            });
            (key, service)
        });
        let mut pool = Pool::builder().seed(seed).build(endpoints).unwrap();
        for _ in 0..50 {
            pool.ready().await.unwrap().call(()).await.unwrap();
            // As axum calls a route: a clone per call.
            pool.clone().oneshot(()).await.unwrap();
        }
        let sent = log.lock().unwrap().clone();
        assert_eq!(sent.len(), 100);
        sent
    }
    assert_eq!(run(7).await, run(7).await);
    assert_ne!(run(7).await, run(8).await);
}
