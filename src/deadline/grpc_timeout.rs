//! The `grpc-timeout` wire format: at most 8 ASCII digits and a unit, one of `H` (hours),
//! `M` (minutes), `S` (seconds), `m` (milliseconds), `u` (microseconds), `n` (nanoseconds).

use std::time::Duration;

/// The largest value of a `grpc-timeout`: 8 digits.
const MAX_VALUE: u64 = 99_999_999;

/// Parses a `grpc-timeout` value such as `"250m"` or `"3S"`.
///
/// Returns `None` for anything that is not 1 to 8 ASCII digits followed by one of the units
/// `H`, `M`, `S`, `m`, `u`, `n` (no sign, no spaces, no other text). `"0n"` is valid: a deadline
/// that has already passed. Never panics.
///
/// ```
/// use std::time::Duration;
/// use steadfast::deadline::parse_grpc_timeout;
///
/// assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
/// assert_eq!(parse_grpc_timeout("123456789n"), None); // 9 digits
/// assert_eq!(parse_grpc_timeout("10 s"), None);
/// ```
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let bytes = value.as_bytes();
    let (&unit, digits) = bytes.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 8 digits: `n * 3600` below stays far inside `u64`.
    let n = digits
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    let duration = match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    };
    Some(duration)
}

/// Formats `timeout` as a `grpc-timeout` value in the finest unit whose value fits in 8 digits.
///
/// The value is rounded down to that unit, so the receiver never gets more time than was left;
/// the loss is less than one unit (below one part in 10⁷). A timeout too long even in hours is
/// capped at `99999999H` (about 11 400 years).
///
/// ```
/// use std::time::Duration;
/// use steadfast::deadline::format_grpc_timeout;
///
/// assert_eq!(format_grpc_timeout(Duration::from_millis(50)), "50000000n");
/// assert_eq!(format_grpc_timeout(Duration::from_millis(250)), "250000u");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(30)), "30000000u");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(3600)), "3600000m");
/// ```
pub fn format_grpc_timeout(timeout: Duration) -> String {
    let mut buf = [0u8; 16];
    let len = format_grpc_timeout_into(timeout, &mut buf);
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// Writes [`format_grpc_timeout`]'s text into `buf` without allocating; returns its length (at
/// most 9 bytes).
pub(crate) fn format_grpc_timeout_into(timeout: Duration, buf: &mut [u8]) -> usize {
    // (unit, nanoseconds per unit), finest first.
    const UNITS: [(u8, u128); 6] = [
        (b'n', 1),
        (b'u', 1_000),
        (b'm', 1_000_000),
        (b'S', 1_000_000_000),
        (b'M', 60 * 1_000_000_000),
        (b'H', 3600 * 1_000_000_000),
    ];
    let nanos = timeout.as_nanos();
    let (mut value, unit) = UNITS
        .iter()
        .map(|&(unit, per)| (nanos / per, unit))
        .find(|&(value, _)| value <= u128::from(MAX_VALUE))
        .unwrap_or((u128::from(MAX_VALUE), b'H'));
    // Digits, least significant first, then reversed in place.
    let mut len = 0;
    loop {
        let Some(slot) = buf.get_mut(len) else {
            return 0;
        };
        // `value % 10` is a single digit.
        *slot = b'0' + (value % 10) as u8;
        len += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    buf[..len].reverse();
    match buf.get_mut(len) {
        Some(slot) => *slot = unit,
        None => return 0,
    }
    len + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_values() {
        assert_eq!(
            parse_grpc_timeout("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        assert_eq!(format_grpc_timeout(Duration::MAX), "99999999H");
    }
}
