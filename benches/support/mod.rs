//! Shims shared by the benches: the thinnest tower adapters for what the peers lack.
//!
//! Each bench uses only some of them.
#![allow(dead_code)]

use std::future::Ready;
use std::task::{Context, Poll};

use tower::Service;

/// failsafe has no tower layer: this is the thinnest one possible (no boxing).
#[derive(Clone)]
pub(crate) struct FailsafeService<S, B> {
    inner: S,
    breaker: B,
}

impl<S, B> FailsafeService<S, B> {
    pub(crate) fn new(inner: S, breaker: B) -> Self {
        Self { inner, breaker }
    }
}

impl<S, B, Req> Service<Req> for FailsafeService<S, B>
where
    S: Service<Req>,
    B: failsafe::futures::CircuitBreaker,
{
    type Response = S::Response;
    type Error = failsafe::Error<S::Error>;
    type Future = failsafe::futures::ResponseFuture<
        S::Future,
        B::FailurePolicy,
        B::Instrument,
        failsafe::Any,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(failsafe::Error::Inner)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.breaker.call(self.inner.call(request))
    }
}

/// A policy for tower's `Retry` that never retries (it still clones each request, as a retry
/// policy must).
#[derive(Clone)]
pub(crate) struct NeverRetry;

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for NeverRetry {
    type Future = Ready<()>;

    fn retry(&mut self, _request: &mut Req, _result: &mut Result<Res, E>) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

/// A policy for tower's `Retry` with tower's own budget: what a tower user writes to get what
/// steadfast's retry does by default. Up to 3 attempts; a success deposits, a retry withdraws
/// (tower's `Budget` docs do the same).
#[derive(Clone)]
pub(crate) struct BudgetedRetry {
    budget: std::sync::Arc<tower::retry::budget::TpsBudget>,
    retries_left: u32,
}

impl BudgetedRetry {
    pub(crate) fn new() -> Self {
        Self {
            budget: std::sync::Arc::new(tower::retry::budget::TpsBudget::new(
                std::time::Duration::from_secs(10),
                10,
                0.2,
            )),
            retries_left: 2,
        }
    }
}

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for BudgetedRetry {
    type Future = Ready<()>;

    fn retry(&mut self, _request: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        use tower::retry::budget::Budget;
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.retries_left > 0 && self.budget.withdraw() => {
                self.retries_left -= 1;
                Some(std::future::ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

/// The backend of the per-layer benches: ready at once, answers at once, never fails.
pub(crate) fn bare()
-> impl Service<u64, Response = u64, Error = std::convert::Infallible, Future: Send>
+ Clone
+ Send
+ Sync {
    tower::service_fn(|x: u64| async move { Ok::<_, std::convert::Infallible>(x) })
}

/// Times `iters` calls (`ready` then `call`) on a current-thread runtime.
pub(crate) fn run<S>(
    rt: &tokio::runtime::Runtime,
    service: &mut S,
    iters: u64,
) -> std::time::Duration
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    use std::hint::black_box;
    use tower::ServiceExt;
    rt.block_on(async {
        let start = std::time::Instant::now();
        for i in 0..iters {
            let ready = service.ready().await.unwrap();
            black_box(ready.call(black_box(i)).await.unwrap());
        }
        start.elapsed()
    })
}

/// Wall time for `tasks` tasks spawned on `rt` (a multi-thread runtime), each running
/// `task()` to its end.
fn timed_tasks<F, T>(rt: &tokio::runtime::Runtime, tasks: u64, task: F) -> std::time::Duration
where
    F: Fn() -> T,
    T: std::future::Future<Output = ()> + Send + 'static,
{
    rt.block_on(async {
        let start = std::time::Instant::now();
        let handles: Vec<_> = (0..tasks).map(|_| tokio::spawn(task())).collect();
        for handle in handles {
            handle.await.unwrap();
        }
        start.elapsed()
    })
}

/// Times `iters` calls spread over `tasks` tasks on `rt` (a multi-thread runtime), each task
/// with its own clone of `service`: wall time for all of them.
pub(crate) fn run_contended<S>(
    rt: &tokio::runtime::Runtime,
    service: &S,
    tasks: u64,
    iters: u64,
) -> std::time::Duration
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    use std::hint::black_box;
    use tower::ServiceExt;
    timed_tasks(rt, tasks, || {
        let mut service = service.clone();
        async move {
            for i in 0..iters.div_ceil(tasks) {
                let ready = service.ready().await.unwrap();
                black_box(ready.call(black_box(i)).await.unwrap());
            }
        }
    })
}

/// As `run_contended`, but every call goes through a fresh clone (`oneshot`) of one parent that
/// all the tasks share and that is never called itself, as axum calls a route's service.
pub(crate) fn run_contended_clone_per_call<S>(
    rt: &tokio::runtime::Runtime,
    parent: &std::sync::Arc<S>,
    tasks: u64,
    iters: u64,
) -> std::time::Duration
where
    S: Service<u64, Response = u64> + Clone + Send + Sync + 'static,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    use tower::ServiceExt;
    timed_tasks(rt, tasks, || {
        let parent = std::sync::Arc::clone(parent);
        async move {
            for i in 0..iters.div_ceil(tasks) {
                let answer = (*parent).clone().oneshot(std::hint::black_box(i)).await;
                std::hint::black_box(answer.unwrap());
            }
        }
    })
}

/// One contender of an interleaved comparison: its name, and a function that times one block of
/// calls on the runtime.
pub(crate) type Contender<'a> = (
    &'static str,
    Box<dyn FnMut(&tokio::runtime::Runtime) -> f64 + 'a>,
);

/// A contender that times blocks of calls through `service`.
pub(crate) fn contender<'a, S>(name: &'static str, mut service: S) -> Contender<'a>
where
    S: Service<u64, Response = u64> + 'a,
    S::Error: std::fmt::Debug,
{
    (name, Box::new(move |rt| rt.block_on(block(&mut service))))
}

/// Nanoseconds per call over one block of calls.
async fn block<S>(service: &mut S) -> f64
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    use std::hint::black_box;
    use tower::ServiceExt;
    const BLOCK: u64 = 20_000;
    let start = std::time::Instant::now();
    for i in 0..BLOCK {
        let ready = service.ready().await.expect("ready");
        black_box(ready.call(black_box(i)).await.expect("ok"));
    }
    start.elapsed().as_nanos() as f64 / BLOCK as f64
}

/// Times every contender in alternating blocks (after one warm-up block each), so that the load
/// of a shared machine hits them alike, and prints each one's median and its overhead over the
/// first contender's, the bare service.
pub(crate) fn interleaved(rt: &tokio::runtime::Runtime, contenders: &mut [Contender<'_>]) {
    const ROUNDS: usize = 61;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    for (_, run) in contenders.iter_mut() {
        run(rt);
    }
    for _ in 0..ROUNDS {
        for (i, (_, run)) in contenders.iter_mut().enumerate() {
            times[i].push(run(rt));
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    let bare = medians[0];
    let width = contenders
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    println!("interleaved, median ns per call ({ROUNDS} rounds of 20 000 calls):");
    println!(
        "{:<width$} {:>9} {:>9} {:>8}",
        "case", "ns", "over bare", "× bare"
    );
    for ((name, _), median) in contenders.iter().zip(&medians) {
        println!(
            "{name:<width$} {median:>9.1} {:>9.1} {:>8.2}",
            median - bare,
            median / bare
        );
    }
}
