//! The global (Redis-backed) rate limit's call-path cost against the local limiter and the
//! bare service, and its Redis round trips per 1 000 admitted calls.
//!
//! Starts its own `redis-server` (as the tests do). The call-path table interleaves blocks of
//! calls of each contender and reports the median per-call time of each, so the load of a
//! shared machine hits all alike: read the ratios. Every limit is far above the call rate and
//! the global limiter's batch is large, so calls are admitted from leased cells; the table
//! says how many were not.
//!
//! Round trips are counted by Redis itself (`INFO commandstats`: EVALSHA calls), for paced
//! loads of 200 and 2 000 calls a second over one second with the default batch settings.
//!
//! `cargo bench --all-features --bench rate_limit_redis`

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use redis_server::RedisServer;
use steadfast::rate_limit::RateLimitLayer;
use steadfast::rate_limit::redis::{GlobalRateLimitLayer, RedisBackend};
use tower::{Layer, Service, ServiceExt, service_fn};

const BLOCK: u64 = 20_000;
const ROUNDS: usize = 41;

fn bare() -> impl Service<u64, Response = u64, Error = Infallible> + Clone {
    service_fn(|x: u64| async move { Ok::<_, Infallible>(x) })
}

/// Times `BLOCK` calls; returns (ns per call, calls not admitted).
async fn block<S>(service: &mut S) -> (f64, u64)
where
    S: Service<u64, Response = u64>,
{
    let mut missed = 0;
    let start = Instant::now();
    for i in 0..BLOCK {
        let Ok(ready) = service.ready().await else {
            unreachable!("always ready")
        };
        if ready.call(black_box(i)).await.is_err() {
            missed += 1;
        }
    }
    (start.elapsed().as_nanos() as f64 / BLOCK as f64, missed)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn global(server: &RedisServer, name: &str, backend: RedisBackend) -> GlobalRateLimitLayer {
    RateLimitLayer::builder()
        .name(name.to_owned())
        .limit(1_000_000_000, Duration::from_secs(1))
        .burst(1_000_000_000)
        .build_global(backend)
        .unwrap_or_else(|e| panic!("{e} ({})", server.url()))
}

fn evalsha_calls(server: &RedisServer) -> u64 {
    let mut connection = server.client().get_connection().expect("a connection");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut connection)
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

async fn call_path(server: &RedisServer) {
    let local = RateLimitLayer::builder()
        .limit(1_000_000_000, Duration::from_secs(1))
        .burst(1_000_000_000)
        .build()
        .expect("valid");
    let leases = global(
        server,
        "bench-call-path",
        RedisBackend::new(server.client()).max_batch(10_000_000),
    );
    let mut services = (bare(), local.layer(bare()), leases.layer(bare()));
    // Let the batch grow to the local rate.
    for _ in 0..20 {
        let _ = block(&mut services.2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut b, mut l, mut g, mut missed) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for _ in 0..ROUNDS {
        b.push(block(&mut services.0).await.0);
        l.push(block(&mut services.1).await.0);
        let (ns, m) = block(&mut services.2).await;
        g.push(ns);
        missed += m;
        // A yield, so the refill task runs between blocks as it would between requests.
        tokio::task::yield_now().await;
    }
    let (b, l, g) = (median(b), median(l), median(g));
    println!("call path, median ns per call over {ROUNDS} interleaved blocks of {BLOCK}:");
    println!("  bare              {b:>7.1} ns  1.00x");
    println!(
        "  local limiter     {l:>7.1} ns  {:.2}x bare  (+{:.1} ns)",
        l / b,
        l - b
    );
    println!(
        "  global (leases)   {g:>7.1} ns  {:.2}x bare, {:.2}x local  (+{:.1} ns over local)",
        g / b,
        g / l,
        g - l
    );
    println!(
        "  global calls not admitted: {missed} of {}",
        BLOCK * ROUNDS as u64
    );
}

async fn round_trips(server: &RedisServer, per_sec: u64) {
    let layer = global(
        server,
        &format!("bench-round-trips-{per_sec}"),
        RedisBackend::new(server.client()),
    );
    let mut service = layer.layer(bare());
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_sec as u32);
    // One second to settle the batch size, then one measured.
    for _ in 0..per_sec {
        tick.tick().await;
        let _ = service.ready().await.map(|s| s.call(0));
    }
    let before = evalsha_calls(server);
    let mut admitted = 0u64;
    for i in 0..per_sec {
        tick.tick().await;
        let Ok(ready) = service.ready().await else {
            unreachable!("always ready")
        };
        if ready.call(i).await.is_ok() {
            admitted += 1;
        }
    }
    let trips = evalsha_calls(server) - before;
    println!(
        "  {per_sec:>5} calls/s: {trips} round trips for {admitted} admitted = {:.1} per 1 000",
        trips as f64 * 1_000.0 / admitted.max(1) as f64
    );
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: do nothing then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        call_path(&server).await;
        println!("Redis round trips per 1 000 admitted calls (default batch: 100 ms of calls, at most 100):");
        round_trips(&server, 200).await;
        round_trips(&server, 2_000).await;
    });
    black_box(&server);
}
