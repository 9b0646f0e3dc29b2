//! A whole stack from one file: [`StackConfig`], and the layers built from it, [`StackLayers`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tower_layer::Identity;

use super::OptionalLayer;
use crate::ConfigError;
use crate::bulkhead::{self, BulkheadLayer};
use crate::circuit_breaker::{self, CircuitBreakerLayer};
#[cfg(feature = "hedge")]
use crate::hedge::{self, HedgeLayer};
#[cfg(feature = "limit")]
use crate::limit::{self, AdaptiveLimitLayer};
#[cfg(feature = "rate-limit")]
use crate::rate_limit::{self, RateLimitLayer};
use crate::retry::{self, RetryLayer};
use crate::stack::ResilienceStack;
use crate::timeout::{self, TimeoutLayer};

/// Every layer of a service's resilience, from one file: the sections of the
/// [`ResilienceStack`] in its order, each optional, and named instances for the other
/// dependencies of the service.
///
/// ```toml
/// # The stack, outermost first. A missing section is a missing layer; an empty one
/// # (`[bulkhead]`) is the layer with its defaults.
/// [rate_limit]                     # feature `rate-limit`
/// limit = { calls = 100, per = "1s" }
/// [adaptive_limit]                 # feature `limit`
/// max_limit = 100
/// [retry]
/// max_attempts = 3
/// [hedge]                          # feature `hedge`
/// delay = "50ms"
/// [overall_timeout]
/// timeout = "2s"
/// [circuit_breaker]
/// failure_rate_threshold = 0.5
/// [bulkhead]
/// max_concurrent_calls = 64
/// [attempt_timeout]
/// timeout = "500ms"
///
/// # Named instances, as Resilience4j's `instances`: one per dependency.
/// [breakers.payments]
/// wait_in_open = "1m"
/// [retries.payments]
/// max_attempts = 2
/// [hedges.search]                  # and [adaptive_limits.*], [rate_limits.*]
/// delay_percentile = 0.95
/// ```
///
/// The second wave's sections (`rate_limit`, `adaptive_limit`, `hedge`, and their instances)
/// exist with their features; a file that has one is refused by a build without it (an unknown
/// field).
///
/// The fallback has no section: its function is code. A named instance whose `name` is not set
/// takes its key as its name (the `name` label of its metrics).
///
/// The stack's breaker ([`StackLayers`]) counts `Err`s as failures; a `[circuit_breaker]` whose
/// `classify` names an HTTP classifier is refused there: build that breaker with
/// `CircuitBreakerLayer::from_http_config` and stack it by hand.
///
/// The sections' names are [`ResilienceStack`]'s setters. Unknown sections are errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StackConfig {
    /// [`ResilienceStack::rate_limit`]: the rate limit, outermost.
    #[cfg(feature = "rate-limit")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<rate_limit::Config>,
    /// [`ResilienceStack::adaptive_limit`]: the adaptive concurrency limit.
    #[cfg(feature = "limit")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_limit: Option<limit::Config>,
    /// [`ResilienceStack::retry`]: retry, with its budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<retry::Config>,
    /// [`ResilienceStack::hedge`]: hedged requests, inside retry.
    #[cfg(feature = "hedge")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hedge: Option<hedge::Config>,
    /// [`ResilienceStack::overall_timeout`]; its `name` defaults to `"overall"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overall_timeout: Option<timeout::Config>,
    /// [`ResilienceStack::circuit_breaker`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<circuit_breaker::Config>,
    /// [`ResilienceStack::bulkhead`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<bulkhead::Config>,
    /// [`ResilienceStack::attempt_timeout`]; its `name` defaults to `"attempt"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_timeout: Option<timeout::Config>,
    /// Named retry layers: `[retries.<name>]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub retries: BTreeMap<String, retry::Config>,
    /// Named timeouts: `[timeouts.<name>]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub timeouts: BTreeMap<String, timeout::Config>,
    /// Named circuit breakers: `[breakers.<name>]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub breakers: BTreeMap<String, circuit_breaker::Config>,
    /// Named bulkheads: `[bulkheads.<name>]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub bulkheads: BTreeMap<String, bulkhead::Config>,
    /// Named hedges: `[hedges.<name>]`.
    #[cfg(feature = "hedge")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hedges: BTreeMap<String, hedge::Config>,
    /// Named adaptive limits: `[adaptive_limits.<name>]`.
    #[cfg(feature = "limit")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub adaptive_limits: BTreeMap<String, limit::Config>,
    /// Named rate limits: `[rate_limits.<name>]`.
    #[cfg(feature = "rate-limit")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rate_limits: BTreeMap<String, rate_limit::Config>,
}

