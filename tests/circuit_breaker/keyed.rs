//! Keyed breakers: one breaker per key, bounded in number, each key's state readable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::circuit_breaker::{
    Builder, CircuitBreakerLayer, CircuitOpen, KeyedCircuitBreakerLayer, SlidingWindow, State,
};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A request: the key, and whether the backend fails it.
type Req = (u32, bool);

type Calls = Arc<Mutex<HashMap<u32, usize>>>;

fn key(request: &Req) -> u32 {
    request.0
}

/// A backend that counts the calls that reach it, per key.
fn backend(
    calls: Calls,
) -> impl Service<Req, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(move |(key, fail): Req| {
        *calls.lock().unwrap().entry(key).or_default() += 1;
        async move {
            if fail {
                Err::<u32, BoxError>("backend failed".into())
            } else {
                Ok(key)
            }
        }
    })
}

/// Opens after 2 failures in a window of 2, for 30 s.
fn builder() -> Builder {
    CircuitBreakerLayer::builder()
        .failure_rate_threshold(1.0)
        .sliding_window(SlidingWindow::Count(2))
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(30))
        .half_open_calls(1)
}

type Layered = KeyedCircuitBreakerLayer<u32, fn(&Req) -> u32>;

fn build(builder: Builder) -> Layered {
    builder.build_keyed(key as fn(&Req) -> u32).unwrap()
}

async fn call<S>(service: &mut S, key: u32, fail: bool) -> Result<u32, BoxError>
where
    S: Service<Req, Response = u32, Error = BoxError>,
{
    service.ready().await?.call((key, fail)).await
}

async fn open<S>(service: &mut S, key: u32)
where
    S: Service<Req, Response = u32, Error = BoxError>,
{
    for _ in 0..2 {
        let err = call(service, key, true).await.unwrap_err();
        assert_eq!(err.to_string(), "backend failed");
    }
}

fn sorted(mut keys: Vec<u32>) -> Vec<u32> {
    keys.sort_unstable();
    keys
}

