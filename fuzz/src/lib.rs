//! The properties the fuzz targets check, one function per parser, so that the libFuzzer
//! targets (`fuzz_targets/`) and the plain smoke test (`tests/smoke.rs`) run the same code.
//!
//! Each function takes arbitrary bytes and panics only if a property is broken.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Request};
use steadfast::deadline::{
    Deadline, ENVOY_EXPECTED_RQ_TIMEOUT_MS, GRPC_TIMEOUT, InboundDeadlineLayer,
    PropagateDeadlineLayer, format_grpc_timeout, parse_grpc_timeout,
};
use steadfast::retry::{Pushback, parse_grpc_pushback, parse_retry_after};
use steadfast::timeout::Elapsed;
use tower::{Layer, Service, ServiceExt, service_fn};

/// `parse_grpc_timeout` on any text, and `format_grpc_timeout` on any duration.
pub fn grpc_timeout(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(timeout) = parse_grpc_timeout(text)
    {
        // Only 1 to 8 ASCII digits and a unit parse.
        let (unit, digits) = text.as_bytes().split_last().expect("not empty");
        assert!(b"HMSmun".contains(unit), "{text:?}");
        assert!((1..=8).contains(&digits.len()), "{text:?}");
        assert!(digits.iter().all(u8::is_ascii_digit), "{text:?}");
        // What it formats to parses again, never to more time than there was.
        let formatted = format_grpc_timeout(timeout);
        let again = parse_grpc_timeout(&formatted).expect("a formatted value parses");
        assert!(again <= timeout, "{text:?} -> {formatted:?}");
    }
    if let Some(timeout) = duration_from(data) {
        let formatted = format_grpc_timeout(timeout);
        assert!(formatted.len() <= 9, "{formatted:?}");
        let again = parse_grpc_timeout(&formatted).expect("a formatted value parses");
        assert!(again <= timeout, "{timeout:?} -> {formatted:?}");
    }
}

/// `parse_retry_after` on any text, at a `now` taken from the first 8 bytes.
pub fn retry_after(data: &[u8]) {
    let (now, rest) = match data.split_first_chunk::<8>() {
        Some((head, rest)) => (u64::from_le_bytes(*head), rest),
        None => (0, data),
    };
    // Any instant from 1970 to about 2554.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now % (1 << 34));
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let parsed = parse_retry_after(text, now);
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|byte| byte.is_ascii_digit()) {
        // Delta-seconds: exact, or the longest delay on overflow.
        let expected = trimmed.parse::<u64>().unwrap_or(u64::MAX);
        assert_eq!(parsed, Some(Duration::from_secs(expected)), "{text:?}");
    }
    if trimmed.is_empty() {
        assert_eq!(parsed, None);
    }
}

