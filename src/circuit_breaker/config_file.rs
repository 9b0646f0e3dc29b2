//! The breaker's settings as read from a file (feature `serde`): [`Config`].

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::breaker::Breaker;
use super::config::{
    Builder, Config as Settings, DEFAULT_BUCKET_WIDTH, DEFAULT_FAILURE_RATE_THRESHOLD,
    DEFAULT_HALF_OPEN_CALLS, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_KEYS, DEFAULT_MAX_WAIT_IN_HALF_OPEN,
    DEFAULT_MINIMUM_CALLS, DEFAULT_NAME, DEFAULT_SLIDING_WINDOW, DEFAULT_SLOW_CALL_RATE_THRESHOLD,
    DEFAULT_WAIT_IN_OPEN, SlidingWindow,
};
use super::live::Fixed;
use super::shape::Shape;
use super::{CircuitBreakerLayer, State};
use crate::ConfigError;
use crate::config::{duration_field, optional_duration_field};

/// A circuit breaker's settings, as read from a configuration file: one field per
/// [`Builder`] method, named as the method.
///
/// Every field is optional in the file; a missing one has the builder's default, so
/// `Config::default()` builds the same breaker as `CircuitBreakerLayer::builder().build()`.
/// Unknown fields are errors. The classifier, the transition listener and the key function of
/// a keyed breaker are code, not configuration: set them on [`to_builder`](Self::to_builder)'s
/// builder, and build one breaker per key with its [`build_keyed`](Builder::build_keyed).
/// `max_keys` and `idle_timeout` bound the keys of a keyed breaker; a plain breaker (and the
/// stack's, which is plain) ignores them.
///
/// ```toml
/// name = "payments"
/// failure_rate_threshold = 0.5
/// slow_call_rate_threshold = 1.0
/// slow_call_duration = "2s"          # absent: slow-call detection off
/// sliding_window = { count = 100 }   # or { time = "60s" }
/// bucket_width = "1s"
/// minimum_calls = 20
/// consecutive_failures = 5           # absent: off
/// wait_in_open = "30s"
/// open_backoff = { multiplier = 2.0, max = "5m" }   # absent: off
/// open_jitter = 0.0
/// half_open_calls = 5
/// max_wait_in_half_open = "60s"
/// shadow = false
/// initial_state = "closed"           # or "forced_open", "disabled"
/// seed = 42                          # absent: drawn once per breaker
/// classify = "errors"                # or "http_5xx", "grpc" (feature `http`)
/// max_keys = 10000                   # keyed breakers only
/// idle_timeout = "10m"               # keyed breakers only
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// [`Builder::name`].
    pub name: String,
    /// [`Builder::failure_rate_threshold`].
    pub failure_rate_threshold: f64,
    /// [`Builder::slow_call_rate_threshold`].
    pub slow_call_rate_threshold: f64,
    /// [`Builder::slow_call_duration`]; `None` (absent) leaves slow-call detection off.
    #[serde(with = "slow_call_duration", skip_serializing_if = "Option::is_none")]
    pub slow_call_duration: Option<Duration>,
    /// [`Builder::sliding_window`]: `{ count = 100 }` or `{ time = "60s" }`.
    pub sliding_window: SlidingWindow,
    /// [`Builder::bucket_width`].
    #[serde(with = "bucket_width")]
    pub bucket_width: Duration,
    /// [`Builder::minimum_calls`].
    pub minimum_calls: u32,
    /// [`Builder::consecutive_failures`]; `None` (absent) leaves it off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// [`Builder::wait_in_open`].
    #[serde(with = "wait_in_open")]
    pub wait_in_open: Duration,
    /// [`Builder::open_backoff`]; `None` (absent) leaves it off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_backoff: Option<OpenBackoffConfig>,
    /// [`Builder::open_jitter`].
    pub open_jitter: f64,
    /// [`Builder::half_open_calls`].
    pub half_open_calls: u32,
    /// [`Builder::max_wait_in_half_open`].
    #[serde(with = "max_wait_in_half_open")]
    pub max_wait_in_half_open: Duration,
    /// [`Builder::shadow`].
    pub shadow: bool,
    /// [`Builder::initial_state`]: `"closed"`, `"forced_open"` or `"disabled"`.
    #[serde(with = "initial_state")]
    pub initial_state: State,
    /// [`Builder::seed`]; `None` (absent) draws one per breaker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// [`Builder::classify`], by name: one of the ready-made classifiers.
    pub classify: ClassifierName,
    /// [`Builder::max_keys`]: keyed breakers only.
    pub max_keys: usize,
    /// [`Builder::idle_timeout`]: keyed breakers only.
    #[serde(with = "idle_timeout")]
    pub idle_timeout: Duration,
}

