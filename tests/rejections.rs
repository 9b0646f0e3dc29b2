//! Integration tests of `steadfast::http` and `steadfast::grpc`: rejections as HTTP responses and
//! as `tonic::Status`, through real rejecting layers, on paused time.
//!
//! The mappings of `BulkheadFull` and `Elapsed`, whose constructors are private to the crate, are
//! tested by unit tests in `src/http.rs` and `src/grpc.rs` until their layers land.

#![cfg(all(feature = "circuit-breaker", any(feature = "http", feature = "tonic")))]

use std::fmt;
use std::time::Duration;

use steadfast::BoxError;
use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow, State};

const WAIT_IN_OPEN: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A breaker that opens on one failure and stays open for [`WAIT_IN_OPEN`].
fn hair_trigger() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Count(1))
        .minimum_calls(1)
        .wait_in_open(WAIT_IN_OPEN)
        .build()
        .unwrap()
}

fn assert_send_static<T: Send + 'static>(_: &T) {}

/// An error that carries another as its source, to check the lookup through `source()`.
#[derive(Debug)]
struct Wrapped(BoxError);

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapped")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

#[cfg(feature = "http")]
mod http_responses {
    use std::convert::Infallible;
    use std::future::{Future, poll_fn};
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Context;
    use std::task::Poll;

    use http::header::{CONTENT_TYPE, RETRY_AFTER};
    use http::{Request, Response, StatusCode};
    use proptest::prelude::*;
    use steadfast::http::{
        MakeBody, PlainText, Rejection, RejectionResponses, RejectionsAsResponsesLayer,
        error_response, handle_error,
    };
    use tokio::sync::oneshot;
    use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Poll<F::Output> {
        poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
    }

