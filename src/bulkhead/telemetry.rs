//! The bulkhead's metric handles (feature `metrics`), registered and described when the layer is
//! built. Its `tracing` events are emitted where they happen (`mod.rs`, `wait.rs`).

/// Metric handles, registered once at build time.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) in_flight: metrics::Gauge,
    pub(crate) rejected: metrics::Counter,
    /// Set at build and by every resize.
    pub(crate) max_concurrent_calls: metrics::Gauge,
}

impl Metrics {
    /// Registers the handles of the bulkhead `name` with the recorder installed now, and sets
    /// the `max_concurrent_calls` gauge once.
    pub(crate) fn register(name: &str, max_concurrent_calls: u32) -> Self {
        describe();
        let labels = [("name", name.to_owned())];
        let max_gauge = metrics::gauge!("steadfast_bulkhead_max_concurrent_calls", &labels);
        max_gauge.set(f64::from(max_concurrent_calls));
        Self {
            in_flight: metrics::gauge!("steadfast_bulkhead_in_flight", &labels),
            rejected: metrics::counter!("steadfast_bulkhead_rejected_total", &labels),
            max_concurrent_calls: max_gauge,
        }
    }
}

/// The `# HELP` text and unit of the bulkhead's metrics.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_gauge!(
        "steadfast_bulkhead_in_flight",
        Unit::Count,
        "Permits held: calls admitted by the bulkhead and not finished"
    );
    describe_counter!(
        "steadfast_bulkhead_rejected_total",
        Unit::Count,
        "Calls rejected with BulkheadFull"
    );
    describe_gauge!(
        "steadfast_bulkhead_max_concurrent_calls",
        Unit::Count,
        "The configured limit of concurrent calls"
    );
}
