//! MTBF, MTTR and availability: exact figures on paused time, in the snapshot and as metrics.

use std::time::Duration;

use proptest::prelude::*;
use steadfast::circuit_breaker::{CircuitBreakerLayer, State};

use crate::support::*;

/// A breaker that opens on one failure, waits 10 s, and closes on one good probe.
fn breaker() -> CircuitBreakerLayer {
    count_builder(1).half_open_calls(1).build().unwrap()
}

fn figures(layer: &CircuitBreakerLayer) -> (Option<Duration>, Option<Duration>, Option<f64>) {
    let snapshot = layer.snapshot();
    (snapshot.mtbf(), snapshot.mttr(), snapshot.availability())
}

#[tokio::test(start_paused = true)]
async fn closed_90_s_open_10_s_is_availability_0_9() {
    let layer = breaker();
    let (mut svc, _) = service(&layer);
    advance(secs(90)).await;
    trip(&mut svc, &layer).await;
    advance(secs(10)).await;
    ok(&mut svc).await; // the probe: half-open, then closed
    assert_eq!(layer.state(), State::Closed);
    assert_eq!(figures(&layer), (Some(secs(90)), Some(secs(10)), Some(0.9)));
}

#[tokio::test(start_paused = true)]
async fn no_figures_before_there_is_data() {
    let layer = breaker();
    assert_eq!(figures(&layer), (None, None, None));
    advance(ms(1)).await;
    // Up for a millisecond and never down: fully available, but no failure to time yet.
    assert_eq!(figures(&layer), (None, None, Some(1.0)));
}

#[tokio::test(start_paused = true)]
async fn the_period_in_progress_counts_for_availability_only() {
    let layer = breaker();
    let (mut svc, _) = service(&layer);
    advance(secs(30)).await;
    trip(&mut svc, &layer).await;
    // Down for 10 s, not over: no MTTR yet, but availability falls as the outage goes on.
    advance(secs(10)).await;
    assert_eq!(figures(&layer), (Some(secs(30)), None, Some(0.75)));
    advance(secs(30)).await;
    // Reading the state made it half-open: still down.
    assert_eq!(layer.state(), State::HalfOpen);
    assert_eq!(figures(&layer), (Some(secs(30)), None, Some(30.0 / 70.0)));
    // Up again for 30 s: the up period in progress is not in MTBF.
    ok(&mut svc).await;
    advance(secs(30)).await;
    assert_eq!(figures(&layer), (Some(secs(30)), Some(secs(40)), Some(0.6)));
}

#[tokio::test(start_paused = true)]
async fn half_opens_and_reopens_belong_to_the_down_period() {
    let layer = breaker();
    let (mut svc, _) = service(&layer);
    advance(secs(20)).await;
    trip(&mut svc, &layer).await;
    advance(secs(10)).await;
    fail(&mut svc).await; // the probe fails: open again
    assert_eq!(layer.state(), State::Open);
    advance(secs(10)).await;
    ok(&mut svc).await;
    assert_eq!(layer.state(), State::Closed);
    assert_eq!(figures(&layer), (Some(secs(20)), Some(secs(20)), Some(0.5)));

    // A second cycle: the means are over both.
    advance(secs(40)).await;
    fail(&mut svc).await;
    advance(secs(10)).await;
    ok(&mut svc).await;
    assert_eq!(
        figures(&layer),
        (Some(secs(30)), Some(secs(15)), Some(60.0 / 90.0))
    );
}

#[tokio::test(start_paused = true)]
async fn disabled_counts_as_up_and_manual_moves_count() {
    let layer = breaker();
    advance(secs(10)).await;
    layer.disable();
    advance(secs(20)).await;
    // Closed then disabled: one up period, still in progress.
    assert_eq!(figures(&layer), (None, None, Some(1.0)));
    layer.force_open();
    assert_eq!(figures(&layer), (Some(secs(30)), None, Some(1.0)));
    advance(secs(10)).await;
    layer.reset();
    assert_eq!(
        figures(&layer),
        (Some(secs(30)), Some(secs(10)), Some(0.75))
    );
    // Open, then disabled: the down period ends there.
    layer.force_open();
    advance(secs(20)).await;
    layer.disable();
    assert_eq!(figures(&layer), (Some(secs(15)), Some(secs(15)), Some(0.5)));
}

