//! `reconfigure` on a running keyed breaker: every key's breaker takes the new settings as a
//! plain breaker does, keys made afterwards are made with them, the map takes the new bounds,
//! and a refused config changes nothing.

use std::pin::Pin;
use std::time::Duration;

use steadfast::circuit_breaker::{
    self, CircuitOpen, KeyedCircuitBreaker, KeyedCircuitBreakerLayer, State,
};
use steadfast::{BoxError, ConfigError};
use tower::util::ServiceFn;
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::files::toml;

/// A request: its key, and whether the backend fails it (or, `Slow`, answers after 2 s).
#[derive(Clone, Copy)]
enum Call {
    Ok(&'static str),
    Fail(&'static str),
    Slow(&'static str),
}

fn key(call: &Call) -> &'static str {
    match *call {
        Call::Ok(key) | Call::Fail(key) | Call::Slow(key) => key,
    }
}

type KeyFn = fn(&Call) -> &'static str;
type Answer = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type Layered = KeyedCircuitBreakerLayer<&'static str, KeyFn>;
type Svc = KeyedCircuitBreaker<ServiceFn<fn(Call) -> Answer>, &'static str, KeyFn>;

fn backend(call: Call) -> Answer {
    Box::pin(async move {
        match call {
            Call::Ok(_) => Ok(()),
            Call::Fail(_) => Err("down".into()),
            Call::Slow(_) => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(())
            }
        }
    })
}

/// A count window of 10, 4 calls before it may open, open only when every call failed, at
/// most 10 keys; each line of `text` sets another field or overrides one (a later line an
/// earlier one).
fn config(text: &str) -> circuit_breaker::Config {
    let base = "sliding_window = { count = 10 }\nminimum_calls = 4\nfailure_rate_threshold = 1.0\n\
                max_keys = 10";
    let mut table: toml::Table = toml(base).unwrap();
    for line in text.lines() {
        table.extend(toml::<toml::Table>(line).unwrap());
    }
    table.try_into().unwrap()
}

fn layer(config: &circuit_breaker::Config) -> (Layered, Svc) {
    let layer = config.to_builder().build_keyed(key as KeyFn).unwrap();
    let service = layer.layer(service_fn(backend as fn(Call) -> Answer));
    (layer, service)
}

async fn calls(service: &mut Svc, call: Call, n: usize) {
    for _ in 0..n {
        let _ = service.ready().await.unwrap().call(call).await;
    }
}

fn refused(result: Result<(), ConfigError>) -> &'static str {
    match result {
        Ok(()) => "accepted",
        Err(e) => e.field(),
    }
}

/// The snapshot's call count of `key`'s window.
fn window_calls(layer: &Layered, key: &'static str) -> u32 {
    layer.snapshot(&key).expect("the key has a breaker").calls()
}

#[tokio::test(start_paused = true)]
async fn every_key_judges_its_current_window_by_the_new_threshold() {
    let (layer, mut service) = layer(&config(""));
    calls(&mut service, Call::Fail("a"), 2).await;
    calls(&mut service, Call::Ok("a"), 2).await;
    calls(&mut service, Call::Fail("b"), 3).await;
    calls(&mut service, Call::Ok("b"), 1).await;
    assert_eq!(layer.state(&"a"), Some(State::Closed));
    assert_eq!(layer.state(&"b"), Some(State::Closed));

    assert_eq!(
        refused(layer.reconfigure(&config("failure_rate_threshold = 0.5"))),
        "accepted"
    );
    // Each window is kept, and its next outcome is judged by 0.5: 3 failures of 5 for `a`,
    // 4 of 5 for `b`.
    assert_eq!(
        (window_calls(&layer, "a"), window_calls(&layer, "b")),
        (4, 4)
    );
    calls(&mut service, Call::Fail("a"), 1).await;
    calls(&mut service, Call::Fail("b"), 1).await;
    assert_eq!(layer.state(&"a"), Some(State::Open));
    assert_eq!(layer.state(&"b"), Some(State::Open));
}

