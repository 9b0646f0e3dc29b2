//! Circuit breaker.

pub mod error;
pub use error::CircuitOpen;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls pass.
    Closed,
    /// Calls are rejected.
    Open,
    /// Probes pass.
    HalfOpen,
    /// Rejected by hand.
    ForcedOpen,
    /// Passes everything by hand.
    Disabled,
}
