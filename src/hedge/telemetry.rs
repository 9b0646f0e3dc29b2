//! What the hedge reports: `tracing` events and, with the `metrics` feature, counter handles
//! registered once when the layer is built.

use super::config::HedgeCore;

/// Why a hedge was sent: the `hedge.cause` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// No success came within the delay.
    Delay,
    /// An attempt failed.
    Failure,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::Delay => "delay",
            Cause::Failure => "failure",
        }
    }
}

/// Why a hedge that was due was not sent: the `hedge.outcome` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// The budget had no token.
    Budget,
    /// The current deadline had passed.
    Deadline,
    /// The policy could no longer copy the request.
    Uncopyable,
}

impl Skip {
    fn as_str(self) -> &'static str {
        match self {
            Skip::Budget => "budget_denied",
            Skip::Deadline => "deadline",
            Skip::Uncopyable => "uncopyable",
        }
    }
}

pub(crate) fn sent<P>(config: &HedgeCore<P>, attempt: u32, cause: Cause) {
    tracing::debug!(
        hedge.name = %config.name,
        hedge.attempt = attempt,
        hedge.cause = cause.as_str(),
        "hedge sent"
    );
    #[cfg(feature = "metrics")]
    config.metrics.sent.increment(1);
}

pub(crate) fn won<P>(config: &HedgeCore<P>, attempt: u32) {
    tracing::debug!(hedge.name = %config.name, hedge.attempt = attempt, "hedge won");
    #[cfg(feature = "metrics")]
    config.metrics.won.increment(1);
}

pub(crate) fn skipped<P>(config: &HedgeCore<P>, attempt: u32, skip: Skip) {
    tracing::debug!(
        hedge.name = %config.name,
        hedge.attempt = attempt,
        hedge.outcome = skip.as_str(),
        "hedge skipped"
    );
    #[cfg(feature = "metrics")]
    if skip == Skip::Budget {
        config.metrics.budget_denied.increment(1);
    }
}

#[cfg(feature = "metrics")]
pub(crate) use self::handles::Metrics;

#[cfg(feature = "metrics")]
mod handles {
    /// Counter handles, registered when the layer is built.
    #[derive(Debug)]
    pub(crate) struct Metrics {
        pub(crate) sent: metrics::Counter,
        pub(crate) won: metrics::Counter,
        pub(crate) budget_denied: metrics::Counter,
    }

    impl Metrics {
        pub(crate) fn register(name: &str) -> Self {
            Self {
                sent: metrics::counter!("steadfast_hedge_sent_total", "name" => name.to_owned()),
                won: metrics::counter!("steadfast_hedge_won_total", "name" => name.to_owned()),
                budget_denied: metrics::counter!(
                    "steadfast_hedge_budget_denied_total",
                    "name" => name.to_owned()
                ),
            }
        }
    }
}