/// A named instance's config, with its key as its name unless the file named it.
fn named<C: Clone>(
    instances: &BTreeMap<String, C>,
    key: &str,
    name: impl Fn(&mut C) -> &mut String,
    default_name: &str,
) -> Option<C> {
    let mut config = instances.get(key)?.clone();
    let slot = name(&mut config);
    if slot == default_name {
        key.clone_into(slot);
    }
    Some(config)
}

impl StackConfig {
    /// The config of the breaker `[breakers.<name>]`, if the file has one.
    pub fn breaker(&self, name: &str) -> Option<circuit_breaker::Config> {
        named(
            &self.breakers,
            name,
            |c| &mut c.name,
            circuit_breaker::DEFAULT_NAME,
        )
    }

    /// The config of the retry layer `[retries.<name>]`, if the file has one.
    pub fn retry(&self, name: &str) -> Option<retry::Config> {
        named(&self.retries, name, |c| &mut c.name, retry::DEFAULT_NAME)
    }

    /// The config of the timeout `[timeouts.<name>]`, if the file has one.
    pub fn timeout(&self, name: &str) -> Option<timeout::Config> {
        named(&self.timeouts, name, |c| &mut c.name, timeout::DEFAULT_NAME)
    }

    /// The config of the bulkhead `[bulkheads.<name>]`, if the file has one.
    pub fn bulkhead(&self, name: &str) -> Option<bulkhead::Config> {
        named(
            &self.bulkheads,
            name,
            |c| &mut c.name,
            bulkhead::DEFAULT_NAME,
        )
    }

    /// The config of the hedge `[hedges.<name>]`, if the file has one.
    #[cfg(feature = "hedge")]
    pub fn hedge(&self, name: &str) -> Option<hedge::Config> {
        named(&self.hedges, name, |c| &mut c.name, hedge::DEFAULT_NAME)
    }

    /// The config of the adaptive limit `[adaptive_limits.<name>]`, if the file has one.
    #[cfg(feature = "limit")]
    pub fn adaptive_limit(&self, name: &str) -> Option<limit::Config> {
        named(
            &self.adaptive_limits,
            name,
            |c| &mut c.name,
            limit::DEFAULT_NAME,
        )
    }

    /// The config of the rate limit `[rate_limits.<name>]`, if the file has one.
    #[cfg(feature = "rate-limit")]
    pub fn rate_limit(&self, name: &str) -> Option<rate_limit::Config> {
        named(
            &self.rate_limits,
            name,
            |c| &mut c.name,
            rate_limit::DEFAULT_NAME,
        )
    }

    /// The stack's timeouts with their default names, `"overall"` and `"attempt"`, as
    /// [`ResilienceStack`] names timeouts given as a `Duration`.
    fn timeouts_named(&self) -> (Option<timeout::Config>, Option<timeout::Config>) {
        let rename = |config: &Option<timeout::Config>, name: &str| {
            config.clone().map(|mut config| {
                if config.name == timeout::DEFAULT_NAME {
                    name.clone_into(&mut config.name);
                }
                config
            })
        };
        (
            rename(&self.overall_timeout, crate::stack::OVERALL_TIMEOUT_NAME),
            rename(&self.attempt_timeout, crate::stack::ATTEMPT_TIMEOUT_NAME),
        )
    }
}

