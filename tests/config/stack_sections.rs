//! The second wave's sections of a `StackConfig`: `[rate_limit]`, `[adaptive_limit]` and
//! `[hedge]` in the stack's order, with named instances, read from TOML, YAML and JSON, built
//! into the stack, and reloaded all or nothing.

use std::time::Duration;

use steadfast::config::{StackConfig, StackLayers};
use steadfast::limit::{self, Vegas};
use steadfast::rate_limit::{self, Limit, RateLimited};
use steadfast::{BoxError, ConfigError, hedge, retry};
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::files::{round_trips, toml};

const TOML: &str = r#"
[rate_limit]
limit = { calls = 100, per = "1s" }
burst = 10

[adaptive_limit]
min_limit = 5
max_limit = 50
initial_limit = 10
algorithm = { vegas = { probe_multiplier = 10 } }

[retry]
max_attempts = 2

[hedge]
delay = "20ms"

[bulkhead]
max_concurrent_calls = 8

[hedges.search]
delay = "5ms"

[adaptive_limits.ingest]
max_limit = 400

[rate_limits.partner]
limit = { calls = 10, per = "1s" }
"#;

const YAML: &str = r#"
rate_limit:
  limit: { calls: 100, per: 1s }
  burst: 10
adaptive_limit:
  min_limit: 5
  max_limit: 50
  initial_limit: 10
  algorithm: { vegas: { probe_multiplier: 10 } }
retry:
  max_attempts: 2
hedge:
  delay: 20ms
bulkhead:
  max_concurrent_calls: 8
hedges:
  search: { delay: 5ms }
adaptive_limits:
  ingest: { max_limit: 400 }
rate_limits:
  partner:
    limit: { calls: 10, per: 1s }
"#;

const JSON: &str = r#"{
  "rate_limit": { "limit": { "calls": 100, "per": "1s" }, "burst": 10 },
  "adaptive_limit": {
    "min_limit": 5, "max_limit": 50, "initial_limit": 10,
    "algorithm": { "vegas": { "probe_multiplier": 10 } }
  },
  "retry": { "max_attempts": 2 },
  "hedge": { "delay": "20ms" },
  "bulkhead": { "max_concurrent_calls": 8 },
  "hedges": { "search": { "delay": "5ms" } },
  "adaptive_limits": { "ingest": { "max_limit": 400 } },
  "rate_limits": { "partner": { "limit": { "calls": 10, "per": "1s" } } }
}"#;

fn expected() -> StackConfig {
    let mut config = StackConfig::default();
    let mut rate = rate_limit::Config::default();
    rate.limit = Some(Limit::new(100, Duration::from_secs(1)));
    rate.burst = 10;
    config.rate_limit = Some(rate);
    let mut adaptive = limit::Config::default();
    adaptive.min_limit = Some(5);
    adaptive.max_limit = Some(50);
    adaptive.initial_limit = 10;
    adaptive.algorithm = Vegas::new().probe_multiplier(10).into();
    config.adaptive_limit = Some(adaptive);
    let mut retry = retry::Config::default();
    retry.max_attempts = 2;
    config.retry = Some(retry);
    let mut hedge = hedge::Config::default();
    hedge.delay = Duration::from_millis(20);
    config.hedge = Some(hedge);
    let mut bulkhead = steadfast::bulkhead::Config::default();
    bulkhead.max_concurrent_calls = 8;
    config.bulkhead = Some(bulkhead);
    let mut search = hedge::Config::default();
    search.delay = Duration::from_millis(5);
    config.hedges.insert("search".into(), search);
    let mut ingest = limit::Config::default();
    ingest.max_limit = Some(400);
    config.adaptive_limits.insert("ingest".into(), ingest);
    let mut partner = rate_limit::Config::default();
    partner.limit = Some(Limit::new(10, Duration::from_secs(1)));
    config.rate_limits.insert("partner".into(), partner);
    config
}

#[test]
fn the_new_sections_read_from_toml_yaml_and_json_and_write_back() {
    let from_toml: StackConfig = toml(TOML).unwrap();
    assert_eq!(from_toml, expected());
    let from_yaml: StackConfig = serde_norway::from_str(YAML).unwrap();
    assert_eq!(from_yaml, expected());
    let from_json: StackConfig = serde_json::from_str(JSON).unwrap();
    assert_eq!(from_json, expected());
    round_trips(&expected());
    // Written in the stack's order, outermost first.
    let written = toml::to_string(&expected()).unwrap();
    let at = |section: &str| written.find(section).unwrap_or_else(|| panic!("{section}"));
    assert!(at("[rate_limit]") < at("[adaptive_limit]"));
    assert!(at("[adaptive_limit]") < at("[retry]"));
    assert!(at("[retry]") < at("[hedge]"));
    assert!(at("[hedge]") < at("[bulkhead]"));
}

