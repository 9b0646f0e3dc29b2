//! The rate limiter on paused time: burst, steady rate, exact `retry_after`, waits, the
//! deadline, cancellation, keyed limits with eviction, and configuration errors.

#[path = "support/events.rs"]
mod events;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::deadline::Deadline;
use steadfast::rate_limit::{Builder, RateLimitLayer, RateLimited};
use tokio::time::{Instant, advance};
use tower::{Layer, Service, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A backend that counts the calls that reach it (in `call`, not when its future is polled).
fn backend(
    calls: Arc<AtomicUsize>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(move |n: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, BoxError>(n) }
    })
}

fn service(
    layer: &RateLimitLayer,
) -> (
    impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    (layer.layer(backend(calls.clone())), calls)
}

async fn call<S>(service: &mut S, n: u32) -> Result<u32, BoxError>
where
    S: Service<u32, Response = u32, Error = BoxError>,
{
    service.ready().await?.call(n).await
}

/// The `retry_after` of a call that must be rejected.
async fn rejected<S>(service: &mut S) -> Duration
where
    S: Service<u32, Response = u32, Error = BoxError>,
{
    let err = call(service, 0).await.unwrap_err();
    err.downcast_ref::<RateLimited>()
        .unwrap_or_else(|| panic!("not a rate limit rejection: {err}"))
        .retry_after()
}

fn limit(n: u32, per: Duration) -> Builder {
    RateLimitLayer::builder().limit(n, per)
}

