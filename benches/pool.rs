//! Pool overhead per call: `ready().await` + `call().await` over ready `service_fn`s: one
//! endpoint called directly, steadfast's `Pool` over 8 healthy endpoints, and tower's
//! `p2c::Balance` over the same 8 (with `PendingRequestsDiscover` over a `ServiceList`).
//!
//! Uncontended: one task on a current-thread runtime. Contended: 2 worker threads, 64 tasks,
//! each with its own clone of the pool or making a fresh clone of one shared parent per call
//! (tower's `Balance` is not `Clone`, and a `Buffer` in front of it would measure the buffer, so
//! it has no contended case). Throughput in calls/s.
//!
//! The contended group has a reference row: the bare endpoint behind one counter that every
//! call increments and decrements (two atomic read-modify-writes of one shared cache line, as
//! a pool that counts each endpoint's load in one word does), to show what that line costs
//! when two cores take turns writing it.
//!
//! `cargo bench --all-features --bench pool -- --warm-up-time 1 --measurement-time 2`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use steadfast::pool::Pool;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
use tower::{Service, ServiceExt};

mod support;
use support::{bare, run, run_contended, run_contended_clone_per_call};

const ENDPOINTS: usize = 8;
const TASKS: u64 = 64;
fn pool()
-> impl Service<u64, Response = u64, Error = steadfast::BoxError, Future: Send> + Clone + Send {
    Pool::builder()
        .build((0..ENDPOINTS).map(|i| (i, bare())))
        .unwrap()
}

/// The reference row: the bare endpoint behind one shared in-flight counter.
fn one_shared_counter()
-> impl Service<u64, Response = u64, Error = std::convert::Infallible, Future: Send> + Clone + Send
{
    let counter = Arc::new(AtomicU64::new(0));
    tower::service_fn(move |x: u64| {
        counter.fetch_add(1, Ordering::Relaxed);
        std::hint::black_box(counter.fetch_sub(1, Ordering::Relaxed));
        std::future::ready(Ok::<_, std::convert::Infallible>(x))
    })
}

fn uncontended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("pool/uncontended");
    group.throughput(Throughput::Elements(1));

    let mut service = bare();
    group.bench_function("one endpoint, direct", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    // The same, with the error boxed as the pool's (and tower's `Balance`'s) is.
    let mut service = bare().map_err(Into::<steadfast::BoxError>::into);
    group.bench_function("one endpoint, direct, error boxed", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = pool();
    group.bench_function("steadfast Pool, 8 endpoints", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = Balance::new(PendingRequestsDiscover::new(
        ServiceList::new((0..ENDPOINTS).map(|_| bare()).collect::<Vec<_>>()),
        CompleteOnResponse::default(),
    ));
    group.bench_function("tower p2c::Balance, 8 endpoints", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    group.finish();
}

fn contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("pool/contended");
    group.throughput(Throughput::Elements(1));

    let service = bare();
    group.bench_function("one endpoint, direct", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    let service = one_shared_counter();
    group.bench_function("one endpoint, one shared counter (reference)", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    let service = pool();
    group.bench_function("steadfast Pool, 8 endpoints", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    // Other shapes: a fresh clone of one parent per call (as axum calls a route's service,
    // which it never calls itself), and endpoints whose answer waits one turn of the scheduler,
    // so that calls are in flight while others are weighed.
    let parent = Arc::new(service);
    group.bench_function("steadfast Pool, 8 endpoints, a clone per call", |b| {
        b.iter_custom(|iters| run_contended_clone_per_call(&rt, &parent, TASKS, iters))
    });

    // The same, while the endpoints changed since the parent was made: the parent's own view
    // is out of date, and stays so, since it is never called.
    let stale = Pool::builder()
        .build((0..ENDPOINTS).map(|i| (i, bare())))
        .unwrap();
    let parent = Arc::new(stale.clone());
    stale.insert(ENDPOINTS, bare());
    stale.remove(&ENDPOINTS);
    group.bench_function(
        "steadfast Pool, 8 endpoints, a clone per call of a stale parent",
        |b| b.iter_custom(|iters| run_contended_clone_per_call(&rt, &parent, TASKS, iters)),
    );

    let parent = Arc::new(one_shared_counter());
    group.bench_function(
        "one endpoint, one shared counter (reference), a clone per call",
        |b| b.iter_custom(|iters| run_contended_clone_per_call(&rt, &parent, TASKS, iters)),
    );

    let service = yielding();
    group.bench_function("one endpoint that yields once, direct", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    let service = Pool::builder()
        .build((0..ENDPOINTS).map(|i| (i, yielding())))
        .unwrap();
    group.bench_function("steadfast Pool, 8 endpoints that yield once", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    group.finish();
}

/// An endpoint whose answer waits for one turn of the scheduler.
fn yielding()
-> impl Service<u64, Response = u64, Error = std::convert::Infallible, Future: Send> + Clone + Send
{
    tower::service_fn(|x: u64| async move {
        tokio::task::yield_now().await;
        Ok(x)
    })
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