/// `parse_grpc_pushback` on any text.
pub fn grpc_pushback(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let trimmed = text.trim();
    match parse_grpc_pushback(text) {
        Some(Pushback::After(delay)) => {
            assert!(!trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()));
            let expected = trimmed.parse::<u64>().unwrap_or(u64::MAX);
            assert_eq!(delay, Duration::from_millis(expected), "{text:?}");
        }
        Some(Pushback::Stop) => {
            let digits = trimmed.strip_prefix('-').expect("a negative value");
            assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
        }
        None => {
            let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
            assert!(digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}

/// The inbound deadline headers, read by `InboundDeadlineLayer` from an `http::Request`: the
/// first byte picks which headers the request carries, the rest is split between their values.
pub fn deadline_header(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let split = rest.len() / 2;
    let (grpc_value, envoy_value) = rest.split_at(split);
    let mut request = Request::new(());
    let mut grpc = None;
    let mut envoy = None;
    if selector & 1 != 0
        && let Ok(value) = HeaderValue::from_bytes(grpc_value)
    {
        grpc = Some(value.to_str().ok().and_then(parse_grpc_timeout));
        request.headers_mut().insert(GRPC_TIMEOUT, value);
    }
    if selector & 2 != 0
        && let Ok(value) = HeaderValue::from_bytes(envoy_value)
    {
        envoy = Some(parse_millis(value.as_bytes()));
        request
            .headers_mut()
            .insert(ENVOY_EXPECTED_RQ_TIMEOUT_MS, value);
    }
    let margin = Duration::from_millis(u64::from(selector >> 2));
    let layer = InboundDeadlineLayer::new()
        .header(ENVOY_EXPECTED_RQ_TIMEOUT_MS)
        .safety_margin(margin);
    let handler = service_fn(|request: Request<()>| {
        let seen = (
            Deadline::current(),
            request.extensions().get::<Deadline>().copied(),
        );
        std::future::ready(Ok::<_, Infallible>(seen))
    });
    let mut service = layer.layer(handler);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let before = tokio::time::Instant::now();
    let future = pin!(service.call(request));
    let Poll::Ready(Ok((current, extension))) = future.poll(&mut cx) else {
        panic!("a ready handler answers at once");
    };
    let after = tokio::time::Instant::now();
    assert_eq!(current, extension, "the scope and the extension agree");
    let timeouts = [grpc.flatten(), envoy.flatten()];
    match timeouts.into_iter().flatten().min() {
        None => assert_eq!(current, None, "no valid header, no deadline"),
        Some(timeout) => {
            let deadline = current.expect("a valid header sets a deadline");
            let timeout = timeout.saturating_sub(margin);
            // Deadline::after(timeout), read between `before` and `after`; a timeout too long
            // for the clock saturates at about 30 years from then.
            const SATURATED: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
            let at = deadline.instant();
            match after.checked_add(timeout) {
                Some(latest) => {
                    assert!(at >= before + timeout, "{timeout:?}");
                    assert!(at <= latest, "{timeout:?}");
                }
                None => {
                    let earliest = before.checked_add(timeout.min(SATURATED));
                    assert!(at >= earliest.unwrap_or(before), "{timeout:?}");
                }
            }
        }
    }
}

/// The millisecond header's format, written out independently: ASCII digits, within `u64`.
///
/// The crate also rejects any value longer than 19 digits, even one within `u64` (such as
/// `"00000000000000000001"` or `"10000000000000000000"`); the oracle follows it there, since
/// such a header means "no deadline" in practice either way.
fn parse_millis(value: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?;
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().map(Duration::from_millis)
}

/// A duration from the first 12 bytes, if there are that many.
fn duration_from(data: &[u8]) -> Option<Duration> {
    let (secs, rest) = data.split_first_chunk::<8>()?;
    let (nanos, _) = rest.split_first_chunk::<4>()?;
    let nanos = u32::from_le_bytes(*nanos) % 1_000_000_000;
    Some(Duration::new(u64::from_le_bytes(*secs), nanos))
}

thread_local! {
    /// A runtime on paused time, so that no time passes between setting a deadline and the
    /// layer reading what is left of it.
    static PAUSED: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
}

/// `PropagateDeadlineLayer` writing the time left over whatever `grpc-timeout` and
/// `x-envoy-expected-rq-timeout-ms` a request already carries: the first byte picks the headers
/// present, the next 12 the deadline, the rest is split between the existing values.
pub fn deadline_propagate(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some(timeout) = duration_from(rest) else {
        return;
    };
    let rest = &rest[12..];
    let (grpc_value, envoy_value) = rest.split_at(rest.len() / 2);
    let mut request = Request::new(());
    let mut existing_grpc = None;
    let mut existing_envoy = None;
    if selector & 1 != 0
        && let Ok(value) = HeaderValue::from_bytes(grpc_value)
    {
        existing_grpc = Some(value.clone());
        request.headers_mut().insert(GRPC_TIMEOUT, value);
    }
    if selector & 2 != 0
        && let Ok(value) = HeaderValue::from_bytes(envoy_value)
    {
        existing_envoy = Some(value.clone());
        request
            .headers_mut()
            .insert(ENVOY_EXPECTED_RQ_TIMEOUT_MS, value);
    }
    PAUSED.with(|runtime| {
        runtime.block_on(async {
            let deadline = Deadline::after(timeout);
            let remaining = deadline.remaining();
            request.extensions_mut().insert(deadline);
            let handler = service_fn(|request: Request<()>| {
                std::future::ready(Ok::<_, Infallible>(request.headers().clone()))
            });
            let mut service = PropagateDeadlineLayer::new()
                .header(ENVOY_EXPECTED_RQ_TIMEOUT_MS)
                .layer(handler);
            let result = service
                .ready()
                .await
                .expect("always ready")
                .call(request)
                .await;
            if remaining.is_zero() {
                let err = result.expect_err("a passed deadline fails the call");
                assert!(err.is::<Elapsed>(), "{err}");
                return;
            }
            let headers = result.expect("the handler answers");

            let grpc = headers.get(GRPC_TIMEOUT).expect("grpc-timeout written");
            let kept = existing_grpc.filter(|value| {
                let parsed = value.to_str().ok().and_then(parse_grpc_timeout);
                parsed.is_some_and(|existing| existing <= remaining)
            });
            match kept {
                Some(existing) => assert_eq!(grpc, &existing, "a shorter timeout is kept"),
                None => assert_eq!(grpc, format_grpc_timeout(remaining).as_str()),
            }
            let written = parse_grpc_timeout(grpc.to_str().expect("ASCII")).expect("valid");
            assert!(written <= remaining);

            let envoy = headers
                .get(ENVOY_EXPECTED_RQ_TIMEOUT_MS)
                .expect("the millisecond header written");
            let kept = existing_envoy.filter(|value| {
                parse_millis(value.as_bytes()).is_some_and(|existing| existing <= remaining)
            });
            match kept {
                Some(existing) => assert_eq!(envoy, &existing, "a shorter timeout is kept"),
                None => {
                    // Rounded up, capped at `u64::MAX` (which, at 20 digits, the inbound layer
                    // would not read back: only deadlines over 584 million years away get it).
                    let millis = remaining.as_nanos().div_ceil(1_000_000);
                    let millis = u64::try_from(millis).unwrap_or(u64::MAX);
                    assert_eq!(envoy, millis.to_string().as_str(), "rounded up");
                }
            }
        })
    });
}