#[test]
fn named_instances_of_the_new_layers_take_their_key_as_name() {
    let config: StackConfig = toml(TOML).unwrap();
    let search = config.hedge("search").unwrap();
    assert_eq!(
        (search.name.as_str(), search.delay),
        ("search", Duration::from_millis(5))
    );
    let ingest = config.adaptive_limit("ingest").unwrap();
    assert_eq!(
        (ingest.name.as_str(), ingest.max_limit),
        ("ingest", Some(400))
    );
    let partner = config.rate_limit("partner").unwrap();
    assert_eq!(partner.name, "partner");
    assert!(config.hedge("other").is_none());
    assert!(config.adaptive_limit("other").is_none());
    assert!(config.rate_limit("other").is_none());
}

fn field(result: Result<(), ConfigError>) -> &'static str {
    result.expect_err("refused").field()
}

#[tokio::test(start_paused = true)]
async fn the_stack_has_the_new_layers_in_their_places() {
    let config: StackConfig = toml(TOML).unwrap();
    let layers = StackLayers::from_config(&config).unwrap();
    let adaptive = layers.adaptive_limit.clone().unwrap();
    assert_eq!((adaptive.limit(), adaptive.min_limit()), (10, 5));
    assert!(layers.hedge.is_some() && layers.rate_limit.is_some());

    // The second wave's layers go in with the stack's setters, in their places.
    let mut service = layers
        .stack()
        .rate_limit(layers.rate_limit.clone().unwrap())
        .adaptive_limit(adaptive.clone())
        .hedge(layers.hedge.clone().unwrap())
        .layer(service_fn(|x: u32| async move { Ok::<_, BoxError>(x + 1) }));
    // A burst of 10 from idle, then the rate limit (outermost) rejects at once.
    for n in 0..10 {
        assert_eq!(service.ready().await.unwrap().call(n).await.unwrap(), n + 1);
    }
    let rejected = service.ready().await.unwrap().call(0).await.unwrap_err();
    assert!(rejected.is::<RateLimited>(), "{rejected}");
    assert_eq!(adaptive.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_stack_reconfigures_the_new_layers_all_or_nothing() {
    let config: StackConfig = toml(TOML).unwrap();
    let layers = StackLayers::from_config(&config).unwrap();
    let adaptive = layers.adaptive_limit.clone().unwrap();
    let bulkhead = layers.bulkhead.clone().unwrap();

    // A bad setting of the adaptive limit, named by its path: nothing changes.
    let mut bad = config.clone();
    bad.bulkhead.as_mut().unwrap().max_concurrent_calls = 4;
    bad.adaptive_limit.as_mut().unwrap().algorithm = Vegas::new().probe_multiplier(0).into();
    assert_eq!(
        field(layers.reconfigure(&bad)),
        "algorithm.vegas.probe_multiplier"
    );
    assert_eq!(bulkhead.max_concurrent_calls(), 8);

    // A hedge change it refuses (its limited budget made unlimited): nothing changes either.
    let mut hedged = config.clone();
    hedged.adaptive_limit.as_mut().unwrap().max_limit = Some(8);
    hedged.adaptive_limit.as_mut().unwrap().initial_limit = 8;
    hedged.hedge.as_mut().unwrap().budget = retry::RetryBudget::unlimited();
    assert_eq!(field(layers.reconfigure(&hedged)), "budget");
    assert_eq!((adaptive.limit(), adaptive.max_limit()), (10, 50));

    // A section can neither appear nor disappear.
    let mut removed = config.clone();
    removed.hedge = None;
    assert_eq!(field(layers.reconfigure(&removed)), "hedge");
    let mut removed = config.clone();
    removed.rate_limit = None;
    assert_eq!(field(layers.reconfigure(&removed)), "rate_limit");

    // Accepted: the adaptive limit's new bounds apply, the limit clamped into them.
    let mut good = config.clone();
    good.adaptive_limit.as_mut().unwrap().max_limit = Some(8);
    good.adaptive_limit.as_mut().unwrap().initial_limit = 8;
    good.bulkhead.as_mut().unwrap().max_concurrent_calls = 4;
    layers.reconfigure(&good).unwrap();
    assert_eq!((adaptive.limit(), adaptive.max_limit()), (8, 8));
    assert_eq!(bulkhead.max_concurrent_calls(), 4);
    layers.reconfigure(&good).unwrap();
}
