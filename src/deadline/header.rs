//! Reading and writing deadline headers on `http` requests, without allocating to read.

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use super::parse_grpc_timeout;

/// The `grpc-timeout` header of the gRPC-over-HTTP/2 protocol.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Envoy's `x-envoy-expected-rq-timeout-ms`: the time the proxy will wait for this request, in
/// milliseconds. A header to give
/// [`InboundDeadlineLayer::header`](super::InboundDeadlineLayer::header).
pub const ENVOY_EXPECTED_RQ_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");

/// Parses a whole number of milliseconds: ASCII digits only, no sign, within `u64`.
pub(crate) fn parse_millis(value: &[u8]) -> Option<Duration> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let millis = value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some(Duration::from_millis(millis))
}

/// The timeout in `headers[name]`: `grpc-timeout` format if `grpc`, else milliseconds.
/// A malformed value is ignored with a `debug` event.
pub(crate) fn read(headers: &HeaderMap, name: &HeaderName, grpc: bool) -> Option<Duration> {
    let value = headers.get(name)?;
    let parsed = if grpc {
        value.to_str().ok().and_then(parse_grpc_timeout)
    } else {
        parse_millis(value.as_bytes())
    };
    if parsed.is_none() {
        tracing::debug!(
            target: "steadfast::deadline",
            {
                deadline.header = %name,
                deadline.value = ?value
            },
            "ignored a malformed deadline header"
        );
    }
    parsed
}

/// Writes `remaining` into `headers[name]`, unless the header already holds a shorter valid
/// timeout (a deadline is only ever narrowed).
pub(crate) fn write(headers: &mut HeaderMap, name: &HeaderName, grpc: bool, remaining: Duration) {
    if let Some(existing) = headers.get(name) {
        let existing = if grpc {
            existing.to_str().ok().and_then(parse_grpc_timeout)
        } else {
            parse_millis(existing.as_bytes())
        };
        if existing.is_some_and(|existing| existing <= remaining) {
            return;
        }
    }
    use std::io::Write as _;

    let mut buf = [0u8; 32];
    let len = if grpc {
        super::format_grpc_timeout_into(remaining, &mut buf)
    } else {
        // Whole milliseconds, rounded up: a receiver may read 0 as "no timeout" (Envoy does).
        let millis = remaining.as_nanos().div_ceil(1_000_000);
        let millis = u64::try_from(millis).unwrap_or(u64::MAX);
        let mut out = &mut buf[..];
        let before = out.len();
        match write!(out, "{millis}") {
            Ok(()) => before - out.len(),
            Err(_) => 0,
        }
    };
    if len == 0 {
        return;
    }
    if let Ok(value) = http::HeaderValue::from_bytes(&buf[..len]) {
        headers.insert(name.clone(), value);
    }
}
