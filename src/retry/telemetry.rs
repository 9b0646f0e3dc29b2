//! How each attempt ended, and (with `metrics`) the layer's counters, registered once.

/// How one attempt ended: the `outcome` label of `steadfast_retry_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptEnd {
    /// The policy accepted the result: returned to the caller.
    Accepted,
    /// A retry follows.
    Retried,
    /// Retryable, but it was the last of `max_attempts`.
    Exhausted,
    /// Retryable, but the budget was empty.
    BudgetExhausted,
    /// Retryable, but no retry could finish before the deadline.
    Deadline,
    /// Retryable by the policy, but this request may not be sent again: a local rejection, a
    /// method the policy does not retry, a body that outgrew the replay buffer.
    NotRetryable,
}

impl AttemptEnd {
    #[cfg(feature = "metrics")]
    const ALL: [AttemptEnd; 6] = [
        AttemptEnd::Accepted,
        AttemptEnd::Retried,
        AttemptEnd::Exhausted,
        AttemptEnd::BudgetExhausted,
        AttemptEnd::Deadline,
        AttemptEnd::NotRetryable,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AttemptEnd::Accepted => "accepted",
            AttemptEnd::Retried => "retried",
            AttemptEnd::Exhausted => "exhausted",
            AttemptEnd::BudgetExhausted => "budget_exhausted",
            AttemptEnd::Deadline => "deadline",
            AttemptEnd::NotRetryable => "not_retryable",
        }
    }
}

#[cfg(feature = "metrics")]
pub(crate) use self::handles::Metrics;

#[cfg(feature = "metrics")]
mod handles {
    use super::AttemptEnd;

    /// Counter handles, registered when the layer is built.
    #[derive(Debug)]
    pub(crate) struct Metrics {
        attempts: [metrics::Counter; 6],
        budget_exhausted: metrics::Counter,
    }

    impl Metrics {
        pub(crate) fn register(name: &str) -> Self {
            describe();
            let attempts = AttemptEnd::ALL.map(|outcome| {
                metrics::counter!(
                    "steadfast_retry_attempts_total",
                    "name" => name.to_owned(),
                    "outcome" => outcome.as_str(),
                )
            });
            let budget_exhausted = metrics::counter!("steadfast_retry_budget_exhausted_total", "name" => name.to_owned());
            Self {
                attempts,
                budget_exhausted,
            }
        }

        #[inline]
        pub(crate) fn attempt(&self, outcome: AttemptEnd) {
            self.attempts[outcome as usize].increment(1);
            if outcome == AttemptEnd::BudgetExhausted {
                self.budget_exhausted.increment(1);
            }
        }
    }

    /// The `# HELP` text and unit of the retry metrics, given to the recorder installed when a
    /// layer is built.
    fn describe() {
        use metrics::{Unit, describe_counter};
        describe_counter!(
            "steadfast_retry_attempts_total",
            Unit::Count,
            "Attempts judged, by outcome: accepted, retried, or not retried and why"
        );
        describe_counter!(
            "steadfast_retry_budget_exhausted_total",
            Unit::Count,
            "Retries refused because the retry budget was empty"
        );
    }
}
