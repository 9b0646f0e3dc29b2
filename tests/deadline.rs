//! `steadfast::deadline`: the `Deadline` type, the `grpc-timeout` wire format (with property
//! tests), and the inbound and propagating HTTP layers.

#[path = "support/events.rs"]
mod events;

use std::time::Duration;

use proptest::prelude::*;
use steadfast::deadline::{Deadline, format_grpc_timeout, parse_grpc_timeout};
use tokio::time::{Instant, advance};

const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------------
// Deadline

#[tokio::test(start_paused = true)]
async fn deadline_boundaries() {
    let deadline = Deadline::after(10 * MS);
    assert_eq!(deadline.instant(), Instant::now() + 10 * MS);
    advance(9 * MS).await;
    assert!(!deadline.has_passed(), "one tick before");
    assert_eq!(deadline.remaining(), MS);
    advance(MS).await;
    assert!(deadline.has_passed(), "exactly at");
    assert_eq!(deadline.remaining(), Duration::ZERO);
    advance(MS).await;
    assert!(deadline.has_passed(), "one tick after");
    assert_eq!(deadline.remaining(), Duration::ZERO, "saturates at zero");
}

#[tokio::test(start_paused = true)]
async fn deadline_min_and_ordering() {
    let early = Deadline::after(MS);
    let late = Deadline::after(2 * MS);
    assert_eq!(late.min(Some(early)), early);
    assert_eq!(early.min(Some(late)), early);
    assert_eq!(late.min(None), late);
    assert!(early < late);
    assert_eq!(Deadline::at(early.instant()), early);
}

#[tokio::test(start_paused = true)]
async fn deadline_after_saturates() {
    let d = Deadline::after(Duration::MAX);
    assert!(d.remaining() >= Duration::from_secs(29 * 365 * 24 * 3600));
}

#[tokio::test(start_paused = true)]
async fn scopes_nest_and_end() {
    assert_eq!(Deadline::current(), None);
    let outer = Deadline::after(Duration::from_secs(2));
    let inner = Deadline::after(Duration::from_secs(1));
    outer
        .scope(async move {
            assert_eq!(Deadline::current(), Some(outer));
            inner
                .scope(async move { assert_eq!(Deadline::current(), Some(inner)) })
                .await;
            assert_eq!(Deadline::current(), Some(outer));
            let seen = inner.sync_scope(Deadline::current);
            assert_eq!(seen, Some(inner));
            assert_eq!(Deadline::current(), Some(outer));
        })
        .await;
    assert_eq!(Deadline::current(), None);
}

// ---------------------------------------------------------------------------------------------
// grpc-timeout

#[test]
fn parses_every_unit() {
    assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
    assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
    assert_eq!(parse_grpc_timeout("4S"), Some(Duration::from_secs(4)));
    assert_eq!(parse_grpc_timeout("5m"), Some(Duration::from_millis(5)));
    assert_eq!(parse_grpc_timeout("6u"), Some(Duration::from_micros(6)));
    assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
    assert_eq!(parse_grpc_timeout("0n"), Some(Duration::ZERO));
    assert_eq!(
        parse_grpc_timeout("00000010S"),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        parse_grpc_timeout("99999999H"),
        Some(Duration::from_secs(99_999_999 * 3600))
    );
}

#[test]
fn rejects_malformed_values() {
    for bad in [
        "",
        "S",
        "m",
        "1",
        "12345678",
        "123456789n",
        "000000001S",
        "1s",
        "1h",
        "1x",
        "-1S",
        "+1S",
        " 1S",
        "1S ",
        "1 S",
        "1.5S",
        "1SS",
        "S1",
        "١S",
        "1é",
        "0x1S",
        "1\0",
        "∞S",
    ] {
        assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
    }
}