    /// A backend that fails requests whose body is "fail", answers 201 with a header otherwise,
    /// and counts its calls.
    fn backend() -> (
        impl Service<
            Request<String>,
            Response = Response<String>,
            Error = BoxError,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static,
        Arc<AtomicUsize>,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let service = service_fn(move |request: Request<String>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if request.body() == "fail" {
                    return Err::<_, BoxError>("backend exploded: password=hunter2".into());
                }
                Ok(Response::builder()
                    .status(StatusCode::CREATED)
                    .header("x-backend", "yes")
                    .body(format!("echo {}", request.body()))
                    .unwrap())
            }
        });
        (service, calls)
    }

    async fn send<S, B>(service: &mut S, body: &str) -> Response<B>
    where
        S: Service<Request<String>, Response = Response<B>, Error = Infallible>,
    {
        let request = Request::new(body.to_owned());
        match service.ready().await {
            Ok(service) => match service.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            Err(never) => match never {},
        }
    }

    fn retry_after<B>(response: &Response<B>) -> Option<&str> {
        response
            .headers()
            .get(RETRY_AFTER)
            .map(|value| value.to_str().unwrap())
    }

    // ---- the layer, with a real breaker --------------------------------------------------

    #[tokio::test(start_paused = true)]
    async fn a_success_passes_through_unchanged() {
        let (backend, calls) = backend();
        let mut service = ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::new())
            .layer(hair_trigger())
            .service(backend);

        let response = send(&mut service, "hi").await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["x-backend"], "yes");
        assert_eq!(response.headers().len(), 1);
        assert_eq!(response.body(), "echo hi");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_forced_open_breaker_is_a_503_with_retry_after_and_no_call() {
        let breaker = CircuitBreakerLayer::builder().build().unwrap();
        let (backend, calls) = backend();
        let mut service = ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::new())
            .layer(breaker.clone())
            .service(backend);

        breaker.force_open();
        let response = send(&mut service, "hi").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Forced open: the hint is `wait_in_open`, 30 s by default.
        assert_eq!(retry_after(&response), Some("30"));
        assert_eq!(response.headers().len(), 1);
        assert_eq!(response.body(), "");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_inner_error_is_a_500_and_still_counts_as_a_failure_below() {
        let breaker = hair_trigger();
        let (backend, calls) = backend();
        let mut service = ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::new())
            .layer(breaker.clone())
            .service(backend);

        let response = send(&mut service, "fail").await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().is_empty());
        assert_eq!(response.body(), "");
        assert_eq!(breaker.state(), State::Open);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_counts_down_in_whole_seconds_rounded_up_until_the_breaker_half_opens() {
        let breaker = hair_trigger();
        let (backend, calls) = backend();
        let mut service = ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::new())
            .layer(breaker.clone())
            .service(backend);

        send(&mut service, "fail").await;
        assert_eq!(breaker.state(), State::Open);

        let response = send(&mut service, "hi").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&response), Some("10"));

        tokio::time::advance(ms(2_500)).await;
        assert_eq!(retry_after(&send(&mut service, "hi").await), Some("8"));

        tokio::time::advance(ms(6_500)).await; // 9 s in: 1 s left
        assert_eq!(retry_after(&send(&mut service, "hi").await), Some("1"));

        tokio::time::advance(ms(999)).await; // one tick before: 1 ms left, still 1 s
        let response = send(&mut service, "hi").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&response), Some("1"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        tokio::time::advance(ms(1)).await; // exactly at the end: a probe goes through
        let response = send(&mut service, "hi").await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(retry_after(&response), None);

        tokio::time::advance(ms(1)).await; // one after: still half-open, another probe
        assert_eq!(send(&mut service, "hi").await.status(), StatusCode::CREATED);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejection_wrapped_in_another_error_is_found_through_its_source() {
        let breaker = CircuitBreakerLayer::builder().build().unwrap();
        breaker.force_open();
        let mut inner = breaker.layer(service_fn(|_: ()| async { Ok::<_, BoxError>(()) }));
        let open = inner.ready().await.unwrap().call(()).await.unwrap_err();
        let error: BoxError = Box::new(Wrapped(open));

        let rejection = Rejection::classify(&*error);
        assert_eq!(rejection.kind(), "circuit_open");
        assert!(rejection.error().is::<CircuitOpen>());

        let response: Response<String> = RejectionResponses::new().to_response(&error);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&response), Some("30"));
    }

    // ---- configuration -------------------------------------------------------------------

    #[tokio::test(start_paused = true)]
    async fn every_mapping_is_configurable() {
        let responses = RejectionResponses::builder()
            .circuit_open_status(StatusCode::TOO_MANY_REQUESTS)
            .other_status(StatusCode::BAD_GATEWAY)
            .retry_after(false)
            .build()
            .unwrap();
        let breaker = hair_trigger();
        let (backend, _) = backend();
        let mut service = ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::with_responses(responses))
            .layer(breaker)
            .service(backend);

        let response = send(&mut service, "fail").await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let response = send(&mut service, "hi").await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().is_empty());
    }

    #[test]
    fn the_defaults_are_503_503_504_500_with_retry_after() {
        let responses = RejectionResponses::new();
        let built = RejectionResponses::builder().build().unwrap();
        assert_eq!(format!("{responses:?}"), format!("{built:?}"));
        assert_eq!(
            format!("{responses:?}"),
            "RejectionResponses { statuses: Statuses { circuit_open: 503, bulkhead_full: 503, \
             timeout: 504, no_endpoint: 503, limit_exceeded: 503, rate_limited: 429, other: 500 }, \
             retry_after: true, body: \"()\" }"
        );
        assert_eq!(steadfast::http::DEFAULT_CIRCUIT_OPEN_STATUS, 503);
        assert_eq!(steadfast::http::DEFAULT_BULKHEAD_FULL_STATUS, 503);
        assert_eq!(steadfast::http::DEFAULT_TIMEOUT_STATUS, 504);
        assert_eq!(steadfast::http::DEFAULT_NO_ENDPOINT_STATUS, 503);
        assert_eq!(steadfast::http::DEFAULT_LIMIT_EXCEEDED_STATUS, 503);
        assert_eq!(steadfast::http::DEFAULT_RATE_LIMITED_STATUS, 429);
        assert_eq!(steadfast::http::DEFAULT_OTHER_STATUS, 500);
        const { assert!(steadfast::http::DEFAULT_RETRY_AFTER) };
    }

    #[test]
    fn a_status_outside_400_to_599_is_a_config_error_naming_the_setter() {
        type Set = fn(steadfast::http::Builder, StatusCode) -> steadfast::http::Builder;
        let setters: [(&str, Set); 7] = [
            ("circuit_open_status", |b, s| b.circuit_open_status(s)),
            ("bulkhead_full_status", |b, s| b.bulkhead_full_status(s)),
            ("timeout_status", |b, s| b.timeout_status(s)),
            ("no_endpoint_status", |b, s| b.no_endpoint_status(s)),
            ("limit_exceeded_status", |b, s| b.limit_exceeded_status(s)),
            ("rate_limited_status", |b, s| b.rate_limited_status(s)),
            ("other_status", |b, s| b.other_status(s)),
        ];
        for (field, set) in setters {
            for bad in [200, 204, 302, 399, 600, 999] {
                let status = StatusCode::from_u16(bad).unwrap();
                let error = set(RejectionResponses::builder(), status)
                    .build()
                    .unwrap_err();
                assert_eq!(error.field(), field);
                let message = error.to_string();
                assert!(message.contains(field), "{message}");
                assert!(message.contains("[400, 599]"), "{message}");
                assert!(message.contains(&bad.to_string()), "{message}");
            }
            for good in [400, 429, 503, 599] {
                let status = StatusCode::from_u16(good).unwrap();
                assert!(set(RejectionResponses::builder(), status).build().is_ok());
            }
        }
    }

    // ---- bodies --------------------------------------------------------------------------

    #[tokio::test(start_paused = true)]
    async fn plain_text_tells_the_rejection_but_not_another_error() {
        let responses = RejectionResponses::builder()
            .body(PlainText)
            .build()
            .unwrap();
        let breaker = hair_trigger();
        let (backend, _) = backend();
        let mut service = ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::with_responses(responses))
            .layer(breaker)
            .service(backend);

        let response = send(&mut service, "fail").await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.body(), "Internal Server Error");

        let response = send(&mut service, "hi").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(retry_after(&response), Some("10"));
        assert_eq!(
            response.body(),
            "circuit breaker is open; retry after 10000 ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_closure_makes_the_body_from_the_rejection_and_status() {
        let responses = RejectionResponses::builder()
            .body(|rejection: Rejection<'_>, status: StatusCode| {
                format!("{} {}", status.as_u16(), rejection.kind())
            })
            .build()
            .unwrap();
        let breaker = hair_trigger();
        let (backend, _) = backend();
        let mut service =
            RejectionsAsResponsesLayer::with_responses(responses).layer(breaker.layer(backend));

        assert_eq!(send(&mut service, "fail").await.body(), "500 other");
        assert_eq!(send(&mut service, "hi").await.body(), "503 circuit_open");
    }

    /// A body maker that sets a header, through the trait.
    #[derive(Clone)]
    struct Json;

    impl MakeBody<String> for Json {
        fn make_body(
            &self,
            rejection: Rejection<'_>,
            status: StatusCode,
            headers: &mut http::HeaderMap,
        ) -> String {
            headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
            format!(
                r#"{{"status":{},"kind":"{}"}}"#,
                status.as_u16(),
                rejection.kind()
            )
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_maker_can_set_headers() {
        let responses = RejectionResponses::builder().body(Json).build().unwrap();
        let breaker = CircuitBreakerLayer::builder().build().unwrap();
        breaker.force_open();
        let (backend, _) = backend();
        let mut service =
            RejectionsAsResponsesLayer::with_responses(responses).layer(breaker.layer(backend));

        let response = send(&mut service, "hi").await;
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(retry_after(&response), Some("30"));
        assert_eq!(response.body(), r#"{"status":503,"kind":"circuit_open"}"#);
    }

    // ---- free functions ------------------------------------------------------------------

    #[tokio::test(start_paused = true)]
    async fn error_response_and_handle_error_map_in_one_call() {
        let breaker = CircuitBreakerLayer::builder()
            .wait_in_open(ms(1_500))
            .build()
            .unwrap();
        breaker.force_open();
        let (backend, _) = backend();
        let mut service = breaker.layer(backend);

        let error = service
            .ready()
            .await
            .unwrap()
            .call(Request::new(String::new()))
            .await
            .unwrap_err();
        let response: Response<String> = error_response(error);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&response), Some("2"));
        assert_eq!(response.body(), "");

        let error = service
            .ready()
            .await
            .unwrap()
            .call(Request::new(String::new()))
            .await
            .unwrap_err();
        let response = handle_error(error).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&response), Some("2"));
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.body(), "circuit breaker is forced open");

        let response = handle_error("secret=1".into()).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.body(), "Internal Server Error");
    }

    // ---- readiness, cancellation, clones -------------------------------------------------

    /// A service whose `poll_ready` fails while `failing` is set.
    #[derive(Clone)]
    struct Flaky {
        failing: Arc<AtomicBool>,
        calls: Arc<AtomicUsize>,
    }

    impl Service<Request<String>> for Flaky {
        type Response = Response<String>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Response<String>, BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            if self.failing.load(Ordering::SeqCst) {
                Poll::Ready(Err("not ready".into()))
            } else {
                Poll::Ready(Ok(()))
            }
        }

        fn call(&mut self, _: Request<String>) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(Response::new("called".to_owned())))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_ready_error_answers_the_next_call_without_calling_and_is_not_cloned() {
        let flaky = Flaky {
            failing: Arc::new(AtomicBool::new(true)),
            calls: Arc::new(AtomicUsize::new(0)),
        };
        let mut service = RejectionsAsResponsesLayer::new().layer(flaky.clone());

        // Ready despite the inner error: it is kept for the call.
        assert!(matches!(
            poll_fn(|cx| Poll::Ready(service.poll_ready(cx))).await,
            Poll::Ready(Ok(()))
        ));
        let mut clone = service.clone();
        flaky.failing.store(false, Ordering::SeqCst);

        let response = service.call(Request::new(String::new())).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 0);

        // The clone holds no error: it polls the inner service, which is ready now.
        let response = send(&mut clone, "").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), "called");
        // And the original, its error spent, calls the inner service again.
        assert_eq!(send(&mut service, "").await.body(), "called");
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_response_future_drops_the_inner_future() {
        let (tx, rx) = oneshot::channel::<()>();
        let rx = Arc::new(Mutex::new(Some(rx)));
        let backend = service_fn(move |_: Request<String>| {
            let rx = rx.lock().unwrap().take();
            async move {
                if let Some(rx) = rx {
                    let _ = rx.await;
                }
                Ok::<_, BoxError>(Response::new(String::new()))
            }
        });
        let mut service = RejectionsAsResponsesLayer::new().layer(backend);
        let mut future = Box::pin(
            service
                .ready()
                .await
                .unwrap()
                .call(Request::new(String::new())),
        );
        assert!(poll_once(future.as_mut()).await.is_pending());
        assert!(!tx.is_closed());
        drop(future);
        assert!(tx.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn the_future_is_send_and_static_and_the_service_infallible() {
        let (backend, _) = backend();
        let mut service = ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::new())
            .layer(hair_trigger())
            .service(backend);
        fn infallible<S: Service<Request<String>, Error = Infallible>>(_: &S) {}
        infallible(&service);
        let future = service
            .ready()
            .await
            .unwrap()
            .call(Request::new(String::new()));
        assert_send_static(&future);
        assert_eq!(future.await.unwrap().status(), StatusCode::CREATED);
    }

    // ---- axum ----------------------------------------------------------------------------

    mod with_axum {
        use axum::Router;
        use axum::body::{Body, to_bytes};
        use axum::error_handling::HandleErrorLayer;
        use axum::routing::get;

        use super::*;

        async fn get_root(app: &Router) -> (StatusCode, http::HeaderMap, String) {
            let response = app
                .clone()
                .oneshot(Request::new(Body::empty()))
                .await
                .unwrap();
            let (parts, body) = response.into_parts();
            let bytes = to_bytes(body, 1024).await.unwrap();
            (
                parts.status,
                parts.headers,
                String::from_utf8(bytes.to_vec()).unwrap(),
            )
        }

        #[tokio::test(start_paused = true)]
        async fn a_router_stays_infallible_with_the_layer_and_answers_503() {
            let breaker = CircuitBreakerLayer::builder().build().unwrap();
            // `Router::layer` needs an `Infallible` error: this compiles only with the layer.
            let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
                ServiceBuilder::new()
                    .layer(RejectionsAsResponsesLayer::new())
                    .layer(breaker.clone()),
            );

            let (status, _, body) = get_root(&app).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, "hello");

            breaker.force_open();
            let (status, headers, body) = get_root(&app).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(headers[RETRY_AFTER], "30");
            assert_eq!(body, "");
        }

        #[tokio::test(start_paused = true)]
        async fn handle_error_plugs_into_handle_error_layer() {
            let breaker = CircuitBreakerLayer::builder().build().unwrap();
            let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(handle_error))
                    .layer(breaker.clone()),
            );

            breaker.force_open();
            let (status, headers, body) = get_root(&app).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(headers[RETRY_AFTER], "30");
            assert_eq!(headers[CONTENT_TYPE], "text/plain; charset=utf-8");
            assert_eq!(body, "circuit breaker is forced open");
        }

        #[tokio::test(start_paused = true)]
        async fn a_plain_text_body_works_with_axum_bodies() {
            let breaker = CircuitBreakerLayer::builder().build().unwrap();
            let responses = RejectionResponses::builder()
                .body(PlainText)
                .build()
                .unwrap();
            let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
                ServiceBuilder::new()
                    .layer(RejectionsAsResponsesLayer::with_responses(responses))
                    .layer(breaker.clone()),
            );
            breaker.force_open();
            let (status, _, body) = get_root(&app).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(body, "circuit breaker is forced open");
        }
    }

    // ---- arithmetic ----------------------------------------------------------------------

    fn forced_open_response(wait_in_open: Duration) -> Response<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let breaker = CircuitBreakerLayer::builder()
                .wait_in_open(wait_in_open)
                .build()
                .unwrap();
            breaker.force_open();
            let (backend, _) = backend();
            let mut service = RejectionsAsResponsesLayer::new().layer(breaker.layer(backend));
            send(&mut service, "").await
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn retry_after_is_the_wait_in_whole_seconds_rounded_up(
            millis in 1u64..=365 * 24 * 3600 * 1000,
        ) {
            let response = forced_open_response(ms(millis));
            let expected = millis.div_ceil(1000).max(1).to_string();
            prop_assert_eq!(retry_after(&response), Some(expected.as_str()));
        }
    }
}