#[tokio::test(start_paused = true)]
async fn a_burst_then_the_steady_rate() {
    let layer = limit(10, secs(1)).burst(3).build().unwrap();
    let (mut svc, calls) = service(&layer);
    for n in 0..3 {
        assert_eq!(call(&mut svc, n).await.unwrap(), n);
    }
    assert_eq!(rejected(&mut svc).await, ms(100));
    advance(ms(99)).await;
    assert_eq!(rejected(&mut svc).await, ms(1));
    advance(ms(1)).await;
    call(&mut svc, 3).await.unwrap();
    assert_eq!(rejected(&mut svc).await, ms(100));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "rejected calls never reach the backend"
    );

    // At the steady rate every call goes; the burst refills only while calls are slower.
    for n in 0..20 {
        advance(ms(100)).await;
        call(&mut svc, n).await.unwrap();
        assert_eq!(rejected(&mut svc).await, ms(100));
    }
    advance(secs(1)).await;
    for n in 0..3 {
        call(&mut svc, n).await.unwrap();
    }
    assert_eq!(rejected(&mut svc).await, ms(100));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_exact_to_the_nanosecond() {
    // 3 per second: one every 333 333 333 ns.
    let layer = limit(3, secs(1)).build().unwrap();
    let (mut svc, _) = service(&layer);
    call(&mut svc, 1).await.unwrap();
    assert_eq!(rejected(&mut svc).await, Duration::from_nanos(333_333_333));
    advance(Duration::from_nanos(333_333_332)).await;
    assert_eq!(rejected(&mut svc).await, Duration::from_nanos(1));
    advance(Duration::from_nanos(1)).await;
    call(&mut svc, 2).await.unwrap();
    assert_eq!(layer.wait_time(), Duration::from_nanos(333_333_333));
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_share_one_limiter() {
    let layer = limit(1, secs(1)).build().unwrap();
    let (mut first, _) = service(&layer);
    let clone = layer.clone();
    let (mut second, _) = service(&clone);
    let mut third = first.clone();
    call(&mut first, 1).await.unwrap();
    assert_eq!(rejected(&mut second).await, secs(1));
    assert_eq!(rejected(&mut third).await, secs(1));
}

#[tokio::test(start_paused = true)]
async fn calls_wait_in_order_up_to_max_wait() {
    let layer = limit(10, secs(1)).max_wait(ms(250)).build().unwrap();
    let (mut svc, calls) = service(&layer);
    let start = Instant::now();
    call(&mut svc, 1).await.unwrap();
    let second = svc.ready().await.unwrap().call(2);
    let third = svc.ready().await.unwrap().call(3);
    // Its turn would come 300 ms from now: past max_wait, so rejected at once.
    let fourth = svc.ready().await.unwrap().call(4);
    let err = fourth.await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<RateLimited>().unwrap().retry_after(),
        ms(300)
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "waiting calls reach the backend after their wait"
    );
    assert_eq!(start.elapsed(), Duration::ZERO);

    assert_eq!(second.await.unwrap(), 2);
    assert_eq!(start.elapsed(), ms(100));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(third.await.unwrap(), 3);
    assert_eq!(start.elapsed(), ms(200));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_would_end_at_or_past_the_deadline_is_rejected_at_once() {
    let layer = limit(1, secs(1)).max_wait(secs(5)).build().unwrap();
    let (svc, calls) = service(&layer);
    svc.clone().oneshot(1).await.unwrap();

    let start = Instant::now();
    for deadline in [ms(500), secs(1)] {
        let err = Deadline::after(deadline)
            .scope(svc.clone().oneshot(2))
            .await
            .unwrap_err();
        assert_eq!(
            err.downcast_ref::<RateLimited>().unwrap().retry_after(),
            secs(1)
        );
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "rejected at once");
    assert_eq!(layer.wait_time(), secs(1), "a rejection reserves nothing");

    let answer = Deadline::after(secs(1) + Duration::from_nanos(1))
        .scope(svc.clone().oneshot(3))
        .await
        .unwrap();
    assert_eq!(answer, 3);
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_is_current_again_in_the_call_after_a_wait() {
    let layer = limit(1, secs(1)).max_wait(secs(5)).build().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let svc = layer.layer(service_fn(move |n: u32| {
        record
            .lock()
            .unwrap()
            .push(Deadline::current().map(|d| d.instant()));
        async move { Ok::<_, BoxError>(n) }
    }));
    let deadline = Deadline::after(secs(3));
    deadline.scope(svc.clone().oneshot(1)).await.unwrap();
    deadline.scope(svc.clone().oneshot(2)).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(*seen, [Some(deadline.instant()), Some(deadline.instant())]);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_gives_its_slot_back_if_it_reserved_last() {
    let layer = limit(1, secs(1)).max_wait(secs(10)).build().unwrap();
    let (mut svc, calls) = service(&layer);
    call(&mut svc, 1).await.unwrap();
    assert_eq!(layer.wait_time(), secs(1));

    let second = svc.ready().await.unwrap().call(2);
    let third = svc.ready().await.unwrap().call(3);
    assert_eq!(layer.wait_time(), secs(3));
    drop(third);
    assert_eq!(
        layer.wait_time(),
        secs(2),
        "the latest reservation is refunded"
    );
    drop(second);
    assert_eq!(layer.wait_time(), secs(1));

    // Dropped out of order: the earlier one cannot be refunded without freeing the later one's
    // slot, so it stays taken; the later one then is the latest and is refunded.
    let second = svc.ready().await.unwrap().call(2);
    let third = svc.ready().await.unwrap().call(3);
    drop(second);
    assert_eq!(layer.wait_time(), secs(3), "a later call reserved after it");
    drop(third);
    assert_eq!(layer.wait_time(), secs(2));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no cancelled call reached the backend"
    );

    // Once its turn came, a call has spent its slot: dropping its future refunds nothing.
    let start = Instant::now();
    let pending = layer.layer(service_fn(|_: u32| {
        std::future::pending::<Result<u32, BoxError>>()
    }));
    let mut future = Box::pin(pending.oneshot(4));
    tokio::select! {
        _ = &mut future => panic!("never answers"),
        _ = tokio::time::sleep(secs(5)) => {}
    }
    assert_eq!(start.elapsed(), secs(5));
    drop(future);
    // The TAT is 3 s after start (2 s left, plus the one the call took), and 5 s have passed.
    assert_eq!(layer.wait_time(), Duration::ZERO);
    call(&mut svc, 5).await.unwrap();
    assert_eq!(start.elapsed(), secs(5), "went at once");
    assert_eq!(layer.wait_time(), secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_spent_slot_stays_spent_when_the_call_is_dropped() {
    let layer = limit(1, secs(1)).max_wait(secs(10)).build().unwrap();
    let (mut svc, _) = service(&layer);
    call(&mut svc, 1).await.unwrap();
    let pending = layer.layer(service_fn(|_: u32| {
        std::future::pending::<Result<u32, BoxError>>()
    }));
    let mut future = Box::pin(pending.oneshot(2));
    tokio::select! {
        _ = &mut future => panic!("never answers"),
        _ = tokio::time::sleep(ms(1500)) => {}
    }
    drop(future);
    // The waiting call went at 1 s and took the slot to 2 s.
    assert_eq!(layer.wait_time(), ms(500));
}

mod keyed {
    use super::*;
    use steadfast::rate_limit::KeyedRateLimitLayer;

    type Req = (&'static str, u32);

    fn tenant(request: &Req) -> &'static str {
        request.0
    }

    type Layered = KeyedRateLimitLayer<&'static str, fn(&Req) -> &'static str>;

    fn build(builder: Builder) -> Layered {
        builder
            .build_keyed(tenant as fn(&Req) -> &'static str)
            .unwrap()
    }

    fn keyed_service(
        layer: &Layered,
    ) -> impl Service<Req, Response = u32, Error = BoxError, Future: Send> + Clone {
        layer.layer(service_fn(
            |(_, n): Req| async move { Ok::<_, BoxError>(n) },
        ))
    }

    async fn go<S>(service: &mut S, key: &'static str) -> Result<u32, Duration>
    where
        S: Service<Req, Response = u32, Error = BoxError>,
    {
        match service.ready().await.unwrap().call((key, 7)).await {
            Ok(n) => Ok(n),
            Err(err) => Err(err.downcast_ref::<RateLimited>().unwrap().retry_after()),
        }
    }

    fn sorted(layer: &Layered) -> Vec<&'static str> {
        let mut keys = layer.keys();
        keys.sort_unstable();
        keys
    }

    #[tokio::test(start_paused = true)]
    async fn each_key_has_its_own_limit() {
        let layer = build(limit(2, secs(1)).burst(2));
        let mut svc = keyed_service(&layer);
        assert_eq!(go(&mut svc, "a").await, Ok(7));
        assert_eq!(go(&mut svc, "a").await, Ok(7));
        assert_eq!(go(&mut svc, "a").await, Err(ms(500)));
        assert_eq!(go(&mut svc, "b").await, Ok(7));
        assert_eq!(layer.wait_time(&"a"), Some(ms(500)));
        assert_eq!(layer.wait_time(&"b"), Some(Duration::ZERO));
        assert_eq!(layer.wait_time(&"c"), None);
        assert_eq!(sorted(&layer), ["a", "b"]);
        assert_eq!(layer.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_a_limiter_in_debt_is_kept() {
        let layer = build(limit(1, secs(1)).max_keys(2));
        let mut svc = keyed_service(&layer);
        assert_eq!(go(&mut svc, "a").await, Ok(7)); // in debt until 1 s
        advance(ms(500)).await;
        assert_eq!(go(&mut svc, "b").await, Ok(7)); // in debt until 1.5 s
        advance(ms(400)).await;
        assert_eq!(go(&mut svc, "a").await, Err(ms(100))); // a use: b is now the oldest
        advance(ms(300)).await;
        // At 1.2 s: b is the least recently used but in debt; a has paid. a goes.
        assert_eq!(go(&mut svc, "c").await, Ok(7));
        assert_eq!(sorted(&layer), ["b", "c"]);
        assert_eq!(
            go(&mut svc, "b").await,
            Err(ms(300)),
            "b's debt is remembered"
        );
        // At 1.5 s b has paid (as has a, whose fresh limiter is the same as its old one), and
        // b is the oldest of b and c (the one inserted first, used at the same instant).
        advance(ms(300)).await;
        assert_eq!(go(&mut svc, "a").await, Ok(7));
        assert_eq!(sorted(&layer), ["a", "c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_with_every_limiter_in_debt_the_oldest_goes() {
        let layer = build(limit(1, secs(10)).max_keys(2));
        let mut svc = keyed_service(&layer);
        go(&mut svc, "a").await.unwrap();
        advance(ms(1)).await;
        go(&mut svc, "b").await.unwrap();
        advance(ms(1)).await;
        go(&mut svc, "c").await.unwrap();
        assert_eq!(sorted(&layer), ["b", "c"]);
        assert_eq!(layer.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_limiters_are_evicted_when_a_new_key_comes() {
        let layer = build(limit(1, secs(20)).idle_timeout(secs(10)));
        let mut svc = keyed_service(&layer);
        go(&mut svc, "in-debt").await.unwrap(); // in debt for 20 s
        advance(ms(1)).await;
        go(&mut svc, "b").await.unwrap();
        advance(secs(10)).await;
        go(&mut svc, "c").await.unwrap();
        // Both idle for 10 s; both still in debt (20 s): kept.
        assert_eq!(sorted(&layer), ["b", "c", "in-debt"]);
        advance(secs(10)).await;
        go(&mut svc, "d").await.unwrap();
        // in-debt and b are paid up and idle (20 s): gone; c is idle 10 s but in debt.
        assert_eq!(sorted(&layer), ["c", "d"]);
    }
}

#[test]
fn config_errors_name_the_method() {
    let field = |builder: Builder| builder.build().unwrap_err().field();
    assert_eq!(field(RateLimitLayer::builder()), "limit");
    assert_eq!(field(limit(0, secs(1))), "limit");
    assert_eq!(field(limit(1, Duration::ZERO)), "limit");
    assert_eq!(field(limit(2, Duration::from_nanos(1))), "limit");
    assert_eq!(field(limit(1, secs(366 * 24 * 3600))), "limit");
    assert_eq!(field(limit(1, secs(1)).burst(0)), "burst");
    assert_eq!(field(limit(1, secs(3600)).burst(10_000)), "burst");
    assert_eq!(
        field(limit(1, secs(1)).max_wait(secs(400 * 24 * 3600))),
        "max_wait"
    );
    let err = RateLimitLayer::builder().build().unwrap_err();
    assert!(err.to_string().contains("`limit` must be set"), "{err}");

    let keyed = |builder: Builder| builder.build_keyed(|n: &u32| *n).unwrap_err().field();
    assert_eq!(keyed(limit(1, secs(1)).max_keys(0)), "max_keys");
    assert_eq!(
        keyed(limit(1, secs(1)).idle_timeout(Duration::ZERO)),
        "idle_timeout"
    );
    assert_eq!(keyed(RateLimitLayer::builder()), "limit");
    assert!(
        limit(1, secs(1))
            .burst(1000)
            .max_wait(secs(60))
            .build()
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn events_for_rejections_waits_and_cancellations() {
    let events = events::capture();
    let layer = limit(1, secs(1))
        .max_wait(secs(1))
        .name("upstream")
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    call(&mut svc, 1).await.unwrap();
    let waiting = svc.ready().await.unwrap().call(2);
    assert_eq!(rejected(&mut svc).await, secs(2));
    drop(waiting);

    let text = events.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("DEBUG") && lines[0].contains("rate limiter delayed a call"));
    assert!(
        lines[0].contains("rate_limit.name=upstream")
            && lines[0].contains("rate_limit.wait_ms=1000"),
        "{text}"
    );
    assert!(
        lines[1].contains("rate limiter rejected a call")
            && lines[1].contains("rate_limit.retry_after_ms=2000"),
        "{text}"
    );
    assert!(
        lines[2].contains("cancelled") && lines[2].contains("rate_limit.refunded=true"),
        "{text}"
    );
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn metrics_count_admitted_rejected_and_waited_calls() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let layer = limit(1, secs(1))
        .max_wait(secs(1))
        .name("upstream")
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    call(&mut svc, 1).await.unwrap();
    let waiting = svc.ready().await.unwrap().call(2);
    rejected(&mut svc).await;
    rejected(&mut svc).await;
    waiting.await.unwrap();
    let cancelled = svc.ready().await.unwrap().call(3);
    drop(cancelled);

    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str| {
        snapshot
            .iter()
            .find_map(|(key, _, _, value)| {
                let labels: Vec<_> = key.key().labels().map(|l| (l.key(), l.value())).collect();
                (key.key().name() == name && labels == [("name", "upstream")]).then_some(value)
            })
            .map(|value| match value {
                DebugValue::Counter(n) => *n,
                other => panic!("not a counter: {other:?}"),
            })
    };
    assert_eq!(counter("steadfast_rate_limit_admitted_total"), Some(2));
    assert_eq!(counter("steadfast_rate_limit_rejected_total"), Some(2));
    assert_eq!(counter("steadfast_rate_limit_waited_total"), Some(2));
}

/// `reconfigure`: each field of the rate applies live and keeps the limiter's state; a
/// rejected config changes nothing; reloads racing calls lose no slot.
#[cfg(feature = "serde")]
mod reconfigure {
    use super::*;
    use steadfast::rate_limit::{Config, Limit};

    fn config(calls: u32, per: Duration, burst: u32) -> Config {
        let mut config = Config::default();
        config.limit = Some(Limit::new(calls, per));
        config.burst = burst;
        config
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_limit_applies_after_the_debt_already_run_up() {
        let layer = RateLimitLayer::from_config(&config(1, secs(1), 1)).unwrap();
        let (mut svc, calls) = service(&layer);
        call(&mut svc, 1).await.unwrap();
        assert_eq!(rejected(&mut svc).await, secs(1));
        layer.reconfigure(&config(10, secs(1), 1)).unwrap();
        // The call admitted at 1 per second still holds its second: the TAT is kept.
        assert_eq!(rejected(&mut svc).await, secs(1));
        assert_eq!(layer.wait_time(), secs(1));
        advance(secs(1)).await;
        call(&mut svc, 2).await.unwrap();
        // From there on, one every 100 ms.
        assert_eq!(rejected(&mut svc).await, ms(100));
        advance(ms(100)).await;
        call(&mut svc, 3).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_larger_burst_lets_more_in_at_once_and_a_smaller_one_fewer() {
        let layer = RateLimitLayer::from_config(&config(1, secs(1), 1)).unwrap();
        let (mut svc, calls) = service(&layer);
        call(&mut svc, 1).await.unwrap();
        assert_eq!(rejected(&mut svc).await, secs(1));
        layer.reconfigure(&config(1, secs(1), 3)).unwrap();
        // The TAT is 1 s ahead and may now run 2 s ahead: two more go.
        call(&mut svc, 2).await.unwrap();
        call(&mut svc, 3).await.unwrap();
        assert_eq!(rejected(&mut svc).await, secs(1));
        layer.reconfigure(&config(1, secs(1), 1)).unwrap();
        // Back to no burst: the TAT is 3 s ahead; a call goes when it is not ahead at all.
        assert_eq!(rejected(&mut svc).await, secs(3));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_max_wait_lets_calls_wait_or_stops_them_waiting() {
        let layer = RateLimitLayer::from_config(&config(1, secs(1), 1)).unwrap();
        let (mut svc, calls) = service(&layer);
        call(&mut svc, 1).await.unwrap();
        assert_eq!(rejected(&mut svc).await, secs(1));
        let mut waiting = config(1, secs(1), 1);
        waiting.max_wait = secs(1);
        layer.reconfigure(&waiting).unwrap();
        let start = Instant::now();
        call(&mut svc, 2).await.unwrap();
        assert_eq!(start.elapsed(), secs(1), "waited for its turn");
        layer.reconfigure(&config(1, secs(1), 1)).unwrap();
        assert_eq!(rejected(&mut svc).await, secs(1), "rejects at once again");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_config_changes_nothing() {
        let layer = RateLimitLayer::from_config(&config(2, secs(1), 2)).unwrap();
        let (mut svc, _) = service(&layer);
        let mut bad_burst = config(100, secs(1), 0);
        bad_burst.max_wait = secs(1);
        let mut renamed = config(100, secs(1), 5);
        renamed.name = "other".to_owned();
        let mut no_limit = config(100, secs(1), 5);
        no_limit.limit = None;
        for (bad, field) in [(bad_burst, "burst"), (renamed, "name"), (no_limit, "limit")] {
            assert_eq!(layer.reconfigure(&bad).unwrap_err().field(), field);
        }
        call(&mut svc, 1).await.unwrap();
        call(&mut svc, 2).await.unwrap();
        assert_eq!(
            rejected(&mut svc).await,
            ms(500),
            "2 per second, burst 2, no wait"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_keyed_layer_applies_the_rate_to_every_key_and_its_new_bounds() {
        let mut base = config(1, secs(1), 1);
        base.max_keys = 10;
        let layer = base
            .to_builder()
            .build_keyed(|(key, _): &(&'static str, u32)| *key)
            .unwrap();
        let mut svc = layer.layer(service_fn(|(_, n): (&'static str, u32)| async move {
            Ok::<_, BoxError>(n)
        }));
        let mut go = async |key: &'static str| match svc.ready().await.unwrap().call((key, 0)).await
        {
            Ok(_) => Ok(()),
            Err(err) => Err(err.downcast_ref::<RateLimited>().unwrap().retry_after()),
        };
        assert_eq!(go("a").await, Ok(()));
        assert_eq!(go("a").await, Err(secs(1)));
        let mut bad = base.clone();
        bad.max_keys = 0;
        assert_eq!(layer.reconfigure(&bad).unwrap_err().field(), "max_keys");
        assert_eq!(go("a").await, Err(secs(1)), "nothing changed");

        let mut burst = base.clone();
        burst.burst = 2;
        layer.reconfigure(&burst).unwrap();
        // The old key keeps its TAT (1 s ahead, within the new burst); a new key gets the burst.
        assert_eq!(go("a").await, Ok(()));
        assert_eq!(go("a").await, Err(secs(1)));
        assert_eq!(go("b").await, Ok(()));
        assert_eq!(go("b").await, Ok(()));
        assert_eq!(go("b").await, Err(secs(1)));
        assert_eq!(layer.len(), 2);

        // A lower cap: the next new key evicts down to it (both keys are in debt, so the
        // bound on memory wins over the least recently used one's debt).
        let mut one_key = burst.clone();
        one_key.max_keys = 1;
        layer.reconfigure(&one_key).unwrap();
        assert_eq!(layer.len(), 2, "nothing is evicted at once");
        assert_eq!(go("c").await, Ok(()));
        assert_eq!(layer.len(), 1);
        assert_eq!(layer.keys(), ["c"]);

        // A shorter idle timeout: the next new key sweeps the keys idle that long.
        let mut short_idle = burst.clone();
        short_idle.idle_timeout = secs(5);
        layer.reconfigure(&short_idle).unwrap();
        tokio::time::advance(secs(6)).await;
        assert_eq!(go("d").await, Ok(()));
        assert_eq!(
            layer.keys(),
            ["d"],
            "c, idle for 6 s and out of debt, was swept"
        );
    }

    /// Reloads every few calls, between two configs with the same rate (one allows a wait
    /// that no call can use), while four tasks on two threads call: exactly the burst is
    /// admitted (one call per hour refills nothing in the test), no more, no fewer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reloads_racing_calls_lose_no_slot_and_give_none_twice() {
        const BURST: u32 = 100;
        let base = config(1, secs(3600), BURST);
        let mut other = base.clone();
        other.max_wait = ms(1);
        let layer = RateLimitLayer::from_config(&base).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = layer.layer(backend(calls.clone()));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let mut svc = svc.clone();
                tokio::spawn(async move {
                    let mut admitted = 0;
                    for n in 0..100 {
                        match call(&mut svc, n).await {
                            Ok(_) => admitted += 1,
                            Err(err) => assert!(err.is::<RateLimited>(), "{err}"),
                        }
                        tokio::task::yield_now().await;
                    }
                    admitted
                })
            })
            .collect();
        let reloader = {
            let layer = layer.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    let config = if i % 2 == 0 { &other } else { &base };
                    layer.reconfigure(config).unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut admitted = 0;
        for task in tasks {
            admitted += task.await.unwrap();
        }
        reloader.await.unwrap();
        assert_eq!(admitted, BURST);
        assert_eq!(calls.load(Ordering::SeqCst), BURST as usize);
    }
}