/// The layers of a stack built from a [`StackConfig`], each present if its section was: the
/// handles to read (a breaker's state) and to [`reconfigure`](Self::reconfigure) them, and the
/// [`stack`](Self::stack) to apply.
///
/// The stack holds the first wave's layers; the rate limit, the adaptive limit and the hedge
/// are built and reconfigured with them, and go into the stack where the code uses them (see
/// [`ConfiguredStack`] for why):
///
/// ```rust,ignore
/// let layers = StackLayers::from_config(&config)?;
/// let limit = layers.adaptive_limit.clone().ok_or("the file needs [adaptive_limit]")?;
/// let stack = layers.stack().adaptive_limit(limit);
/// ```
///
/// Cloning it clones the handles: the clones share each layer's state.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StackLayers {
    /// The rate limit, if the file has `[rate_limit]`.
    #[cfg(feature = "rate-limit")]
    pub rate_limit: Option<RateLimitLayer>,
    /// The adaptive limit, if the file has `[adaptive_limit]`.
    #[cfg(feature = "limit")]
    pub adaptive_limit: Option<AdaptiveLimitLayer>,
    /// The retry layer, if the file has `[retry]`.
    pub retry: Option<RetryLayer>,
    /// The hedge, if the file has `[hedge]`.
    #[cfg(feature = "hedge")]
    pub hedge: Option<HedgeLayer>,
    /// The overall timeout, if the file has `[overall_timeout]`.
    pub overall_timeout: Option<TimeoutLayer>,
    /// The circuit breaker, if the file has `[circuit_breaker]`.
    pub circuit_breaker: Option<CircuitBreakerLayer>,
    /// The bulkhead, if the file has `[bulkhead]`.
    pub bulkhead: Option<BulkheadLayer>,
    /// The attempt timeout, if the file has `[attempt_timeout]`.
    pub attempt_timeout: Option<TimeoutLayer>,
    /// The config last applied, shared by the clones: what a section that cannot be checked
    /// before it is applied (the rate limit's) is put back to when a later one is refused.
    applied: Arc<Mutex<StackConfig>>,
}

/// The type of the stack that [`StackLayers::stack`] makes: every layer of the first wave
/// optional.
///
/// The rate limit, the adaptive limit and the hedge are not in it: an optional layer's service
/// names the inner service twice (once wrapped, once bare), so each one doubles the length of
/// the stack's type, and three more made a debug build of a stack over an axum router take
/// minutes. Add the ones your code uses with the stack's setters (see [`StackLayers`]).
pub type ConfiguredStack<F = Identity> = ResilienceStack<
    F,
    OptionalLayer<RetryLayer>,
    OptionalLayer<TimeoutLayer>,
    OptionalLayer<CircuitBreakerLayer>,
    OptionalLayer<BulkheadLayer>,
    OptionalLayer<TimeoutLayer>,
>;

impl StackLayers {
    /// Builds every layer the file has a section for.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] of a section, naming the field as written in the file.
    pub fn from_config(config: &StackConfig) -> Result<Self, ConfigError> {
        let (overall, attempt) = config.timeouts_named();
        Ok(Self {
            #[cfg(feature = "rate-limit")]
            rate_limit: config
                .rate_limit
                .as_ref()
                .map(RateLimitLayer::from_config)
                .transpose()?,
            #[cfg(feature = "limit")]
            adaptive_limit: config
                .adaptive_limit
                .as_ref()
                .map(AdaptiveLimitLayer::from_config)
                .transpose()?,
            #[cfg(feature = "hedge")]
            hedge: config
                .hedge
                .as_ref()
                .map(HedgeLayer::from_config)
                .transpose()?,
            retry: config
                .retry
                .as_ref()
                .map(RetryLayer::from_config)
                .transpose()?,
            overall_timeout: overall
                .as_ref()
                .map(TimeoutLayer::from_config)
                .transpose()?,
            circuit_breaker: config
                .circuit_breaker
                .as_ref()
                .map(CircuitBreakerLayer::from_config)
                .transpose()?,
            bulkhead: config
                .bulkhead
                .as_ref()
                .map(BulkheadLayer::from_config)
                .transpose()?,
            attempt_timeout: attempt
                .as_ref()
                .map(TimeoutLayer::from_config)
                .transpose()?,
            applied: Arc::new(Mutex::new(config.clone())),
        })
    }

