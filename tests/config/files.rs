//! Every field of every `Config` reads, writes back unchanged, and sets what its builder method
//! sets; unknown fields, bad durations and values out of range are errors that name the field as
//! written in the file.

use std::fmt::Debug;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use steadfast::bulkhead::{self, BulkheadLayer};
use steadfast::chaos::{self, ChaosLayer, InjectedFault};
use steadfast::circuit_breaker::{self, CircuitBreakerLayer, SlidingWindow, State};
use steadfast::config::{StackConfig, StackLayers};
use steadfast::retry::{self, Backoff, Jitter, RetryBudget, RetryLayer};
use steadfast::stack::ResilienceStack;
use steadfast::timeout::{self, Elapsed, TimeoutLayer};
use steadfast::{BoxError, ConfigError};
use tower::{Layer, Service, ServiceExt, service_fn};

pub(crate) fn toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// Writes `config` as TOML, YAML and JSON, and checks each reads back equal.
pub(crate) fn round_trips<T>(config: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let text = toml::to_string(config).expect("writes as TOML");
    assert_eq!(
        &toml::<T>(&text).expect("reads its own TOML"),
        config,
        "{text}"
    );
    let text = serde_norway::to_string(config).expect("writes as YAML");
    let back: T = serde_norway::from_str(&text).expect("reads its own YAML");
    assert_eq!(&back, config, "{text}");
    let text = serde_json::to_string(config).expect("writes as JSON");
    let back: T = serde_json::from_str(&text).expect("reads its own JSON");
    assert_eq!(&back, config, "{text}");
}

/// One row of a table: a line of a file, and the builder it must give.
pub(crate) struct Row<B> {
    pub(crate) line: &'static str,
    pub(crate) expected: B,
}

