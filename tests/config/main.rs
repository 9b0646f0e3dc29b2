//! Configuration from files (feature `serde`), and live reload.

mod files;
mod reload;
mod soak;
