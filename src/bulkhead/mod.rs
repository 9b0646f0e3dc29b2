//! Bulkhead: caps concurrent calls.

pub mod error;

pub use error::BulkheadFull;
