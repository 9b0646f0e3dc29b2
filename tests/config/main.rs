//! Configuration from files (feature `serde`), and live reload.

mod files;
mod keyed_breaker;
#[cfg(all(
    feature = "pool",
    feature = "hedge",
    feature = "limit",
    feature = "rate-limit"
))]
mod new_layers;
mod reload;
mod soak;
#[cfg(all(feature = "hedge", feature = "limit", feature = "rate-limit"))]
mod stack_sections;
