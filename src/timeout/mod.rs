//! Timeout.

pub mod error;

pub use error::Elapsed;
