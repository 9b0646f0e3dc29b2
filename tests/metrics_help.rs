//! Every metric a layer registers is described when the layer is built (`# HELP` text and, where
//! one applies, a unit), so that a Prometheus scrape and a dashboard explain themselves.

use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use steadfast::bulkhead::BulkheadLayer;
use steadfast::chaos::ChaosLayer;
use steadfast::circuit_breaker::CircuitBreakerLayer;
use steadfast::retry::RetryLayer;
use steadfast::timeout::TimeoutLayer;

/// Builds what `build` builds under a fresh recorder; returns each metric's name, unit and
/// description.
fn described(build: impl FnOnce()) -> Vec<(String, Option<metrics::Unit>, Option<String>)> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, build);
    let mut metrics: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, unit, help, _)| {
            let name = key.key().name().to_owned();
            (name, unit, help.map(|h| h.to_string()))
        })
        .collect();
    metrics.sort_by(|a, b| a.0.cmp(&b.0));
    metrics.dedup_by(|a, b| a.0 == b.0);
    metrics
}

fn assert_all_described(layer: &str, metrics: &[(String, Option<metrics::Unit>, Option<String>)]) {
    assert!(!metrics.is_empty(), "{layer} registers metrics");
    for (name, unit, help) in metrics {
        assert!(name.starts_with(&format!("steadfast_{layer}_")), "{name}");
        assert!(
            help.as_ref().is_some_and(|h| !h.is_empty()),
            "{name} has no # HELP text"
        );
        if name.ends_with("_total") {
            assert_eq!(*unit, Some(metrics::Unit::Count), "{name}");
        }
        if name.ends_with("_seconds") {
            assert_eq!(*unit, Some(metrics::Unit::Seconds), "{name}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker() {
    let metrics = described(|| {
        let layer = CircuitBreakerLayer::builder().build().unwrap();
        layer.force_open(); // the transitions counter is looked up on a transition
    });
    let names: Vec<_> = metrics.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "steadfast_circuit_breaker_availability",
            "steadfast_circuit_breaker_calls_total",
            "steadfast_circuit_breaker_mtbf_seconds",
            "steadfast_circuit_breaker_mttr_seconds",
            "steadfast_circuit_breaker_not_permitted_total",
            "steadfast_circuit_breaker_state",
            "steadfast_circuit_breaker_transitions_total",
        ]
    );
    assert_all_described("circuit_breaker", &metrics);
}

#[tokio::test(start_paused = true)]
async fn keyed_circuit_breaker() {
    let metrics = described(|| {
        let layer = CircuitBreakerLayer::builder()
            .build_keyed(|host: &&str| *host)
            .unwrap();
        layer.force_open("a"); // a key's breaker: its counters, and a transition
    });
    let names: Vec<_> = metrics.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "steadfast_circuit_breaker_calls_total",
            "steadfast_circuit_breaker_keys",
            "steadfast_circuit_breaker_not_permitted_total",
            "steadfast_circuit_breaker_transitions_total",
        ]
    );
    assert_all_described("circuit_breaker", &metrics);
}

#[tokio::test(start_paused = true)]
async fn retry() {
    let metrics = described(|| drop(RetryLayer::builder().build().unwrap()));
    assert_eq!(metrics.len(), 2);
    assert_all_described("retry", &metrics);
}

#[tokio::test(start_paused = true)]
async fn timeout() {
    let metrics = described(|| drop(TimeoutLayer::new(Duration::from_secs(1))));
    assert_eq!(metrics.len(), 1);
    assert_all_described("timeout", &metrics);
}

#[tokio::test(start_paused = true)]
async fn bulkhead() {
    let metrics = described(|| drop(BulkheadLayer::builder().build().unwrap()));
    assert_eq!(metrics.len(), 3);
    assert_all_described("bulkhead", &metrics);
}

#[tokio::test(start_paused = true)]
async fn chaos() {
    let metrics = described(|| drop(ChaosLayer::builder().build().unwrap()));
    assert_eq!(metrics.len(), 1);
    assert_all_described("chaos", &metrics);
}

#[cfg(feature = "pool")]
#[tokio::test(start_paused = true)]
async fn pool() {
    let metrics = described(|| {
        let pool = steadfast::pool::Pool::builder()
            .build([(
                "a",
                tower::service_fn(|x: u32| async move { Ok::<_, steadfast::BoxError>(x) }),
            )])
            .unwrap();
        drop(pool);
    });
    let names: Vec<_> = metrics.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "steadfast_pool_ejections_total",
            "steadfast_pool_endpoint_ejections_total",
            "steadfast_pool_endpoint_in_flight",
            "steadfast_pool_endpoint_state",
            "steadfast_pool_endpoints",
            "steadfast_pool_panic_routing",
        ]
    );
    assert_all_described("pool", &metrics);
}
