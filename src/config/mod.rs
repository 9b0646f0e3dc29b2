//! Configuration from files: every layer's [`Config`](crate::circuit_breaker::Config), and the
//! whole stack's [`StackConfig`], read with serde from TOML, YAML, JSON or any serde format
//! (feature `serde`).
//!
//! # Example
//!
//! ```
//! use steadfast::config::StackConfig;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let file = r#"
//!     [retry]
//!     max_attempts = 3
//!     backoff = { exponential = "50ms", jitter = "full", max_delay = "2s" }
//!
//!     [circuit_breaker]
//!     failure_rate_threshold = 0.25
//!     sliding_window = { time = "60s" }
//!
//!     [breakers.payments]
//!     wait_in_open = "1m30s"
//! "#;
//! # let _ = file;
//! # Ok(())
//! # }
//! ```
//!
//! # The format
//!
//! - Field names are the builder's method names (`failure_rate_threshold`, `max_wait`, ...);
//!   the timeout's duration is `timeout`.
//! - Every field is optional: a missing field has the builder's default, so an empty table is
//!   `Config::default()` and builds the same layer as `builder().build()`.
//! - An unknown or misspelt field is an error that names it, at every level.
//! - Durations are strings with a unit: `"500ms"`, `"30s"`, `"2m"`, `"1h"`, combined as
//!   `"1m30s"` (parsed by the `humantime` crate). A bare number is an error: `30` could be
//!   seconds or milliseconds.
//! - Values out of range are the builder's [`ConfigError`](crate::ConfigError), naming the field
//!   as written in the file: the file and the builder share one validation.
//! - `Serialize` writes the same format, so a written config reads back unchanged.

mod duration;
mod optional;
#[cfg(all(
    feature = "fallback",
    feature = "retry",
    feature = "timeout",
    feature = "circuit-breaker",
    feature = "bulkhead"
))]
mod stack;

pub(crate) use self::duration::{
    deserialize_duration, duration_field, optional_duration_field, serialize_duration,
};
pub use self::optional::{Optional, OptionalFuture, OptionalLayer};
#[cfg(all(
    feature = "fallback",
    feature = "retry",
    feature = "timeout",
    feature = "circuit-breaker",
    feature = "bulkhead"
))]
pub use self::stack::{ConfiguredStack, StackConfig, StackLayers};

/// A running layer keeps the name it was built with: it labels the metric handles registered
/// then. `reconfigure` refuses a config that renames it, before it changes anything.
#[allow(dead_code)] // used by the reconfigurable layers, whichever features are on
pub(crate) fn check_same_name(built: &str, new: &str) -> Result<(), crate::ConfigError> {
    if built == new {
        Ok(())
    } else {
        Err(crate::ConfigError::new(
            "name",
            &format!("the name the layer was built with, {built:?} (it labels its metrics)"),
            new,
        ))
    }
}
