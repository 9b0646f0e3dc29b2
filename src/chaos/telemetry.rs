//! Chaos's metric handles (feature `metrics`), registered and described when the layer is built.

/// `steadfast_chaos_injected_total{name, kind}`, one handle per kind.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) error: metrics::Counter,
    pub(crate) outage: metrics::Counter,
    pub(crate) latency: metrics::Counter,
}

impl Metrics {
    /// Registers the handles of the layer `name` with the recorder installed now.
    pub(crate) fn register(name: &str) -> Self {
        metrics::describe_counter!(
            "steadfast_chaos_injected_total",
            metrics::Unit::Count,
            "Faults and delays injected by chaos, by kind: error, outage, latency"
        );
        let counter = |kind: &'static str| {
            metrics::counter!(
                "steadfast_chaos_injected_total",
                "name" => name.to_owned(),
                "kind" => kind
            )
        };
        Self {
            error: counter("error"),
            outage: counter("outage"),
            latency: counter("latency"),
        }
    }
}