/// Which ready-made classifier a breaker from a file uses: `classify = "errors"` (the
/// default), `"http_5xx"` or `"grpc"`.
///
/// `"errors"` counts every `Err` as a failure ([`ErrorsAsFailures`](crate::classify::ErrorsAsFailures)),
/// for any service: [`CircuitBreakerLayer::from_config`]. The other two judge HTTP responses
/// (feature `http`): `"http_5xx"` counts 5xx responses as failures too (tower-http's
/// `ServerErrorsAsFailures`), `"grpc"` the gRPC status codes of a failure (tower-http's
/// `GrpcErrorsAsFailures`); a breaker with them is built by `CircuitBreakerLayer::from_http_config`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClassifierName {
    /// Every `Err` is a failure, except this crate's own rejections.
    #[default]
    Errors,
    /// 5xx responses and `Err`s are failures.
    #[serde(rename = "http_5xx")]
    Http5xx,
    /// gRPC failure codes (in the response head) and `Err`s are failures.
    Grpc,
}

/// The two arguments of [`Builder::open_backoff`]: `{ multiplier = 2.0, max = "5m" }`, both
/// required.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBackoffConfig {
    /// How much each re-open in a row multiplies the open interval by; at least 1.
    pub multiplier: f64,
    /// The longest open interval; at least `wait_in_open`.
    #[serde(with = "open_backoff_max")]
    pub max: Duration,
}

duration_field!(bucket_width, "bucket_width");
duration_field!(wait_in_open, "wait_in_open");
duration_field!(max_wait_in_half_open, "max_wait_in_half_open");
duration_field!(open_backoff_max, "open_backoff.max");
duration_field!(idle_timeout, "idle_timeout");
optional_duration_field!(slow_call_duration, "slow_call_duration");
optional_duration_field!(sliding_window_time, "sliding_window.time");

impl Default for Config {
    fn default() -> Self {
        Self {
            name: DEFAULT_NAME.to_owned(),
            failure_rate_threshold: DEFAULT_FAILURE_RATE_THRESHOLD,
            slow_call_rate_threshold: DEFAULT_SLOW_CALL_RATE_THRESHOLD,
            slow_call_duration: None,
            sliding_window: DEFAULT_SLIDING_WINDOW,
            bucket_width: DEFAULT_BUCKET_WIDTH,
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            consecutive_failures: None,
            wait_in_open: DEFAULT_WAIT_IN_OPEN,
            open_backoff: None,
            open_jitter: 0.0,
            half_open_calls: DEFAULT_HALF_OPEN_CALLS,
            max_wait_in_half_open: DEFAULT_MAX_WAIT_IN_HALF_OPEN,
            shadow: false,
            initial_state: State::Closed,
            seed: None,
            classify: ClassifierName::Errors,
            max_keys: DEFAULT_MAX_KEYS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl Config {
    /// A builder set to this config, to add what a file cannot say (a classifier of your own, a
    /// transition listener) before [`build`](Builder::build), which checks every value. Its
    /// classifier is the default, whatever `classify` says.
    pub fn to_builder(&self) -> Builder {
        let mut builder = CircuitBreakerLayer::builder()
            .name(self.name.clone())
            .failure_rate_threshold(self.failure_rate_threshold)
            .slow_call_rate_threshold(self.slow_call_rate_threshold)
            .sliding_window(self.sliding_window)
            .bucket_width(self.bucket_width)
            .minimum_calls(self.minimum_calls)
            .wait_in_open(self.wait_in_open)
            .open_jitter(self.open_jitter)
            .half_open_calls(self.half_open_calls)
            .max_wait_in_half_open(self.max_wait_in_half_open)
            .shadow(self.shadow)
            .initial_state(self.initial_state)
            .max_keys(self.max_keys)
            .idle_timeout(self.idle_timeout);
        if let Some(duration) = self.slow_call_duration {
            builder = builder.slow_call_duration(duration);
        }
        if let Some(failures) = self.consecutive_failures {
            builder = builder.consecutive_failures(failures);
        }
        if let Some(backoff) = self.open_backoff {
            builder = builder.open_backoff(backoff.multiplier, backoff.max);
        }
        if let Some(seed) = self.seed {
            builder = builder.seed(seed);
        }
        builder
    }
}

impl CircuitBreakerLayer {
    /// Builds a breaker from a [`Config`] read from a file, with the default classifier
    /// (`Err` is a failure). For another classifier, use [`Config::to_builder`]; for one
    /// breaker per key, its [`build_keyed`](Builder::build_keyed). `max_keys` and
    /// `idle_timeout` are not used by a breaker without keys, and are ignored here.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] that [`Builder::build`] gives: it names the field as written in the
    /// file, since the file's fields are the builder's methods.
    ///
    /// A config whose `classify` is not `"errors"` is refused (field `classify`): `"http_5xx"`
    /// and `"grpc"` judge HTTP responses, see `CircuitBreakerLayer::from_http_config`.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        if config.classify != ClassifierName::Errors {
            return Err(ConfigError::new(
                "classify",
                "\"errors\" for `from_config` (\"http_5xx\" and \"grpc\" judge HTTP responses: \
                 `from_http_config`, feature `http`)",
                config.classify,
            ));
        }
        config.to_builder().build()
    }
}

#[cfg(feature = "http")]
pub use self::http_classify::NamedClassifier;

#[cfg(feature = "http")]
mod http_classify {
    use tower_http::classify::{GrpcErrorsAsFailures, ServerErrorsAsFailures};

