//! Errors shared by every layer: [`ConfigError`] for builders, [`BoxError`] for calls.
//!
//! # Example
//!
//! ```
//! use steadfast::circuit_breaker::CircuitBreakerLayer;
//!
//! let err = CircuitBreakerLayer::builder()
//!     .failure_rate_threshold(1.5)
//!     .build()
//!     .unwrap_err();
//! assert_eq!(err.field(), "failure_rate_threshold");
//! assert!(err.to_string().contains("(0, 1]"));
//! ```

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

/// The error type of every layer that adds a way to fail, as in tower.
///
/// Rejections are distinct public types ([`CircuitOpen`](crate::circuit_breaker::CircuitOpen),
/// [`BulkheadFull`](crate::bulkhead::BulkheadFull), [`Elapsed`](crate::deadline::Elapsed)) that
/// can be recovered with [`downcast_ref`](trait@std::error::Error). Errors of the inner service
/// pass through boxed, never wrapped, so they downcast to their own type too.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// A builder was given a value outside its allowed range.
///
/// Builders never panic: [`build`](crate::circuit_breaker::Builder::build) returns this error
/// instead. [`field`](Self::field) is the name of the builder method as written in code (for
/// example `failure_rate_threshold`), and the message states the allowed range and the value that
/// was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    message: Cow<'static, str>,
}

impl ConfigError {
    /// Builds the error for `field`, saying what it must be and what it got.
    #[allow(dead_code)] // used by the builders, whichever middleware features are on
    pub(crate) fn new(field: &'static str, rule: &str, got: impl fmt::Debug) -> Self {
        Self {
            field,
            message: Cow::Owned(format!("`{field}` must be {rule}, got {got:?}")),
        }
    }

    /// The same error for `field`, a longer path to the same value: a setting of a nested
    /// table, named as written in a file (`algorithm.gradient2.smoothing` for `smoothing`).
    #[allow(dead_code)] // used by the file formats (feature `serde`)
    pub(crate) fn at(self, field: &'static str) -> Self {
        let message = match self.message.strip_prefix(&format!("`{}`", self.field)) {
            Some(rest) => Cow::Owned(format!("`{field}`{rest}")),
            None => self.message,
        };
        Self { field, message }
    }

    /// The builder method whose value was rejected, e.g. `"sliding_window"`.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.message)
    }
}

impl Error for ConfigError {}

/// Checks a fraction in (0, 1]: the range of every rate threshold. Rejects NaN.
#[allow(dead_code)] // used by the builders, whichever middleware features are on
pub(crate) fn check_fraction(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(ConfigError::new(field, "a fraction in (0, 1]", value))
    }
}

/// Checks a count in `[min, max]`.
#[allow(dead_code)] // used by the builders, whichever middleware features are on
pub(crate) fn check_range<T>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError>
where
    T: PartialOrd + fmt::Debug + fmt::Display,
{
    if value >= min && value <= max {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            &format!("in [{min}, {max}]"),
            value,
        ))
    }
}
