//! HTTP and gRPC awareness: which responses are retried, and the server's pushback.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, StatusCode};

use super::policy::{Decision, RetryPolicy};

/// The statuses [`HttpPolicy`] retries unless configured otherwise: 429, 502, 503, 504.
pub const DEFAULT_RETRY_STATUSES: [StatusCode; 4] = [
    StatusCode::TOO_MANY_REQUESTS,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::GATEWAY_TIMEOUT,
];

/// The gRPC codes [`GrpcPolicy`] retries unless configured otherwise: 14 (`UNAVAILABLE`).
pub const DEFAULT_RETRY_GRPC_CODES: [i32; 1] = [14];

/// Retries HTTP requests with an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE) that
/// failed with an `Err` or answered 429, 502, 503 or 504, honouring `Retry-After`.
///
/// A `Retry-After` header (delta-seconds or an HTTP-date) on a retried response replaces the
/// backoff delay; it is capped by `max_delay` and a retry whose pushback would end after the
/// deadline is not made. A malformed `Retry-After` is ignored (the backoff applies).
///
/// # Example
///
/// ```
/// use http::{Method, StatusCode};
/// use steadfast::retry::{HttpPolicy, RetryLayer};
///
/// let layer = RetryLayer::builder()
///     .policy(
///         HttpPolicy::new()
///             .statuses([StatusCode::SERVICE_UNAVAILABLE])
///             .methods([Method::GET, Method::POST]),
///     )
///     .replay_body(64 * 1024)
///     .build()
///     .unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    statuses: Vec<StatusCode>,
    methods: Vec<Method>,
    honour_retry_after: bool,
}

impl HttpPolicy {
    /// Retries 429, 502, 503, 504 and errors on GET, HEAD, OPTIONS, PUT and DELETE.
    pub fn new() -> Self {
        Self {
            statuses: DEFAULT_RETRY_STATUSES.to_vec(),
            methods: vec![
                Method::GET,
                Method::HEAD,
                Method::OPTIONS,
                Method::PUT,
                Method::DELETE,
            ],
            honour_retry_after: true,
        }
    }

    /// The response statuses to retry. Defaults to [`DEFAULT_RETRY_STATUSES`].
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    /// The methods whose requests may be retried. Add `POST` only for endpoints you know to be
    /// idempotent. Defaults to GET, HEAD, OPTIONS, PUT and DELETE.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// Whether a `Retry-After` header sets the delay before the retry. Defaults to `true`.
    pub fn honour_retry_after(mut self, honour: bool) -> Self {
        self.honour_retry_after = honour;
        self
    }
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl<B, RB, E> RetryPolicy<http::Request<B>, http::Response<RB>, E> for HttpPolicy {
    fn is_retryable_request(&self, request: &http::Request<B>) -> bool {
        self.methods.contains(request.method())
    }

    fn decide(&self, result: &Result<http::Response<RB>, E>) -> Decision {
        let response = match result {
            Ok(response) => response,
            Err(_) => return Decision::Retry,
        };
        if !self.statuses.contains(&response.status()) {
            return Decision::Accept;
        }
        if self.honour_retry_after {
            if let Some(delay) = retry_after(response.headers()) {
                return Decision::RetryAfter(delay);
            }
        }
        Decision::Retry
    }
}

/// Retries gRPC calls that failed with an `Err` or whose `grpc-status` is `UNAVAILABLE` (14),
/// honouring `grpc-retry-pushback-ms`.
///
/// The status is read from the response headers, where a "trailers-only" response (the usual
/// shape of an immediate failure, such as a server shedding load) carries it. A status sent in
/// trailers after a streamed body is not seen: the layer does not hold bodies.
///
/// A `grpc-retry-pushback-ms` header replaces the backoff delay (capped by `max_delay`, and no
/// retry if it would end after the deadline); a negative value means "do not retry" and the
/// response is returned; a malformed one is ignored.
#[derive(Debug, Clone)]
pub struct GrpcPolicy {
    codes: Vec<i32>,
}

impl GrpcPolicy {
    /// Retries `UNAVAILABLE`.
    pub fn new() -> Self {
        Self {
            codes: DEFAULT_RETRY_GRPC_CODES.to_vec(),
        }
    }

    /// The gRPC status codes to retry (numbers, as in `grpc-status`). Defaults to
    /// [`DEFAULT_RETRY_GRPC_CODES`].
    pub fn codes(mut self, codes: impl IntoIterator<Item = i32>) -> Self {
        self.codes = codes.into_iter().collect();
        self
    }
}

impl Default for GrpcPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl<B, RB, E> RetryPolicy<http::Request<B>, http::Response<RB>, E> for GrpcPolicy {
    fn decide(&self, result: &Result<http::Response<RB>, E>) -> Decision {
        let response = match result {
            Ok(response) => response,
            Err(_) => return Decision::Retry,
        };
        let headers = response.headers();
        let code = headers
            .get("grpc-status")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<i32>().ok());
        match code {
            Some(code) if self.codes.contains(&code) => {}
            _ => return Decision::Accept,
        }
        match headers
            .get("grpc-retry-pushback-ms")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_pushback)
        {
            Some(Pushback::After(delay)) => Decision::RetryAfter(delay),
            Some(Pushback::Stop) => Decision::Accept,
            None => Decision::Retry,
        }
    }
}

/// A gRPC server's `grpc-retry-pushback-ms`, parsed by [`parse_grpc_pushback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pushback {
    /// Retry after this delay.
    After(Duration),
    /// A negative value: do not retry.
    Stop,
}

/// Parses `grpc-retry-pushback-ms`: a decimal integer of milliseconds; negative means "do not
/// retry". Anything else (empty, not a number, a fraction) is `None`.
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::{Pushback, parse_grpc_pushback};
///
/// assert_eq!(parse_grpc_pushback("250"), Some(Pushback::After(Duration::from_millis(250))));
/// assert_eq!(parse_grpc_pushback("-1"), Some(Pushback::Stop));
/// assert_eq!(parse_grpc_pushback("soon"), None);
/// ```
pub fn parse_grpc_pushback(value: &str) -> Option<Pushback> {
    let value = value.trim();
    let (negative, digits) = match value.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, value),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    if negative {
        return Some(Pushback::Stop);
    }
    // All digits: only overflow can fail, and a huge pushback is as good as the longest.
    let millis = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some(Pushback::After(Duration::from_millis(millis)))
}

/// Parses a `Retry-After` value: delta-seconds (`"120"`) or an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, and the obsolete RFC 850 and asctime forms), turned into
/// a delay from `now`. A date in the past is a zero delay. Malformed input is `None`.
///
/// `now` is a parameter so that the one wall-clock read (the layer passes
/// `SystemTime::now()`) stays out of the parser and tests are exact.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use steadfast::retry::parse_retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
///     Some(Duration::from_secs(10)),
/// );
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|byte| byte.is_ascii_digit()) {
        // Overflow: as good as the longest delay; max_delay caps it.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a response. The one wall-clock read of the crate, made only when the
/// header is present: an HTTP-date is relative to the wall clock.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}