    use super::{CircuitBreakerLayer, ClassifierName, Config};
    use crate::ConfigError;
    use crate::classify::{Classify, ErrorsAsFailures, Outcome};

    /// The classifier a [`ClassifierName`] names, for a breaker over an HTTP service: made by
    /// [`CircuitBreakerLayer::from_http_config`].
    #[derive(Debug, Clone)]
    pub struct NamedClassifier {
        kind: Kind,
    }

    #[derive(Debug, Clone)]
    enum Kind {
        Errors(ErrorsAsFailures),
        Http5xx(ServerErrorsAsFailures),
        Grpc(GrpcErrorsAsFailures),
    }

    impl NamedClassifier {
        /// The classifier `name` names.
        pub fn new(name: ClassifierName) -> Self {
            let kind = match name {
                ClassifierName::Http5xx => Kind::Http5xx(ServerErrorsAsFailures::new()),
                ClassifierName::Grpc => Kind::Grpc(GrpcErrorsAsFailures::new()),
                ClassifierName::Errors => Kind::Errors(ErrorsAsFailures::new()),
            };
            Self { kind }
        }
    }

    impl<B, E: 'static> Classify<http::Response<B>, E> for NamedClassifier {
        #[inline]
        fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
            match &self.kind {
                Kind::Errors(classifier) => classifier.classify(result),
                Kind::Http5xx(classifier) => classifier.classify(result),
                Kind::Grpc(classifier) => classifier.classify(result),
            }
        }
    }

    impl CircuitBreakerLayer<NamedClassifier> {
        /// Builds a breaker over an HTTP service from a [`Config`] read from a file, with the
        /// classifier its `classify` names (`"errors"`, `"http_5xx"` or `"grpc"`).
        ///
        /// # Errors
        ///
        /// The [`ConfigError`] that [`Builder::build`](super::Builder::build) gives, naming the
        /// field as written in the file.
        pub fn from_http_config(config: &Config) -> Result<Self, ConfigError> {
            config
                .to_builder()
                .classify(NamedClassifier::new(config.classify))
                .build()
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Applies a new config to this running breaker, shared by every clone and every service it
    /// made, keeping its state.
    ///
    /// Changed at once, keeping the window: `failure_rate_threshold`,
    /// `slow_call_rate_threshold`, `slow_call_duration` (its value), `minimum_calls`,
    /// `consecutive_failures` (its value), `wait_in_open`, `open_backoff`, `open_jitter`,
    /// `half_open_calls`, `max_wait_in_half_open` and `shadow`. A new threshold applies to the
    /// window as it is: the next outcome recorded is judged by it (a breaker already open keeps
    /// its interval; the next one is the new `wait_in_open`). A lower `half_open_calls` admits no
    /// more probes and judges those in once that many have finished; a probe past it finishes
    /// uncounted.
    ///
    /// A new window: `sliding_window`, `bucket_width` (of a time window), and turning
    /// slow-call detection or the failure run on or off decide what the closed state counts, so
    /// a change of one of them starts a new, empty window (and a new failure run). The breaker
    /// keeps its state: closed, it stays closed, and the outcomes of calls admitted before the
    /// change are dropped (they were made under the old window); open or half-open, it keeps its
    /// timers and probes, and counts in the new window once it closes.
    ///
    /// `initial_state` is how the breaker started, long past for a running one: a change is
    /// refused. `seed` and `classify` are used when the breaker is built (the classifier is
    /// part of the layer's type); a reload ignores them. `max_keys` and `idle_timeout` are not
    /// used by a breaker without keys, and a reload ignores them, as
    /// [`from_config`](CircuitBreakerLayer::from_config) does.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field, and nothing changes, when the config is one
    /// [`from_config`](CircuitBreakerLayer::from_config) refuses, when it renames the breaker
    /// (`name`: the metrics label stays), or when it changes `initial_state`.
    pub fn reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        let _one_at_a_time = self.breaker().reloads().one_at_a_time();
        let new = self.check_reconfigure(config)?;
        let new_window = apply(self.breaker(), &new);
        tracing::info!(
            circuit_breaker.name = self.name(),
            circuit_breaker.failure_rate_threshold = new.failure_rate_threshold,
            circuit_breaker.minimum_calls = new.minimum_calls,
            circuit_breaker.half_open_calls = new.half_open_calls,
            circuit_breaker.new_window = new_window,
            "circuit breaker reconfigured"
        );
        Ok(())
    }

    /// Whether [`reconfigure`](Self::reconfigure) would accept `config`: the settings to apply
    /// if so.
    pub(crate) fn check_reconfigure(&self, config: &Config) -> Result<Settings, ConfigError> {
        check_settings(self.name(), self.breaker().fixed(), config)
    }
}