/// Every row: the line reads, writes back unchanged, gives the builder that the methods give,
/// and changes something from the default.
pub(crate) fn check_rows<C, B>(rows: Vec<Row<B>>, to_builder: impl Fn(&C) -> B, default: B)
where
    C: Serialize + DeserializeOwned + PartialEq + Debug + Default,
    B: Debug,
{
    assert_eq!(
        toml::<C>("").unwrap(),
        C::default(),
        "an empty table is the default"
    );
    assert_eq!(
        format!("{:?}", to_builder(&C::default())),
        format!("{default:?}"),
        "Config::default() is the builder's defaults"
    );
    for Row { line, expected } in rows {
        let config: C = toml(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        round_trips(&config);
        let got = format!("{:?}", to_builder(&config));
        assert_eq!(got, format!("{expected:?}"), "{line}");
        assert_ne!(got, format!("{default:?}"), "{line} changes nothing");
    }
}

pub(crate) fn error_of<C: DeserializeOwned + Debug>(text: &str) -> String {
    toml::<C>(text).expect_err(text)
}

#[test]
fn circuit_breaker_fields() {
    let b = CircuitBreakerLayer::builder;
    let rows = vec![
        Row {
            line: r#"name = "payments""#,
            expected: b().name("payments"),
        },
        Row {
            line: "failure_rate_threshold = 0.25",
            expected: b().failure_rate_threshold(0.25),
        },
        Row {
            line: "slow_call_rate_threshold = 0.5",
            expected: b().slow_call_rate_threshold(0.5),
        },
        Row {
            line: r#"slow_call_duration = "2s""#,
            expected: b().slow_call_duration(Duration::from_secs(2)),
        },
        Row {
            line: "sliding_window = { count = 10 }",
            expected: b().sliding_window(SlidingWindow::Count(10)),
        },
        Row {
            line: r#"sliding_window = { time = "1m30s" }"#,
            expected: b().sliding_window(SlidingWindow::Time(Duration::from_secs(90))),
        },
        Row {
            line: r#"bucket_width = "500ms""#,
            expected: b().bucket_width(Duration::from_millis(500)),
        },
        Row {
            line: "minimum_calls = 3",
            expected: b().minimum_calls(3),
        },
        Row {
            line: "consecutive_failures = 4",
            expected: b().consecutive_failures(4),
        },
        Row {
            line: r#"wait_in_open = "1h""#,
            expected: b().wait_in_open(Duration::from_secs(3600)),
        },
        Row {
            line: r#"open_backoff = { multiplier = 2.0, max = "5m" }"#,
            expected: b().open_backoff(2.0, Duration::from_secs(300)),
        },
        Row {
            line: "open_jitter = 0.1",
            expected: b().open_jitter(0.1),
        },
        Row {
            line: "half_open_calls = 2",
            expected: b().half_open_calls(2),
        },
        Row {
            line: r#"max_wait_in_half_open = "10s""#,
            expected: b().max_wait_in_half_open(Duration::from_secs(10)),
        },
        Row {
            line: "shadow = true",
            expected: b().shadow(true),
        },
        Row {
            line: r#"initial_state = "forced_open""#,
            expected: b().initial_state(State::ForcedOpen),
        },
        Row {
            line: r#"initial_state = "disabled""#,
            expected: b().initial_state(State::Disabled),
        },
        Row {
            line: "seed = 7",
            expected: b().seed(7),
        },
        Row {
            line: "max_keys = 64",
            expected: b().max_keys(64),
        },
        Row {
            line: r#"idle_timeout = "5m""#,
            expected: b().idle_timeout(Duration::from_secs(300)),
        },
    ];
    check_rows::<circuit_breaker::Config, _>(rows, circuit_breaker::Config::to_builder, b());
}

#[test]
fn retry_fields() {
    let b = RetryLayer::builder;
    let ms = Duration::from_millis;
    let rows = vec![
        Row {
            line: r#"name = "payments""#,
            expected: b().name("payments"),
        },
        Row {
            line: "max_attempts = 5",
            expected: b().max_attempts(5),
        },
        Row {
            line: r#"backoff = { exponential = "50ms", jitter = "full", max_delay = "2s" }"#,
            expected: b().backoff(
                Backoff::exponential(ms(50))
                    .jitter(Jitter::Full)
                    .max_delay(ms(2000)),
            ),
        },
        Row {
            line: r#"backoff = { constant = "100ms" }"#,
            expected: b().backoff(Backoff::constant(ms(100))),
        },
        Row {
            line: r#"backoff = { exponential = "10ms", multiplier = 3.0, jitter = "equal" }"#,
            expected: b().backoff(
                Backoff::exponential(ms(10))
                    .multiplier(3.0)
                    .jitter(Jitter::Equal),
            ),
        },
        Row {
            line: r#"backoff = { decorrelated = "10ms", max_delay = "1s" }"#,
            expected: b().backoff(Backoff::decorrelated(ms(10)).max_delay(ms(1000))),
        },
        Row {
            line: r#"backoff = { constant = "1s", jitter = "20%" }"#,
            expected: b().backoff(Backoff::constant(ms(1000)).jitter(Jitter::Percent(20))),
        },
        Row {
            line: r#"budget = { ratio = 0.1, min_per_sec = 1, ttl = "5s" }"#,
            expected: b().budget(RetryBudget::new(0.1, 1, Duration::from_secs(5))),
        },
        Row {
            line: "budget = { ratio = 0.5 }",
            expected: b().budget(RetryBudget::new(0.5, 10, Duration::from_secs(10))),
        },
        Row {
            line: "budget = { unlimited = true }",
            expected: b().budget(RetryBudget::unlimited()),
        },
        Row {
            line: r#"min_attempt_time = "1ms""#,
            expected: b().min_attempt_time(ms(1)),
        },
        Row {
            line: "retry_rejections = true",
            expected: b().retry_rejections(true),
        },
        Row {
            line: "seed = 7",
            expected: b().seed(7),
        },
    ];
    check_rows::<retry::Config, _>(rows, retry::Config::to_builder, b());
}

#[test]
fn timeout_fields() {
    let b = TimeoutLayer::builder;
    let rows = vec![
        Row {
            line: r#"name = "db""#,
            expected: b().name("db"),
        },
        Row {
            line: r#"timeout = "250ms""#,
            expected: b().timeout(Duration::from_millis(250)),
        },
    ];
    check_rows::<timeout::Config, _>(rows, timeout::Config::to_builder, b());
}

#[test]
fn bulkhead_fields() {
    let b = BulkheadLayer::builder;
    let rows = vec![
        Row {
            line: r#"name = "db""#,
            expected: b().name("db"),
        },
        Row {
            line: "max_concurrent_calls = 3",
            expected: b().max_concurrent_calls(3),
        },
        Row {
            line: r#"max_wait = "20ms""#,
            expected: b().max_wait(Duration::from_millis(20)),
        },
    ];
    check_rows::<bulkhead::Config, _>(rows, bulkhead::Config::to_builder, b());
}

#[test]
fn chaos_fields() {
    let b = ChaosLayer::builder;
    let ms = Duration::from_millis;
    let rows = vec![
        Row {
            line: r#"name = "game-day""#,
            expected: b().name("game-day"),
        },
        Row {
            line: "error_rate = 0.5",
            expected: b().error_rate(0.5),
        },
        Row {
            line: r#"latency = { rate = 0.1, delay = "200ms" }"#,
            expected: b().latency(0.1, ms(200)),
        },
        Row {
            line: r#"latency_range = { rate = 0.2, min = "50ms", max = "500ms" }"#,
            expected: b().latency_range(0.2, ms(50), ms(500)),
        },
        Row {
            line: r#"outage_at = [{ start = "1m", duration = "30s" }, { start = "5m", duration = "1s" }]"#,
            expected: b()
                .outage_at(ms(60_000), ms(30_000))
                .outage_at(ms(300_000), ms(1000)),
        },
        Row {
            line: "seed = 7",
            expected: b().seed(7),
        },
        Row {
            line: "enabled = false",
            expected: b().enabled(false),
        },
    ];
    check_rows::<chaos::Config, _>(rows, |c| c.to_builder().unwrap(), b());
}

#[test]
fn unknown_and_misspelt_fields_are_named_at_every_level() {
    let cases: Vec<(&str, String)> = vec![
        (
            "failure_rate_treshold",
            error_of::<circuit_breaker::Config>("failure_rate_treshold = 0.5"),
        ),
        (
            "cout",
            error_of::<circuit_breaker::Config>("sliding_window = { cout = 5 }"),
        ),
        (
            "maximum",
            error_of::<circuit_breaker::Config>(
                r#"open_backoff = { multiplier = 2.0, maximum = "1m" }"#,
            ),
        ),
        ("max_attempt", error_of::<retry::Config>("max_attempt = 2")),
        (
            "jiter",
            error_of::<retry::Config>(r#"backoff = { exponential = "50ms", jiter = "full" }"#),
        ),
        (
            "ratoi",
            error_of::<retry::Config>("budget = { ratoi = 0.1 }"),
        ),
        (
            "\"fulll\"",
            error_of::<retry::Config>(r#"backoff = { constant = "1s", jitter = "fulll" }"#),
        ),
        ("timout", error_of::<timeout::Config>(r#"timout = "1s""#)),
        (
            "max_concurrent",
            error_of::<bulkhead::Config>("max_concurrent = 1"),
        ),
        (
            "dleay",
            error_of::<chaos::Config>(r#"latency = { rate = 0.1, dleay = "1s" }"#),
        ),
        (
            "circuit_braker",
            error_of::<StackConfig>("[circuit_braker]\nminimum_calls = 1"),
        ),
        (
            "minimum_call",
            error_of::<StackConfig>("[breakers.payments]\nminimum_call = 1"),
        ),
    ];
    for (name, error) in cases {
        assert!(error.contains(name), "{name} not named in: {error}");
    }
}

#[test]
fn a_bad_duration_names_its_field() {
    let cases: Vec<(&str, String)> = vec![
        (
            "`wait_in_open`",
            error_of::<circuit_breaker::Config>(r#"wait_in_open = "30""#),
        ),
        (
            "`wait_in_open`",
            error_of::<circuit_breaker::Config>("wait_in_open = 30"),
        ),
        (
            "`wait_in_open`",
            error_of::<circuit_breaker::Config>(r#"wait_in_open = "30 parsecs""#),
        ),
        (
            "`sliding_window.time`",
            error_of::<circuit_breaker::Config>("sliding_window = { time = 60 }"),
        ),
        (
            "`backoff.exponential`",
            error_of::<retry::Config>(r#"backoff = { exponential = "5" }"#),
        ),
        (
            "`budget.ttl`",
            error_of::<retry::Config>("budget = { ttl = 10 }"),
        ),
        ("`timeout`", error_of::<timeout::Config>("timeout = 1.5")),
        (
            "`max_wait`",
            error_of::<bulkhead::Config>(r#"max_wait = "-1s""#),
        ),
        (
            "`outage_at.start`",
            error_of::<chaos::Config>(r#"outage_at = [{ start = "1", duration = "1s" }]"#),
        ),
    ];
    for (name, error) in cases {
        assert!(error.contains(name), "{name} not named in: {error}");
    }
    // The same in the other formats.
    let json = serde_json::from_str::<circuit_breaker::Config>(r#"{"wait_in_open": 30}"#);
    assert!(json.unwrap_err().to_string().contains("`wait_in_open`"));
    let yaml = serde_norway::from_str::<circuit_breaker::Config>("wait_in_open: 30");
    assert!(yaml.unwrap_err().to_string().contains("`wait_in_open`"));
}

#[test]
fn a_window_and_a_backoff_have_exactly_one_kind() {
    let both =
        error_of::<circuit_breaker::Config>(r#"sliding_window = { count = 5, time = "1s" }"#);
    assert!(
        both.contains("`sliding_window` needs exactly one of"),
        "{both}"
    );
    let neither = error_of::<circuit_breaker::Config>("sliding_window = {}");
    assert!(
        neither.contains("`sliding_window` needs exactly one of"),
        "{neither}"
    );
    let none = error_of::<retry::Config>(r#"backoff = { max_delay = "1s" }"#);
    assert!(none.contains("exactly one of"), "{none}");
    let two = error_of::<retry::Config>(r#"backoff = { constant = "1s", exponential = "1s" }"#);
    assert!(two.contains("exactly one of"), "{two}");
    let multiplier =
        error_of::<retry::Config>(r#"backoff = { constant = "1s", multiplier = 2.0 }"#);
    assert!(multiplier.contains("`backoff.multiplier`"), "{multiplier}");
    let unlimited = error_of::<retry::Config>("budget = { unlimited = true, ratio = 0.1 }");
    assert!(unlimited.contains("`budget.unlimited`"), "{unlimited}");
}

#[test]
fn values_out_of_range_are_the_builders_errors_naming_the_field() {
    fn field<T>(result: Result<T, ConfigError>) -> &'static str {
        match result {
            Ok(_) => panic!("accepted"),
            Err(error) => error.field(),
        }
    }
    let breaker = |text| CircuitBreakerLayer::from_config(&toml(text).unwrap());
    assert_eq!(
        field(breaker("failure_rate_threshold = 1.5")),
        "failure_rate_threshold"
    );
    assert_eq!(
        field(breaker("failure_rate_threshold = nan")),
        "failure_rate_threshold"
    );
    assert_eq!(
        field(breaker("sliding_window = { count = 0 }")),
        "sliding_window"
    );
    assert_eq!(
        field(breaker(r#"sliding_window = { time = "1ms" }"#)),
        "sliding_window"
    );
    assert_eq!(field(breaker("half_open_calls = 0")), "half_open_calls");
    assert_eq!(field(breaker(r#"wait_in_open = "0s""#)), "wait_in_open");
    assert_eq!(
        field(breaker(
            r#"open_backoff = { multiplier = 0.5, max = "1m" }"#
        )),
        "open_backoff"
    );
    assert_eq!(field(breaker(r#"initial_state = "open""#)), "initial_state");
    let retry = |text| RetryLayer::from_config(&toml(text).unwrap());
    assert_eq!(field(retry("max_attempts = 0")), "max_attempts");
    assert_eq!(
        field(retry(
            r#"backoff = { exponential = "1s", multiplier = 0.5 }"#
        )),
        "backoff"
    );
    assert_eq!(field(retry(r#"budget = { ttl = "2m" }"#)), "budget");
    let timeout = |text| TimeoutLayer::from_config(&toml(text).unwrap());
    assert_eq!(field(timeout(r#"timeout = "0s""#)), "timeout");
    let bulkhead = |text| BulkheadLayer::from_config(&toml(text).unwrap());
    assert_eq!(
        field(bulkhead("max_concurrent_calls = 0")),
        "max_concurrent_calls"
    );
    assert_eq!(field(bulkhead(r#"name = """#)), "name");
    let chaos = |text| ChaosLayer::from_config(&toml(text).unwrap());
    assert_eq!(field(chaos("error_rate = 2.0")), "error_rate");
    assert_eq!(
        field(chaos(r#"latency = { rate = 0.5, delay = "2h" }"#)),
        "latency"
    );
    assert_eq!(
        field(chaos(
            r#"latency = { rate = 0.5, delay = "1s" }
latency_range = { rate = 0.5, min = "1s", max = "2s" }"#
        )),
        "latency_range"
    );
    let stack = |text| StackLayers::from_config(&toml(text).unwrap());
    assert_eq!(
        field(stack("[bulkhead]\nmax_concurrent_calls = 0")),
        "max_concurrent_calls"
    );
}

fn failing() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|_: u32| async { Err::<u32, BoxError>("down".into()) })
}

/// Fails `calls` calls through `breaker` and returns its state.
async fn fail_through(breaker: &CircuitBreakerLayer, calls: usize) -> State {
    let mut service = breaker.layer(failing());
    for _ in 0..calls {
        let _ = service.ready().await.unwrap().call(1).await;
    }
    breaker.state()
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_from_config_behaves_as_its_builder() {
    // The defaults: 20 calls before the window judges, then half failed opens it.
    for breaker in [
        CircuitBreakerLayer::builder().build().unwrap(),
        CircuitBreakerLayer::from_config(&circuit_breaker::Config::default()).unwrap(),
    ] {
        assert_eq!(fail_through(&breaker, 19).await, State::Closed);
        assert_eq!(fail_through(&breaker, 1).await, State::Open);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(breaker.state(), State::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(breaker.state(), State::HalfOpen);
    }
    let breaker = CircuitBreakerLayer::from_config(
        &toml(
            r#"minimum_calls = 2
sliding_window = { count = 4 }
wait_in_open = "1s"
half_open_calls = 1"#,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(fail_through(&breaker, 1).await, State::Closed);
    assert_eq!(fail_through(&breaker, 1).await, State::Open);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(fail_through(&breaker, 1).await, State::Open);
}

#[tokio::test(start_paused = true)]
async fn retry_from_config_behaves_as_its_builder() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    for (text, attempts) in [("", 3), ("max_attempts = 5", 5), ("max_attempts = 1", 1)] {
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let inner = service_fn(move |_: u32| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<u32, BoxError>("down".into()) }
        });
        let config: retry::Config =
            toml(&format!("{text}\nbackoff = {{ constant = \"10ms\" }}")).unwrap();
        let service = RetryLayer::from_config(&config).unwrap().layer(inner);
        assert!(service.oneshot(1).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), attempts, "{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn timeout_from_config_behaves_as_its_builder() {
    let slow = service_fn(|_: u32| async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, BoxError>(1)
    });
    let short = TimeoutLayer::from_config(&toml(r#"timeout = "100ms""#).unwrap()).unwrap();
    let error = short.layer(slow).oneshot(1).await.unwrap_err();
    assert!(error.is::<Elapsed>());
    let default = TimeoutLayer::from_config(&timeout::Config::default()).unwrap();
    assert_eq!(
        default.timeout(),
        TimeoutLayer::builder().build().unwrap().timeout()
    );
    assert_eq!(default.layer(slow).oneshot(1).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_from_config_behaves_as_its_builder() {
    let default = BulkheadLayer::from_config(&bulkhead::Config::default()).unwrap();
    assert_eq!(default.available_permits(), 25);
    let small = BulkheadLayer::from_config(&toml("max_concurrent_calls = 1").unwrap()).unwrap();
    let mut first = small.layer(service_fn(|_: u32| async { Ok::<_, BoxError>(1) }));
    let mut second = first.clone();
    first.ready().await.unwrap();
    assert_eq!(small.available_permits(), 0);
    let rejected = second.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(rejected.is::<bulkhead::BulkheadFull>());
    assert_eq!(first.call(1).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn chaos_from_config_behaves_as_its_builder() {
    let always = ChaosLayer::from_config(&toml("error_rate = 1.0\nseed = 1").unwrap()).unwrap();
    let service = always.layer(service_fn(|_: u32| async { Ok::<_, BoxError>(1) }));
    assert!(service.oneshot(1).await.unwrap_err().is::<InjectedFault>());
    let none = ChaosLayer::from_config(&chaos::Config::default()).unwrap();
    let service = none.layer(service_fn(|_: u32| async { Ok::<_, BoxError>(1) }));
    assert_eq!(service.oneshot(1).await.unwrap(), 1);
}

pub(crate) const STACK_TOML: &str = r#"
[retry]
max_attempts = 2
backoff = { exponential = "50ms", jitter = "full", max_delay = "2s" }

[overall_timeout]
timeout = "2s"

[circuit_breaker]
failure_rate_threshold = 0.25
sliding_window = { time = "60s" }

[bulkhead]
max_concurrent_calls = 64

[attempt_timeout]
timeout = "500ms"

[breakers.payments]
wait_in_open = "1m30s"

[retries.payments]
budget = { unlimited = true }
"#;

const STACK_YAML: &str = r#"
retry:
  max_attempts: 2
  backoff: { exponential: 50ms, jitter: full, max_delay: 2s }
overall_timeout:
  timeout: 2s
circuit_breaker:
  failure_rate_threshold: 0.25
  sliding_window: { time: 60s }
bulkhead:
  max_concurrent_calls: 64
attempt_timeout:
  timeout: 500ms
breakers:
  payments:
    wait_in_open: 1m30s
retries:
  payments:
    budget: { unlimited: true }
"#;

const STACK_JSON: &str = r#"{
  "retry": {
    "max_attempts": 2,
    "backoff": { "exponential": "50ms", "jitter": "full", "max_delay": "2s" }
  },
  "overall_timeout": { "timeout": "2s" },
  "circuit_breaker": { "failure_rate_threshold": 0.25, "sliding_window": { "time": "60s" } },
  "bulkhead": { "max_concurrent_calls": 64 },
  "attempt_timeout": { "timeout": "500ms" },
  "breakers": { "payments": { "wait_in_open": "1m30s" } },
  "retries": { "payments": { "budget": { "unlimited": true } } }
}"#;

fn expected_stack() -> StackConfig {
    let mut config = StackConfig::default();
    let mut retry = retry::Config::default();
    retry.max_attempts = 2;
    retry.backoff = Backoff::exponential(Duration::from_millis(50))
        .jitter(Jitter::Full)
        .max_delay(Duration::from_secs(2));
    config.retry = Some(retry);
    let mut overall = timeout::Config::default();
    overall.timeout = Duration::from_secs(2);
    config.overall_timeout = Some(overall);
    let mut breaker = circuit_breaker::Config::default();
    breaker.failure_rate_threshold = 0.25;
    breaker.sliding_window = SlidingWindow::Time(Duration::from_secs(60));
    config.circuit_breaker = Some(breaker);
    let mut bulkhead = bulkhead::Config::default();
    bulkhead.max_concurrent_calls = 64;
    config.bulkhead = Some(bulkhead);
    let mut attempt = timeout::Config::default();
    attempt.timeout = Duration::from_millis(500);
    config.attempt_timeout = Some(attempt);
    let mut payments = circuit_breaker::Config::default();
    payments.wait_in_open = Duration::from_secs(90);
    config.breakers.insert("payments".into(), payments);
    let mut payments = retry::Config::default();
    payments.budget = RetryBudget::unlimited();
    config.retries.insert("payments".into(), payments);
    config
}

#[test]
fn a_stack_reads_from_toml() {
    let config: StackConfig = toml(STACK_TOML).unwrap();
    assert_eq!(config, expected_stack());
    round_trips(&config);
}

#[test]
fn a_stack_reads_from_yaml() {
    let config: StackConfig = serde_norway::from_str(STACK_YAML).unwrap();
    assert_eq!(config, expected_stack());
}

#[test]
fn a_stack_reads_from_json() {
    let config: StackConfig = serde_json::from_str(STACK_JSON).unwrap();
    assert_eq!(config, expected_stack());
}

#[test]
fn named_instances_take_their_key_as_name() {
    let config: StackConfig = toml(STACK_TOML).unwrap();
    let payments = config.breaker("payments").unwrap();
    assert_eq!(payments.name, "payments");
    assert_eq!(payments.wait_in_open, Duration::from_secs(90));
    assert_eq!(
        CircuitBreakerLayer::from_config(&payments).unwrap().name(),
        "payments"
    );
    assert_eq!(config.retry("payments").unwrap().name, "payments");
    assert!(config.breaker("shipping").is_none());
    let named: StackConfig = toml("[breakers.payments]\nname = \"pay\"").unwrap();
    assert_eq!(named.breaker("payments").unwrap().name, "pay");
}

#[tokio::test(start_paused = true)]
async fn a_stack_from_config_has_the_layers_of_its_sections() {
    let layers = StackLayers::from_config(&toml(STACK_TOML).unwrap()).unwrap();
    assert_eq!(layers.overall_timeout.as_ref().unwrap().name(), "overall");
    assert_eq!(layers.attempt_timeout.as_ref().unwrap().name(), "attempt");
    assert_eq!(layers.bulkhead.as_ref().unwrap().available_permits(), 64);
    let service = layers
        .stack()
        .layer(service_fn(|x: u32| async move { Ok::<_, BoxError>(x + 1) }));
    assert_eq!(service.oneshot(1).await.unwrap(), 2);

    // A missing section is a missing layer: only a bulkhead here.
    let layers =
        StackLayers::from_config(&toml("[bulkhead]\nmax_concurrent_calls = 1").unwrap()).unwrap();
    assert!(layers.retry.is_none() && layers.circuit_breaker.is_none());
    let mut service =
        ResilienceStack::from_config(&toml("[bulkhead]\nmax_concurrent_calls = 1").unwrap())
            .unwrap()
            .layer(service_fn(
                |x: u32| async move { Ok::<_, std::io::Error>(x) },
            ));
    assert_eq!(service.ready().await.unwrap().call(3).await.unwrap(), 3);

    // An empty file is no layer at all.
    let layers = StackLayers::from_config(&StackConfig::default()).unwrap();
    let service = layers.stack().layer(service_fn(
        |x: u32| async move { Ok::<_, std::io::Error>(x) },
    ));
    assert_eq!(service.oneshot(4).await.unwrap(), 4);
}

#[test]
fn the_sample_file_is_every_default() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/steadfast.toml"
    ))
    .expect("examples/steadfast.toml");
    let config: StackConfig = toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let mut defaults = StackConfig::default();
    defaults.retry = Some(retry::Config::default());
    defaults.overall_timeout = Some(timeout::Config::default());
    defaults.circuit_breaker = Some(circuit_breaker::Config::default());
    defaults.bulkhead = Some(bulkhead::Config::default());
    defaults.attempt_timeout = Some(timeout::Config::default());
    assert_eq!(config, defaults);
    // Its commented-out lines are valid too, once uncommented.
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if is_setting(rest) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let all: StackConfig = toml(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert!(all.breaker("payments").is_some());
    StackLayers::from_config(&all).unwrap();
}

/// `[section]` or `key = value`: a setting the sample file shows commented out.
fn is_setting(line: &str) -> bool {
    line.starts_with('[')
        || line.split_once(" = ").is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
}

#[tokio::test(start_paused = true)]
async fn a_breaker_names_its_classifier() {
    use circuit_breaker::ClassifierName;

    let config: circuit_breaker::Config = toml(r#"classify = "http_5xx""#).unwrap();
    assert_eq!(config.classify, ClassifierName::Http5xx);
    round_trips(&config);
    assert_eq!(
        toml::<circuit_breaker::Config>(r#"classify = "grpc""#)
            .unwrap()
            .classify,
        ClassifierName::Grpc
    );
    assert_eq!(
        circuit_breaker::Config::default().classify,
        ClassifierName::Errors
    );
    let typo = error_of::<circuit_breaker::Config>(r#"classify = "http5xx""#);
    assert!(
        typo.contains("http5xx") && typo.contains("http_5xx"),
        "{typo}"
    );
    // An `Err`-only breaker cannot judge responses: refused, naming the field.
    let refused = CircuitBreakerLayer::from_config(&config).unwrap_err();
    assert_eq!(refused.field(), "classify");

    // Over HTTP, the named classifier counts 500s as failures.
    let config: circuit_breaker::Config =
        toml("classify = \"http_5xx\"\nminimum_calls = 2\nsliding_window = { count = 2 }").unwrap();
    let breaker = CircuitBreakerLayer::from_http_config(&config).unwrap();
    let mut service = breaker.layer(service_fn(|_: u32| async {
        Ok::<_, BoxError>(
            axum::http::Response::builder()
                .status(500)
                .body(())
                .unwrap(),
        )
    }));
    for _ in 0..2 {
        let response = service.ready().await.unwrap().call(1).await.unwrap();
        assert_eq!(response.status(), 500);
    }
    assert_eq!(breaker.state(), State::Open);
    // "errors" over HTTP: a 500 is a success.
    let errors = CircuitBreakerLayer::from_http_config(
        &toml("minimum_calls = 2\nsliding_window = { count = 2 }").unwrap(),
    )
    .unwrap();
    let mut service = errors.layer(service_fn(|_: u32| async {
        Ok::<_, BoxError>(
            axum::http::Response::builder()
                .status(500)
                .body(())
                .unwrap(),
        )
    }));
    for _ in 0..2 {
        service.ready().await.unwrap().call(1).await.unwrap();
    }
    assert_eq!(errors.state(), State::Closed);
}
