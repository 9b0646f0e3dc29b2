//! Integration tests of `steadfast::chaos`, on paused tokio time: exact counts under a seed,
//! exact delays and outage windows, run-time switches, errors, configuration, composition with
//! the breaker and retry, telemetry.

#![cfg(feature = "chaos")]

#[path = "support/events.rs"]
mod events;

use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::chaos::{
    Chaos, ChaosLayer, Counts, FaultKind, FaultResponse, InjectedFault, MAX_LATENCY,
};
use tokio::time::{Instant, advance};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What the backend does with one call.
#[derive(Debug, Clone, Copy)]
enum Call {
    Ok,
    Fail,
    /// Sleeps, then succeeds.
    Sleep(Duration),
}

/// The backend's own error, to check that it passes through unwrapped.
#[derive(Debug, PartialEq, Eq)]
struct BackendError;

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("backend failed")
    }
}

impl std::error::Error for BackendError {}

/// A backend that counts the calls made to it (`call`) and the calls whose future started
/// running (first poll).
#[derive(Clone, Default)]
struct Backend {
    calls: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
}

impl Backend {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
}

impl Service<Call> for Backend {
    type Response = u16;
    type Error = BackendError;
    type Future = Pin<Box<dyn Future<Output = Result<u16, BackendError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let started = self.started.clone();
        Box::pin(async move {
            started.fetch_add(1, Ordering::SeqCst);
            match call {
                Call::Ok => Ok(200),
                Call::Fail => Err(BackendError),
                Call::Sleep(duration) => {
                    tokio::time::sleep(duration).await;
                    Ok(200)
                }
            }
        })
    }
}

fn service<R: Clone>(layer: &ChaosLayer<R>) -> (Chaos<Backend, R>, Backend) {
    let backend = Backend::default();
    (layer.layer(backend.clone()), backend)
}

async fn send<S>(service: &mut S, call: Call) -> Result<u16, BoxError>
where
    S: Service<Call, Response = u16, Error = BoxError>,
{
    service.ready().await?.call(call).await
}

/// The kind of the injected fault `err` must be.
fn fault_kind(err: &BoxError) -> FaultKind {
    match err.downcast_ref::<InjectedFault>() {
        Some(fault) => fault.kind(),
        None => panic!("expected an InjectedFault, got {err}"),
    }
}

/// Sends one call that must be failed on purpose, and returns the kind of fault.
async fn injected<S>(service: &mut S) -> FaultKind
where
    S: Service<Call, Response = u16, Error = BoxError>,
{
    let err = send(service, Call::Ok).await.unwrap_err();
    fault_kind(&err)
}

/// Polls a future once, with no waker.
fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Which of `n` calls fail (`true`), for a layer without latency: calls complete at once.
fn failures(service: &mut Chaos<Backend>, n: usize) -> Vec<bool> {
    (0..n)
        .map(|_| {
            let future = pin!(service.call(Call::Ok));
            match poll_once(future) {
                Poll::Ready(Ok(_)) => false,
                Poll::Ready(Err(err)) => {
                    assert_eq!(fault_kind(&err), FaultKind::Error);
                    true
                }
                Poll::Pending => panic!("a call without latency completes at once"),
            }
        })
        .collect()
}

// ---- Off unless configured --------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_layer_with_nothing_configured_injects_nothing() {
    let layer = ChaosLayer::builder().build().unwrap();
    let handle = layer.handle();
    let (mut svc, backend) = service(&layer);
    for _ in 0..100 {
        assert_eq!(send(&mut svc, Call::Ok).await.unwrap(), 200);
    }
    assert_eq!(backend.calls(), 100);
    assert!(handle.is_enabled());
    assert!(!handle.in_outage());
    // Nothing to inject: calls are not even judged.
    assert_eq!(handle.counts(), Counts::default());
}

