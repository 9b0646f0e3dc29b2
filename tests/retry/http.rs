//! HTTP and gRPC: which responses are retried, pushback, and the replay body.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use steadfast::deadline::Deadline;
use steadfast::retry::{
    Backoff, GrpcPolicy, HttpPolicy, Pushback, ReplayBody, RetryBudget, RetryLayer,
    parse_grpc_pushback, parse_retry_after,
};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

use super::{BoxError, Failure, ms};

/// What a test service saw, call by call.
type Log<T> = Arc<Mutex<Vec<T>>>;

/// A service answering each call with the next scripted response (the last one repeats);
/// returns the methods it saw.
fn scripted(
    script: Vec<Response<()>>,
) -> (
    impl tower::Service<Request<Full<Bytes>>, Response = Response<()>, Error = BoxError> + Clone,
    Log<Method>,
) {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let service = service_fn(move |request: Request<Full<Bytes>>| {
        log.lock().unwrap().push(request.method().clone());
        let mut script = script.lock().unwrap();
        let response = if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            clone_response(script.front().unwrap())
        };
        async move { Ok::<_, BoxError>(response) }
    });
    (service, seen)
}

fn clone_response(response: &Response<()>) -> Response<()> {
    let mut clone = Response::new(());
    *clone.status_mut() = response.status();
    *clone.headers_mut() = response.headers().clone();
    clone
}

fn status(code: u16) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    response
}

fn with_header(mut response: Response<()>, name: &'static str, value: &str) -> Response<()> {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_str(value).unwrap());
    response
}

fn request(method: Method) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("http://example.com/users")
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap()
}

fn http_layer(policy: HttpPolicy) -> RetryLayer<HttpPolicy> {
    RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(100)).max_delay(Duration::from_secs(5)))
        .policy(policy)
        .build()
        .unwrap()
}

