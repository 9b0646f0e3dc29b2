//! Metrics and events.

use steadfast::circuit_breaker::State;

use crate::events;
use crate::support::*;

#[tokio::test(start_paused = true)]
async fn events_on_transitions_and_rejections() {
    let events = events::capture();

    let layer = count_builder(1)
        .name("payments")
        .half_open_calls(1)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    trip(&mut svc, &layer).await;
    rejected(&mut svc).await;
    advance(secs(10)).await;
    ok(&mut svc).await;

    let text = events.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("circuit breaker opened"),
        "{text}"
    );
    assert!(lines[0].contains("circuit_breaker.name=payments"), "{text}");
    assert!(lines[0].contains("circuit_breaker.to=\"open\""), "{text}");
    assert!(
        lines[1].contains("DEBUG") && lines[1].contains("rejected a call"),
        "{text}"
    );
    assert!(
        lines[1].contains("circuit_breaker.retry_after_ms=10000"),
        "{text}"
    );
    assert!(lines[2].contains("INFO") && lines[2].contains("circuit_breaker.to=\"half_open\""));
    assert!(
        lines[3].contains("INFO") && lines[3].contains("circuit breaker closed"),
        "{text}"
    );
    assert_eq!(layer.state(), State::Closed);
}

#[cfg(feature = "metrics")]
mod metrics {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    fn counter(value: Option<&DebugValue>) -> u64 {
        match value {
            Some(DebugValue::Counter(n)) => *n,
            // A transition that never happened has no series yet.
            None => 0,
            other => panic!("not a counter: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn metrics_count_calls_rejections_and_transitions() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        // Installed for the whole test: per-call handles are registered at build, and the
        // transitions counter is looked up when a transition happens.
        let _recorder = ::metrics::set_default_local_recorder(&recorder);
        let layer = count_builder(2)
            .minimum_calls(2)
            .name("search")
            .half_open_calls(1)
            .build()
            .unwrap();
        let (mut svc, _) = service(&layer);
        ok(&mut svc).await;
        fail(&mut svc).await;
        rejected(&mut svc).await;
        rejected(&mut svc).await;
        advance(secs(10)).await;
        ok(&mut svc).await;

        let snapshot = snapshotter.snapshot().into_vec();
        let name = ("name", "search");
        let calls = |outcome| {
            counter(find(
                &snapshot,
                "steadfast_circuit_breaker_calls_total",
                &[name, ("outcome", outcome)],
            ))
        };
        assert_eq!(calls("success"), 2);
        assert_eq!(calls("failure"), 1);
        assert_eq!(calls("slow_success"), 0);
        assert_eq!(
            counter(find(
                &snapshot,
                "steadfast_circuit_breaker_not_permitted_total",
                &[name]
            )),
            2
        );
        let transitions = |from, to| {
            counter(find(
                &snapshot,
                "steadfast_circuit_breaker_transitions_total",
                &[name, ("from", from), ("to", to)],
            ))
        };
        assert_eq!(transitions("closed", "open"), 1);
        assert_eq!(transitions("open", "half_open"), 1);
        assert_eq!(transitions("half_open", "closed"), 1);
        assert_eq!(transitions("half_open", "open"), 0);
        match find(&snapshot, "steadfast_circuit_breaker_state", &[name]) {
            Some(DebugValue::Gauge(value)) => assert_eq!(value.0, 0.0),
            other => panic!("state gauge: {other:?}"),
        }
    }
}
