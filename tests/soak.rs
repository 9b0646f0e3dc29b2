//! Chaos soak: tens of thousands of calls through the full stack (fallback, retry with a budget,
//! overall timeout, breaker, bulkhead, attempt timeout, chaos) with injected errors, latency and
//! outages, futures dropped at random points and the breaker switched by hand, then checks that
//! nothing leaked and every bound held.
//!
//! Two runs, both seeded:
//!
//! - **Paused time**, on a current-thread runtime with 64 spawned client tasks: exact and
//!   reproducible (a count-window breaker, run twice for the same counts; and a time-window
//!   breaker with slow-call detection). Checks every bulkhead permit back, no probe slot
//!   held, the breaker closing within one `wait_in_open` plus its probes once the backend is
//!   healthy, and retries within the budget's formula in every window.
//! - **Two worker threads**, with no timer ever awaited by the test itself: injected latency is
//!   zero, outages and breaker switches are toggled by call count, and futures are dropped after
//!   a random number of polls. Checks the same leaks, the budget over the whole run, and that a
//!   reset breaker serves a healthy backend again.
//!
//! No wall-clock assertion anywhere; the only real-time effect is the retry's zero-length
//! backoff in the threaded run, which completes on the timer's next tick.

#![cfg(feature = "chaos")]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use steadfast::BoxError;
use steadfast::bulkhead::{BulkheadFull, BulkheadLayer};
use steadfast::chaos::{ChaosLayer, InjectedFault};
use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow, State};
use steadfast::fallback::FallbackLayer;
use steadfast::retry::{Backoff, Jitter, RetryBudget, RetryLayer};
use steadfast::timeout::{Elapsed, TimeoutLayer};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// What the fallback answers with: a call that failed, once every layer had its say.
const FALLBACK: u64 = u64::MAX;

/// A small seeded generator (SplitMix64), so the soak needs no extra dependency.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, n)`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One request. Retry clones it for each attempt; the clones share `attempts`, so the layer
/// right under retry can tell a first attempt from a retry.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    attempts: Arc<AtomicU32>,
    /// How many times the backend yields before it answers: points where a future can be
    /// dropped mid-call without any timer.
    yields: u8,
}

impl Job {
    pub(crate) fn new(yields: u8) -> Self {
        Self {
            attempts: Arc::new(AtomicU32::new(0)),
            yields,
        }
    }
}

/// Everything the soak observed.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// When each request entered the retry layer (each deposits into the budget).
    requests: Mutex<Vec<Instant>>,
    /// When each retry was sent to the layers under retry.
    retries_sent: Mutex<Vec<Instant>>,
    /// When each retry was scheduled (the `on_retry` hook: the budget was drawn on).
    retries_scheduled: Mutex<Vec<Instant>>,
    ok: AtomicU64,
    cancelled: AtomicU64,
    open: AtomicU64,
    full: AtomicU64,
    elapsed: AtomicU64,
    injected: AtomicU64,
    other: AtomicU64,
}