#[tokio::test(start_paused = true)]
async fn a_new_window_shape_starts_a_new_window_for_every_key() {
    let (layer, mut service) = layer(&config(""));
    calls(&mut service, Call::Fail("a"), 3).await;
    calls(&mut service, Call::Fail("b"), 3).await;
    // A call of `a` admitted under the old window, still in flight.
    let mut held = service.clone();
    let in_flight = tokio::spawn(held.ready().await.unwrap().call(Call::Slow("a")));
    tokio::task::yield_now().await;

    let wider = config("sliding_window = { count = 20 }");
    assert_eq!(refused(layer.reconfigure(&wider)), "accepted");
    for key in ["a", "b"] {
        assert_eq!(layer.state(&key), Some(State::Closed), "{key}");
        assert_eq!(window_calls(&layer, key), 0, "{key}: a new, empty window");
    }
    in_flight.await.unwrap().unwrap();
    assert_eq!(
        window_calls(&layer, "a"),
        0,
        "the call admitted before is dropped"
    );

    // The service made before the reload counts in each key's new window: 19 failures and a
    // success fill `b`'s window of 20 without opening it; the next failure opens it.
    calls(&mut service, Call::Ok("b"), 1).await;
    calls(&mut service, Call::Fail("b"), 19).await;
    assert_eq!(window_calls(&layer, "b"), 20);
    assert_eq!(layer.state(&"b"), Some(State::Closed));
    calls(&mut service, Call::Fail("b"), 1).await;
    assert_eq!(layer.state(&"b"), Some(State::Open));

    // Slow-call detection turned on: the calls of a key that had a breaker are timed.
    let timed = config("slow_call_duration = \"1s\"\nslow_call_rate_threshold = 0.5");
    assert_eq!(refused(layer.reconfigure(&timed)), "accepted");
    calls(&mut service, Call::Slow("a"), 3).await;
    assert_eq!(layer.snapshot(&"a").unwrap().slow_calls(), 3);
    assert_eq!(layer.state(&"a"), Some(State::Closed));
    calls(&mut service, Call::Slow("a"), 1).await;
    assert_eq!(layer.state(&"a"), Some(State::Open), "4 slow calls of 4");
}

#[tokio::test(start_paused = true)]
async fn a_key_made_after_a_reload_has_the_new_settings() {
    let (layer, mut service) = layer(&config(""));
    calls(&mut service, Call::Ok("a"), 1).await;
    let quick = config("consecutive_failures = 2\nwait_in_open = \"5s\"\nhalf_open_calls = 1");
    assert_eq!(refused(layer.reconfigure(&quick)), "accepted");

    // Two failures in a row open the new key, for the new 5 s.
    calls(&mut service, Call::Fail("c"), 2).await;
    assert_eq!(layer.state(&"c"), Some(State::Open));
    let err = service
        .ready()
        .await
        .unwrap()
        .call(Call::Ok("c"))
        .await
        .unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().expect("rejected");
    assert_eq!(open.retry_after(), Duration::from_secs(5));
    tokio::time::advance(Duration::from_secs(5)).await;
    // One probe judges the half-open.
    calls(&mut service, Call::Ok("c"), 1).await;
    assert_eq!(layer.state(&"c"), Some(State::Closed));
}

#[tokio::test(start_paused = true)]
async fn new_bounds_evict_as_new_keys_come() {
    let (layer, mut service) = layer(&config(""));
    calls(&mut service, Call::Ok("a"), 1).await;
    calls(&mut service, Call::Ok("b"), 1).await;
    assert_eq!(layer.len(), 2);

    // A lower cap: nothing is evicted at once; the next new key evicts down to it.
    assert_eq!(
        refused(layer.reconfigure(&config("max_keys = 1"))),
        "accepted"
    );
    assert_eq!(layer.len(), 2, "nothing is evicted at once");
    calls(&mut service, Call::Ok("c"), 1).await;
    assert_eq!(layer.keys(), ["c"]);

    // A shorter idle timeout: the next new key sweeps the keys idle that long.
    assert_eq!(
        refused(layer.reconfigure(&config("idle_timeout = \"5s\""))),
        "accepted"
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    calls(&mut service, Call::Ok("d"), 1).await;
    assert_eq!(layer.keys(), ["d"], "c, closed and idle for 6 s, was swept");
}

#[tokio::test(start_paused = true)]
async fn a_refused_config_changes_no_key_and_no_bound() {
    let (layer, mut service) = layer(&config(""));
    calls(&mut service, Call::Fail("a"), 2).await;
    // Each refused config also lowers the threshold, the cap and the probe count: none of it
    // may apply.
    let also = "failure_rate_threshold = 0.5\nmax_keys = 1\nwait_in_open = \"5s\"\n";
    for (text, field) in [
        ("name = \"other\"", "name"),
        ("initial_state = \"disabled\"", "initial_state"),
        ("minimum_calls = 0", "minimum_calls"),
        ("sliding_window = { count = 0 }", "sliding_window"),
        ("max_keys = 0", "max_keys"),
        ("idle_timeout = \"0s\"", "idle_timeout"),
    ] {
        let config = config(&format!("{also}{text}"));
        assert_eq!(refused(layer.reconfigure(&config)), field, "{text}");
    }
    // `a` still judges by 1.0 in its window of 10: 3 failures and a success stay closed.
    calls(&mut service, Call::Fail("a"), 1).await;
    calls(&mut service, Call::Ok("a"), 1).await;
    assert_eq!(window_calls(&layer, "a"), 4);
    assert_eq!(layer.state(&"a"), Some(State::Closed));
    // The cap is still 10: new keys evict nothing.
    for key in ["b", "c", "d"] {
        calls(&mut service, Call::Ok(key), 1).await;
    }
    assert_eq!(layer.len(), 4);
    // A new key is made with the built settings: 4 failures open it for 30 s.
    calls(&mut service, Call::Fail("e"), 4).await;
    let err = service
        .ready()
        .await
        .unwrap()
        .call(Call::Ok("e"))
        .await
        .unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().expect("rejected");
    assert_eq!(open.retry_after(), Duration::from_secs(30));
}