#[tokio::test(start_paused = true)]
async fn a_breaker_built_forced_open_starts_down() {
    let layer = count_builder(1)
        .initial_state(State::ForcedOpen)
        .build()
        .unwrap();
    advance(secs(10)).await;
    assert_eq!(figures(&layer), (None, None, Some(0.0)));
    layer.reset();
    advance(secs(10)).await;
    assert_eq!(figures(&layer), (None, Some(secs(10)), Some(0.5)));
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_share_the_figures() {
    let layer = breaker();
    let clone = layer.clone();
    let (mut svc, _) = service(&clone);
    advance(secs(5)).await;
    trip(&mut svc, &layer).await;
    advance(secs(5)).await;
    assert_eq!(figures(&layer), figures(&clone));
    assert_eq!(figures(&layer), (Some(secs(5)), None, Some(0.5)));
}

#[tokio::test(start_paused = true)]
async fn a_reset_of_a_closed_breaker_ends_no_period() {
    let layer = breaker();
    advance(secs(10)).await;
    layer.reset();
    advance(secs(10)).await;
    layer.force_open();
    assert_eq!(figures(&layer), (Some(secs(20)), None, Some(1.0)));
}

proptest! {
    /// Any sequence of up and down periods, made by hand: the figures are the model's.
    #[test]
    fn figures_match_a_sequential_model(
        periods in prop::collection::vec(1u64..100_000, 1..12),
        tail in 0u64..100_000,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let layer = breaker();
            let (mut up, mut down) = (Vec::new(), Vec::new());
            for (i, &length) in periods.iter().enumerate() {
                advance(ms(length)).await;
                if i % 2 == 0 {
                    up.push(ms(length));
                    layer.force_open();
                } else {
                    down.push(ms(length));
                    layer.reset();
                }
            }
            advance(ms(tail)).await;
            let mean = |v: &[Duration]| {
                (!v.is_empty()).then(|| v.iter().sum::<Duration>() / v.len() as u32)
            };
            let (up_total, down_total): (Duration, Duration) =
                (up.iter().sum(), down.iter().sum());
            let (up_now, down_now) = if periods.len() % 2 == 0 {
                (up_total + ms(tail), down_total)
            } else {
                (up_total, down_total + ms(tail))
            };
            let expected = up_now.as_secs_f64() / (up_now + down_now).as_secs_f64();
            let (mtbf, mttr, availability) = figures(&layer);
            prop_assert_eq!(mtbf, mean(&up));
            prop_assert_eq!(mttr, mean(&down));
            prop_assert_eq!(availability, Some(expected));
            let availability = availability.unwrap_or(-1.0);
            prop_assert!((0.0..=1.0).contains(&availability));
            Ok(())
        })?;
    }
}

#[cfg(feature = "metrics")]
mod metrics {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

    /// MTBF, MTTR and availability gauges of the breaker "orders". The debugging recorder's
    /// snapshot takes the values (a gauge reads 0 until it is set again), so read all three at once.
    fn gauges(snapshotter: &Snapshotter) -> (f64, f64, f64) {
        let snapshot = snapshotter.snapshot().into_vec();
        let gauge = |name: &str| match find(&snapshot, name, &[("name", "orders")]) {
            Some(DebugValue::Gauge(value)) => value.0,
            other => panic!("{name}: not a gauge: {other:?}"),
        };
        (
            gauge("steadfast_circuit_breaker_mtbf_seconds"),
            gauge("steadfast_circuit_breaker_mttr_seconds"),
            gauge("steadfast_circuit_breaker_availability"),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn gauges_follow_transitions_and_snapshots() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        // Installed for the whole test: these gauges are looked up when the state changes.
        let _recorder = ::metrics::set_default_local_recorder(&recorder);
        let layer = count_builder(1)
            .half_open_calls(1)
            .name("orders")
            .build()
            .unwrap();
        // Registered at build: no means yet, fully available.
        assert_eq!(gauges(&snapshotter), (0.0, 0.0, 1.0));

        let (mut svc, _) = service(&layer);
        advance(secs(90)).await;
        trip(&mut svc, &layer).await;
        // Opened after 90 s up: MTBF is known, MTTR not yet (left unset).
        assert_eq!(gauges(&snapshotter), (90.0, 0.0, 1.0));
        advance(secs(10)).await;
        ok(&mut svc).await; // half-open, then closed
        assert_eq!(gauges(&snapshotter), (90.0, 10.0, 0.9));

        // Between transitions, nothing is set; a breaker snapshot refreshes the gauges.
        advance(secs(100)).await;
        assert_eq!(gauges(&snapshotter), (0.0, 0.0, 0.0));
        let _ = layer.snapshot();
        assert_eq!(gauges(&snapshotter), (90.0, 10.0, 190.0 / 200.0));
    }
}
