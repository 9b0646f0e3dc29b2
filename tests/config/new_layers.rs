//! The second wave's layers in files: pool, hedge, limit and rate_limit. Every field reads,
//! writes back unchanged and sets what its builder method sets; unknown fields and bad
//! durations name themselves; `Config::default()` builds what `builder().build()` builds; a
//! reload applies what it can and refuses the rest by name.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::hedge::{self, HedgeLayer};
use steadfast::limit::{self, AdaptiveLimitLayer, Aimd, Gradient2, LimitExceeded, Vegas};
use steadfast::pool::{self, EndpointState, Pool};
use steadfast::rate_limit::{self, RateLimitLayer, RateLimited};
use steadfast::retry::RetryBudget;
use steadfast::{BoxError, ConfigError};
use tower::{Layer, Service, ServiceExt, service_fn};

use super::files::{Row, check_rows, error_of, round_trips, toml};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn pool_fields() {
    let b = Pool::builder;
    let rows = vec![
        Row {
            line: r#"name = "replicas""#,
            expected: b().name("replicas"),
        },
        Row {
            line: "consecutive_failures = 3",
            expected: b().consecutive_failures(3),
        },
        Row {
            line: r#"base_ejection_time = "10s""#,
            expected: b().base_ejection_time(secs(10)),
        },
        Row {
            line: r#"max_ejection_time = "1h""#,
            expected: b().max_ejection_time(secs(3600)),
        },
        Row {
            line: "max_ejected_fraction = 0.5",
            expected: b().max_ejected_fraction(0.5),
        },
        Row {
            line: "panic_threshold = 0.0",
            expected: b().panic_threshold(0.0),
        },
        Row {
            line: "failure_rate = { threshold = 0.25, calls = 50 }",
            expected: b().failure_rate(0.25, 50),
        },
        Row {
            line: "unhealthy_threshold = 3",
            expected: b().unhealthy_threshold(3),
        },
        Row {
            line: "healthy_threshold = 4",
            expected: b().healthy_threshold(4),
        },
        Row {
            line: "seed = 42",
            expected: b().seed(42),
        },
    ];
    check_rows::<pool::Config, _>(rows, |c| c.to_builder().unwrap(), b());
}

#[test]
fn hedge_fields() {
    let b = HedgeLayer::builder;
    let rows = vec![
        Row {
            line: r#"name = "reads""#,
            expected: b().name("reads"),
        },
        Row {
            line: r#"delay = "20ms""#,
            expected: b().delay(ms(20)),
        },
        Row {
            line: "delay_percentile = 0.95",
            expected: b().delay_percentile(0.95),
        },
        Row {
            line: "min_samples = 7",
            expected: b().min_samples(7),
        },
        Row {
            line: r#"latency_window = "1m""#,
            expected: b().latency_window(secs(60)),
        },
        Row {
            line: "max_hedged_attempts = 3",
            expected: b().max_hedged_attempts(3),
        },
        Row {
            line: r#"budget = { ratio = 0.5, min_per_sec = 2, ttl = "5s" }"#,
            expected: b().budget(RetryBudget::new(0.5, 2, secs(5))),
        },
        Row {
            // What the table leaves out is the hedge's default (ratio 0.1), not retry's (0.2).
            line: "budget = { min_per_sec = 3 }",
            expected: b().budget(RetryBudget::new(0.1, 3, secs(10))),
        },
        Row {
            line: "budget = { unlimited = true }",
            expected: b().budget(RetryBudget::unlimited()),
        },
    ];
    check_rows::<hedge::Config, _>(rows, |c| c.to_builder(), b());
}

#[test]
fn limit_fields() {
    let b = AdaptiveLimitLayer::builder;
    let rows = vec![
        Row {
            line: r#"name = "api""#,
            expected: b().name("api"),
        },
        Row {
            line: "initial_limit = 50",
            expected: b().initial_limit(50),
        },
        Row {
            line: "min_limit = 5",
            expected: b().min_limit(5),
        },
        Row {
            line: "max_limit = 500",
            expected: b().max_limit(500),
        },
        Row {
            line: "algorithm = { gradient2 = { smoothing = 0.5 } }",
            expected: b().algorithm(Gradient2::new().smoothing(0.5)),
        },
        Row {
            line: "algorithm = { gradient2 = { rtt_tolerance = 2.0, long_window = 100, \
                   short_window = 5, queue_size = 8 } }",
            expected: b().algorithm(
                Gradient2::new()
                    .rtt_tolerance(2.0)
                    .long_window(100)
                    .short_window(5)
                    .queue_size(8),
            ),
        },
        Row {
            line: "algorithm = { vegas = {} }",
            expected: b().algorithm(Vegas::new()),
        },
        Row {
            line: "algorithm = { vegas = { smoothing = 0.5, probe_multiplier = 10 } }",
            expected: b().algorithm(Vegas::new().smoothing(0.5).probe_multiplier(10)),
        },
        Row {
            line: r#"algorithm = { aimd = { backoff_ratio = 0.8, timeout = "1s" } }"#,
            expected: b().algorithm(Aimd::new().backoff_ratio(0.8).timeout(secs(1))),
        },
        Row {
            line: r#"window = "1s""#,
            expected: b().window(secs(1)),
        },
        Row {
            line: "window_samples = 1",
            expected: b().window_samples(1),
        },
        Row {
            line: "seed = 42",
            expected: b().seed(42),
        },
    ];
    check_rows::<limit::Config, _>(rows, |c| c.to_builder(), b());
}