#[test]
fn formats_in_the_finest_unit_that_fits() {
    assert_eq!(format_grpc_timeout(Duration::ZERO), "0n");
    assert_eq!(format_grpc_timeout(Duration::from_nanos(1)), "1n");
    assert_eq!(
        format_grpc_timeout(Duration::from_nanos(99_999_999)),
        "99999999n"
    );
    assert_eq!(
        format_grpc_timeout(Duration::from_nanos(100_000_000)),
        "100000u"
    );
    assert_eq!(
        format_grpc_timeout(Duration::from_nanos(100_000_999)),
        "100000u"
    );
    assert_eq!(
        format_grpc_timeout(Duration::from_micros(99_999_999)),
        "99999999u"
    );
    assert_eq!(
        format_grpc_timeout(Duration::from_micros(100_000_000)),
        "100000m"
    );
    assert_eq!(
        format_grpc_timeout(Duration::from_millis(99_999_999)),
        "99999999m"
    );
    assert_eq!(
        format_grpc_timeout(Duration::from_millis(100_000_000)),
        "100000S"
    );
    assert_eq!(
        format_grpc_timeout(Duration::from_secs(99_999_999)),
        "99999999S"
    );
    assert_eq!(
        format_grpc_timeout(Duration::from_secs(100_000_000)),
        "1666666M"
    );
    assert_eq!(
        format_grpc_timeout(Duration::from_secs(99_999_999 * 60)),
        "99999999M"
    );
    assert_eq!(
        format_grpc_timeout(Duration::from_secs(100_000_000 * 60)),
        "1666666H"
    );
    assert_eq!(format_grpc_timeout(Duration::MAX), "99999999H");
}

fn unit_nanos(text: &str) -> u128 {
    match text.as_bytes().last() {
        Some(b'n') => 1,
        Some(b'u') => 1_000,
        Some(b'm') => 1_000_000,
        Some(b'S') => 1_000_000_000,
        Some(b'M') => 60_000_000_000,
        Some(b'H') => 3_600_000_000_000,
        other => panic!("bad unit {other:?}"),
    }
}

proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC*") {
        let _ = parse_grpc_timeout(&s);
    }

    #[test]
    fn parse_never_panics_on_near_misses(s in "[0-9+\\- ]{0,12}[HMSmun hs]{0,2}") {
        if let Some(d) = parse_grpc_timeout(&s) {
            // Whatever parses is canonical: 1-8 digits and one unit.
            let digits = &s[..s.len() - 1];
            prop_assert!(!digits.is_empty() && digits.len() <= 8);
            prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(d <= Duration::from_secs(99_999_999 * 3600));
        }
    }

    #[test]
    fn format_then_parse_round_trips(secs in 0u64..=u64::MAX, nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        let text = format_grpc_timeout(d);
        prop_assert!(text.len() <= 9, "{text}");
        let parsed = parse_grpc_timeout(&text);
        prop_assert!(parsed.is_some(), "{text} does not parse");
        let parsed = parsed.unwrap_or_default();
        let cap = Duration::from_secs(99_999_999 * 3600);
        if d <= cap {
            // Rounded down, by less than one unit.
            prop_assert!(parsed <= d);
            prop_assert!(d.as_nanos() - parsed.as_nanos() < unit_nanos(&text));
        } else {
            prop_assert_eq!(parsed, cap);
        }
        // Finest unit: the next finer one would need more than 8 digits.
        let finer = match unit_nanos(&text) {
            1 => None,
            1_000 => Some(1),
            1_000_000 => Some(1_000),
            1_000_000_000 => Some(1_000_000),
            60_000_000_000 => Some(1_000_000_000),
            _ => Some(60_000_000_000),
        };
        if let Some(finer) = finer {
            prop_assert!(d.as_nanos() / finer > 99_999_999);
        }
    }

    #[test]
    fn exact_values_round_trip(value in 0u64..=99_999_999, unit in 0usize..6) {
        let d = match unit {
            0 => Duration::from_nanos(value),
            1 => Duration::from_micros(value),
            2 => Duration::from_millis(value),
            3 => Duration::from_secs(value),
            4 => Duration::from_secs(value * 60),
            _ => Duration::from_secs(value * 3600),
        };
        prop_assert_eq!(parse_grpc_timeout(&format_grpc_timeout(d)), Some(d));
    }

    #[test]
    fn parse_then_format_then_parse_is_stable(value in 0u64..=99_999_999, unit in "[HMSmun]") {
        let d = parse_grpc_timeout(&format!("{value}{unit}"));
        prop_assert!(d.is_some());
        let d = d.unwrap_or_default();
        prop_assert_eq!(parse_grpc_timeout(&format_grpc_timeout(d)), Some(d));
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP layers

#[cfg(feature = "http")]
mod http_layers {
    use super::*;

    use std::convert::Infallible;
    use std::sync::Arc;

    use http::{HeaderValue, Request};
    use steadfast::deadline::{
        DEFAULT_SAFETY_MARGIN, ENVOY_EXPECTED_RQ_TIMEOUT_MS, GRPC_TIMEOUT, InboundDeadlineLayer,
    };
    use tower::{Layer, Service, ServiceExt, service_fn};

    /// What the handler saw: the deadline in the extensions, and the current one in its call
    /// and in its future.
    #[derive(Debug, PartialEq)]
    struct Seen {
        extension: Option<Deadline>,
        in_call: Option<Deadline>,
        in_future: Option<Deadline>,
    }

    fn handler() -> impl Service<Request<()>, Response = Seen, Error = Infallible> + Clone {
        service_fn(|req: Request<()>| {
            let extension = req.extensions().get::<Deadline>().copied();
            let in_call = Deadline::current();
            async move {
                Ok(Seen {
                    extension,
                    in_call,
                    in_future: Deadline::current(),
                })
            }
        })
    }

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::new(());
        for (name, value) in headers {
            req.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        req
    }

    async fn inbound(layer: InboundDeadlineLayer, headers: &[(&str, &str)]) -> Seen {
        layer
            .layer(handler())
            .oneshot(request(headers))
            .await
            .unwrap()
    }

    fn seen(deadline: Option<Deadline>) -> Seen {
        Seen {
            extension: deadline,
            in_call: deadline,
            in_future: deadline,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_reads_grpc_timeout() {
        let now = Instant::now();
        let got = inbound(InboundDeadlineLayer::new(), &[("grpc-timeout", "250m")]).await;
        assert_eq!(got, seen(Some(Deadline::at(now + 250 * MS))));
        let got = inbound(InboundDeadlineLayer::new(), &[("grpc-timeout", "3S")]).await;
        assert_eq!(got, seen(Some(Deadline::at(now + Duration::from_secs(3)))));
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_without_a_header_passes_through() {
        assert_eq!(inbound(InboundDeadlineLayer::new(), &[]).await, seen(None));
        // The configured header alone is not read when not configured.
        let got = inbound(
            InboundDeadlineLayer::new(),
            &[("x-envoy-expected-rq-timeout-ms", "10")],
        )
        .await;
        assert_eq!(got, seen(None));
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_ignores_malformed_values() {
        for bad in ["", "10", "10s", "123456789m", "-1S", "1.5S", "S"] {
            let got = inbound(InboundDeadlineLayer::new(), &[("grpc-timeout", bad)]).await;
            assert_eq!(got, seen(None), "{bad:?}");
        }
        let layer = InboundDeadlineLayer::new().header(ENVOY_EXPECTED_RQ_TIMEOUT_MS);
        for bad in [
            "",
            "abc",
            "-5",
            "+5",
            "1.5",
            "5ms",
            "99999999999999999999999",
        ] {
            let got = inbound(layer.clone(), &[("x-envoy-expected-rq-timeout-ms", bad)]).await;
            assert_eq!(got, seen(None), "{bad:?}");
        }
        // A non-UTF-8 value.
        let mut req = Request::new(());
        req.headers_mut()
            .insert(GRPC_TIMEOUT, HeaderValue::from_bytes(b"1\xffS").unwrap());
        let got = InboundDeadlineLayer::new()
            .layer(handler())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(got, seen(None));
    }

    #[test]
    fn a_malformed_header_emits_a_debug_event() {
        let events = events::capture();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let got = {
            rt.block_on(inbound(
                InboundDeadlineLayer::new(),
                &[("grpc-timeout", "123456789m")],
            ))
        };
        assert_eq!(got, seen(None));
        let out = events.text();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("DEBUG"), "{out}");
        assert!(out.contains("ignored a malformed deadline header"), "{out}");
        assert!(out.contains("deadline.header=grpc-timeout"), "{out}");
        assert!(out.contains("123456789m"), "{out}");
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_reads_a_configured_millisecond_header() {
        let now = Instant::now();
        let layer = InboundDeadlineLayer::new().header(ENVOY_EXPECTED_RQ_TIMEOUT_MS);
        let got = inbound(layer, &[("x-envoy-expected-rq-timeout-ms", "1500")]).await;
        assert_eq!(got, seen(Some(Deadline::at(now + 1500 * MS))));
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_takes_the_shorter_of_both_headers() {
        let now = Instant::now();
        let layer = InboundDeadlineLayer::new().header(ENVOY_EXPECTED_RQ_TIMEOUT_MS);
        let got = inbound(
            layer.clone(),
            &[
                ("grpc-timeout", "1S"),
                ("x-envoy-expected-rq-timeout-ms", "300"),
            ],
        )
        .await;
        assert_eq!(got, seen(Some(Deadline::at(now + 300 * MS))));
        let got = inbound(
            layer.clone(),
            &[
                ("grpc-timeout", "100m"),
                ("x-envoy-expected-rq-timeout-ms", "300"),
            ],
        )
        .await;
        assert_eq!(got, seen(Some(Deadline::at(now + 100 * MS))));
        // One malformed: the other is used.
        let got = inbound(
            layer,
            &[
                ("grpc-timeout", "bad"),
                ("x-envoy-expected-rq-timeout-ms", "300"),
            ],
        )
        .await;
        assert_eq!(got, seen(Some(Deadline::at(now + 300 * MS))));
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_can_ignore_grpc_timeout() {
        let layer = InboundDeadlineLayer::new().grpc_timeout(false);
        assert_eq!(inbound(layer, &[("grpc-timeout", "1S")]).await, seen(None));
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_subtracts_the_safety_margin() {
        assert_eq!(DEFAULT_SAFETY_MARGIN, Duration::ZERO);
        let now = Instant::now();
        let layer = InboundDeadlineLayer::new().safety_margin(20 * MS);
        let got = inbound(layer.clone(), &[("grpc-timeout", "100m")]).await;
        assert_eq!(got, seen(Some(Deadline::at(now + 80 * MS))));
        // A margin longer than the timeout: a deadline that has already passed.
        let got = inbound(layer, &[("grpc-timeout", "10m")]).await;
        assert_eq!(got, seen(Some(Deadline::at(now))));
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_never_widens_a_current_or_existing_deadline() {
        let now = Instant::now();
        let current = Deadline::at(now + 50 * MS);
        let got = current
            .scope(inbound(
                InboundDeadlineLayer::new(),
                &[("grpc-timeout", "1S")],
            ))
            .await;
        assert_eq!(got, seen(Some(current)));

        let mut req = request(&[("grpc-timeout", "1S")]);
        req.extensions_mut().insert(current);
        let got = InboundDeadlineLayer::new()
            .layer(handler())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(got, seen(Some(current)));
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_keeps_the_inner_error_type() {
        let svc = InboundDeadlineLayer::new()
            .layer(service_fn(|_: Request<()>| async { Err::<(), _>(7u8) }));
        let err: u8 = svc
            .oneshot(request(&[("grpc-timeout", "1S")]))
            .await
            .unwrap_err();
        assert_eq!(err, 7);
    }

    #[cfg(feature = "timeout")]
    mod propagate {
        use super::*;
        use std::future::Future;
        use std::pin::pin;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::{Context, Poll, Waker};

        use http::HeaderMap;
        use steadfast::BoxError;
        use steadfast::deadline::PropagateDeadlineLayer;
        use steadfast::timeout::{Elapsed, ElapsedKind, TimeoutLayer};

        fn recorder(
            calls: Arc<AtomicUsize>,
        ) -> impl Service<
            Request<()>,
            Response = HeaderMap,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone {
            service_fn(move |req: Request<()>| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { Ok(req.headers().clone()) }
            })
        }

        fn poll<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
            future.poll(&mut Context::from_waker(Waker::noop()))
        }

        fn header(headers: &HeaderMap, name: &str) -> Option<String> {
            headers.get(name).map(|v| v.to_str().unwrap().to_owned())
        }

        #[tokio::test(start_paused = true)]
        async fn writes_the_remaining_time_from_the_current_deadline() {
            let calls = Arc::new(AtomicUsize::new(0));
            let svc = PropagateDeadlineLayer::new().layer(recorder(calls.clone()));
            let deadline = Deadline::after(250 * MS);
            advance(50 * MS).await;
            let headers = deadline.scope(svc.oneshot(Request::new(()))).await.unwrap();
            assert_eq!(header(&headers, "grpc-timeout").as_deref(), Some("200000u"));
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }

        #[tokio::test(start_paused = true)]
        async fn writes_from_the_request_extension_and_takes_the_earlier() {
            let calls = Arc::new(AtomicUsize::new(0));
            let svc = PropagateDeadlineLayer::new().layer(recorder(calls));
            let mut req = Request::new(());
            req.extensions_mut().insert(Deadline::after(30 * MS));
            let headers = svc.clone().oneshot(req).await.unwrap();
            assert_eq!(
                header(&headers, "grpc-timeout").as_deref(),
                Some("30000000n")
            );

            let mut req = Request::new(());
            req.extensions_mut()
                .insert(Deadline::after(Duration::from_secs(9)));
            let headers = Deadline::after(40 * MS)
                .scope(svc.clone().oneshot(req))
                .await
                .unwrap();
            assert_eq!(
                header(&headers, "grpc-timeout").as_deref(),
                Some("40000000n")
            );

            let mut req = Request::new(());
            req.extensions_mut().insert(Deadline::after(20 * MS));
            let headers = Deadline::after(40 * MS)
                .scope(svc.oneshot(req))
                .await
                .unwrap();
            assert_eq!(
                header(&headers, "grpc-timeout").as_deref(),
                Some("20000000n")
            );
        }

        #[tokio::test(start_paused = true)]
        async fn without_a_deadline_nothing_is_written() {
            let calls = Arc::new(AtomicUsize::new(0));
            let svc = PropagateDeadlineLayer::new()
                .header(ENVOY_EXPECTED_RQ_TIMEOUT_MS)
                .layer(recorder(calls.clone()));
            let headers = svc.oneshot(Request::new(())).await.unwrap();
            assert!(headers.is_empty());
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }

        #[tokio::test(start_paused = true)]
        async fn writes_a_millisecond_header_rounded_up() {
            let calls = Arc::new(AtomicUsize::new(0));
            let svc = PropagateDeadlineLayer::new()
                .grpc_timeout(false)
                .header(ENVOY_EXPECTED_RQ_TIMEOUT_MS)
                .layer(recorder(calls));
            let deadline = Deadline::after(Duration::from_micros(1_500));
            let headers = deadline
                .scope(svc.clone().oneshot(Request::new(())))
                .await
                .unwrap();
            assert_eq!(header(&headers, "grpc-timeout"), None);
            assert_eq!(
                header(&headers, "x-envoy-expected-rq-timeout-ms").as_deref(),
                Some("2")
            );
            // Less than a millisecond left: 1, never 0.
            let deadline = Deadline::after(Duration::from_nanos(1));
            let headers = deadline.scope(svc.oneshot(Request::new(()))).await.unwrap();
            assert_eq!(
                header(&headers, "x-envoy-expected-rq-timeout-ms").as_deref(),
                Some("1")
            );
        }

        #[tokio::test(start_paused = true)]
        async fn a_shorter_existing_header_is_kept_a_longer_one_replaced() {
            let calls = Arc::new(AtomicUsize::new(0));
            let svc = PropagateDeadlineLayer::new()
                .header(ENVOY_EXPECTED_RQ_TIMEOUT_MS)
                .layer(recorder(calls));
            let deadline = Deadline::after(100 * MS);
            let req = request(&[
                ("grpc-timeout", "10m"),
                ("x-envoy-expected-rq-timeout-ms", "5000"),
            ]);
            let headers = deadline.scope(svc.clone().oneshot(req)).await.unwrap();
            assert_eq!(header(&headers, "grpc-timeout").as_deref(), Some("10m"));
            assert_eq!(
                header(&headers, "x-envoy-expected-rq-timeout-ms").as_deref(),
                Some("100")
            );
            // A malformed existing value is replaced.
            let req = request(&[("grpc-timeout", "soon")]);
            let headers = deadline.scope(svc.oneshot(req)).await.unwrap();
            assert_eq!(header(&headers, "grpc-timeout").as_deref(), Some("100000u"));
        }

        fn expect_inherited(result: Poll<Result<HeaderMap, BoxError>>) {
            match result {
                Poll::Ready(Err(err)) => {
                    let elapsed = err.downcast_ref::<Elapsed>().expect("Elapsed");
                    assert_eq!(elapsed.kind(), ElapsedKind::InheritedDeadline);
                }
                other => panic!("expected Elapsed, got {other:?}"),
            }
        }

        #[tokio::test(start_paused = true)]
        async fn a_passed_deadline_fails_at_once_without_calling() {
            let calls = Arc::new(AtomicUsize::new(0));
            let mut svc = PropagateDeadlineLayer::new().layer(recorder(calls.clone()));
            let deadline = Deadline::after(10 * MS);

            // One tick before: called.
            advance(9 * MS).await;
            svc.ready().await.unwrap();
            let mut fut = pin!(deadline.sync_scope(|| svc.call(Request::new(()))));
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            let headers = match poll(fut.as_mut()) {
                Poll::Ready(Ok(headers)) => headers,
                other => panic!("{other:?}"),
            };
            assert_eq!(
                header(&headers, "grpc-timeout").as_deref(),
                Some("1000000n")
            );

            // Exactly at: fails without calling.
            advance(MS).await;
            svc.ready().await.unwrap();
            let mut fut = pin!(deadline.sync_scope(|| svc.call(Request::new(()))));
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            expect_inherited(poll(fut.as_mut()));
            let again =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poll(fut.as_mut())));
            assert!(
                again.is_err(),
                "polled after completion: a panic, as every future of the crate"
            );

            // One tick after, from the extension: fails without calling.
            advance(MS).await;
            svc.ready().await.unwrap();
            let mut req = Request::new(());
            req.extensions_mut().insert(deadline);
            let mut fut = pin!(svc.call(req));
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            expect_inherited(poll(fut.as_mut()));
        }

        #[test]
        fn futures_are_send_and_static_and_layers_clone() {
            fn assert_send_static<T: Send + 'static>(_: &T) {}
            fn assert_clone<T: Clone>(_: &T) {}
            let calls = Arc::new(AtomicUsize::new(0));
            let mut inbound = InboundDeadlineLayer::new().layer(recorder(calls.clone()));
            let fut = inbound.call(request(&[("grpc-timeout", "1S")]));
            assert_send_static(&fut);
            let mut outbound = PropagateDeadlineLayer::new().layer(recorder(calls));
            let fut = outbound.call(Request::new(()));
            assert_send_static(&fut);
            assert_send_static(&Deadline::after(MS).scope(async {}));
            assert_clone(&InboundDeadlineLayer::new());
            assert_clone(&PropagateDeadlineLayer::new());
        }

        #[tokio::test(start_paused = true)]
        async fn current_only_keeps_the_extension_equal_to_a_narrowed_deadline() {
            let start = Instant::now();
            let svc = tower::ServiceBuilder::new()
                .layer(InboundDeadlineLayer::new())
                .layer(TimeoutLayer::new(40 * MS))
                .layer(InboundDeadlineLayer::current_only())
                .service(handler());
            // Received 100 ms, narrowed to 40 ms by the timeout: the extension follows.
            let got = svc
                .clone()
                .oneshot(request(&[("grpc-timeout", "100m")]))
                .await
                .unwrap();
            assert_eq!(got, seen(Some(Deadline::at(start + 40 * MS))));
            // Received 10 ms: narrower than the timeout, kept.
            let got = svc
                .oneshot(request(&[("grpc-timeout", "10m")]))
                .await
                .unwrap();
            assert_eq!(got, seen(Some(Deadline::at(start + 10 * MS))));
            // Without any deadline in scope it records nothing, and ignores headers.
            let got = InboundDeadlineLayer::current_only()
                .layer(handler())
                .oneshot(request(&[("grpc-timeout", "100m")]))
                .await
                .unwrap();
            assert_eq!(got, seen(None));
        }

        #[tokio::test(start_paused = true)]
        async fn inner_errors_pass_through_boxed() {
            #[derive(Debug)]
            struct Refused;
            impl std::fmt::Display for Refused {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("refused")
                }
            }
            impl std::error::Error for Refused {}
            let svc = PropagateDeadlineLayer::new()
                .layer(service_fn(|_: Request<()>| async { Err::<(), _>(Refused) }));
            let err = Deadline::after(MS)
                .scope(svc.oneshot(Request::new(())))
                .await
                .unwrap_err();
            assert!(err.is::<Refused>());
        }

        #[tokio::test(start_paused = true)]
        async fn edge_to_edge_inbound_timeout_outbound() {
            // A server reads 100 ms from grpc-timeout, takes 10 ms off, bounds its own work to
            // 50 ms, and calls a backend through a propagating client.
            let calls = Arc::new(AtomicUsize::new(0));
            let client = PropagateDeadlineLayer::new().layer(recorder(calls.clone()));
            let app = service_fn(move |_req: Request<()>| {
                let client = client.clone();
                async move {
                    tokio::time::sleep(5 * MS).await;
                    client.oneshot(Request::new(())).await
                }
            });
            let build = |timeout: Duration| {
                tower::ServiceBuilder::new()
                    .layer(InboundDeadlineLayer::new().safety_margin(10 * MS))
                    .layer(TimeoutLayer::new(timeout))
                    .service(app.clone())
            };
            let req = || request(&[("grpc-timeout", "100m")]);

            // The local timeout is narrower: 50 - 5 ms left.
            let headers = build(50 * MS).oneshot(req()).await.unwrap();
            assert_eq!(
                header(&headers, "grpc-timeout").as_deref(),
                Some("45000000n")
            );
            // The received deadline is narrower: 100 - 10 - 5 ms left.
            let headers = build(Duration::from_secs(1)).oneshot(req()).await.unwrap();
            assert_eq!(
                header(&headers, "grpc-timeout").as_deref(),
                Some("85000000n")
            );
            // Received deadline already gone (margin eats it): the timeout fails at once,
            // the backend is never called.
            let calls_before = calls.load(Ordering::SeqCst);
            let err = build(Duration::from_secs(1))
                .oneshot(request(&[("grpc-timeout", "10m")]))
                .await
                .unwrap_err();
            assert!(err.downcast_ref::<Elapsed>().unwrap().is_inherited());
            assert_eq!(calls.load(Ordering::SeqCst), calls_before);
        }
    }
}

#[test]
fn a_panic_inside_a_scope_restores_the_previous_deadline() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let outer = Deadline::after(Duration::from_secs(2));
        let inner = Deadline::after(Duration::from_secs(1));
        outer.sync_scope(|| {
            let caught = std::panic::catch_unwind(|| {
                inner.sync_scope(|| -> () { panic!("boom") });
            });
            assert!(caught.is_err());
            assert_eq!(Deadline::current(), Some(outer));
        });
        assert_eq!(Deadline::current(), None);
    });
}