/// What a running breaker named `name`, built as `built` says, takes from `config`: the
/// settings to apply, or the error that refuses the config (the builder's, a new `name`, a new
/// `initial_state`). The one check of the plain layer's `reconfigure` and the keyed layer's.
pub(super) fn check_settings(
    name: &str,
    built: &Fixed,
    config: &Config,
) -> Result<Settings, ConfigError> {
    let new = config.to_builder().settings()?;
    crate::config::check_same_name(name, &new.name)?;
    if built.initial_state != new.initial_state {
        return Err(ConfigError::new(
            "initial_state",
            "as the breaker was built (it is how the breaker started): build a new layer \
             to change it",
            config.initial_state,
        ));
    }
    Ok(new)
}

/// Applies checked settings to one running breaker, keeping its state: the live settings at
/// once, a new window when the shape of the new one differs (see `shape.rs`), and shadow mode.
/// Whether it started a new window. The plain layer's `reconfigure` applies it to its breaker,
/// the keyed layer's to every key's.
pub(super) fn apply(breaker: &Breaker, new: &Settings) -> bool {
    breaker.live().store(new);
    let shape = Shape::of(new);
    let (_, window) = breaker.window().load();
    let new_window = !window.shape().same_as(&shape);
    if new_window {
        breaker.replace_window(shape);
    }
    breaker.set_shadow(new.shadow);
    new_window
}

/// `sliding_window` in a file: `{ count = 100 }` or `{ time = "60s" }`. A table of two
/// optional fields rather than an enum, so that it reads the same in every format (YAML would
/// want a tag for an enum).
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    #[serde(
        default,
        with = "sliding_window_time",
        skip_serializing_if = "Option::is_none"
    )]
    time: Option<Duration>,
}

impl Serialize for SlidingWindow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            SlidingWindow::Count(n) => WindowTable {
                count: Some(n),
                time: None,
            },
            SlidingWindow::Time(d) => WindowTable {
                count: None,
                time: Some(d),
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SlidingWindow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match WindowTable::deserialize(d)? {
            WindowTable {
                count: Some(n),
                time: None,
            } => Ok(SlidingWindow::Count(n)),
            WindowTable {
                count: None,
                time: Some(d),
            } => Ok(SlidingWindow::Time(d)),
            _ => Err(D::Error::custom(
                "`sliding_window` needs exactly one of `count` or `time`",
            )),
        }
    }
}

/// `initial_state` in a file: `"closed"`, `"forced_open"` or `"disabled"`. `"open"` and
/// `"half_open"` read too, and the builder refuses them as it does in code.
mod initial_state {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::State;

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Name {
        Closed,
        Open,
        HalfOpen,
        ForcedOpen,
        Disabled,
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<State, D::Error> {
        Ok(match Name::deserialize(d)? {
            Name::Closed => State::Closed,
            Name::Open => State::Open,
            Name::HalfOpen => State::HalfOpen,
            Name::ForcedOpen => State::ForcedOpen,
            Name::Disabled => State::Disabled,
        })
    }

    pub(super) fn serialize<S: Serializer>(state: &State, s: S) -> Result<S::Ok, S::Error> {
        match state {
            State::Closed => Name::Closed,
            State::Open => Name::Open,
            State::HalfOpen => Name::HalfOpen,
            State::ForcedOpen => Name::ForcedOpen,
            State::Disabled => Name::Disabled,
        }
        .serialize(s)
    }
}