#[cfg(feature = "tonic")]
mod grpc_statuses {
    use proptest::prelude::*;
    use steadfast::grpc::{RETRY_PUSHBACK_KEY, into_status, status};
    use tonic::metadata::MetadataValue;
    use tonic::{Code, Status};
    use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    /// A backend that answers its request as the error to fail with, or "ok".
    fn backend()
    -> impl Service<&'static str, Response = &'static str, Error = BoxError, Future: Send + 'static>
    + Clone
    + Send
    + 'static {
        service_fn(|request: &'static str| async move {
            match request {
                "not found" => {
                    let mut status = Status::not_found("no such user");
                    status
                        .metadata_mut()
                        .insert("x-user", MetadataValue::from_static("42"));
                    Err::<&'static str, BoxError>(Box::new(status))
                }
                "wrapped" => {
                    let inner: BoxError = Box::new(Status::permission_denied("no"));
                    Err(Box::new(Wrapped(inner)) as BoxError)
                }
                "fail" => Err("db down".into()),
                _ => Ok("ok"),
            }
        })
    }

    async fn call<S>(service: &mut S, request: &'static str) -> Result<&'static str, Status>
    where
        S: Service<&'static str, Response = &'static str, Error = Status>,
    {
        service.ready().await?.call(request).await
    }

    fn pushback(status: &Status) -> Option<&str> {
        status
            .metadata()
            .get(RETRY_PUSHBACK_KEY)
            .map(|value| value.to_str().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_forced_open_breaker_is_unavailable_with_pushback() {
        let breaker = CircuitBreakerLayer::builder().build().unwrap();
        let mut service = ServiceBuilder::new()
            .map_err(into_status)
            .layer(breaker.clone())
            .service(backend());
        assert_eq!(call(&mut service, "hi").await.unwrap(), "ok");

        breaker.force_open();
        let status = call(&mut service, "hi").await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(pushback(&status), Some("30000"));
        assert_eq!(
            status.message(),
            "rejected by the circuit breaker (forced_open); retry after 30000 ms"
        );
        let source = std::error::Error::source(&status).expect("the rejection as source");
        assert_eq!(
            source.downcast_ref::<CircuitOpen>().map(CircuitOpen::state),
            Some(State::ForcedOpen)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pushback_is_the_time_left_of_the_open_interval() {
        let breaker = hair_trigger();
        let mut service = ServiceBuilder::new()
            .map_err(into_status)
            .layer(breaker.clone())
            .service(backend());

        let status = call(&mut service, "fail").await.unwrap_err();
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.message(), "db down");
        assert_eq!(breaker.state(), State::Open);

        tokio::time::advance(ms(2_500)).await;
        let status = call(&mut service, "hi").await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(pushback(&status), Some("7500"));
        assert!(status.message().ends_with("(open); retry after 7500 ms"));

        tokio::time::advance(ms(7_499)).await; // one tick before the end
        let status = call(&mut service, "hi").await.unwrap_err();
        assert_eq!(pushback(&status), Some("1"));

        tokio::time::advance(ms(1)).await; // exactly at the end: a probe goes through
        assert_eq!(call(&mut service, "hi").await.unwrap(), "ok");
    }

    #[tokio::test(start_paused = true)]
    async fn a_status_passes_through_unchanged() {
        let mut service = ServiceBuilder::new()
            .map_err(into_status)
            .layer(CircuitBreakerLayer::builder().build().unwrap())
            .service(backend());

        let status = call(&mut service, "not found").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "no such user");
        assert_eq!(status.metadata().get("x-user").unwrap(), "42");
        assert!(pushback(&status).is_none());

        let status = call(&mut service, "wrapped").await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), "no");
    }

    #[tokio::test(start_paused = true)]
    async fn status_maps_by_reference_as_into_status_does() {
        let breaker = CircuitBreakerLayer::builder()
            .wait_in_open(ms(1_500))
            .build()
            .unwrap();
        let mut service = breaker.clone().layer(backend());
        let mut fail = async |request| {
            service
                .ready()
                .await
                .unwrap()
                .call(request)
                .await
                .unwrap_err()
        };

        let error = fail("not found").await;
        let by_ref = status(&error);
        assert_eq!(by_ref.code(), Code::NotFound);
        assert_eq!(by_ref.metadata().get("x-user").unwrap(), "42");

        let error = fail("wrapped").await;
        assert_eq!(status(&error).code(), Code::PermissionDenied);

        let error = fail("fail").await;
        let by_ref = status(&error);
        assert_eq!(by_ref.code(), Code::Unknown);
        assert_eq!(by_ref.message(), "db down");

        breaker.force_open();
        let error = fail("hi").await;
        let by_ref = status(&error);
        assert_eq!(by_ref.code(), Code::Unavailable);
        assert_eq!(pushback(&by_ref), Some("1500"));
        let wrapped: BoxError = Box::new(Wrapped(error));
        assert_eq!(status(&wrapped).code(), Code::Unavailable);
        assert_eq!(into_status(wrapped).code(), Code::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn the_mapped_future_is_send_and_static() {
        let mut service = ServiceBuilder::new()
            .map_err(into_status)
            .layer(CircuitBreakerLayer::builder().build().unwrap())
            .service(backend());
        let future = service.ready().await.unwrap().call("hi");
        assert_send_static(&future);
        assert_eq!(future.await.unwrap(), "ok");
    }

    fn forced_open_status(wait_in_open: Duration) -> Status {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let breaker = CircuitBreakerLayer::builder()
                .wait_in_open(wait_in_open)
                .build()
                .unwrap();
            breaker.force_open();
            let mut service = ServiceBuilder::new()
                .map_err(into_status)
                .layer(breaker)
                .service(backend());
            call(&mut service, "hi").await.unwrap_err()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn pushback_is_the_wait_in_whole_milliseconds(millis in 1u64..=365 * 24 * 3600 * 1000) {
            let status = forced_open_status(ms(millis));
            prop_assert_eq!(status.code(), Code::Unavailable);
            let expected = millis.to_string();
            prop_assert_eq!(pushback(&status), Some(expected.as_str()));
            let ends = format!("retry after {millis} ms");
            prop_assert!(status.message().ends_with(&ends));
        }
    }
}
