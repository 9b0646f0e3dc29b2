//! Sampling, end to end through the service on paused time: which calls are timed, how many
//! samples reach the window, and that drops of calls that were not timed still count.

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::{AdaptiveLimitLayer, Aimd};
use crate::BoxError;
use crate::limit::window::MAX_PERIOD;

const MS: Duration = Duration::from_millis(1);

/// A backend answering at once: `Err` for the request `u64::MAX`, `Ok` otherwise.
fn backend() -> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone {
    service_fn(|n: u64| async move {
        if n == u64::MAX {
            Err(BoxError::from("boom"))
        } else {
            Ok::<_, BoxError>(n)
        }
    })
}

/// Makes `calls` calls one after the other, `gap` apart, each answered at once.
async fn calls<S>(service: &mut S, calls: u64, gap: Duration)
where
    S: Service<u64, Response = u64, Error = BoxError>,
{
    for n in 0..calls {
        service.ready().await.unwrap().call(n).await.unwrap();
        advance(gap).await;
    }
}

/// The default window (100 ms, at least 10 samples): the period aims at 40 samples a window.
fn layer() -> AdaptiveLimitLayer {
    AdaptiveLimitLayer::builder()
        .initial_limit(10)
        .min_limit(1)
        .max_limit(10)
        .algorithm(Aimd::new())
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn below_eighty_calls_a_window_every_call_is_timed() {
    let layer = layer();
    let mut service = layer.layer(backend());
    // 75 calls per 100 ms window: under twice the 40 samples the period aims at.
    calls(&mut service, 300, Duration::from_micros(1334)).await;
    assert_eq!(layer.limiter.sampling(), (1, 300));
}

#[tokio::test(start_paused = true)]
async fn from_eighty_calls_a_window_one_call_in_two_is_timed() {
    let layer = layer();
    let mut service = layer.layer(backend());
    // 85 calls per 100 ms window. The first window times every call and closes on the 87th
    // (86 gaps of 1.176 ms: 101.136 ms), having seen 86 calls per 100 ms: period 2.
    calls(&mut service, 87, Duration::from_micros(1176)).await;
    assert_eq!(layer.limiter.sampling(), (2, 87));
    // Calls 88 ..= 300: the 107 with an even number are timed.
    calls(&mut service, 213, Duration::from_micros(1176)).await;
    assert_eq!(layer.limiter.sampling(), (2, 87 + 107));
}

#[tokio::test(start_paused = true)]
async fn at_high_rates_exactly_one_call_in_the_period_is_timed() {
    let layer = layer();
    let mut service = layer.layer(backend());
    // 10 000 calls per 100 ms: 250 per sample aimed at, more than the longest period.
    let gap = Duration::from_micros(10);
    // The first window times every call, and closes at 100 ms, on its 10 001st call.
    calls(&mut service, 10_001, gap).await;
    assert_eq!(layer.limiter.sampling(), (MAX_PERIOD, 10_001));
    // Calls 10 002 ..= 10 002 + 64 × 100 − 1: a hundred of their numbers are multiples of 64.
    calls(&mut service, u64::from(MAX_PERIOD) * 100, gap).await;
    assert_eq!(layer.limiter.sampling(), (MAX_PERIOD, 10_001 + 100));
    // Past the 16-bit wrap of the call counter, still exactly one in 64.
    let before = layer.limiter.sampling().1;
    calls(&mut service, 65_536, gap).await;
    assert_eq!(layer.limiter.sampling(), (MAX_PERIOD, before + 1024));
}

#[tokio::test(start_paused = true)]
async fn when_the_rate_falls_every_call_is_timed_again_after_one_timed_call() {
    let layer = layer();
    let mut service = layer.layer(backend());
    calls(&mut service, 10_001, Duration::from_micros(10)).await;
    assert_eq!(layer.limiter.sampling().0, MAX_PERIOD);
    // One call every 10 ms: the next timed call (the 10 048th, a multiple of 64) finds a
    // window open for longer than 100 ms with too few samples, and sets the period to 1.
    calls(&mut service, 47, 10 * MS).await;
    assert_eq!(layer.limiter.sampling(), (1, 10_002));
    calls(&mut service, 30, 10 * MS).await;
    assert_eq!(layer.limiter.sampling(), (1, 10_032));
}

#[tokio::test(start_paused = true)]
async fn a_failure_of_a_call_that_was_not_timed_still_backs_aimd_off() {
    let layer = layer();
    let mut service = layer.layer(backend());
    let gap = Duration::from_micros(10);
    calls(&mut service, 10_001, gap).await;
    assert_eq!(layer.limiter.sampling(), (MAX_PERIOD, 10_001));
    assert_eq!(layer.limit(), 10, "at its highest: only a drop moves it");
    // The 10 002nd call, not a multiple of 64: not timed.
    let failed = service.ready().await.unwrap().call(u64::MAX).await;
    assert!(failed.is_err());
    assert_eq!(layer.limiter.sampling().1, 10_001, "no sample");
    // Its drop goes into the window with the next timed call, and backs off when it closes.
    calls(&mut service, 10_100, gap).await;
    assert_eq!(layer.limit(), 9, "⌊10 × 0.9⌋");
    // One drop, counted once: the next windows, all successes, leave the limit there.
    calls(&mut service, 20_000, gap).await;
    assert_eq!(layer.limit(), 9);
}

#[tokio::test(start_paused = true)]
async fn under_aimd_a_cancelled_call_that_was_not_timed_is_still_a_drop_past_the_timeout() {
    let layer = AdaptiveLimitLayer::builder()
        .initial_limit(10)
        .min_limit(1)
        .max_limit(10)
        .algorithm(Aimd::new().timeout(Duration::from_secs(1)))
        .build()
        .unwrap();
    let mut service = layer.layer(backend());
    calls(&mut service, 10_001, Duration::from_micros(10)).await;
    assert_eq!(layer.limiter.sampling().0, MAX_PERIOD);
    // The 10 002nd call never answers; it is cancelled after 2 s.
    let never = service_fn(|_: u64| std::future::pending::<Result<u64, Infallible>>());
    let mut hanging = layer.layer(never);
    let call = hanging.ready().await.unwrap().call(0);
    advance(Duration::from_secs(2)).await;
    drop(call);
    assert_eq!(layer.limiter.sampling().1, 10_001, "not timed: no sample");
    calls(&mut service, 100, MS).await;
    assert_eq!(layer.limit(), 9, "the drop reached the window");
}

/// A reload that starts a new window times every call again at once, as a new layer's first
/// window does, rather than keeping the period the old window chose.
#[cfg(feature = "serde")]
#[tokio::test(start_paused = true)]
async fn a_reloaded_window_times_every_call_again() {
    let mut config = super::Config {
        initial_limit: 10,
        min_limit: Some(1),
        max_limit: Some(10),
        algorithm: Aimd::new().into(),
        ..super::Config::default()
    };
    let layer = AdaptiveLimitLayer::from_config(&config).unwrap();
    let mut service = layer.layer(backend());
    // 85 calls per 100 ms window: the first window picks a period of 2.
    calls(&mut service, 87, Duration::from_micros(1176)).await;
    assert_eq!(layer.limiter.sampling(), (2, 87));

    config.window = Duration::from_millis(200);
    layer.reconfigure(&config).unwrap();
    assert_eq!(layer.limiter.sampling().0, 1);
    calls(&mut service, 10, Duration::from_micros(1176)).await;
    assert_eq!(
        layer.limiter.sampling(),
        (1, 10),
        "a new window, every call timed"
    );
}
