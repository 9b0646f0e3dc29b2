//! Reload under load: many tasks call a breaker over a bulkhead on a multi-thread runtime while
//! another reconfigures both, over and over. No permit and no probe slot is lost, the bulkhead
//! never admits more calls than its largest limit, and nothing panics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use steadfast::BoxError;
use steadfast::bulkhead::{self, BulkheadLayer};
use steadfast::circuit_breaker::{self, CircuitBreakerLayer, State};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

use crate::files::toml;

const TASKS: usize = 8;
const CALLS_PER_TASK: usize = 2_000;
const LIMITS: [usize; 3] = [1, 4, 16];
/// The callers keep calling until the reloader has done at least this many reloads.
const RELOADS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_concurrent_calls_lose_no_permit_and_no_probe_slot() {
    let breaker_config = |i: usize| -> circuit_breaker::Config {
        toml(&format!(
            "sliding_window = {{ count = 20 }}\nminimum_calls = 5\nwait_in_open = \"100ms\"\n\
             failure_rate_threshold = {}\nhalf_open_calls = {}",
            [0.3, 0.6, 0.9][i % 3],
            [1, 3, 5][i % 3],
        ))
        .unwrap()
    };
    let bulkhead_config = |i: usize| -> bulkhead::Config {
        toml(&format!("max_concurrent_calls = {}", LIMITS[i % 3])).unwrap()
    };
    let breaker = CircuitBreakerLayer::from_config(&breaker_config(0)).unwrap();
    let bulkhead = BulkheadLayer::from_config(&bulkhead_config(0)).unwrap();

    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let inner = {
        let (in_flight, most) = (in_flight.clone(), most.clone());
        service_fn(move |n: usize| {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                // One call in four fails, so the breaker opens, probes and closes throughout.
                if n % 4 == 0 {
                    Err::<usize, BoxError>("down".into())
                } else {
                    Ok(n)
                }
            }
        })
    };
    let service = ServiceBuilder::new()
        .layer(breaker.clone())
        .layer(bulkhead.clone())
        .service(inner);

    let done = Arc::new(AtomicBool::new(false));
    // `reconfigure` is synchronous: a thread of its own reloads as fast as it can, truly in
    // parallel with the calls on the runtime's two workers.
    let breakers: Vec<_> = (0..3).map(breaker_config).collect();
    let bulkheads: Vec<_> = (0..3).map(bulkhead_config).collect();
    let reloads = Arc::new(AtomicUsize::new(0));
    let reloader = {
        let (breaker, bulkhead, done) = (breaker.clone(), bulkhead.clone(), done.clone());
        let reloads = reloads.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !done.load(Ordering::SeqCst) {
                breaker.reconfigure(&breakers[i % 3]).unwrap();
                bulkhead.reconfigure(&bulkheads[(i / 2) % 3]).unwrap();
                i += 1;
                reloads.store(i, Ordering::SeqCst);
            }
            i
        })
    };
    let callers: Vec<_> = (0..TASKS)
        .map(|task| {
            let service = service.clone();
            let reloads = reloads.clone();
            tokio::spawn(async move {
                let mut answered = 0;
                let mut call = 0;
                while call < CALLS_PER_TASK || reloads.load(Ordering::SeqCst) < RELOADS {
                    call += 1;
                    let mut service = service.clone();
                    let ready = service.ready().await.expect("poll_ready never fails");
                    if ready.call(task * CALLS_PER_TASK + call).await.is_ok() {
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    let mut answered = 0;
    for caller in callers {
        answered += caller.await.expect("no caller panicked");
    }
    done.store(true, Ordering::SeqCst);
    let reloads = reloader.join().expect("the reloader did not panic");

    assert!(reloads >= RELOADS, "only {reloads} reloads");
    assert!(answered > 0);
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    assert!(
        most.load(Ordering::SeqCst) <= LIMITS[2],
        "{} calls in flight at once",
        most.load(Ordering::SeqCst)
    );
    // Every permit is back: the bulkhead holds exactly its last limit.
    assert_eq!(
        bulkhead.available_permits(),
        bulkhead.max_concurrent_calls()
    );
    for (i, limit) in LIMITS.into_iter().enumerate() {
        bulkhead.reconfigure(&bulkhead_config(i)).unwrap();
        assert_eq!(bulkhead.available_permits(), limit);
    }
    // Every probe slot is back: no probe is in flight, and a half-open breaker admits one.
    assert_eq!(breaker.snapshot().probes_in_flight(), 0);
    breaker.reconfigure(&breaker_config(0)).unwrap();
    let mut probe = ServiceBuilder::new()
        .layer(breaker.clone())
        .service(service_fn(|n: usize| async move { Ok::<_, BoxError>(n) }));
    if matches!(breaker.state(), State::Closed | State::HalfOpen) {
        // Closed lets it through; half-open with no probe in flight has a free slot.
        assert_eq!(probe.ready().await.unwrap().call(1).await.unwrap(), 1);
    }
}
