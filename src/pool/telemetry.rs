//! The pool's metric handles (feature `metrics`), registered and described when the pool is
//! built (the pool-wide ones) or when an endpoint is inserted (its own). None is touched by a
//! call: the endpoint gauges are set on state changes, and an endpoint's calls in flight when
//! [`Pool::endpoints`](super::Pool::endpoints) reads them.

use std::fmt;

use metrics::{Counter, Gauge};

use super::EndpointState;

/// Handles of the pool-wide `steadfast_pool_*`, labelled with the pool's `name`.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) healthy: Gauge,
    pub(crate) ejected: Gauge,
    pub(crate) unhealthy: Gauge,
    pub(crate) ejections: Counter,
    pub(crate) panic_routing: Gauge,
}

impl Metrics {
    pub(crate) fn new(name: &str) -> Self {
        describe();
        let endpoints = |state: &'static str| {
            metrics::gauge!(
                "steadfast_pool_endpoints",
                "name" => name.to_owned(),
                "state" => state
            )
        };
        let labels = [("name", name.to_owned())];
        let panic_routing = metrics::gauge!("steadfast_pool_panic_routing", &labels);
        panic_routing.set(0.0);
        Self {
            healthy: endpoints("healthy"),
            ejected: endpoints("ejected"),
            unhealthy: endpoints("unhealthy"),
            ejections: metrics::counter!("steadfast_pool_ejections_total", &labels),
            panic_routing,
        }
    }
}

/// Handles of one endpoint's `steadfast_pool_endpoint_*`, labelled with the pool's `name` and
/// the endpoint's key (`endpoint`).
pub(crate) struct EndpointMetrics {
    /// One gauge per state, 1 for the endpoint's state and 0 for the others (all 0 once
    /// removed), in the order of [`EndpointState`]'s variants.
    state: [Gauge; 3],
    pub(crate) ejections: Counter,
    in_flight: Gauge,
}

impl EndpointMetrics {
    /// Registers the handles of the endpoint `key` of the pool `name`; it starts healthy.
    pub(crate) fn new(name: &str, key: &impl fmt::Debug) -> Self {
        let endpoint = endpoint_label(key);
        let state = |state: EndpointState| {
            metrics::gauge!(
                "steadfast_pool_endpoint_state",
                "name" => name.to_owned(),
                "endpoint" => endpoint.clone(),
                "state" => state.as_str()
            )
        };
        let labels = [("name", name.to_owned()), ("endpoint", endpoint.clone())];
        let metrics = Self {
            state: [
                state(EndpointState::Healthy),
                state(EndpointState::Ejected),
                state(EndpointState::Unhealthy),
            ],
            ejections: metrics::counter!("steadfast_pool_endpoint_ejections_total", &labels),
            in_flight: metrics::gauge!("steadfast_pool_endpoint_in_flight", &labels),
        };
        metrics.set_state(Some(EndpointState::Healthy));
        metrics.in_flight.set(0.0);
        metrics
    }

    /// Sets the state gauges: 1 for `state`, 0 for the others; all 0 for `None` (removed).
    pub(crate) fn set_state(&self, state: Option<EndpointState>) {
        let states = [
            EndpointState::Healthy,
            EndpointState::Ejected,
            EndpointState::Unhealthy,
        ];
        for (gauge, s) in self.state.iter().zip(states) {
            gauge.set(if state == Some(s) { 1.0 } else { 0.0 });
        }
    }

    pub(crate) fn set_in_flight(&self, in_flight: u32) {
        self.in_flight.set(f64::from(in_flight));
    }
}

impl fmt::Debug for EndpointMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointMetrics").finish_non_exhaustive()
    }
}

/// The `endpoint` label of a key: its `Debug` text, without the quotes around a string key, so
/// that `"10.0.0.1:80"` and a `SocketAddr` both read `10.0.0.1:80`.
pub(crate) fn endpoint_label(key: &impl fmt::Debug) -> String {
    let text = format!("{key:?}");
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.to_owned(),
        None => text,
    }
}

/// The `# HELP` text and unit of the pool's metrics.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_gauge!(
        "steadfast_pool_endpoints",
        Unit::Count,
        "Endpoints of the pool per state (healthy ones are eligible for calls)"
    );
    describe_counter!(
        "steadfast_pool_ejections_total",
        Unit::Count,
        "Passive ejections of the pool's endpoints (consecutive failures or failure rate)"
    );
    describe_gauge!(
        "steadfast_pool_panic_routing",
        "1 while the pool routes to every endpoint because too few are eligible, else 0"
    );
    describe_gauge!(
        "steadfast_pool_endpoint_state",
        "1 for the state the endpoint is in, 0 for the others; all 0 once it is removed"
    );
    describe_counter!(
        "steadfast_pool_endpoint_ejections_total",
        Unit::Count,
        "Passive ejections of this endpoint since it was inserted"
    );
    describe_gauge!(
        "steadfast_pool_endpoint_in_flight",
        Unit::Count,
        "Calls sent to this endpoint and not ended, as of the last Pool::endpoints() read"
    );
}

#[cfg(test)]
mod tests {
    use super::endpoint_label;

    #[test]
    fn a_string_key_loses_its_quotes_and_others_keep_their_debug_text() {
        assert_eq!(endpoint_label(&"10.0.0.1:80"), "10.0.0.1:80");
        assert_eq!(endpoint_label(&String::from("a")), "a");
        assert_eq!(endpoint_label(&3u32), "3");
        assert_eq!(endpoint_label(&("a", 1)), "(\"a\", 1)");
    }
}