#[tokio::test(start_paused = true)]
async fn one_key_opens_and_the_other_still_passes() {
    let calls = Calls::default();
    let layer = build(builder());
    let mut service = layer.layer(backend(calls.clone()));

    assert_eq!(layer.state(&1), None, "no breaker before the first call");
    open(&mut service, 1).await;
    assert_eq!(layer.state(&1), Some(State::Open));

    let err = call(&mut service, 1, false).await.unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().expect("a rejection");
    assert_eq!(open.state(), State::Open);
    assert_eq!(open.retry_after(), Duration::from_secs(30));
    assert_eq!(
        calls.lock().unwrap()[&1],
        2,
        "the rejected call never reached the backend"
    );

    assert_eq!(call(&mut service, 2, false).await.unwrap(), 2);
    assert_eq!(
        call(&mut service, 2, true).await.unwrap_err().to_string(),
        "backend failed"
    );
    assert_eq!(
        layer.state(&2),
        Some(State::Closed),
        "one failure in two: below 2 of 2"
    );
    assert_eq!(calls.lock().unwrap()[&2], 2);

    let snapshot = layer.snapshot(&1).unwrap();
    assert_eq!(snapshot.state(), State::Open);
    assert_eq!(snapshot.not_permitted_calls(), 1);
    let snapshot = layer.snapshot(&2).unwrap();
    assert_eq!((snapshot.calls(), snapshot.failed_calls()), (2, 1));

    let mut all = layer.snapshots();
    all.sort_unstable_by_key(|(key, _)| *key);
    let states: Vec<(u32, State)> = all.iter().map(|(k, s)| (*k, s.state())).collect();
    assert_eq!(states, [(1, State::Open), (2, State::Closed)]);
    assert_eq!(sorted(layer.keys()), [1, 2]);
    assert_eq!(layer.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn each_key_recovers_on_its_own_clock() {
    let layer = build(builder());
    let mut service = layer.layer(backend(Calls::default()));
    open(&mut service, 1).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    open(&mut service, 2).await;

    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(layer.state(&1), Some(State::HalfOpen));
    assert_eq!(layer.state(&2), Some(State::Open));
    assert_eq!(call(&mut service, 1, false).await.unwrap(), 1);
    assert_eq!(layer.state(&1), Some(State::Closed));

    let err = call(&mut service, 2, false).await.unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!(open.retry_after(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_share_the_breakers() {
    let layer = build(builder());
    let mut first = layer.layer(backend(Calls::default()));
    let mut second = layer.clone().layer(backend(Calls::default()));
    open(&mut first, 7).await;
    let err = call(&mut second, 7, false).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    let mut third = second.clone();
    assert!(
        call(&mut third, 7, false)
            .await
            .unwrap_err()
            .is::<CircuitOpen>()
    );
    assert_eq!(layer.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn at_the_cap_the_least_recently_used_key_goes() {
    let layer = build(builder().max_keys(2));
    let mut service = layer.layer(backend(Calls::default()));
    // Recency is the time of the last call (ties: the key inserted first goes).
    let tick = Duration::from_millis(1);
    call(&mut service, 1, false).await.unwrap();
    tokio::time::advance(tick).await;
    call(&mut service, 2, false).await.unwrap();
    tokio::time::advance(tick).await;
    call(&mut service, 1, false).await.unwrap(); // 2 is now the least recently used
    tokio::time::advance(tick).await;
    call(&mut service, 3, false).await.unwrap();
    assert_eq!(sorted(layer.keys()), [1, 3]);
    assert_eq!(layer.state(&2), None);
    assert_eq!(layer.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_is_kept_while_a_closed_one_can_go() {
    let layer = build(builder().max_keys(2));
    let mut service = layer.layer(backend(Calls::default()));
    open(&mut service, 1).await; // least recently used, but open
    call(&mut service, 2, false).await.unwrap();
    call(&mut service, 3, false).await.unwrap();
    assert_eq!(sorted(layer.keys()), [1, 3]);
    assert_eq!(layer.state(&1), Some(State::Open));

    // Every breaker open: the bound wins, the least recently used goes.
    open(&mut service, 3).await;
    call(&mut service, 4, false).await.unwrap();
    assert_eq!(sorted(layer.keys()), [3, 4]);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_evicted_when_a_new_key_comes() {
    let layer = build(builder().idle_timeout(Duration::from_secs(10)));
    let mut service = layer.layer(backend(Calls::default()));
    call(&mut service, 1, false).await.unwrap();
    open(&mut service, 2).await;
    tokio::time::advance(Duration::from_secs(9)).await;
    call(&mut service, 3, false).await.unwrap();
    assert_eq!(sorted(layer.keys()), [1, 2, 3], "not idle yet");

    tokio::time::advance(Duration::from_secs(1)).await;
    call(&mut service, 4, false).await.unwrap();
    // 1 was idle for 10 s and is closed: gone. 2 is open: kept. 3 was used 1 s ago.
    assert_eq!(sorted(layer.keys()), [2, 3, 4]);
    assert_eq!(layer.state(&2), Some(State::Open));
}

#[tokio::test(start_paused = true)]
async fn a_key_can_be_forced_open_reset_disabled_and_removed() {
    let calls = Calls::default();
    let layer = build(builder());
    let mut service = layer.layer(backend(calls.clone()));

    layer.force_open(5);
    assert_eq!(layer.state(&5), Some(State::ForcedOpen));
    let err = call(&mut service, 5, false).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<CircuitOpen>().unwrap().state(),
        State::ForcedOpen
    );
    assert!(calls.lock().unwrap().get(&5).is_none());
    assert_eq!(call(&mut service, 6, false).await.unwrap(), 6);

    assert!(layer.reset(&5));
    assert_eq!(layer.state(&5), Some(State::Closed));
    assert_eq!(call(&mut service, 5, false).await.unwrap(), 5);

    assert!(layer.disable(&5));
    open(&mut service, 5).await;
    assert_eq!(layer.state(&5), Some(State::Disabled));

    assert!(!layer.reset(&9), "no breaker for 9");
    assert!(!layer.disable(&9));
    assert!(layer.remove(&5));
    assert_eq!(layer.state(&5), None);
    assert!(!layer.remove(&5));
    assert_eq!(layer.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_gives_its_slot_back_to_its_key() {
    let layer = build(builder());
    let pending = service_fn(|_: Req| std::future::pending::<Result<u32, BoxError>>());
    let mut failing = layer.layer(backend(Calls::default()));
    open(&mut failing, 1).await;
    tokio::time::advance(Duration::from_secs(30)).await;

    let mut hanging = layer.layer(pending);
    let probe = hanging.ready().await.unwrap().call((1, false));
    // The one probe slot is taken.
    assert!(
        call(&mut failing, 1, false)
            .await
            .unwrap_err()
            .is::<CircuitOpen>()
    );
    drop(probe);
    assert_eq!(call(&mut failing, 1, false).await.unwrap(), 1);
    assert_eq!(layer.state(&1), Some(State::Closed));
}

#[test]
fn bad_bounds_name_their_builder_method() {
    let err = CircuitBreakerLayer::builder()
        .max_keys(0)
        .build_keyed(key)
        .unwrap_err();
    assert_eq!(err.field(), "max_keys");
    assert!(err.to_string().contains("[1, 16777216]"), "{err}");

    let err = CircuitBreakerLayer::builder()
        .idle_timeout(Duration::ZERO)
        .build_keyed(key)
        .unwrap_err();
    assert_eq!(err.field(), "idle_timeout");

    let err = CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.0)
        .build_keyed(key)
        .unwrap_err();
    assert_eq!(err.field(), "failure_rate_threshold");
}

#[tokio::test(start_paused = true)]
async fn a_listener_may_read_the_layer_while_eviction_judges_a_breaker() {
    use std::sync::OnceLock;

    // Eviction asks each candidate whether it is open, which can move it to half-open and call
    // the listener; the listener reads the layer, so no shard lock may be held meanwhile.
    let cell: Arc<OnceLock<Layered>> = Arc::new(OnceLock::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (reader, log) = (cell.clone(), seen.clone());
    let layer = build(builder().max_keys(1).on_transition(move |transition| {
        let state = reader.get().and_then(|layer| layer.state(&1));
        log.lock().unwrap().push((transition.to(), state));
    }));
    cell.set(layer.clone()).unwrap();
    let mut service = layer.layer(backend(Calls::default()));

    open(&mut service, 1).await;
    tokio::time::advance(Duration::from_secs(30)).await;
    call(&mut service, 2, false).await.unwrap();
    assert_eq!(layer.keys(), [2], "every breaker busy: the oldest went");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, State::Open);
    assert_eq!(seen[1].0, State::HalfOpen);
}

/// A keyed layer's gauges count its keys by state; no key's breaker sets the single-breaker
/// gauges, which would say only which key changed last.
#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn gauges_count_keys_by_state_and_follow_eviction() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recorder = ::metrics::set_default_local_recorder(&recorder);
    let layer = build(builder().name("hosts").max_keys(2));
    let mut service = layer.layer(backend(Calls::default()));
    // A debugging snapshot takes each gauge's value and leaves 0 behind: add the snapshots up.
    let mut totals = [0.0; 3];
    let mut gauges = || {
        let snapshot = snapshotter.snapshot().into_vec();
        for (total, state) in totals.iter_mut().zip(["closed", "open", "half_open"]) {
            match crate::support::find(
                &snapshot,
                "steadfast_circuit_breaker_keys",
                &[("name", "hosts"), ("state", state)],
            ) {
                Some(DebugValue::Gauge(value)) => *total += value.into_inner(),
                other => panic!("no keys gauge for {state}: {other:?}"),
            }
        }
        for what in ["state", "mtbf_seconds", "mttr_seconds", "availability"] {
            let name = format!("steadfast_circuit_breaker_{what}");
            let found = crate::support::find(&snapshot, &name, &[("name", "hosts")]);
            assert!(found.is_none(), "a keyed breaker set {name}");
        }
        totals
    };
    assert_eq!(gauges(), [0.0, 0.0, 0.0]);

    call(&mut service, 1, false).await.unwrap();
    call(&mut service, 2, false).await.unwrap();
    assert_eq!(gauges(), [2.0, 0.0, 0.0]);

    open(&mut service, 1).await;
    assert_eq!(gauges(), [1.0, 1.0, 0.0]);

    tokio::time::advance(Duration::from_secs(30)).await;
    call(&mut service, 1, false).await.unwrap(); // the probe: half-open, then closed
    assert_eq!(layer.state(&1), Some(State::Closed));
    assert_eq!(gauges(), [2.0, 0.0, 0.0]);

    // A third key evicts one of the two closed ones: still two keys.
    open(&mut service, 3).await;
    assert_eq!(layer.len(), 2);
    assert_eq!(gauges(), [1.0, 1.0, 0.0]);
}