#[tokio::test(start_paused = true)]
async fn a_disabled_layer_injects_nothing_until_enabled() {
    let layer = ChaosLayer::builder()
        .error_rate(1.0)
        .latency(1.0, secs(1))
        .outage_at(Duration::ZERO, secs(3600))
        .enabled(false)
        .build()
        .unwrap();
    let handle = layer.handle();
    let (mut svc, backend) = service(&layer);
    handle.start_outage();
    let start = Instant::now();
    for _ in 0..100 {
        assert_eq!(send(&mut svc, Call::Ok).await.unwrap(), 200);
    }
    assert_eq!(Instant::now(), start, "no delay either");
    assert_eq!(backend.calls(), 100);
    assert!(!handle.is_enabled());
    assert_eq!(handle.counts(), Counts::default());

    handle.enable();
    assert_eq!(injected(&mut svc).await, FaultKind::Outage);
    handle.stop_outage();
    // Still inside the scheduled window.
    assert_eq!(injected(&mut svc).await, FaultKind::Outage);
    handle.disable();
    assert_eq!(send(&mut svc, Call::Ok).await.unwrap(), 200);
    let counts = handle.counts();
    assert_eq!(
        (counts.calls(), counts.outages(), counts.errors()),
        (2, 2, 0)
    );
    assert_eq!(backend.calls(), 101);
}

// ---- Error rate and the seed ------------------------------------------------------------------

fn seeded(seed: u64, rate: f64) -> ChaosLayer {
    ChaosLayer::builder()
        .error_rate(rate)
        .seed(seed)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_error_rate_fails_its_share_of_calls_the_same_way_for_a_seed() {
    let layer = seeded(42, 0.2);
    let (mut svc, backend) = service(&layer);
    let first = failures(&mut svc, 1000);
    let failed = first.iter().filter(|&&failed| failed).count();
    // 1000 draws at 0.2: mean 200, standard deviation 12.6; within 3.2 of them.
    assert!((160..=240).contains(&failed), "{failed} failures");
    // The exact count of this seed, pinned so a change of generator is seen.
    assert_eq!(failed, 223);
    assert_eq!(backend.calls(), 1000 - failed);
    let counts = layer.handle().counts();
    assert_eq!(counts.calls(), 1000);
    assert_eq!(counts.errors() as usize, failed);
    assert_eq!(counts.faults() as usize, failed);
    assert_eq!((counts.outages(), counts.delays()), (0, 0));

    // Same seed, new layer: the very same sequence.
    let (mut again, _) = service(&seeded(42, 0.2));
    assert_eq!(failures(&mut again, 1000), first);
    // Another seed: another sequence.
    let (mut other, _) = service(&seeded(43, 0.2));
    assert_ne!(failures(&mut other, 1000), first);
}

#[tokio::test(start_paused = true)]
async fn the_sequence_follows_the_calls_whichever_service_makes_them() {
    let layer = seeded(7, 0.5);
    let (mut one, _) = service(&seeded(7, 0.5));
    let expected = failures(&mut one, 60);

    let (mut a, _) = service(&layer);
    let (mut b, _) = service(&layer.clone());
    let mut c = a.clone();
    let mut seen = Vec::new();
    for round in 0..20 {
        let _ = round;
        seen.extend(failures(&mut a, 1));
        seen.extend(failures(&mut b, 1));
        seen.extend(failures(&mut c, 1));
    }
    assert_eq!(seen, expected);
    assert_eq!(c.handle().counts().calls(), 60);
}

#[test]
fn threads_sharing_a_layer_see_the_seeds_exact_count() {
    // Each judged call takes the next number of the sequence, so 1000 calls spread over four
    // threads draw the same 1000 numbers as 1000 calls in a row: the same failures in total.
    let layer = seeded(42, 0.2);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (mut svc, _) = service(&layer);
            std::thread::spawn(move || {
                let failed = failures(&mut svc, 250);
                failed.iter().filter(|&&failed| failed).count()
            })
        })
        .collect();
    let failed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(failed, 223);
    assert_eq!(layer.handle().counts().calls(), 1000);
}

#[tokio::test(start_paused = true)]
async fn error_rates_of_zero_and_one_are_exact() {
    let (mut never, backend) = service(&seeded(1, 0.0));
    assert!(failures(&mut never, 500).iter().all(|&failed| !failed));
    assert_eq!(backend.calls(), 500);
    let (mut always, backend) = service(&seeded(1, 1.0));
    assert!(failures(&mut always, 500).iter().all(|&failed| failed));
    assert_eq!(
        backend.calls(),
        0,
        "an injected fault never reaches the service"
    );
}