/// The counts of a run, to compare two runs and to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    requests: usize,
    retries_sent: usize,
    retries_scheduled: usize,
    ok: u64,
    cancelled: u64,
    open: u64,
    full: u64,
    elapsed: u64,
    injected: u64,
    other: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Log {
    fn record(&self, times: &Mutex<Vec<Instant>>) {
        lock(times).push(Instant::now());
    }

    /// Sorts what was recorded by time (threads may have pushed out of order).
    fn times(&self, times: &Mutex<Vec<Instant>>) -> Vec<Instant> {
        let mut times = lock(times).clone();
        times.sort();
        times
    }

    /// Counts the error that reached the fallback by its type.
    fn failed(&self, err: &BoxError) {
        let counter = if err.is::<CircuitOpen>() {
            &self.open
        } else if err.is::<BulkheadFull>() {
            &self.full
        } else if err.is::<Elapsed>() {
            &self.elapsed
        } else if err.is::<InjectedFault>() {
            &self.injected
        } else {
            eprintln!("unexpected error: {err:?}");
            &self.other
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn outcome(&self, result: Option<Result<u64, BoxError>>) {
        match result {
            None => self.cancelled.fetch_add(1, Ordering::Relaxed),
            Some(Ok(FALLBACK)) => 0, // counted by the fallback
            Some(Ok(_)) => self.ok.fetch_add(1, Ordering::Relaxed),
            Some(Err(err)) => {
                eprintln!("an error escaped the fallback: {err:?}");
                self.other.fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    fn summary(&self) -> Summary {
        Summary {
            requests: lock(&self.requests).len(),
            retries_sent: lock(&self.retries_sent).len(),
            retries_scheduled: lock(&self.retries_scheduled).len(),
            ok: self.ok.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            full: self.full.load(Ordering::Relaxed),
            elapsed: self.elapsed.load(Ordering::Relaxed),
            injected: self.injected.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
        }
    }
}

impl Summary {
    fn failures(&self) -> u64 {
        self.open + self.full + self.elapsed + self.injected + self.other
    }
}

/// The retry settings of a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetrySettings {
    max_attempts: u32,
    backoff: Backoff,
    budget: RetryBudget,
    seed: u64,
}

/// The backend: answers after yielding `job.yields` times.
fn backend() -> impl Service<Job, Response = u64, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(|job: Job| async move {
        for _ in 0..job.yields {
            tokio::task::yield_now().await;
        }
        Ok::<_, BoxError>(1)
    })
}

/// The full stack in the documented order, with taps that record requests and retries.
fn stack(
    log: &Arc<Log>,
    retry: RetrySettings,
    overall: Duration,
    attempt: Duration,
    breaker: &CircuitBreakerLayer,
    bulkhead: &BulkheadLayer,
    chaos: &ChaosLayer,
) -> impl Service<Job, Response = u64, Error = BoxError, Future: Send + 'static> + Clone + Send + 'static
{
    let on_fallback = Arc::clone(log);
    let on_request = Arc::clone(log);
    let on_attempt = Arc::clone(log);
    let on_retry = Arc::clone(log);
    let retry = RetryLayer::builder()
        .max_attempts(retry.max_attempts)
        .backoff(retry.backoff)
        .budget(retry.budget)
        .seed(retry.seed)
        .on_retry(
            move |_attempt: u32, _delay: Duration, _cause: &Result<u64, BoxError>| {
                on_retry.record(&on_retry.retries_scheduled);
            },
        )
        .build()
        .unwrap();
    ServiceBuilder::new()
        .layer(FallbackLayer::new(move |err: BoxError| {
            on_fallback.failed(&err);
            Ok(FALLBACK)
        }))
        .map_request(move |job: Job| {
            on_request.record(&on_request.requests);
            job
        })
        .layer(retry)
        .map_request(move |job: Job| {
            if job.attempts.fetch_add(1, Ordering::Relaxed) > 0 {
                on_attempt.record(&on_attempt.retries_sent);
            }
            job
        })
        .layer(TimeoutLayer::new(overall))
        .layer(breaker.clone())
        .layer(bulkhead.clone())
        .layer(TimeoutLayer::new(attempt))
        .layer(chaos.clone())
        .service(backend())
}

/// Polls `future` until it is ready or has been pending `polls` times, then gives up: the
/// future is dropped wherever it was.
async fn poll_at_most<F: Future>(future: F, polls: u32) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut pending = 0;
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => {
            pending += 1;
            if pending >= polls {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        }
    })
    .await
}

/// Checks the budget's bound in every window, by the time each retry drew on the budget.
///
/// The budget (`RetryBudget::new(ratio, min_per_sec, ttl)`) is a ring of 10 slots of
/// `ttl / 10`; a withdrawal expires when its slot leaves the ring, between `0.9 × ttl` and `ttl`
/// after it was made. So in any window of `0.9 × ttl` every withdrawal is still in the ring
/// when the window's last one, at `w`, is made, and at that moment the balance (the floor
/// `min_per_sec × ttl`, plus the deposits credited to the ring, less the withdrawals in it) was
/// at least one retry: the window holds at most `min_per_sec × ttl + ratio × deposits`.
///
/// The ring at `w` began after `w − ttl`. Deposits are credited when the budget is next folded
/// (at every attempted withdrawal, among others), so those in the ring come from requests made
/// since the last fold before `w − ttl`: at the latest scheduled retry before it, or later.
/// That is the slack of this check: requests up to `ttl` (plus the gap between two folds)
/// before the window count, as the budget's own window reaches that far back.
///
/// Retries are recorded when sent, which is after they drew on the budget by at most `lag`
/// (the backoff's cap plus the bulkhead's `max_wait`): the retries sent in
/// `[a, a + 0.9 × ttl − lag)` drew on the budget within `[a − lag, a + 0.9 × ttl − lag)`, and
/// the last of them at `w ≥ (its send time) − lag`.
fn check_budget_windows(
    log: &Log,
    ratio: f64,
    min_per_sec: u32,
    ttl: Duration,
    lag: Duration,
) -> usize {
    let requests = log.times(&log.requests);
    let sent = log.times(&log.retries_sent);
    let scheduled = log.times(&log.retries_scheduled);
    let span = ttl * 9 / 10 - lag;
    let floor = f64::from(min_per_sec) * ttl.as_secs_f64();
    let mut worst = 0;
    for (first, &start) in sent.iter().enumerate() {
        let in_window = sent[first..].iter().take_while(|&&t| t < start + span);
        let (retries, last) = in_window.fold((0, start), |(n, _), &t| (n + 1, t));
        let ring_began = last.checked_sub(lag + ttl);
        // The latest scheduled retry before the ring began (all three lists are sorted).
        let since = ring_began.and_then(|ring| {
            let before = scheduled.partition_point(|&t| t < ring);
            before.checked_sub(1).map(|i| scheduled[i])
        });
        let from = since.map_or(0, |since| requests.partition_point(|&t| t < since));
        let to = requests.partition_point(|&t| t <= last);
        let deposits = to - from;
        let bound = floor + ratio * deposits as f64;
        assert!(
            retries as f64 <= bound,
            "{retries} retries sent in [{start:?}, +{span:?}) exceed {floor} + {ratio} × \
             {deposits} requests"
        );
        worst = worst.max(retries);
    }
    worst
}

/// The paused-time soak: returns its summary, after checking every invariant.
/// The breaker's window in a paused run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Window {
    /// `Count(50)`, no slow-call timing: the fast path.
    Count,
    /// `Time(10 s)` in 1 s buckets, with calls over 400 ms counted as slow (rate threshold 0.5).
    TimeWithSlowCalls,
}

