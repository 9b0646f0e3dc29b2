//! Reload under load: many tasks call a breaker over a bulkhead (or a keyed breaker) while
//! another reconfigures them, over and over. No permit and no probe slot is lost, the bulkhead
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

/// The same soak on paused time, on one thread: 32 tasks call a breaker over a bulkhead while
/// another task reloads both every 3 ms (of tokio's clock), through every window shape,
/// threshold and probe count, for 6 s. The backend fails for 400 ms in every 800 ms, so with
/// `wait_in_open` at its floor of 100 ms the breaker goes through every state many times, and
/// a call in three is cancelled part-way (its future dropped). Deterministic: the same
/// interleaving every run.
#[tokio::test(start_paused = true)]
async fn reloads_on_paused_time_visit_every_state_and_lose_nothing() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::time::Instant;

    const TASKS: usize = 32;
    const RUN: Duration = Duration::from_secs(6);

    let breaker_config = |i: usize| soak_breaker(i, "");
    let bulkhead_config = |i: usize| -> bulkhead::Config {
        toml(&format!(
            "max_concurrent_calls = {}\nmax_wait = \"2ms\"",
            LIMITS[i % 3]
        ))
        .unwrap()
    };
    let visited = Arc::new(Mutex::new(HashSet::new()));
    let breaker = {
        let visited = visited.clone();
        breaker_config(0)
            .to_builder()
            .on_transition(move |t| {
                visited.lock().unwrap().insert(t.to());
            })
            .build()
            .unwrap()
    };
    let bulkhead = BulkheadLayer::from_config(&bulkhead_config(0)).unwrap();

    let start = Instant::now();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let inner = {
        let (in_flight, most) = (in_flight.clone(), most.clone());
        service_fn(move |n: usize| {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            async move {
                /// Counts the call out even when its future is dropped.
                struct Out(Arc<AtomicUsize>);
                impl Drop for Out {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let _out = Out(in_flight);
                tokio::time::sleep(Duration::from_millis(1 + (n % 5) as u64)).await;
                let phase = start.elapsed().as_millis() / 400;
                if phase % 2 == 1 {
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

    let reloader = {
        let (breaker, bulkhead) = (breaker.clone(), bulkhead.clone());
        reload_every_3ms(start, RUN, move |i| {
            breaker.reconfigure(&breaker_config(i)).unwrap();
            bulkhead.reconfigure(&bulkhead_config(i / 2)).unwrap();
        })
    };
    let answered = call_until(service, TASKS, start, RUN).await;
    let reloads = reloader.await.expect("the reloader did not panic");

    assert!(reloads >= 1_900, "only {reloads} reloads");
    assert!(answered > 0);
    assert_every_state_visited(&visited);
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    assert!(most.load(Ordering::SeqCst) <= LIMITS[2]);
    // Every permit is back.
    assert_eq!(
        bulkhead.available_permits(),
        bulkhead.max_concurrent_calls()
    );
    // Every probe slot is back: none in flight, and a half-open breaker admits a probe.
    assert_eq!(breaker.snapshot().probes_in_flight(), 0);
    let mut probe = ServiceBuilder::new()
        .layer(breaker.clone())
        .service(service_fn(|n: usize| async move { Ok::<_, BoxError>(n) }));
    // Within a few open intervals a call goes through (it may first judge probes that a
    // lowered cap left in, or find a half-open overdue and open again).
    assert!(
        goes_through(&mut probe, 1).await,
        "the breaker is stuck: {:?}",
        breaker.snapshot()
    );
    assert_eq!(breaker.snapshot().probes_in_flight(), 0);
}

/// The keyed breaker's soak, smaller, on paused time: 24 tasks call 8 keys' breakers while
/// another task reloads every 3 ms through window shapes, thresholds, probe counts and caps
/// (4 keys or 16: a cap of 4 evicts as new keys come). The backend fails for 400 ms in every
/// 800 ms, and a call in three is cancelled part-way. At the end no key's breaker holds a probe
/// slot, and every key lets a call through within a few open intervals.
#[tokio::test(start_paused = true)]
async fn keyed_reloads_on_paused_time_lose_no_probe_slot() {
    use std::time::Duration;

    use tokio::time::Instant;
    use tower::Layer;

    const TASKS: usize = 24;
    const KEYS: usize = 8;
    const RUN: Duration = Duration::from_secs(4);

    let breaker_config =
        |i: usize| soak_breaker(i, &format!("max_keys = {}", [16, 4][(i / 7) % 2]));
    let visited = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let breakers = {
        let visited = visited.clone();
        breaker_config(0)
            .to_builder()
            .on_transition(move |t| {
                visited.lock().unwrap().insert(t.to());
            })
            .build_keyed(|n: &usize| n % KEYS)
            .unwrap()
    };

    let start = Instant::now();
    let inner = service_fn(move |n: usize| async move {
        tokio::time::sleep(Duration::from_millis(1 + (n % 5) as u64)).await;
        if (start.elapsed().as_millis() / 400) % 2 == 1 {
            Err::<usize, BoxError>("down".into())
        } else {
            Ok(n)
        }
    });
    let service = breakers.layer(inner);

    let reloader = {
        let breakers = breakers.clone();
        reload_every_3ms(start, RUN, move |i| {
            breakers.reconfigure(&breaker_config(i)).unwrap();
        })
    };
    let answered = call_until(service, TASKS, start, RUN).await;
    let reloads = reloader.await.expect("the reloader did not panic");
    assert!(reloads >= 1_200, "only {reloads} reloads");
    assert!(answered > 0);
    assert_every_state_visited(&visited);

    // The last reload's cap holds: at most 16 keys (all 8), or 4.
    assert!(breakers.len() <= KEYS);
    for (key, snapshot) in breakers.snapshots() {
        assert_eq!(snapshot.probes_in_flight(), 0, "key {key}");
    }
    // Every key lets a call through within a few open intervals.
    let mut probe = breakers.layer(service_fn(|n: usize| async move { Ok::<_, BoxError>(n) }));
    for key in 0..KEYS {
        assert!(
            goes_through(&mut probe, key).await,
            "key {key} is stuck: {:?}",
            breakers.snapshot(&key)
        );
        assert_eq!(breakers.snapshot(&key).unwrap().probes_in_flight(), 0);
    }
}

/// The paused-time soaks' breaker at reload `i`: thresholds and probe counts in turn, a new
/// window every five reloads (each kind in turn), and the TOML lines of `extra`.
fn soak_breaker(i: usize, extra: &str) -> circuit_breaker::Config {
    use std::time::Duration;

    use steadfast::circuit_breaker::SlidingWindow;

    let mut config: circuit_breaker::Config = toml(&format!(
        "minimum_calls = 5\nwait_in_open = \"100ms\"\nmax_wait_in_half_open = \"1s\"\n\
         failure_rate_threshold = {}\nhalf_open_calls = {}\n{extra}",
        [0.3, 0.6, 0.9][i % 3],
        [1, 3, 5][i % 3],
    ))
    .unwrap();
    config.sliding_window = [
        SlidingWindow::Count(20),
        SlidingWindow::Count(7),
        SlidingWindow::Time(Duration::from_secs(1)),
    ][(i / 5) % 3];
    config.bucket_width = Duration::from_millis(100);
    config
}

/// `tasks` tasks, each calling a fresh clone of `service` until `run` has passed since `start`:
/// every third call is cancelled after 2 ms, and a failed or refused one paces its task by
/// 1 ms. The calls answered.
async fn call_until<S>(
    service: S,
    tasks: usize,
    start: tokio::time::Instant,
    run: std::time::Duration,
) -> usize
where
    S: Service<usize> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    use std::time::Duration;

    let callers: Vec<_> = (0..tasks)
        .map(|task| {
            let service = service.clone();
            tokio::spawn(async move {
                let (mut answered, mut call) = (0, 0);
                while start.elapsed() < run {
                    call += 1;
                    let mut service = service.clone();
                    let ready = service.ready().await.expect("poll_ready never fails");
                    let future = ready.call(task * 1_000_000 + call);
                    if call % 3 == 0 {
                        // Cancelled part-way: the call's future is dropped after 2 ms.
                        let _ = tokio::time::timeout(Duration::from_millis(2), future).await;
                    } else if future.await.is_ok() {
                        answered += 1;
                    } else {
                        tokio::time::sleep(Duration::from_millis(1)).await;
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
    answered
}

/// Whether a call of `request` gets through `service` within five tries 200 ms apart: a few
/// open intervals of the soaks' breakers.
async fn goes_through<S>(service: &mut S, request: usize) -> bool
where
    S: Service<usize>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..5 {
        if service.ready().await.unwrap().call(request).await.is_ok() {
            return true;
        }
        tokio::time::advance(std::time::Duration::from_millis(200)).await;
    }
    false
}

/// Reload number `i` by `reload(i)`, every 3 ms until `run` has passed since `start`: the
/// paused-time soaks' reloader. Its task answers how many reloads it made.
fn reload_every_3ms(
    start: tokio::time::Instant,
    run: std::time::Duration,
    mut reload: impl FnMut(usize) + Send + 'static,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut i = 0;
        while start.elapsed() < run {
            reload(i);
            i += 1;
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        i
    })
}

/// The soaks' transition listeners saw the breaker (or some key's) open, half-open and closed.
fn assert_every_state_visited(visited: &std::sync::Mutex<std::collections::HashSet<State>>) {
    let visited = visited.lock().unwrap();
    for state in [State::Open, State::HalfOpen, State::Closed] {
        assert!(visited.contains(&state), "never {state:?}: {visited:?}");
    }
}
