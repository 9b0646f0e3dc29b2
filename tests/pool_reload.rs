//! `Pool::reconfigure`: each setting changes behaviour after a reload as its builder method
//! does, the state stays (ejections, their counts, health streaks), a refused config changes
//! nothing, and a reload under concurrent calls loses no in-flight count. Paused time, except
//! the multi-thread test, which asserts no time.

#![cfg(all(feature = "pool", feature = "serde"))]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::pool::{Config, EndpointState, FailureRate, Pool};
use tokio::time::advance;
use tower::{Service, ServiceExt};

/// A replica whose clones share whether it fails and its count of calls.
#[derive(Debug, Clone)]
struct Replica {
    name: &'static str,
    fail: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Replica {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            fail: Arc::new(AtomicBool::new(false)),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn fail(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<u32> for Replica {
    type Response = &'static str;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<&'static str, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u32) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (name, fail) = (self.name, self.fail.load(Ordering::SeqCst));
        Box::pin(async move {
            if fail {
                Err(format!("{name} failed").into())
            } else {
                Ok(name)
            }
        })
    }
}

type TestPool = Pool<&'static str, Replica>;

fn replicas(names: &[&'static str]) -> Vec<Replica> {
    names.iter().map(|name| Replica::new(name)).collect()
}

fn build(config: &Config, rs: &[Replica]) -> TestPool {
    config
        .to_builder()
        .unwrap()
        .build(rs.iter().map(|r| (r.name, r.clone())))
        .unwrap()
}

/// The state and the ejection count of `key`.
fn state(pool: &TestPool, key: &str) -> (EndpointState, u32) {
    let e = pool
        .endpoints()
        .into_iter()
        .find(|e| *e.key() == key)
        .expect("the endpoint is in the pool");
    (e.state(), e.ejections())
}

fn ejected(pool: &TestPool) -> usize {
    pool.endpoints()
        .iter()
        .filter(|e| e.state() == EndpointState::Ejected)
        .count()
}

async fn call(pool: &mut TestPool) -> Result<&'static str, BoxError> {
    pool.ready().await?.call(0).await
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// No panic routing, so that an ejected endpoint takes no call.
fn config() -> Config {
    let mut c = Config::default();
    c.panic_threshold = 0.0;
    c
}

#[tokio::test(start_paused = true)]
async fn a_lower_consecutive_failures_judges_the_run_so_far() {
    let rs = replicas(&["a"]);
    rs[0].fail(true);
    let mut c = config();
    c.consecutive_failures = 5;
    let mut pool = build(&c, &rs);
    for _ in 0..3 {
        assert!(call(&mut pool).await.is_err());
    }
    assert_eq!(state(&pool, "a"), (EndpointState::Healthy, 0));

    c.consecutive_failures = 2;
    pool.reconfigure(&c).unwrap();
    assert_eq!(
        state(&pool, "a"),
        (EndpointState::Healthy, 0),
        "not before a failure"
    );
    assert!(call(&mut pool).await.is_err());
    assert_eq!(
        state(&pool, "a"),
        (EndpointState::Ejected, 1),
        "the 4th failure, at 2"
    );

    // A higher one: the run restarts at zero after the return, and needs 6 now.
    c.consecutive_failures = 6;
    pool.reconfigure(&c).unwrap();
    advance(c.base_ejection_time).await;
    assert_eq!(state(&pool, "a"), (EndpointState::Healthy, 1));
    for _ in 0..5 {
        assert!(call(&mut pool).await.is_err());
    }
    assert_eq!(state(&pool, "a"), (EndpointState::Healthy, 1));
    assert!(call(&mut pool).await.is_err());
    assert_eq!(state(&pool, "a"), (EndpointState::Ejected, 2));
    assert_eq!(rs[0].calls(), 10);
}

#[tokio::test(start_paused = true)]
async fn an_ejection_keeps_its_end_and_the_next_uses_the_new_base_and_max() {
    let rs = replicas(&["a", "b"]);
    rs[1].fail(true);
    let mut c = config();
    c.consecutive_failures = 1;
    c.max_ejected_fraction = 0.5;
    c.base_ejection_time = Duration::from_secs(10);
    c.max_ejection_time = Duration::from_secs(100);
    let mut pool = build(&c, &rs);
    let eject_b = |pool: &mut TestPool| {
        let mut pool = pool.clone();
        async move {
            while state(&pool, "b").0 == EndpointState::Healthy {
                let _ = call(&mut pool).await;
            }
        }
    };
    eject_b(&mut pool).await;
    assert_eq!(state(&pool, "b"), (EndpointState::Ejected, 1));

    c.base_ejection_time = Duration::from_secs(1);
    c.max_ejection_time = Duration::from_secs(3);
    pool.reconfigure(&c).unwrap();
    advance(ms(9_999)).await;
    assert_eq!(
        state(&pool, "b"),
        (EndpointState::Ejected, 1),
        "the ejection in progress keeps its 10 s"
    );
    advance(ms(1)).await;
    assert_eq!(state(&pool, "b"), (EndpointState::Healthy, 1));

    // The count stays: the 2nd ejection lasts 2 × 1 s, the 3rd and 4th the new max, 3 s.
    for (n, length) in [(2, 2_000), (3, 3_000), (4, 3_000)] {
        eject_b(&mut pool).await;
        assert_eq!(state(&pool, "b"), (EndpointState::Ejected, n));
        advance(ms(length - 1)).await;
        assert_eq!(state(&pool, "b").0, EndpointState::Ejected, "ejection {n}");
        advance(ms(1)).await;
        assert_eq!(state(&pool, "b").0, EndpointState::Healthy, "ejection {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_max_ejected_fraction_caps_the_next_ejections_and_ends_none() {
    let rs = replicas(&["a", "b", "c", "d"]);
    for r in &rs {
        r.fail(true);
    }
    let mut c = config();
    c.consecutive_failures = 1;
    c.max_ejected_fraction = 0.25;
    let mut pool = build(&c, &rs);
    for _ in 0..50 {
        let _ = call(&mut pool).await;
    }
    assert_eq!(ejected(&pool), 1, "⌊0.25 × 4⌋");

    c.max_ejected_fraction = 0.5;
    pool.reconfigure(&c).unwrap();
    for _ in 0..50 {
        let _ = call(&mut pool).await;
    }
    assert_eq!(ejected(&pool), 2, "⌊0.5 × 4⌋");

    c.max_ejected_fraction = 0.0;
    pool.reconfigure(&c).unwrap();
    assert_eq!(ejected(&pool), 2, "a lower cap ends no ejection");
    advance(c.base_ejection_time).await;
    assert_eq!(ejected(&pool), 0);
    for _ in 0..50 {
        let _ = call(&mut pool).await;
    }
    assert_eq!(ejected(&pool), 1, "at least one may always be ejected");
}

#[tokio::test(start_paused = true)]
async fn a_new_panic_threshold_reroutes_every_clone() {
    let rs = replicas(&["a", "b", "c", "d"]);
    rs[0].fail(true);
    rs[1].fail(true);
    let mut c = config();
    c.consecutive_failures = 1;
    c.max_ejected_fraction = 0.5;
    let mut pool = build(&c, &rs);
    let mut clone = pool.clone();
    while ejected(&pool) < 2 {
        let _ = call(&mut pool).await;
    }
    let bad_calls = |rs: &[Replica]| rs[0].calls() + rs[1].calls();
    let before = bad_calls(&rs);
    for _ in 0..100 {
        call(&mut pool).await.unwrap();
        call(&mut clone).await.unwrap();
    }
    assert_eq!(bad_calls(&rs), before, "no panic routing: c and d only");

    // 2 of 4 eligible is under 0.75: panic routing, for the clone made before the reload too.
    c.panic_threshold = 0.75;
    pool.reconfigure(&c).unwrap();
    for p in [&mut pool, &mut clone] {
        let before = bad_calls(&rs);
        for _ in 0..100 {
            let _ = call(p).await;
        }
        assert!(bad_calls(&rs) > before, "panic routing reaches a and b");
    }

    c.panic_threshold = 0.0;
    pool.reconfigure(&c).unwrap();
    let before = bad_calls(&rs);
    for _ in 0..100 {
        call(&mut pool).await.unwrap();
        call(&mut clone).await.unwrap();
    }
    assert_eq!(bad_calls(&rs), before, "panic routing off again");
    assert_eq!(ejected(&pool), 2, "the ejections stayed through it all");
}

#[tokio::test(start_paused = true)]
async fn a_new_failure_rate_threshold_judges_the_current_window() {
    let rs = replicas(&["a"]);
    let mut c = config();
    c.consecutive_failures = 100;
    c.failure_rate = Some(FailureRate::new(1.0, 4));
    let mut pool = build(&c, &rs);
    call(&mut pool).await.unwrap();
    rs[0].fail(true);
    for _ in 0..3 {
        assert!(call(&mut pool).await.is_err());
    }
    assert_eq!(
        state(&pool, "a"),
        (EndpointState::Healthy, 0),
        "3 of 4 is under 1.0"
    );

    c.failure_rate = Some(FailureRate::new(0.5, 4));
    pool.reconfigure(&c).unwrap();
    rs[0].fail(false);
    call(&mut pool).await.unwrap();
    assert_eq!(
        state(&pool, "a"),
        (EndpointState::Ejected, 1),
        "the window's next outcome, 3 of 4, is judged at 0.5"
    );
}

/// Lets the probe task and its probes run.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn new_health_thresholds_apply_to_the_streaks_counted_so_far() {
    let passing = Arc::new(Mutex::new(true));
    let probe = {
        let passing = passing.clone();
        move |key: &'static str| {
            let pass = key == "a" || *passing.lock().unwrap();
            async move { pass }
        }
    };
    let rs = replicas(&["a", "b"]);
    let mut c = config();
    c.unhealthy_threshold = 5;
    c.healthy_threshold = 5;
    let pool = c
        .to_builder()
        .unwrap()
        .health_check(Duration::from_secs(1), probe)
        .build(rs.iter().map(|r| (r.name, r.clone())))
        .unwrap();
    let round = || async {
        advance(Duration::from_secs(1)).await;
        settle().await;
    };
    round().await;
    *passing.lock().unwrap() = false;
    for _ in 0..2 {
        round().await;
    }
    assert_eq!(state(&pool, "b").0, EndpointState::Healthy, "2 of 5 failed");
    c.unhealthy_threshold = 3;
    pool.reconfigure(&c).unwrap();
    round().await;
    assert_eq!(
        state(&pool, "b").0,
        EndpointState::Unhealthy,
        "the 3rd, at 3"
    );

    *passing.lock().unwrap() = true;
    for _ in 0..2 {
        round().await;
    }
    assert_eq!(
        state(&pool, "b").0,
        EndpointState::Unhealthy,
        "2 of 5 passed"
    );
    c.healthy_threshold = 3;
    pool.reconfigure(&c).unwrap();
    round().await;
    assert_eq!(state(&pool, "b").0, EndpointState::Healthy, "the 3rd, at 3");
}

#[tokio::test(start_paused = true)]
async fn a_refused_config_names_its_field_and_changes_nothing() {
    let rs = replicas(&["a", "b"]);
    rs[1].fail(true);
    let mut c = config();
    c.consecutive_failures = 3;
    c.max_ejected_fraction = 0.5;
    c.failure_rate = Some(FailureRate::new(0.5, 10));
    let mut pool = build(&c, &rs);

    // Each would also lower `consecutive_failures` to 1, were it applied.
    let refused = |edit: &dyn Fn(&mut Config)| {
        let mut bad = c.clone();
        bad.consecutive_failures = 1;
        bad.panic_threshold = 1.0;
        edit(&mut bad);
        pool.reconfigure(&bad).unwrap_err().field()
    };
    assert_eq!(refused(&|b| b.name = "other".into()), "name");
    assert_eq!(refused(&|b| b.failure_rate = None), "failure_rate");
    assert_eq!(
        refused(&|b| b.failure_rate = Some(FailureRate::new(0.5, 11))),
        "failure_rate"
    );
    assert_eq!(
        refused(&|b| b.failure_rate = Some(FailureRate::new(1.5, 10))),
        "failure_rate"
    );
    assert_eq!(refused(&|b| b.healthy_threshold = 0), "healthy_threshold");
    assert_eq!(
        refused(&|b| b.max_ejection_time = Duration::from_millis(1)),
        "max_ejection_time"
    );
    assert!(
        pool.reconfigure(&c).is_ok(),
        "an unchanged config reloads without error"
    );

    // Still 3 failures in a row, and no panic routing: b takes calls until ejected, then none.
    let mut failures = 0;
    while state(&pool, "b").0 == EndpointState::Healthy {
        if call(&mut pool).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 3);
    let before = rs[1].calls();
    for _ in 0..50 {
        call(&mut pool).await.unwrap();
    }
    assert_eq!(rs[1].calls(), before, "panic_threshold unchanged");
}

/// A replica whose calls wait for a gate, so that they stay in flight.
#[derive(Clone)]
struct Gated(Arc<tokio::sync::Semaphore>);

impl Service<u32> for Gated {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, n: u32) -> Self::Future {
        let gate = self.0.clone();
        Box::pin(async move {
            if n % 2 == 0 {
                let _permit = gate.acquire().await?;
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloads_under_concurrent_calls_lose_no_in_flight_count() {
    const TASKS: u32 = 8;
    const CALLS: u32 = 200;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let pool: Pool<u32, Gated> = Config::default()
        .to_builder()
        .unwrap()
        .build((0..4).map(|k| (k, Gated(gate.clone()))))
        .unwrap();
    let in_flight =
        |pool: &Pool<u32, Gated>| -> usize { pool.endpoints().iter().map(|e| e.in_flight()).sum() };

    let stop = Arc::new(AtomicBool::new(false));
    let reloads = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let mut c = Config::default();
                c.panic_threshold = f64::from(n % 3) / 2.0;
                c.max_ejected_fraction = f64::from(n % 5) / 4.0;
                c.consecutive_failures = 1 + n % 7;
                pool.reconfigure(&c).unwrap();
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        })
    };
    // Every task sends its calls at once; the even ones wait at the gate, in flight.
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let mut pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut waiting = Vec::new();
            for n in 0..CALLS {
                let call = pool.ready().await.unwrap().call(n);
                if n % 2 == 0 {
                    waiting.push(tokio::spawn(call));
                } else {
                    call.await.unwrap();
                }
            }
            waiting
        }));
    }
    let mut waiting = Vec::new();
    for task in tasks {
        waiting.extend(task.await.unwrap());
    }
    let held = (TASKS * CALLS / 2) as usize;
    assert_eq!(in_flight(&pool), held, "every waiting call is counted");
    stop.store(true, Ordering::SeqCst);
    assert!(reloads.await.unwrap() > 0);

    gate.add_permits(held);
    for call in waiting {
        call.await.unwrap().unwrap();
    }
    assert_eq!(in_flight(&pool), 0, "every call gave its count back");
    assert!(
        pool.endpoints()
            .iter()
            .all(|e| e.state() == EndpointState::Healthy)
    );
}