#[tokio::test(start_paused = true)]
async fn an_injected_fault_is_not_a_local_rejection() {
    let (mut svc, _) = service(&seeded(1, 1.0));
    let err = send(&mut svc, Call::Ok).await.unwrap_err();
    assert!(!steadfast::is_rejection(&*err));
    let fault = err.downcast_ref::<InjectedFault>().unwrap();
    assert_eq!(fault.kind(), FaultKind::Error);
    assert_eq!(fault.to_string(), "injected fault: error");
    assert_eq!(FaultKind::Outage.to_string(), "outage");
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_unwrapped() {
    let (mut svc, _) = service(&seeded(1, 0.0));
    let err = send(&mut svc, Call::Fail).await.unwrap_err();
    assert_eq!(*err.downcast::<BackendError>().unwrap(), BackendError);
}

// ---- Latency ----------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn latency_is_added_exactly_before_the_inner_future_runs() {
    let layer = ChaosLayer::builder().latency(1.0, ms(150)).build().unwrap();
    let (mut svc, backend) = service(&layer);
    svc.ready().await.unwrap();
    let mut future = pin!(svc.call(Call::Sleep(ms(10))));
    assert!(poll_once(future.as_mut()).is_pending());
    assert_eq!(backend.started(), 0);

    advance(ms(149)).await;
    assert!(poll_once(future.as_mut()).is_pending());
    assert_eq!(backend.started(), 0, "one tick before the delay ends");

    advance(ms(1)).await;
    assert!(poll_once(future.as_mut()).is_pending());
    assert_eq!(
        backend.started(),
        1,
        "the inner future starts when the delay ends"
    );

    advance(ms(9)).await;
    assert!(poll_once(future.as_mut()).is_pending());
    advance(ms(1)).await;
    assert_eq!(
        poll_once(future.as_mut()).map(Result::unwrap),
        Poll::Ready(200)
    );
    assert_eq!(layer.handle().counts().delays(), 1);

    // End to end, on the auto-advancing paused clock.
    let start = Instant::now();
    send(&mut svc, Call::Sleep(ms(10))).await.unwrap();
    assert_eq!(start.elapsed(), ms(160));
}

#[tokio::test(start_paused = true)]
async fn a_latency_rate_delays_its_share_of_calls() {
    let layer = ChaosLayer::builder()
        .latency(0.25, ms(100))
        .seed(5)
        .build()
        .unwrap();
    let (mut svc, backend) = service(&layer);
    let mut delayed = 0;
    for _ in 0..400 {
        let start = Instant::now();
        send(&mut svc, Call::Ok).await.unwrap();
        match start.elapsed() {
            d if d == ms(100) => delayed += 1,
            d => assert_eq!(d, Duration::ZERO),
        }
    }
    // 400 draws at 0.25: mean 100, standard deviation 8.7.
    assert!((70..=130).contains(&delayed), "{delayed} delayed");
    let counts = layer.handle().counts();
    assert_eq!(counts.delays(), delayed);
    assert_eq!((counts.calls(), counts.errors()), (400, 0));
    assert_eq!(backend.calls(), 400);
}

