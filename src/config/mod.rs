//! Configuration from files: every layer's [`Config`](crate::circuit_breaker::Config), and the
//! whole stack's [`StackConfig`], read with serde from TOML, YAML, JSON or any serde format
//! (feature `serde`).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use steadfast::circuit_breaker::CircuitBreakerLayer;
//! use steadfast::config::{StackConfig, StackLayers};
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
//!     [bulkhead]
//!     max_concurrent_calls = 64
//!
//!     [breakers.payments]
//!     wait_in_open = "1m30s"
//! "#;
//! let config: StackConfig = toml::from_str(file)?;
//! // The layers of the stack's sections, and the stack of them.
//! let layers = StackLayers::from_config(&config)?;
//! let stack = layers.stack();
//! # let _ = stack;
//! // A named instance, for another dependency.
//! let payments = CircuitBreakerLayer::from_config(&config.breaker("payments").unwrap())?;
//! assert_eq!(payments.name(), "payments");
//!
//! // Later, the file changed: the running layers take it, keeping their state.
//! let config: StackConfig = toml::from_str(&file.replace("64", "32"))?;
//! layers.reconfigure(&config)?;
//! assert_eq!(layers.bulkhead.as_ref().unwrap().max_concurrent_calls(), 32);
//!
//! // A typo is an error that names it.
//! let typo = toml::from_str::<StackConfig>("[bulkhead]\nmax_concurent_calls = 1");
//! assert!(typo.unwrap_err().to_string().contains("max_concurent_calls"));
//! # let _ = Duration::ZERO;
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
//!
//! # Reload
//!
//! `reconfigure(&Config)` on a running layer (or [`StackLayers::reconfigure`] on a whole stack)
//! applies new settings to it, every clone and every service it made, keeping its state; a
//! config it refuses changes nothing. What each layer can change is on its `reconfigure`; the
//! guide (`docs/guide.md`, section 9) has the table, and `examples/config_reload.rs` the reload
//! loop.

// Adding a layer (as the pool, hedge, limit and rate limit were added): a `config_file.rs` in
// its module, behind `serde`, with a `Config` of one field per builder method (`#[serde(default,
// deny_unknown_fields)]`, `Default` from the builder's `DEFAULT_*` constants, durations through
// `duration_field!`/`optional_duration_field!` so that errors name the field), `to_builder()`,
// and `XLayer::from_config` = `to_builder().build()`. For reload: a `check_reconfigure` that
// runs the builder's validation (split `build` into a `check` and the construction) and checks
// the name, and a `reconfigure` that calls it and then stores the new settings in the layer's
// shared state (atomics read where the layer decides, not on its healthy path). Then a section
// in `StackConfig` (a stack layer) or a map of named instances, a row in `tests/config/files.rs`
// per field, the defaults in `examples/steadfast.toml`, and a row in the guide's table.
mod duration;
mod optional;
mod reloads;
#[cfg(all(
    feature = "fallback",
    feature = "retry",
    feature = "timeout",
    feature = "circuit-breaker",
    feature = "bulkhead"
))]
mod stack;

#[allow(unused_imports)] // used by the layers' configs, whichever features are on
pub(crate) use self::duration::{
    deserialize_duration, duration_field, optional_duration_field, serialize_duration,
};
pub use self::optional::{Optional, OptionalFuture, OptionalLayer};
#[allow(unused_imports)] // used by the reconfigurable layers, whichever features are on
pub(crate) use self::reloads::Reloads;
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