    /// Applies a new [`StackConfig`] to these running layers, each keeping its state (see each
    /// layer's `reconfigure`).
    ///
    /// All or nothing: every section is checked first, and if one is refused nothing changes.
    /// The rate limit and the hedge check their sections only as they apply them: the rate
    /// limit is applied first, then the hedge, and if the hedge refuses its section the rate
    /// limit is put back to the section applied before (so for an instant it had the new one).
    /// A section can change, not appear or disappear: the stack's layers are fixed when it is
    /// built. Named instances are not part of the stack: reconfigure the layers built from
    /// them with [`StackConfig::breaker`] and the like.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`], naming the field as written in the file; a section added or
    /// removed is one naming the section (`circuit_breaker`, say).
    pub fn reconfigure(&self, config: &StackConfig) -> Result<(), ConfigError> {
        let (overall, attempt) = config.timeouts_named();
        // One reload at a time: the rollback below puts back what this one found.
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        // Check everything before changing anything.
        #[cfg(feature = "rate-limit")]
        let rate_limit = same_shape("rate_limit", &self.rate_limit, &config.rate_limit)?;
        #[cfg(feature = "limit")]
        let adaptive_limit = same_shape(
            "adaptive_limit",
            &self.adaptive_limit,
            &config.adaptive_limit,
        )?;
        #[cfg(feature = "hedge")]
        let hedge = same_shape("hedge", &self.hedge, &config.hedge)?;
        let retry = same_shape("retry", &self.retry, &config.retry)?;
        let overall = same_shape("overall_timeout", &self.overall_timeout, &overall)?;
        let breaker = same_shape(
            "circuit_breaker",
            &self.circuit_breaker,
            &config.circuit_breaker,
        )?;
        let bulkhead = same_shape("bulkhead", &self.bulkhead, &config.bulkhead)?;
        let attempt = same_shape("attempt_timeout", &self.attempt_timeout, &attempt)?;
        if let Some((layer, new)) = &retry {
            layer.check_reconfigure(new)?;
        }
        if let Some((layer, new)) = &overall {
            layer.check_reconfigure(new)?;
        }
        if let Some((layer, new)) = &breaker {
            layer.check_reconfigure(new)?;
        }
        if let Some((layer, new)) = &bulkhead {
            layer.check_reconfigure(new)?;
        }
        if let Some((layer, new)) = &attempt {
            layer.check_reconfigure(new)?;
        }
        #[cfg(feature = "limit")]
        if let Some((layer, new)) = &adaptive_limit {
            layer.check_reconfigure(new)?;
        }
        // Checked by applying them: on an error, nothing else has changed yet.
        #[cfg(feature = "rate-limit")]
        if let Some((layer, new)) = rate_limit {
            layer.reconfigure(new)?;
        }
        #[cfg(feature = "hedge")]
        if let Some((layer, new)) = hedge {
            let accepted = layer.reconfigure(new);
            #[cfg(feature = "rate-limit")]
            if accepted.is_err() {
                if let (Some(layer), Some(old)) = (&self.rate_limit, &applied.rate_limit) {
                    // Accepted before, so accepted again.
                    let _ = layer.reconfigure(old);
                }
            }
            accepted?;
        }
        // Checked: each apply below succeeds.
        #[cfg(feature = "limit")]
        if let Some((layer, new)) = adaptive_limit {
            layer.reconfigure(new)?;
        }
        if let Some((layer, new)) = retry {
            layer.reconfigure(new)?;
        }
        if let Some((layer, new)) = overall {
            layer.reconfigure(new)?;
        }
        if let Some((layer, new)) = breaker {
            layer.reconfigure(new)?;
        }
        if let Some((layer, new)) = bulkhead {
            layer.reconfigure(new)?;
        }
        if let Some((layer, new)) = attempt {
            layer.reconfigure(new)?;
        }
        *applied = config.clone();
        Ok(())
    }

    /// The stack of these layers, in the recommended order, sharing their state. Add a
    /// fallback with [`ResilienceStack::fallback`].
    pub fn stack(&self) -> ConfiguredStack {
        ResilienceStack::new().with_parts(
            OptionalLayer::new(self.retry.clone()),
            OptionalLayer::new(self.overall_timeout.clone()),
            OptionalLayer::new(self.circuit_breaker.clone()),
            OptionalLayer::new(self.bulkhead.clone()),
            OptionalLayer::new(self.attempt_timeout.clone()),
        )
    }
}

/// The layer and its new config, when both are present; an error naming `section` when only
/// one is.
fn same_shape<'a, L, C>(
    section: &'static str,
    layer: &'a Option<L>,
    config: &'a Option<C>,
) -> Result<Option<(&'a L, &'a C)>, ConfigError> {
    match (layer, config) {
        (Some(layer), Some(config)) => Ok(Some((layer, config))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new(
            section,
            "present, as when the stack was built (a running stack cannot drop a layer)",
            "absent",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            section,
            "absent, as when the stack was built (a running stack cannot add a layer)",
            "present",
        )),
    }
}

impl ResilienceStack {
    /// The stack a [`StackConfig`] describes: a layer for each section the file has, in the
    /// recommended order. Keep [`StackLayers::from_config`]'s handles instead to reconfigure
    /// the layers or read their state.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] of a section, naming the field as written in the file.
    pub fn from_config(config: &StackConfig) -> Result<ConfiguredStack, ConfigError> {
        Ok(StackLayers::from_config(config)?.stack())
    }
}