/// Sends one request with `policy`; returns the final status, the calls and the time taken.
async fn run_http(
    policy: HttpPolicy,
    method: Method,
    script: Vec<Response<()>>,
) -> (u16, usize, Duration) {
    let (service, seen) = scripted(script);
    let start = Instant::now();
    let response = http_layer(policy)
        .layer(service)
        .oneshot(request(method))
        .await
        .unwrap();
    let calls = seen.lock().unwrap().len();
    (response.status().as_u16(), calls, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn http_retries_429_502_503_504_on_idempotent_methods() {
    for code in [429, 502, 503, 504] {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
        ] {
            let result = run_http(
                HttpPolicy::new(),
                method.clone(),
                vec![status(code), status(200)],
            )
            .await;
            assert_eq!(result, (200, 2, ms(100)), "{code} {method}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn http_does_not_retry_other_statuses_or_non_idempotent_methods() {
    for code in [200, 400, 404, 500, 501] {
        let result = run_http(
            HttpPolicy::new(),
            Method::GET,
            vec![status(code), status(200)],
        )
        .await;
        assert_eq!(result, (code, 1, Duration::ZERO), "{code}");
    }
    for method in [Method::POST, Method::PATCH] {
        let result = run_http(
            HttpPolicy::new(),
            method.clone(),
            vec![status(503), status(200)],
        )
        .await;
        assert_eq!(result, (503, 1, Duration::ZERO), "{method}");
    }
}

#[tokio::test(start_paused = true)]
async fn http_statuses_and_methods_are_configurable() {
    let policy = HttpPolicy::new()
        .statuses([StatusCode::INTERNAL_SERVER_ERROR])
        .methods([Method::POST]);
    let result = run_http(policy.clone(), Method::POST, vec![status(500), status(200)]).await;
    assert_eq!(result, (200, 2, ms(100)));
    let result = run_http(policy.clone(), Method::POST, vec![status(503), status(200)]).await;
    assert_eq!(result, (503, 1, Duration::ZERO));
    let result = run_http(policy, Method::GET, vec![status(500), status(200)]).await;
    assert_eq!(result, (500, 1, Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn http_and_grpc_retry_errors_but_not_on_non_idempotent_methods() {
    for (policy_name, method, expected_calls) in [
        ("http", Method::GET, 2),
        ("http", Method::POST, 1),
        ("grpc", Method::POST, 2),
    ] {
        let calls = Arc::new(Mutex::new(0));
        let counter = Arc::clone(&calls);
        let service = service_fn(move |_: Request<Full<Bytes>>| {
            let n = {
                let mut calls = counter.lock().unwrap();
                *calls += 1;
                *calls
            };
            async move {
                if n == 1 {
                    Err::<Response<()>, BoxError>(Box::new(Failure(1)))
                } else {
                    Ok(status(200))
                }
            }
        });
        let builder = RetryLayer::builder().backoff(Backoff::constant(ms(1)));
        let result = if policy_name == "http" {
            builder
                .policy(HttpPolicy::new())
                .build()
                .unwrap()
                .layer(service)
                .oneshot(request(method.clone()))
                .await
        } else {
            builder
                .policy(GrpcPolicy::new())
                .build()
                .unwrap()
                .layer(service)
                .oneshot(request(method.clone()))
                .await
        };
        assert_eq!(
            *calls.lock().unwrap(),
            expected_calls,
            "{policy_name} {method}"
        );
        assert_eq!(
            result.is_ok(),
            expected_calls == 2,
            "{policy_name} {method}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn http_returns_the_last_response_when_attempts_run_out() {
    let result = run_http(HttpPolicy::new(), Method::GET, vec![status(503)]).await;
    assert_eq!(result, (503, 3, ms(200)));
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_replaces_the_backoff() {
    let script = vec![with_header(status(429), "retry-after", "2"), status(200)];
    let result = run_http(HttpPolicy::new(), Method::GET, script).await;
    assert_eq!(result, (200, 2, Duration::from_secs(2)));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_capped_by_max_delay() {
    let script = vec![with_header(status(503), "retry-after", "100"), status(200)];
    let result = run_http(HttpPolicy::new(), Method::GET, script).await;
    assert_eq!(result, (200, 2, Duration::from_secs(5)));
}

#[tokio::test(start_paused = true)]
async fn retry_after_as_a_past_http_date_retries_at_once() {
    let script = vec![
        with_header(status(503), "retry-after", "Sun, 06 Nov 1994 08:49:37 GMT"),
        status(200),
    ];
    let result = run_http(HttpPolicy::new(), Method::GET, script).await;
    assert_eq!(result, (200, 2, Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn malformed_or_ignored_retry_after_falls_back_to_the_backoff() {
    let script = vec![with_header(status(503), "retry-after", "soon"), status(200)];
    let result = run_http(HttpPolicy::new(), Method::GET, script).await;
    assert_eq!(result, (200, 2, ms(100)));
    let script = vec![with_header(status(503), "retry-after", "3"), status(200)];
    let result = run_http(
        HttpPolicy::new().honour_retry_after(false),
        Method::GET,
        script,
    )
    .await;
    assert_eq!(result, (200, 2, ms(100)));
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_deadline_is_not_waited_for() {
    let script = vec![with_header(status(503), "retry-after", "2"), status(200)];
    let (service, seen) = scripted(script);
    let start = Instant::now();
    let response = Deadline::after(Duration::from_secs(1))
        .scope(
            http_layer(HttpPolicy::new())
                .layer(service)
                .oneshot(request(Method::GET)),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[test]
fn retry_after_parsing() {
    // Sun, 06 Nov 1994 08:49:37 GMT
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
    let secs = |n| Some(Duration::from_secs(n));
    assert_eq!(parse_retry_after("0", now), secs(0));
    assert_eq!(parse_retry_after("120", now), secs(120));
    assert_eq!(parse_retry_after(" 7 ", now), secs(7));
    assert_eq!(
        parse_retry_after("99999999999999999999999", now),
        secs(u64::MAX)
    );
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
        secs(10)
    );
    assert_eq!(
        parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now),
        secs(60)
    );
    assert_eq!(parse_retry_after("Sun Nov  6 08:49:38 1994", now), secs(1));
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
        secs(0)
    );
    assert_eq!(
        parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
        secs(0),
        "past"
    );
    for malformed in [
        "",
        "   ",
        "-1",
        "+5",
        "1.5",
        "1e3",
        "soon",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "06 Nov 1994",
        "Sun, 06 Nov 1994 08:49:37 PST",
    ] {
        assert_eq!(parse_retry_after(malformed, now), None, "{malformed:?}");
    }
}

#[test]
fn grpc_pushback_parsing() {
    assert_eq!(
        parse_grpc_pushback("0"),
        Some(Pushback::After(Duration::ZERO))
    );
    assert_eq!(parse_grpc_pushback("1500"), Some(Pushback::After(ms(1500))));
    assert_eq!(parse_grpc_pushback("-1"), Some(Pushback::Stop));
    assert_eq!(
        parse_grpc_pushback("-9999999999999999999999"),
        Some(Pushback::Stop)
    );
    assert_eq!(
        parse_grpc_pushback("99999999999999999999999"),
        Some(Pushback::After(Duration::from_millis(u64::MAX)))
    );
    for malformed in ["", "-", "1.5", "abc", "10ms", "--1"] {
        assert_eq!(parse_grpc_pushback(malformed), None, "{malformed:?}");
    }
}

// ---- gRPC -----------------------------------------------------------------------------------

fn grpc(code: u32) -> Response<()> {
    with_header(status(200), "grpc-status", &code.to_string())
}

async fn run_grpc(
    policy: GrpcPolicy,
    script: Vec<Response<()>>,
) -> (Option<String>, usize, Duration) {
    let (service, seen) = scripted(script);
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(100)).max_delay(Duration::from_secs(5)))
        .policy(policy)
        .build()
        .unwrap();
    let start = Instant::now();
    let response = layer
        .layer(service)
        .oneshot(request(Method::POST))
        .await
        .unwrap();
    let code = response
        .headers()
        .get("grpc-status")
        .map(|value| value.to_str().unwrap().to_owned());
    let calls = seen.lock().unwrap().len();
    (code, calls, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn grpc_retries_unavailable_whatever_the_method() {
    let result = run_grpc(GrpcPolicy::new(), vec![grpc(14), grpc(0)]).await;
    assert_eq!(result, (Some("0".into()), 2, ms(100)));
    let result = run_grpc(GrpcPolicy::new(), vec![grpc(13), grpc(0)]).await;
    assert_eq!(result, (Some("13".into()), 1, Duration::ZERO));
    let result = run_grpc(GrpcPolicy::new(), vec![status(503), grpc(0)]).await;
    assert_eq!(
        result,
        (None, 1, Duration::ZERO),
        "no grpc-status: accepted"
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_codes_are_configurable() {
    let policy = GrpcPolicy::new().codes([4, 13]);
    let result = run_grpc(policy.clone(), vec![grpc(13), grpc(0)]).await;
    assert_eq!(result, (Some("0".into()), 2, ms(100)));
    let result = run_grpc(policy, vec![grpc(14), grpc(0)]).await;
    assert_eq!(result, (Some("14".into()), 1, Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn grpc_pushback_sets_the_delay_or_stops() {
    let pushback = |value: &str| with_header(grpc(14), "grpc-retry-pushback-ms", value);
    let result = run_grpc(GrpcPolicy::new(), vec![pushback("300"), grpc(0)]).await;
    assert_eq!(result, (Some("0".into()), 2, ms(300)));
    let result = run_grpc(GrpcPolicy::new(), vec![pushback("60000"), grpc(0)]).await;
    assert_eq!(
        result,
        (Some("0".into()), 2, Duration::from_secs(5)),
        "capped by max_delay"
    );
    let result = run_grpc(GrpcPolicy::new(), vec![pushback("-1"), grpc(0)]).await;
    assert_eq!(
        result,
        (Some("14".into()), 1, Duration::ZERO),
        "negative: stop"
    );
    let result = run_grpc(GrpcPolicy::new(), vec![pushback("later"), grpc(0)]).await;
    assert_eq!(result, (Some("0".into()), 2, ms(100)), "malformed: backoff");
}

// ---- replay body ----------------------------------------------------------------------------

/// A body that is not `Clone`: its chunks, then trailers.
struct Chunks {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    exact: Option<u64>,
}

fn chunks(parts: &[&'static str], trailers: bool) -> Chunks {
    let trailers = trailers.then(|| {
        let mut map = HeaderMap::new();
        map.insert("checksum", HeaderValue::from_static("abc"));
        map
    });
    Chunks {
        chunks: parts
            .iter()
            .map(|part| Bytes::from_static(part.as_bytes()))
            .collect(),
        trailers,
        exact: None,
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Poll::Ready(
            self.trailers
                .take()
                .map(|trailers| Ok(Frame::trailers(trailers))),
        )
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(exact) => SizeHint::with_exact(exact),
            None => SizeHint::default(),
        }
    }
}

/// A request as the inner service of a replaying layer receives it.
type Replayed = Request<ReplayBody<Chunks>>;

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    body: Bytes,
    trailers: Option<HeaderMap>,
}

/// How each attempt reads its body before answering.
#[derive(Clone, Copy)]
enum Read {
    All,
    Nothing,
    OneFrame,
}

/// A service that answers `statuses` in order, reading each request body as told; returns
/// what each attempt read in full.
fn replaying(
    statuses: Vec<(u16, Read)>,
) -> (
    impl tower::Service<Replayed, Response = Response<()>, Error = BoxError, Future: Send> + Clone,
    Log<Option<Seen>>,
) {
    let statuses = Arc::new(Mutex::new(VecDeque::from(statuses)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let service = service_fn(move |request: Request<ReplayBody<Chunks>>| {
        let (code, read) = statuses.lock().unwrap().pop_front().unwrap();
        let log = Arc::clone(&log);
        async move {
            let mut body = request.into_body();
            match read {
                Read::All => {
                    let collected = body.collect().await?;
                    let trailers = collected.trailers().cloned();
                    log.lock().unwrap().push(Some(Seen {
                        body: collected.to_bytes(),
                        trailers,
                    }));
                }
                Read::OneFrame => {
                    body.frame().await.transpose()?;
                    log.lock().unwrap().push(None);
                }
                Read::Nothing => log.lock().unwrap().push(None),
            }
            Ok::<_, BoxError>(status(code))
        }
    });
    (service, seen)
}

fn replay_layer(max_bytes: usize) -> RetryLayer<HttpPolicy, (), steadfast::retry::BufferBody> {
    RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(10)))
        .budget(RetryBudget::unlimited())
        .policy(HttpPolicy::new().methods([Method::GET, Method::PUT]))
        .replay_body(max_bytes)
        .build()
        .unwrap()
}

fn body_request(method: Method, body: Chunks) -> Request<Chunks> {
    Request::builder()
        .method(method)
        .uri("http://example.com/upload")
        .header("x-id", "7")
        .body(body)
        .unwrap()
}

fn full(body: &'static str, trailers: bool) -> Option<Seen> {
    Some(Seen {
        body: Bytes::from_static(body.as_bytes()),
        trailers: chunks(&[], trailers).trailers,
    })
}

#[tokio::test(start_paused = true)]
async fn a_body_that_is_not_clone_is_replayed_with_its_trailers() {
    let (service, seen) = replaying(vec![(503, Read::All), (503, Read::All), (200, Read::All)]);
    let response = replay_layer(1024)
        .layer(service)
        .oneshot(body_request(
            Method::PUT,
            chunks(&["abc", "def", "g"], true),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let expected = full("abcdefg", true);
    assert_eq!(
        *seen.lock().unwrap(),
        [expected.clone(), expected.clone(), expected]
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_the_first_attempt_did_not_read_is_sent_whole_by_the_retry() {
    for first in [Read::Nothing, Read::OneFrame] {
        let (service, seen) = replaying(vec![(503, first), (200, Read::All)]);
        let response = replay_layer(1024)
            .layer(service)
            .oneshot(body_request(Method::GET, chunks(&["abc", "def"], false)))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(*seen.lock().unwrap(), [None, full("abcdef", false)]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_outgrows_the_cap_is_not_retried() {
    let (service, seen) = replaying(vec![(503, Read::All), (200, Read::All)]);
    let response = replay_layer(5)
        .layer(service)
        .oneshot(body_request(Method::PUT, chunks(&["abc", "def"], false)))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(*seen.lock().unwrap(), [full("abcdef", false)]);

    // A body exactly at the cap is kept.
    let (service, seen) = replaying(vec![(503, Read::All), (200, Read::All)]);
    let response = replay_layer(6)
        .layer(service)
        .oneshot(body_request(Method::PUT, chunks(&["abc", "def"], false)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_body_declared_larger_than_the_cap_is_not_retried() {
    let (service, seen) = replaying(vec![(503, Read::Nothing), (200, Read::All)]);
    let mut body = chunks(&["abc", "def"], false);
    body.exact = Some(6);
    let response = replay_layer(5)
        .layer(service)
        .oneshot(body_request(Method::PUT, body))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_may_not_be_retried_streams_its_body_through() {
    let (service, seen) = replaying(vec![(503, Read::All), (200, Read::All)]);
    let response = replay_layer(1024)
        .layer(service)
        .oneshot(body_request(Method::POST, chunks(&["abc"], true)))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(*seen.lock().unwrap(), [full("abc", true)]);
}

#[tokio::test(start_paused = true)]
async fn the_request_head_is_sent_again_unchanged() {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heads);
    let service = service_fn(move |request: Request<ReplayBody<Chunks>>| {
        log.lock().unwrap().push((
            request.method().clone(),
            request.uri().clone(),
            request.headers().get("x-id").cloned(),
        ));
        let failed = log.lock().unwrap().len() == 1;
        async move {
            if failed {
                Err::<Response<()>, BoxError>(Box::new(Failure(1)))
            } else {
                Ok(status(200))
            }
        }
    });
    replay_layer(16)
        .layer(service)
        .oneshot(body_request(Method::GET, chunks(&["x"], false)))
        .await
        .unwrap();
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!(heads[0], heads[1]);
    assert_eq!(heads[1].2.as_ref().unwrap(), "7");
}

#[tokio::test(start_paused = true)]
async fn replay_futures_are_send_and_static() {
    let (service, _) = replaying(vec![(200, Read::All)]);
    let mut service = replay_layer(16).layer(service);
    service.ready().await.unwrap();
    let future = tower::Service::call(
        &mut service,
        body_request(Method::GET, chunks(&["x"], false)),
    );
    super::assert_send_static(&future);
    future.await.unwrap();
}
