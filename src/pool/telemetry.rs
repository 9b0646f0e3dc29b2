//! The pool's metric handles, registered once when the pool is built.

use metrics::{Counter, Gauge};

/// Handles of `steadfast_pool_*`, labelled with the pool's `name`.
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