#[test]
fn rate_limit_fields() {
    let b = RateLimitLayer::builder;
    let rows = vec![
        Row {
            line: r#"name = "tenants""#,
            expected: b().name("tenants"),
        },
        Row {
            line: r#"limit = { calls = 100, per = "1s" }"#,
            expected: b().limit(100, secs(1)),
        },
        Row {
            line: "burst = 10",
            expected: b().burst(10),
        },
        Row {
            line: r#"max_wait = "250ms""#,
            expected: b().max_wait(ms(250)),
        },
        Row {
            line: "max_keys = 64",
            expected: b().max_keys(64),
        },
        Row {
            line: r#"idle_timeout = "5m""#,
            expected: b().idle_timeout(secs(300)),
        },
    ];
    check_rows::<rate_limit::Config, _>(rows, |c| c.to_builder(), b());
}

#[test]
fn unknown_and_misspelt_fields_are_named_at_every_level() {
    let cases: Vec<(&str, String)> = vec![
        (
            "consecutive_failure",
            error_of::<pool::Config>("consecutive_failure = 1"),
        ),
        (
            "treshold",
            error_of::<pool::Config>("failure_rate = { treshold = 0.5, calls = 10 }"),
        ),
        (
            "health_check",
            error_of::<pool::Config>(r#"health_check = "1s""#),
        ),
        ("dealy", error_of::<hedge::Config>(r#"dealy = "1s""#)),
        (
            "min_per_second",
            error_of::<hedge::Config>("budget = { min_per_second = 1 }"),
        ),
        ("max_limt", error_of::<limit::Config>("max_limt = 1")),
        (
            "gradient",
            error_of::<limit::Config>("algorithm = { gradient = {} }"),
        ),
        (
            "smothing",
            error_of::<limit::Config>("algorithm = { vegas = { smothing = 0.5 } }"),
        ),
        (
            "ratio",
            error_of::<limit::Config>("algorithm = { aimd = { ratio = 0.5 } }"),
        ),
        ("brust", error_of::<rate_limit::Config>("brust = 2")),
        (
            "n",
            error_of::<rate_limit::Config>(r#"limit = { n = 1, per = "1s" }"#),
        ),
    ];
    for (name, error) in cases {
        assert!(
            error.contains(&format!("`{name}`")),
            "{name} not named in: {error}"
        );
    }
}

#[test]
fn a_bad_duration_names_its_field() {
    let cases: Vec<(&str, String)> = vec![
        (
            "`base_ejection_time`",
            error_of::<pool::Config>("base_ejection_time = 30"),
        ),
        (
            "`max_ejection_time`",
            error_of::<pool::Config>(r#"max_ejection_time = "5""#),
        ),
        ("`delay`", error_of::<hedge::Config>(r#"delay = "fast""#)),
        (
            "`latency_window`",
            error_of::<hedge::Config>("latency_window = 10"),
        ),
        (
            "`budget.ttl`",
            error_of::<hedge::Config>("budget = { ttl = 10 }"),
        ),
        ("`window`", error_of::<limit::Config>(r#"window = "100""#)),
        (
            "`algorithm.aimd.timeout`",
            error_of::<limit::Config>("algorithm = { aimd = { timeout = 5 } }"),
        ),
        (
            "`limit.per`",
            error_of::<rate_limit::Config>("limit = { calls = 1, per = 1 }"),
        ),
        (
            "`max_wait`",
            error_of::<rate_limit::Config>(r#"max_wait = "-1s""#),
        ),
        (
            "`idle_timeout`",
            error_of::<rate_limit::Config>(r#"idle_timeout = "1 fortnight""#),
        ),
    ];
    for (name, error) in cases {
        assert!(error.contains(name), "{name} not named in: {error}");
    }
    let json = serde_json::from_str::<rate_limit::Config>(r#"{"max_wait": 1}"#);
    assert!(json.unwrap_err().to_string().contains("`max_wait`"));
    let yaml = serde_norway::from_str::<hedge::Config>("delay: 1");
    assert!(yaml.unwrap_err().to_string().contains("`delay`"));
}

#[test]
fn tables_have_exactly_their_parts() {
    let two = error_of::<limit::Config>("algorithm = { vegas = {}, aimd = {} }");
    assert!(two.contains("`algorithm` needs exactly one of"), "{two}");
    let none = error_of::<limit::Config>("algorithm = {}");
    assert!(none.contains("`algorithm` needs exactly one of"), "{none}");
    let half = error_of::<rate_limit::Config>("limit = { calls = 1 }");
    assert!(half.contains("`per`"), "{half}");
    let half = error_of::<pool::Config>("failure_rate = { threshold = 0.5 }");
    assert!(half.contains("`calls`"), "{half}");
}

#[test]
fn values_out_of_range_are_the_builders_errors_naming_the_field() {
    fn field<T>(result: Result<T, ConfigError>) -> &'static str {
        match result {
            Ok(_) => "accepted",
            Err(e) => e.field(),
        }
    }
    let pool = |text: &str| field(toml::<pool::Config>(text).unwrap().to_builder());
    assert_eq!(pool("consecutive_failures = 0"), "consecutive_failures");
    assert_eq!(pool(r#"base_ejection_time = "0s""#), "base_ejection_time");
    assert_eq!(pool(r#"base_ejection_time = "10m""#), "max_ejection_time");
    assert_eq!(pool("max_ejected_fraction = 1.5"), "max_ejected_fraction");
    assert_eq!(pool("panic_threshold = -0.1"), "panic_threshold");
    assert_eq!(
        pool("failure_rate = { threshold = 0.0, calls = 10 }"),
        "failure_rate"
    );
    assert_eq!(
        pool("failure_rate = { threshold = 0.5, calls = 0 }"),
        "failure_rate"
    );
    assert_eq!(pool("unhealthy_threshold = 0"), "unhealthy_threshold");
    assert_eq!(pool("healthy_threshold = 70000"), "healthy_threshold");
    assert_eq!(pool(r#"name = """#), "name");

    let hedge = |text: &str| field(HedgeLayer::from_config(&toml(text).unwrap()));
    assert_eq!(hedge("max_hedged_attempts = 0"), "max_hedged_attempts");
    assert_eq!(hedge("max_hedged_attempts = 11"), "max_hedged_attempts");
    assert_eq!(hedge("delay_percentile = 1.5"), "delay_percentile");
    assert_eq!(
        hedge("delay_percentile = 0.9\nmin_samples = 0"),
        "min_samples"
    );
    assert_eq!(
        hedge("delay_percentile = 0.9\nlatency_window = \"10ms\""),
        "latency_window"
    );
    assert_eq!(hedge(r#"budget = { ttl = "2m" }"#), "budget");

    let limit = |text: &str| field(AdaptiveLimitLayer::from_config(&toml(text).unwrap()));
    assert_eq!(limit("initial_limit = 0"), "initial_limit");
    assert_eq!(limit("min_limit = 30\nmax_limit = 10"), "min_limit");
    assert_eq!(
        limit("initial_limit = 300\nmax_limit = 200"),
        "initial_limit"
    );
    assert_eq!(limit("window_samples = 0"), "window_samples");
    assert_eq!(limit(r#"name = """#), "name");
    assert_eq!(
        limit("algorithm = { gradient2 = { smoothing = 2.0 } }"),
        "algorithm.gradient2.smoothing"
    );
    assert_eq!(
        limit("algorithm = { gradient2 = { rtt_tolerance = 0.5 } }"),
        "algorithm.gradient2.rtt_tolerance"
    );
    assert_eq!(
        limit("algorithm = { vegas = { probe_multiplier = 0 } }"),
        "algorithm.vegas.probe_multiplier"
    );
    assert_eq!(
        limit("algorithm = { aimd = { backoff_ratio = 1.0 } }"),
        "algorithm.aimd.backoff_ratio"
    );
    assert_eq!(
        limit(r#"algorithm = { aimd = { timeout = "0s" } }"#),
        "algorithm.aimd.timeout"
    );

    let rate = |text: &str| field(RateLimitLayer::from_config(&toml(text).unwrap()));
    assert_eq!(rate(""), "limit");
    assert_eq!(rate(r#"limit = { calls = 0, per = "1s" }"#), "limit");
    assert_eq!(rate(r#"limit = { calls = 1, per = "0s" }"#), "limit");
    assert_eq!(
        rate(
            r#"limit = { calls = 1, per = "1s" }
burst = 0"#
        ),
        "burst"
    );
    assert_eq!(
        rate(
            r#"limit = { calls = 1, per = "1s" }
max_wait = "400days""#
        ),
        "max_wait"
    );
}

#[tokio::test(start_paused = true)]
async fn default_configs_build_what_the_builders_build() {
    // The pool: the same builder (compared field by field through Debug in `pool_fields`), so
    // the same pool; here, it builds.
    let pool = pool::Config::default()
        .to_builder()
        .unwrap()
        .build([("a", ok_service())])
        .unwrap();
    assert_eq!(pool.len(), 1);

    let (file, code) = (
        HedgeLayer::from_config(&hedge::Config::default()).unwrap(),
        HedgeLayer::builder().build().unwrap(),
    );
    assert_eq!(file.max_hedged_attempts(), code.max_hedged_attempts());
    assert_eq!(file.current_delay(), code.current_delay());
    assert_eq!(file.budget_remaining(), code.budget_remaining());

    let (file, code) = (
        AdaptiveLimitLayer::from_config(&limit::Config::default()).unwrap(),
        AdaptiveLimitLayer::builder().build().unwrap(),
    );
    assert_eq!(
        (file.limit(), file.min_limit(), file.max_limit()),
        (code.limit(), code.min_limit(), code.max_limit())
    );

    // The rate limit has no default rate: both refuse, naming it.
    let file = RateLimitLayer::from_config(&rate_limit::Config::default()).unwrap_err();
    let code = RateLimitLayer::builder().build().unwrap_err();
    assert_eq!(
        (file.field(), file.to_string()),
        (code.field(), code.to_string())
    );
}

fn ok_service() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|n: u32| async move { Ok::<_, BoxError>(n) })
}

/// A service that counts its calls, fails or succeeds as told, and takes `latency`.
fn counting(
    calls: &Arc<AtomicUsize>,
    fail: bool,
    latency: Duration,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send + Sync {
    let calls = Arc::clone(calls);
    service_fn(move |n: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(latency).await;
            if fail {
                Err::<u32, BoxError>("down".into())
            } else {
                Ok(n)
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn pool_from_a_file_ejects_as_its_builder() {
    let a_calls = Arc::new(AtomicUsize::new(0));
    let b_calls = Arc::new(AtomicUsize::new(0));
    let config: pool::Config = toml(
        "consecutive_failures = 2\nmax_ejected_fraction = 0.5\npanic_threshold = 0.0\n\
         base_ejection_time = \"1s\"",
    )
    .unwrap();
    let mut pool = config
        .to_builder()
        .unwrap()
        .build([
            ("a", counting(&a_calls, true, Duration::ZERO)),
            ("b", counting(&b_calls, false, Duration::ZERO)),
        ])
        .unwrap();
    let state_of_a = |pool: &Pool<&'static str, _>| {
        pool.endpoints()
            .into_iter()
            .find(|e| *e.key() == "a")
            .map(|e| e.state())
    };
    while state_of_a(&pool) == Some(EndpointState::Healthy) {
        let _ = pool.ready().await.unwrap().call(1).await;
    }
    assert_eq!(
        a_calls.load(Ordering::SeqCst),
        2,
        "ejected after 2 in a row"
    );
    for _ in 0..10 {
        pool.ready().await.unwrap().call(1).await.unwrap();
    }
    assert_eq!(a_calls.load(Ordering::SeqCst), 2, "no call while ejected");
    tokio::time::advance(secs(1)).await;
    assert_eq!(state_of_a(&pool), Some(EndpointState::Healthy));
}

#[tokio::test(start_paused = true)]
async fn pool_from_a_file_takes_a_health_check() {
    let config: pool::Config = toml("unhealthy_threshold = 1").unwrap();
    let pool = config
        .to_builder()
        .unwrap()
        .health_check(secs(1), |key: &'static str| async move { key != "a" })
        .build([("a", ok_service()), ("b", ok_service())])
        .unwrap();
    tokio::time::advance(secs(1)).await;
    tokio::task::yield_now().await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let a = pool
        .endpoints()
        .into_iter()
        .find(|e| *e.key() == "a")
        .unwrap();
    assert_eq!(a.state(), EndpointState::Unhealthy, "one failed probe");
}

#[tokio::test(start_paused = true)]
async fn hedge_from_a_file_behaves_as_its_builder() {
    // A call that takes 30 ms: the default delay (50 ms) sends no hedge; a 10 ms delay does.
    for (text, attempts) in [("", 1), (r#"delay = "10ms""#, 2)] {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = HedgeLayer::from_config(&toml(text).unwrap()).unwrap();
        let service = layer.layer(counting(&calls, false, ms(30)));
        assert_eq!(service.oneshot(7).await.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), attempts, "{text:?}");
    }
    let layer = HedgeLayer::from_config(&toml("max_hedged_attempts = 3").unwrap()).unwrap();
    assert_eq!(layer.max_hedged_attempts(), 3);
    let layer = HedgeLayer::from_config(&toml("delay_percentile = 0.9").unwrap()).unwrap();
    assert_eq!(
        layer.current_delay(),
        None,
        "no timed hedge before a full window"
    );
}

#[tokio::test(start_paused = true)]
async fn limit_from_a_file_behaves_as_its_builder() {
    let config: limit::Config = toml("initial_limit = 1\nmin_limit = 1\nmax_limit = 1").unwrap();
    let layer = AdaptiveLimitLayer::from_config(&config).unwrap();
    assert_eq!(
        (layer.limit(), layer.min_limit(), layer.max_limit()),
        (1, 1, 1)
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let mut first = layer.layer(counting(&calls, false, secs(1)));
    let mut second = first.clone();
    let held = first.ready().await.unwrap().call(1);
    let rejected = second.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(rejected.is::<LimitExceeded>(), "{rejected}");
    assert_eq!(held.await.unwrap(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_from_a_file_behaves_as_its_builder() {
    let config: rate_limit::Config = toml(
        r#"limit = { calls = 10, per = "1s" }
burst = 2"#,
    )
    .unwrap();
    let layer = RateLimitLayer::from_config(&config).unwrap();
    let mut service = layer.layer(ok_service());
    for n in 0..2 {
        service.ready().await.unwrap().call(n).await.unwrap();
    }
    let error = service.ready().await.unwrap().call(2).await.unwrap_err();
    let limited = error.downcast_ref::<RateLimited>().expect("rate limited");
    assert_eq!(limited.retry_after(), ms(100));
    tokio::time::advance(ms(100)).await;
    service.ready().await.unwrap().call(3).await.unwrap();

    // max_wait: the third call waits its turn instead.
    let config: rate_limit::Config = toml(
        r#"limit = { calls = 10, per = "1s" }
max_wait = "100ms""#,
    )
    .unwrap();
    let layer = RateLimitLayer::from_config(&config).unwrap();
    let mut service = layer.layer(ok_service());
    service.ready().await.unwrap().call(0).await.unwrap();
    assert_eq!(layer.wait_time(), ms(100));
    service.ready().await.unwrap().call(1).await.unwrap();

    // A keyed limiter from the same file.
    let keyed = config.to_builder().build_keyed(|n: &u32| *n % 2).unwrap();
    let mut service = keyed.layer(ok_service());
    service.ready().await.unwrap().call(0).await.unwrap();
    service.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(keyed.len(), 2);
}

fn refused(result: Result<(), ConfigError>) -> &'static str {
    match result {
        Ok(()) => "accepted",
        Err(e) => e.field(),
    }
}

#[tokio::test(start_paused = true)]
async fn hedge_reconfigure_applies_the_settings_and_refuses_a_bad_file_by_name() {
    let base = r#"name = "reads"
budget = { ratio = 0.1, min_per_sec = 10, ttl = "10s" }"#;
    let layer = HedgeLayer::from_config(&toml(base).unwrap()).unwrap();
    let before = layer.budget_remaining();
    let reload = |text: &str| refused(layer.reconfigure(&toml(text).unwrap()));

    assert_eq!(reload(base), "accepted", "an unchanged reload passes");
    for (text, field) in [
        (r#"name = "other""#, "name"),
        ("name = \"reads\"\nbudget = { unlimited = true }", "budget"),
        (
            "name = \"reads\"\nmax_hedged_attempts = 0",
            "max_hedged_attempts",
        ),
        (
            "name = \"reads\"\ndelay_percentile = 1.5",
            "delay_percentile",
        ),
    ] {
        assert_eq!(reload(text), field, "{text}");
        assert_eq!(layer.budget_remaining(), before, "{text} changed nothing");
        assert_eq!(layer.current_delay(), Some(Duration::from_millis(50)));
        assert_eq!(layer.max_hedged_attempts(), 1);
    }
    // The budget is live: a lower floor leaves fewer hedges at once.
    assert_eq!(
        reload("name = \"reads\"\nbudget = { ratio = 0.1, min_per_sec = 1, ttl = \"10s\" }"),
        "accepted"
    );
    assert_eq!(
        (before, layer.budget_remaining()),
        (100, 10),
        "min_per_sec × ttl"
    );
    // So are the delay and the attempts (tests/hedge.rs checks what they do).
    assert_eq!(
        reload("name = \"reads\"\ndelay = \"20ms\"\nmax_hedged_attempts = 3"),
        "accepted"
    );
    assert_eq!(layer.current_delay(), Some(Duration::from_millis(20)));
    assert_eq!(layer.max_hedged_attempts(), 3);
    assert_eq!(
        reload("name = \"reads\"\ndelay_percentile = 0.9"),
        "accepted"
    );
    assert_eq!(layer.current_delay(), None, "no window has samples yet");
}

#[tokio::test(start_paused = true)]
async fn hedge_reconfigure_leaves_a_shared_budget_to_its_owner() {
    use steadfast::retry::SharedBudget;

    let shared = SharedBudget::new(RetryBudget::new(0.1, 5, secs(10)));
    let layer = hedge::Config::default()
        .to_builder()
        .shared_budget(shared)
        .build()
        .unwrap();
    let before = layer.budget_remaining();
    assert_eq!(
        refused(layer.reconfigure(&hedge::Config::default())),
        "accepted"
    );
    let other = toml::<hedge::Config>("budget = { min_per_sec = 1 }").unwrap();
    assert_eq!(refused(layer.reconfigure(&other)), "budget");
    assert_eq!(layer.budget_remaining(), before);
}

#[tokio::test(start_paused = true)]
async fn limit_reconfigure_applies_bounds_algorithm_and_window_and_names_a_bad_value() {
    let base = "min_limit = 5\nmax_limit = 50\ninitial_limit = 10\nalgorithm = { vegas = {} }";
    let layer = AdaptiveLimitLayer::from_config(&toml(base).unwrap()).unwrap();
    let clone = layer.clone();
    let reload = |text: &str| refused(layer.reconfigure(&toml(text).unwrap()));
    assert_eq!(reload(base), "accepted");
    assert_eq!(
        reload(&base.replace("initial_limit = 10", "initial_limit = 20")),
        "accepted",
        "the initial limit is past: checked, not applied"
    );
    assert_eq!(layer.limit(), 10);

    // New bounds: the limit is clamped into them at once, on every clone.
    assert_eq!(
        reload("min_limit = 2\nmax_limit = 8\ninitial_limit = 4\nalgorithm = { vegas = {} }"),
        "accepted"
    );
    assert_eq!(
        (clone.limit(), clone.min_limit(), clone.max_limit()),
        (8, 2, 8)
    );
    assert_eq!(
        reload("min_limit = 12\nmax_limit = 40\ninitial_limit = 12\nalgorithm = { vegas = {} }"),
        "accepted"
    );
    assert_eq!(
        (clone.limit(), clone.min_limit(), clone.max_limit()),
        (12, 12, 40)
    );

    // The algorithm's settings, another algorithm, the window: accepted, the limit kept.
    let bounds = "min_limit = 12\nmax_limit = 40\ninitial_limit = 12";
    for algorithm in [
        "{ vegas = { probe_multiplier = 5, smoothing = 0.5 } }",
        "{ gradient2 = { smoothing = 0.5 } }",
        "{ gradient2 = { long_window = 100, short_window = 5 } }",
    ] {
        let text =
            format!("{bounds}\nalgorithm = {algorithm}\nwindow = \"1s\"\nwindow_samples = 3");
        assert_eq!(reload(&text), "accepted", "{text}");
        assert_eq!(layer.limit(), 12);
    }

    // Refused, naming the field as written in the file; nothing changes.
    let gradient = format!(
        "{bounds}\nalgorithm = {{ gradient2 = {{ long_window = 100, short_window = 5 }} }}"
    );
    for (text, field) in [
        (
            format!("{bounds}\nalgorithm = {{ gradient2 = {{ smoothing = 2.0 }} }}"),
            "algorithm.gradient2.smoothing",
        ),
        (
            format!("{bounds}\nalgorithm = {{ vegas = {{ probe_multiplier = 0 }} }}"),
            "algorithm.vegas.probe_multiplier",
        ),
        (
            format!("{bounds}\nalgorithm = {{ aimd = {{}} }}"),
            "algorithm",
        ),
        (format!("{bounds}\nname = \"x\""), "name"),
        (
            gradient.replace("min_limit = 12", "min_limit = 13"),
            "initial_limit",
        ),
        (format!("{gradient}\nwindow_samples = 0"), "window_samples"),
    ] {
        assert_eq!(reload(&text), field, "{text}");
    }
    assert_eq!(
        (layer.limit(), layer.min_limit(), layer.max_limit()),
        (12, 12, 40)
    );
}

#[tokio::test(start_paused = true)]
async fn aimd_reconfigure_keeps_its_timeout_and_takes_its_backoff() {
    let base = r#"initial_limit = 10
min_limit = 1
max_limit = 10
window = "0s"
window_samples = 1
algorithm = { aimd = { backoff_ratio = 0.9, timeout = "5s" } }"#;
    let layer = AdaptiveLimitLayer::from_config(&toml(base).unwrap()).unwrap();
    let reload = |text: &str| refused(layer.reconfigure(&toml(text).unwrap()));
    assert_eq!(
        reload(&base.replace("timeout = \"5s\"", "timeout = \"1s\"")),
        "algorithm.aimd.timeout"
    );
    assert_eq!(
        reload(&base.replace(
            "{ aimd = { backoff_ratio = 0.9, timeout = \"5s\" } }",
            "{ vegas = {} }"
        )),
        "algorithm"
    );
    // A drop under the new ratio of 0.5: 10 → 5, where 0.9 would give 9.
    assert_eq!(reload(&base.replace("0.9", "0.5")), "accepted");
    let calls = Arc::new(AtomicUsize::new(0));
    let mut failing = layer.layer(counting(&calls, true, ms(1)));
    let _ = failing.ready().await.unwrap().call(1).await;
    assert_eq!(layer.limit(), 5);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_reconfigure_applies_the_rate_and_refuses_a_bad_file_by_name() {
    let base = r#"limit = { calls = 10, per = "1s" }
burst = 2"#;
    let layer = RateLimitLayer::from_config(&toml(base).unwrap()).unwrap();
    let reload = |text: &str| refused(layer.reconfigure(&toml(text).unwrap()));
    assert_eq!(reload(base), "accepted");
    assert_eq!(
        reload(&base.replace(r#"calls = 10, per = "1s""#, r#"calls = 100, per = "10s""#)),
        "accepted",
        "the same rate"
    );
    assert_eq!(
        reload(&format!("{base}\nmax_keys = 5")),
        "accepted",
        "not used without keys"
    );
    for (text, field) in [
        (format!("{base}\nname = \"x\""), "name"),
        (base.replace("burst = 2", "burst = 0"), "burst"),
        ("burst = 2".to_owned(), "limit"),
    ] {
        assert_eq!(reload(&text), field, "{text}");
    }
    // Nothing changed: the burst of 2 is still there.
    let mut service = layer.layer(ok_service());
    for n in 0..2 {
        service.ready().await.unwrap().call(n).await.unwrap();
    }
    assert!(service.ready().await.unwrap().call(2).await.is_err());
    // The rate is live (tests/rate_limit.rs checks each field): a burst of 3 lets one more in.
    assert_eq!(reload(&base.replace("burst = 2", "burst = 3")), "accepted");
    service.ready().await.unwrap().call(3).await.unwrap();
}

/// The sample file's commented sections for the layers outside the stack are each
/// `Config::default()`, as written.
#[test]
fn the_sample_file_shows_the_new_layers_at_their_defaults() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/steadfast.toml"
    ))
    .expect("examples/steadfast.toml");
    // The block is indented inside comments ("#   "), so the stack's own test, which
    // uncomments "# key = value" lines, leaves it alone.
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("#   ")) {
        if let Some(name) = line
            .split('#')
            .next()
            .map(str::trim)
            .and_then(|l| l.strip_prefix('['))
            .and_then(|l| l.strip_suffix(']'))
        {
            sections.push((name.to_owned(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    let names: Vec<&str> = sections.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["rate_limit", "adaptive_limit", "hedge", "pool"]);
    for (name, body) in &sections {
        let parsed = match name.as_str() {
            "pool" => toml::<pool::Config>(body).map(|c| c == pool::Config::default()),
            "hedge" => toml::<hedge::Config>(body).map(|c| c == hedge::Config::default()),
            "adaptive_limit" => toml::<limit::Config>(body).map(|c| c == limit::Config::default()),
            _ => toml::<rate_limit::Config>(body).map(|c| c == rate_limit::Config::default()),
        };
        assert_eq!(parsed, Ok(true), "[{name}]\n{body}");
        // Its own commented lines ("# key = value") are valid too, once uncommented.
        let uncommented: String = body
            .lines()
            .map(|l| l.strip_prefix("# ").filter(|r| is_setting(r)).unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let valid = match name.as_str() {
            "pool" => toml::<pool::Config>(&uncommented).map(|c| round_trips(&c)),
            "hedge" => toml::<hedge::Config>(&uncommented).map(|c| round_trips(&c)),
            "adaptive_limit" => toml::<limit::Config>(&uncommented).map(|c| round_trips(&c)),
            _ => toml::<rate_limit::Config>(&uncommented).map(|c| round_trips(&c)),
        };
        assert_eq!(valid, Ok(()), "[{name}]\n{uncommented}");
    }
    // The three stack sections, uncommented, are a stack file that builds.
    let stack: String = sections
        .iter()
        .filter(|(name, _)| name != "pool")
        .map(|(name, body)| {
            let body = body.replace("# limit = ", "limit = ");
            format!("[{name}]\n{body}")
        })
        .collect();
    let config: steadfast::config::StackConfig =
        toml(&stack).unwrap_or_else(|e| panic!("{e}\n{stack}"));
    let layers = steadfast::config::StackLayers::from_config(&config).unwrap();
    assert!(layers.rate_limit.is_some() && layers.adaptive_limit.is_some());
    layers.reconfigure(&config).unwrap();
}

/// `key = value`: a setting the sample file shows commented out.
fn is_setting(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(key, _)| {
        !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A fraction in [0, 1] with up to six decimals: serde_json (without its `float_roundtrip`
    /// feature) may read an arbitrary `f64` back one ulp off, which is JSON's reader, not this
    /// format.
    fn unit() -> impl Strategy<Value = f64> {
        (0u32..=1_000_000).prop_map(|n| f64::from(n) / 1e6)
    }

    /// A number in [lo, lo + span] with up to three decimals.
    fn decimal(lo: u32, span: u32) -> impl Strategy<Value = f64> {
        (lo * 1000..=(lo + span) * 1000).prop_map(|n| f64::from(n) / 1e3)
    }

    fn duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..=3_600_000).prop_map(Duration::from_millis),
            (0u64..=1_000_000_000_000).prop_map(Duration::from_nanos),
        ]
    }

    fn budget() -> impl Strategy<Value = RetryBudget> {
        prop_oneof![
            Just(RetryBudget::unlimited()),
            (decimal(0, 1000), any::<u32>(), duration())
                .prop_map(|(ratio, min, ttl)| RetryBudget::new(ratio, min, ttl)),
        ]
    }

    fn algorithm() -> impl Strategy<Value = limit::Algorithm> {
        prop_oneof![
            (
                unit(),
                decimal(1, 10),
                any::<u32>(),
                any::<u32>(),
                any::<u32>()
            )
                .prop_map(|(s, t, l, w, q)| Gradient2::new()
                    .smoothing(s)
                    .rtt_tolerance(t)
                    .long_window(l)
                    .short_window(w)
                    .queue_size(q)
                    .into()),
            (unit(), any::<u32>())
                .prop_map(|(s, p)| Vegas::new().smoothing(s).probe_multiplier(p).into()),
            (unit(), duration()).prop_map(|(r, t)| Aimd::new().backoff_ratio(r).timeout(t).into()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever a config holds, `Serialize` writes what `Deserialize` reads back, in TOML,
        /// YAML and JSON.
        #[test]
        fn any_config_reads_back_as_written(
            (failures, base, max, fraction, panic, rate) in (
                any::<u32>(), duration(), duration(), unit(), unit(),
                proptest::option::of((unit(), any::<u32>())),
            ),
            (delay, percentile, samples, window, attempts, hedge_budget) in (
                duration(), proptest::option::of(unit()), any::<u32>(), duration(),
                any::<u32>(), budget(),
            ),
            (initial, min, max_limit, algorithm, limit_window, window_samples, seed) in (
                any::<usize>(), proptest::option::of(any::<usize>()),
                proptest::option::of(any::<usize>()), algorithm(), duration(), any::<usize>(),
                proptest::option::of(any::<u64>()),
            ),
            (calls_per, burst, max_wait, max_keys, idle) in (
                proptest::option::of((any::<u32>(), duration())), any::<u32>(), duration(),
                any::<usize>(), duration(),
            ),
            name in "[a-z]{1,8}",
        ) {
            let mut pool = pool::Config::default();
            pool.name = name.clone();
            pool.consecutive_failures = failures;
            pool.base_ejection_time = base;
            pool.max_ejection_time = max;
            pool.max_ejected_fraction = fraction;
            pool.panic_threshold = panic;
            pool.failure_rate = rate.map(|(t, c)| pool::FailureRate::new(t, c));
            round_trips(&pool);

            let mut hedge = hedge::Config::default();
            hedge.name = name.clone();
            hedge.delay = delay;
            hedge.delay_percentile = percentile;
            hedge.min_samples = samples;
            hedge.latency_window = window;
            hedge.max_hedged_attempts = attempts;
            hedge.budget = hedge_budget;
            round_trips(&hedge);

            let mut limit = limit::Config::default();
            limit.name = name.clone();
            limit.initial_limit = initial;
            limit.min_limit = min;
            limit.max_limit = max_limit;
            limit.algorithm = algorithm;
            limit.window = limit_window;
            limit.window_samples = window_samples;
            limit.seed = seed;
            round_trips(&limit);

            let mut rate = rate_limit::Config::default();
            rate.name = name;
            rate.limit = calls_per.map(|(n, per)| rate_limit::Limit::new(n, per));
            rate.burst = burst;
            rate.max_wait = max_wait;
            rate.max_keys = max_keys;
            rate.idle_timeout = idle;
            round_trips(&rate);
        }
    }
}