#[tokio::test(start_paused = true)]
async fn a_latency_range_draws_delays_within_it() {
    let layer = ChaosLayer::builder()
        .latency_range(1.0, ms(10), ms(50))
        .seed(9)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    let mut delays = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        send(&mut svc, Call::Ok).await.unwrap();
        delays.push(start.elapsed());
    }
    assert!(
        delays.iter().all(|d| (ms(10)..=ms(50)).contains(d)),
        "{delays:?}"
    );
    assert!(delays.iter().any(|d| *d < ms(15)), "{delays:?}");
    assert!(delays.iter().any(|d| *d > ms(45)), "{delays:?}");
    assert_eq!(layer.handle().counts().delays(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_fault_is_not_delayed() {
    let layer = ChaosLayer::builder()
        .error_rate(1.0)
        .latency(1.0, secs(1))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    let start = Instant::now();
    assert_eq!(injected(&mut svc).await, FaultKind::Error);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(layer.handle().counts().delays(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_delayed_call_never_starts_the_inner_future() {
    let layer = ChaosLayer::builder().latency(1.0, secs(1)).build().unwrap();
    let (mut svc, backend) = service(&layer);
    svc.ready().await.unwrap();
    let mut future = Box::pin(svc.call(Call::Ok));
    assert!(poll_once(future.as_mut()).is_pending());
    advance(ms(500)).await;
    assert!(poll_once(future.as_mut()).is_pending());
    drop(future);
    advance(secs(10)).await;
    assert_eq!((backend.calls(), backend.started()), (1, 0));
    let counts = layer.handle().counts();
    assert_eq!((counts.calls(), counts.delays()), (1, 1));
    // The service is still usable.
    let start = Instant::now();
    send(&mut svc, Call::Ok).await.unwrap();
    assert_eq!(start.elapsed(), secs(1));
}

// ---- Outages ----------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_scheduled_outage_starts_and_ends_exactly() {
    let layer = ChaosLayer::builder()
        .outage_at(secs(10), secs(5))
        .build()
        .unwrap();
    let handle = layer.handle();
    let (mut svc, backend) = service(&layer);

    advance(secs(10) - ms(1)).await;
    assert!(!handle.in_outage());
    assert_eq!(
        send(&mut svc, Call::Ok).await.unwrap(),
        200,
        "one tick before"
    );

    advance(ms(1)).await;
    assert!(handle.in_outage());
    assert_eq!(
        injected(&mut svc).await,
        FaultKind::Outage,
        "exactly at the start"
    );

    advance(secs(5) - ms(1)).await;
    assert!(handle.in_outage());
    assert_eq!(
        injected(&mut svc).await,
        FaultKind::Outage,
        "one tick before the end"
    );

    advance(ms(1)).await;
    assert!(!handle.in_outage());
    assert_eq!(
        send(&mut svc, Call::Ok).await.unwrap(),
        200,
        "exactly at the end"
    );

    advance(secs(3600)).await;
    assert_eq!(send(&mut svc, Call::Ok).await.unwrap(), 200);
    let counts = handle.counts();
    assert_eq!(
        (counts.calls(), counts.outages(), counts.errors()),
        (5, 2, 0)
    );
    assert_eq!(backend.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn several_outage_windows_apply_each() {
    let layer = ChaosLayer::builder()
        .outage_at(secs(1), secs(1))
        .outage_at(secs(5), ms(10))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    let mut timeline = Vec::new();
    for step in [ms(1000), ms(999), ms(1), ms(3000), ms(9), ms(1)] {
        advance(step).await;
        timeline.push(send(&mut svc, Call::Ok).await.is_err());
    }
    // t = 1 s, 1.999 s, 2 s, 5 s, 5.009 s, 5.010 s
    assert_eq!(timeline, [true, true, false, true, true, false]);
}

#[tokio::test(start_paused = true)]
async fn a_manual_outage_fails_every_call_until_stopped() {
    let layer = ChaosLayer::builder().build().unwrap();
    let handle = layer.handle();
    let (mut svc, backend) = service(&layer);
    handle.start_outage();
    assert!(handle.in_outage());
    for _ in 0..3 {
        assert_eq!(injected(&mut svc).await, FaultKind::Outage);
    }
    handle.disable();
    assert_eq!(send(&mut svc, Call::Ok).await.unwrap(), 200);
    handle.enable();
    assert_eq!(injected(&mut svc).await, FaultKind::Outage);
    handle.stop_outage();
    assert!(!handle.in_outage());
    assert_eq!(send(&mut svc, Call::Ok).await.unwrap(), 200);
    assert_eq!(handle.counts().outages(), 4);
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_outage_takes_precedence_over_the_error_rate() {
    let layer = ChaosLayer::builder().error_rate(1.0).build().unwrap();
    let (mut svc, _) = service(&layer);
    assert_eq!(injected(&mut svc).await, FaultKind::Error);
    layer.handle().start_outage();
    assert_eq!(injected(&mut svc).await, FaultKind::Outage);
    let counts = layer.handle().counts();
    assert_eq!(
        (counts.errors(), counts.outages(), counts.faults()),
        (1, 1, 2)
    );
}

// ---- Sharing, readiness, responses ------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn every_clone_service_and_handle_share_one_state() {
    let layer = ChaosLayer::builder().name("shared").build().unwrap();
    let (mut a, _) = service(&layer);
    let (mut b, _) = service(&layer.clone());
    let mut c = b.clone();
    let handle = a.handle().clone();
    assert_eq!(handle.name(), "shared");
    layer.clone().handle().start_outage();
    for svc in [&mut a, &mut b, &mut c] {
        assert_eq!(injected(svc).await, FaultKind::Outage);
    }
    assert_eq!(handle.counts().outages(), 3);
    b.handle().stop_outage();
    assert_eq!(send(&mut c, Call::Ok).await.unwrap(), 200);
    assert!(format!("{layer:?}").contains("ChaosLayer"));
}

#[tokio::test(start_paused = true)]
async fn readiness_is_the_inner_services() {
    let layer = ChaosLayer::builder().error_rate(1.0).build().unwrap();
    let (mock, mut mock_handle) = tower_test::mock::pair::<Call, u16>();
    let mut svc = layer.layer(mock);
    mock_handle.allow(0);
    let waiting = tokio::time::timeout(secs(1), svc.ready()).await;
    assert!(waiting.is_err(), "not ready while the inner service is not");
    mock_handle.allow(1);
    let err = svc.ready().await.unwrap().call(Call::Ok).await.unwrap_err();
    assert_eq!(fault_kind(&err), FaultKind::Error);
    let no_request = tokio::time::timeout(secs(1), mock_handle.next_request()).await;
    assert!(no_request.is_err(), "the fault never reached the service");
}

#[tokio::test(start_paused = true)]
async fn error_response_answers_faults_with_a_response() {
    let layer = ChaosLayer::builder()
        .error_rate(1.0)
        .error_response(|| 503u16)
        .build()
        .unwrap();
    let (mut svc, backend) = service(&layer);
    assert_eq!(send(&mut svc, Call::Ok).await.unwrap(), 503);
    layer.handle().start_outage();
    assert_eq!(send(&mut svc, Call::Ok).await.unwrap(), 503);
    assert_eq!(backend.calls(), 0);
    assert_eq!(layer.handle().counts().faults(), 2);
}

#[derive(Clone)]
struct ByKind;

impl FaultResponse<u16> for ByKind {
    fn respond(&self, fault: &InjectedFault) -> Option<u16> {
        match fault.kind() {
            FaultKind::Outage => Some(503),
            _ => None,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_fault_response_can_answer_each_kind_differently() {
    let layer = ChaosLayer::builder()
        .error_rate(1.0)
        .error_response(ByKind)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    assert_eq!(injected(&mut svc).await, FaultKind::Error);
    layer.handle().start_outage();
    assert_eq!(send(&mut svc, Call::Ok).await.unwrap(), 503);
}

#[test]
fn outside_a_runtime_a_delayed_call_is_sent_at_once() {
    let layer = ChaosLayer::builder().latency(1.0, secs(1)).build().unwrap();
    let (mut svc, backend) = service(&layer);
    let future = pin!(svc.call(Call::Ok));
    assert_eq!(poll_once(future).map(Result::unwrap), Poll::Ready(200));
    assert_eq!(backend.started(), 1);
    let counts = layer.handle().counts();
    assert_eq!((counts.calls(), counts.delays()), (1, 0));
}

#[test]
fn response_futures_are_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    let layer = ChaosLayer::builder().error_rate(0.5).build().unwrap();
    let (mut svc, _) = service(&layer);
    let future = svc.call(Call::Ok);
    assert_send_static(&future);
    assert_send_static(&svc);
    assert_send_static(&layer.handle());
}

#[tokio::test(start_paused = true)]
async fn an_undelayed_call_costs_a_word_over_the_inner_future() {
    let layer = ChaosLayer::builder().latency(0.5, secs(1)).build().unwrap();
    let (mut svc, _) = service(&layer);
    let future = svc.call(Call::Ok);
    let inner = std::mem::size_of::<<Backend as Service<Call>>::Future>();
    // The sleep of a delayed call is boxed, not carried by every future.
    assert!(std::mem::size_of_val(&future) <= inner + 16);
}

// ---- Configuration ----------------------------------------------------------------------------

#[test]
fn bad_configuration_is_a_config_error_naming_the_setter() {
    let builder = ChaosLayer::builder;
    let cases = [
        (builder().error_rate(1.5), "error_rate", "[0, 1]"),
        (builder().error_rate(-0.1), "error_rate", "[0, 1]"),
        (builder().error_rate(f64::NAN), "error_rate", "NaN"),
        (builder().latency(f64::NAN, ms(1)), "latency", "[0, 1]"),
        (builder().latency(1.01, ms(1)), "latency", "[0, 1]"),
        (
            builder().latency(0.5, MAX_LATENCY + ms(1)),
            "latency",
            "3600s",
        ),
        (
            builder().latency_range(0.5, ms(50), ms(10)),
            "latency_range",
            "min <= max",
        ),
        (
            builder().latency_range(-1.0, ms(1), ms(2)),
            "latency_range",
            "[0, 1]",
        ),
        (
            builder().outage_at(secs(1), Duration::ZERO),
            "outage_at",
            "more than zero",
        ),
        (
            builder().outage_at(Duration::MAX, secs(1)),
            "outage_at",
            "fits",
        ),
    ];
    for (builder, field, rule) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains(rule), "{err}");
    }
}

#[test]
fn the_edges_of_every_range_are_accepted() {
    ChaosLayer::builder()
        .error_rate(0.0)
        .latency(0.0, MAX_LATENCY)
        .build()
        .unwrap();
    ChaosLayer::builder()
        .error_rate(1.0)
        .latency_range(1.0, ms(5), ms(5))
        .outage_at(Duration::ZERO, Duration::from_nanos(1))
        .build()
        .unwrap();
    ChaosLayer::builder()
        .latency_range(1.0, Duration::ZERO, MAX_LATENCY)
        .build()
        .unwrap();
}

// ---- With the breaker and retry ---------------------------------------------------------------

#[cfg(feature = "circuit-breaker")]
#[tokio::test(start_paused = true)]
async fn a_breaker_counts_injected_errors_and_opens() {
    use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow, State};

    let breaker = CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Count(4))
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    let chaos = ChaosLayer::builder().error_rate(1.0).build().unwrap();
    let backend = Backend::default();
    let mut svc = ServiceBuilder::new()
        .layer(breaker.clone())
        .layer(chaos.clone())
        .service(backend.clone());
    for _ in 0..3 {
        assert_eq!(injected(&mut svc).await, FaultKind::Error);
        assert_eq!(breaker.state(), State::Closed);
    }
    assert_eq!(injected(&mut svc).await, FaultKind::Error);
    assert_eq!(breaker.state(), State::Open);
    let err = send(&mut svc, Call::Ok).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    assert_eq!(
        chaos.handle().counts().calls(),
        4,
        "the open breaker stopped the fifth"
    );
    assert_eq!(backend.calls(), 0);
}

#[cfg(feature = "retry")]
#[tokio::test(start_paused = true)]
async fn retry_retries_injected_faults() {
    use steadfast::retry::{Backoff, Jitter, RetryLayer};

    let retry = RetryLayer::builder()
        .max_attempts(3) // 3 attempts = 2 retries
        .backoff(Backoff::constant(ms(10)).jitter(Jitter::None))
        .build()
        .unwrap();
    let chaos = ChaosLayer::builder().error_rate(1.0).build().unwrap();
    let backend = Backend::default();
    let mut svc = ServiceBuilder::new()
        .layer(retry.clone())
        .layer(chaos.clone())
        .service(backend.clone());
    assert_eq!(injected(&mut svc).await, FaultKind::Error);
    assert_eq!(chaos.handle().counts().errors(), 3);
    assert_eq!(backend.calls(), 0);

    // An outage that ends during the backoff: the retry gets through.
    let chaos = ChaosLayer::builder().build().unwrap();
    let handle = chaos.handle();
    let mut svc = retry.layer(chaos.layer(backend.clone()));
    handle.start_outage();
    svc.ready().await.unwrap();
    let mut future = pin!(svc.call(Call::Ok));
    assert!(
        poll_once(future.as_mut()).is_pending(),
        "waiting out the backoff"
    );
    assert_eq!(handle.counts().outages(), 1);
    handle.stop_outage();
    advance(ms(10)).await;
    assert_eq!(future.await.unwrap(), 200);
    assert_eq!(backend.calls(), 1);
}

// ---- Telemetry --------------------------------------------------------------------------------

mod telemetry {

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn events_for_faults_delays_and_switches() {
        let events = events::capture();

        let layer = ChaosLayer::builder()
            .name("payments")
            .latency(1.0, ms(150))
            .build()
            .unwrap();
        let handle = layer.handle();
        let (mut svc, _) = service(&layer);
        send(&mut svc, Call::Ok).await.unwrap();
        handle.start_outage();
        handle.start_outage(); // no change: no event
        injected(&mut svc).await;
        handle.stop_outage();
        handle.disable();
        handle.disable();
        handle.enable();

        let text = events.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        let expect = |i: usize, parts: &[&str]| {
            for part in parts {
                assert!(lines[i].contains(part), "line {i} lacks {part}: {text}");
            }
        };
        expect(
            0,
            &[
                "DEBUG",
                "chaos delayed a call",
                "chaos.name=payments",
                "chaos.kind=\"latency\"",
                "chaos.delay_ms=150",
            ],
        );
        expect(1, &["WARN", "chaos outage started", "chaos.name=payments"]);
        expect(
            2,
            &["DEBUG", "chaos failed a call", "chaos.kind=\"outage\""],
        );
        expect(3, &["INFO", "chaos outage stopped"]);
        expect(4, &["INFO", "chaos switched off", "chaos.enabled=false"]);
        expect(5, &["INFO", "chaos switched on", "chaos.enabled=true"]);
    }

    #[cfg(feature = "metrics")]
    #[tokio::test(start_paused = true)]
    async fn injected_faults_and_delays_are_counted() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        use std::collections::BTreeMap;

        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let layer = metrics::with_local_recorder(&recorder, || {
            ChaosLayer::builder()
                .name("search")
                .error_rate(0.3)
                .latency(0.5, ms(5))
                .seed(11)
                .build()
                .unwrap()
        });
        let handle = layer.handle();
        let (mut svc, _) = service(&layer);
        for _ in 0..50 {
            let _ = send(&mut svc, Call::Ok).await;
        }
        handle.start_outage();
        for _ in 0..3 {
            let _ = send(&mut svc, Call::Ok).await;
        }

        let mut counters = BTreeMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            if let DebugValue::Counter(n) = value {
                counters.insert(format!("{}{{{}}}", key.name(), labels.join(",")), n);
            }
        }
        let count = |kind: &str| {
            counters
                .get(&format!(
                    "steadfast_chaos_injected_total{{name=search,kind={kind}}}"
                ))
                .copied()
                .unwrap_or_else(|| panic!("no counter for {kind}: {counters:?}"))
        };
        let counts = handle.counts();
        assert!(counts.errors() > 0 && counts.delays() > 0);
        assert_eq!(count("error"), counts.errors());
        assert_eq!(count("latency"), counts.delays());
        assert_eq!(count("outage"), 3);
        assert_eq!((counts.calls(), counts.outages()), (53, 3));
    }
}

// ---- Properties -------------------------------------------------------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// For any seed and rate, the failures of 2000 calls stay within 5 standard deviations
        /// of the mean, and a second layer with the seed repeats them exactly.
        #[test]
        fn error_counts_stay_near_the_rate(seed in any::<u64>(), rate in 0.01f64..0.99) {
            let (mut svc, _) = service(&seeded(seed, rate));
            let first = failures(&mut svc, 2000);
            let failed = first.iter().filter(|&&failed| failed).count() as f64;
            let mean = 2000.0 * rate;
            let sd = (2000.0 * rate * (1.0 - rate)).sqrt();
            prop_assert!((failed - mean).abs() <= 5.0 * sd, "{failed} vs {mean} ± {sd}");
            let (mut again, _) = service(&seeded(seed, rate));
            prop_assert_eq!(failures(&mut again, 2000), first);
        }
    }
}
