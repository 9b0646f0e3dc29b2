//! A rate limit shared by every replica, on Redis: three "replicas" in one process, each with
//! its own connection, each offered 100 calls a second against a global limit of 120 a second.
//! Every second it prints what each admitted; stop Redis while it runs to see the degraded
//! mode (each replica then admits its share, 40 a second) and start it again to see the shared
//! limit come back.
//!
//! ```sh
//! redis-server --port 6379 --save "" --appendonly no &
//! cargo run --example global_limit --features redis -- --redis redis://127.0.0.1:6379
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use steadfast::rate_limit::RateLimitLayer;
use steadfast::rate_limit::redis::{GlobalRateLimitLayer, RedisBackend, WhenDown};
use tower::{Layer, Service, ServiceExt, service_fn};

const SECONDS: u64 = 10;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let mut url = String::from("redis://127.0.0.1:6379");
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--redis", Some(value)) => url = value,
            _ => return Err("usage: global_limit [--redis redis://host:port]".into()),
        }
    }

    let replicas: Vec<GlobalRateLimitLayer> = (0..3)
        .map(|_| {
            RateLimitLayer::builder()
                .name("example-partner-api")
                .limit(120, Duration::from_secs(1))
                .burst(10)
                .build_global(
                    RedisBackend::new(redis::Client::open(url.as_str())?)
                        .max_batch(10)
                        .when_down(WhenDown::LocalShare),
                )
                .map_err(Into::into)
        })
        .collect::<Result<_, Box<dyn std::error::Error + Send + Sync>>>()?;

    let admitted: Vec<Arc<AtomicU64>> = (0..3).map(|_| Arc::default()).collect();
    for (layer, admitted) in replicas.iter().zip(&admitted) {
        let mut service = layer.layer(service_fn(|()| async { Ok::<_, Infallible>(()) }));
        let admitted = Arc::clone(admitted);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                // The error is a `BoxError`: a rejection (`RateLimited`).
                let Ok(ready) = service.ready().await else {
                    continue;
                };
                if ready.call(()).await.is_ok() {
                    admitted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    println!("global limit 120/s; three replicas offered 100/s each (Redis at {url})");
    let mut last = vec![0; 3];
    for second in 1..=SECONDS {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now: Vec<u64> = admitted.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        let this: Vec<u64> = now.iter().zip(&last).map(|(n, l)| n - l).collect();
        let mode = if replicas[0].is_degraded() {
            "degraded: local share"
        } else {
            "shared through Redis"
        };
        println!(
            "{second:>2} s: admitted {this:?} = {} ({mode}, {} processes)",
            this.iter().sum::<u64>(),
            replicas[0].processes()
        );
        last = now;
    }
    Ok(())
}