async fn paused_soak(seed: u64, window: Window) -> Summary {
    const TASKS: u64 = 64;
    const CALLS_PER_TASK: u64 = 400;
    const WAIT_IN_OPEN: Duration = Duration::from_secs(5);
    const HALF_OPEN_CALLS: u32 = 3;
    const PERMITS: usize = 32;
    const MAX_WAIT: Duration = Duration::from_millis(50);
    const MAX_DELAY: Duration = Duration::from_millis(200);
    const RATIO: f64 = 0.2;
    const MIN_PER_SEC: u32 = 5;
    const TTL: Duration = Duration::from_secs(10);

    let log = Arc::new(Log::default());
    let breaker = CircuitBreakerLayer::builder()
        .name("soak")
        .minimum_calls(20)
        .failure_rate_threshold(0.5)
        .wait_in_open(WAIT_IN_OPEN)
        .half_open_calls(HALF_OPEN_CALLS);
    let breaker = match window {
        Window::Count => breaker.sliding_window(SlidingWindow::Count(50)),
        Window::TimeWithSlowCalls => breaker
            .sliding_window(SlidingWindow::Time(Duration::from_secs(10)))
            .bucket_width(Duration::from_secs(1))
            .slow_call_duration(Duration::from_millis(400))
            .slow_call_rate_threshold(0.5),
    };
    let breaker = breaker.build().unwrap();
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(PERMITS)
        .max_wait(MAX_WAIT)
        .build()
        .unwrap();
    let chaos = ChaosLayer::builder()
        .error_rate(0.15)
        .latency_range(0.3, Duration::from_millis(1), Duration::from_millis(800))
        .seed(seed)
        .build()
        .unwrap();
    let retry = RetrySettings {
        max_attempts: 3,
        backoff: Backoff::exponential(Duration::from_millis(20))
            .jitter(Jitter::Full)
            .max_delay(MAX_DELAY),
        budget: RetryBudget::new(RATIO, MIN_PER_SEC, TTL),
        seed,
    };
    let service = stack(
        &log,
        retry,
        Duration::from_secs(2),
        Duration::from_millis(500),
        &breaker,
        &bulkhead,
        &chaos,
    );

    // The operator: switches the breaker and the backend by hand, at fixed times.
    let operator = {
        let breaker = breaker.clone();
        let handle = chaos.handle();
        tokio::spawn(async move {
            let at =
                |secs: u64| tokio::time::sleep_until(Instant::now() + Duration::from_secs(secs));
            at(10).await;
            breaker.force_open();
            at(3).await;
            breaker.reset();
            at(7).await;
            breaker.disable();
            at(3).await;
            breaker.reset();
            at(7).await;
            handle.start_outage();
            at(6).await;
            handle.stop_outage();
            at(6).await;
            breaker.force_open();
            at(1).await;
            breaker.reset();
        })
    };

    let mut clients = Vec::new();
    for task in 0..TASKS {
        let mut service = service.clone();
        let log = Arc::clone(&log);
        let mut rng = Rng::new(seed ^ (task + 1).wrapping_mul(0xA24B_AED4_963E_E407));
        clients.push(tokio::spawn(async move {
            // Staggered starts: a burst of 64 calls at once would open the breaker on the
            // failures alone, which finish first.
            tokio::time::sleep(Duration::from_millis(rng.below(2_000))).await;
            for _ in 0..CALLS_PER_TASK {
                let job = Job::new(rng.below(3) as u8);
                let call = async { service.ready().await?.call(job).await };
                let result = match rng.below(100) {
                    // Dropped after a random time: mid-backoff, mid-wait, mid-call.
                    0..=7 => {
                        let limit = Duration::from_millis(rng.below(1_000));
                        tokio::time::timeout(limit, call).await.ok()
                    }
                    // Dropped after a random number of polls.
                    8..=11 => poll_at_most(call, 1 + rng.below(4) as u32).await,
                    _ => Some(call.await),
                };
                log.outcome(result);
                tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
            }
        }));
    }
    for client in clients {
        client.await.expect("no client panicked");
    }
    operator.await.expect("the operator did not panic");

    let summary = log.summary();
    println!(
        "paused soak, seed {seed}: {summary:?}, breaker {:?}",
        breaker.snapshot()
    );

    // Every call is accounted for, and no error was of an unexpected type.
    assert_eq!(
        summary.ok + summary.cancelled + summary.failures(),
        TASKS * CALLS_PER_TASK
    );
    assert_eq!(summary.other, 0);
    // A call dropped while its service was getting ready never reached retry.
    assert!(summary.requests as u64 <= TASKS * CALLS_PER_TASK);
    assert!(summary.requests as u64 >= TASKS * CALLS_PER_TASK - summary.cancelled);
    // The soak did what it says: faults of every kind, retries, rejections, cancellations.
    assert!(summary.retries_sent > 0 && summary.injected > 0 && summary.elapsed > 0);
    assert!(summary.open > 0 && summary.full > 0 && summary.cancelled > 0);
    assert!(summary.retries_sent <= summary.retries_scheduled);

    // Nothing leaked: every permit back, no probe slot held.
    assert_eq!(bulkhead.available_permits(), PERMITS);
    assert_eq!(breaker.snapshot().probes_in_flight(), 0);

    // Retries within the budget's formula in every window.
    let worst = check_budget_windows(&log, RATIO, MIN_PER_SEC, TTL, MAX_DELAY + MAX_WAIT);
    println!("most retries sent in one window: {worst}");

    // Take the backend down until the breaker opens, then heal it: the breaker closes within
    // one wait_in_open plus its probes.
    // (A time window forgets the soak's calls after 10 s; a count window is refilled below.)
    tokio::time::advance(Duration::from_secs(11)).await;
    let handle = chaos.handle();
    handle.start_outage();
    let mut probe = ServiceBuilder::new()
        .layer(breaker.clone())
        .layer(bulkhead.clone())
        .layer(chaos.clone())
        .service(backend());
    for _ in 0..100 {
        if breaker.state() == State::Open {
            break;
        }
        let _ = probe.ready().await.unwrap().call(Job::new(0)).await;
    }
    assert_eq!(breaker.state(), State::Open);
    handle.stop_outage();
    handle.disable();
    let healthy = Instant::now();
    let mut probes = 0;
    for _ in 0..HALF_OPEN_CALLS + 2 {
        if breaker.state() == State::Closed {
            break;
        }
        match probe.ready().await.unwrap().call(Job::new(0)).await {
            Ok(_) => probes += 1,
            Err(err) => {
                let open = err.downcast_ref::<CircuitOpen>().expect("only rejections");
                assert!(open.retry_after() <= WAIT_IN_OPEN);
                assert!(open.retry_after() > Duration::ZERO);
                tokio::time::advance(open.retry_after()).await;
            }
        }
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(probes, HALF_OPEN_CALLS);
    assert!(healthy.elapsed() <= WAIT_IN_OPEN);
    assert_eq!(bulkhead.available_permits(), PERMITS);
    summary
}

/// The seed of a run: `STEADFAST_SOAK_SEED` (decimal) if set, to explore or reproduce another
/// run, else `default`.
fn seed_from_env(default: u64) -> u64 {
    std::env::var("STEADFAST_SOAK_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(default)
}

#[test]
fn soak_on_paused_time_is_leak_free_bounded_and_reproducible() {
    let seed = seed_from_env(0x5EED);
    let first = paused_runtime().block_on(paused_soak(seed, Window::Count));
    let second = paused_runtime().block_on(paused_soak(seed, Window::Count));
    assert_eq!(first, second, "the same seed gives the same run");
}

#[test]
fn soak_on_paused_time_with_a_time_window_and_slow_calls() {
    let seed = seed_from_env(0x5EED) ^ 0x71;
    paused_runtime().block_on(paused_soak(seed, Window::TimeWithSlowCalls));
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn soak_on_two_worker_threads_is_leak_free_and_bounded() {
    const TASKS: u64 = 32;
    const CALLS_PER_TASK: u64 = 700;
    const PERMITS: usize = 16;
    // Low enough that the budget, not the breaker, is what stops retries.
    const RATIO: f64 = 0.02;
    const MIN_PER_SEC: u32 = 1;
    const TTL: Duration = Duration::from_secs(60);
    let seed = seed_from_env(0xC0FFEE);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let log = Arc::new(Log::default());
        let breaker = CircuitBreakerLayer::builder()
            .name("soak-threads")
            .sliding_window(SlidingWindow::Count(50))
            .minimum_calls(20)
            // Short, so that the run sees half-open and closing again (real time passes only
            // as fast as the calls go; nothing waits for it).
            .wait_in_open(Duration::from_millis(100))
            .half_open_calls(3)
            .build()
            .unwrap();
        let bulkhead = BulkheadLayer::builder()
            .max_concurrent_calls(PERMITS)
            .build()
            .unwrap();
        let chaos = ChaosLayer::builder()
            .error_rate(0.1)
            .seed(seed)
            .build()
            .unwrap();
        let retry = RetrySettings {
            max_attempts: 3,
            backoff: Backoff::constant(Duration::ZERO).jitter(Jitter::None),
            budget: RetryBudget::new(RATIO, MIN_PER_SEC, TTL),
            seed,
        };
        let service = stack(
            &log,
            retry,
            Duration::from_secs(60),
            Duration::from_secs(30),
            &breaker,
            &bulkhead,
            &chaos,
        );
        let started = Instant::now();
        let calls = Arc::new(AtomicU64::new(0));

        let mut clients = Vec::new();
        for task in 0..TASKS {
            let mut service = service.clone();
            let log = Arc::clone(&log);
            let calls = Arc::clone(&calls);
            let breaker = breaker.clone();
            let handle = chaos.handle();
            let mut rng = Rng::new(seed ^ (task + 1).wrapping_mul(0xA24B_AED4_963E_E407));
            clients.push(tokio::spawn(async move {
                for _ in 0..CALLS_PER_TASK {
                    // Manual switches by call count: each count is seen by one task.
                    match calls.fetch_add(1, Ordering::Relaxed) % 5_000 {
                        1_000 => breaker.force_open(),
                        1_300 => breaker.reset(),
                        2_000 => handle.start_outage(),
                        2_600 => handle.stop_outage(),
                        3_500 => breaker.disable(),
                        3_800 => breaker.reset(),
                        _ => {}
                    }
                    let job = Job::new(rng.below(3) as u8);
                    let call = async { service.ready().await?.call(job).await };
                    let result = if rng.below(100) < 10 {
                        poll_at_most(call, 1 + rng.below(4) as u32).await
                    } else {
                        Some(call.await)
                    };
                    log.outcome(result);
                    if rng.below(4) == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for client in clients {
            client.await.expect("no client panicked");
        }
        let ran_for = started.elapsed();

        let summary = log.summary();
        println!(
            "threaded soak: {summary:?}, breaker {:?}, chaos {:?}",
            breaker.snapshot(),
            chaos.handle().counts()
        );
        assert_eq!(
            summary.ok + summary.cancelled + summary.failures(),
            TASKS * CALLS_PER_TASK
        );
        assert_eq!(summary.other, 0);
        assert!(summary.retries_sent > 0 && summary.injected > 0 && summary.open > 0);
        assert!(summary.retries_sent <= summary.retries_scheduled);

        // Nothing leaked.
        assert_eq!(bulkhead.available_permits(), PERMITS);
        assert_eq!(breaker.snapshot().probes_in_flight(), 0);

        // The budget over the whole run: with a ttl of 60 s nothing expires within 54 s (a
        // withdrawal expires between 0.9 × ttl and ttl after it was made), so every retry sent
        // was paid from the floor or from a deposit.
        let bound = f64::from(MIN_PER_SEC) * TTL.as_secs_f64() + RATIO * summary.requests as f64;
        if ran_for < TTL * 9 / 10 {
            assert!(
                summary.retries_sent as f64 <= bound,
                "{} retries exceed {bound}",
                summary.retries_sent
            );
        } else {
            println!("ran for {ran_for:?}: the whole-run budget check does not apply");
        }

        // The breaker is in an automatic state; an open one knows when it may close.
        let state = breaker.state();
        assert!(
            matches!(state, State::Closed | State::Open | State::HalfOpen),
            "{state:?}"
        );
        // Healthy again: a reset breaker serves every call.
        let handle = chaos.handle();
        handle.stop_outage();
        handle.disable();
        breaker.reset();
        let mut service = service.clone();
        for _ in 0..100 {
            let answer = service.ready().await.unwrap().call(Job::new(1)).await;
            assert_eq!(answer.unwrap(), 1);
        }
        assert_eq!(breaker.state(), State::Closed);
        assert_eq!(bulkhead.available_permits(), PERMITS);
    });
}
