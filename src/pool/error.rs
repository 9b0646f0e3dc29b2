//! The error a pool fails a call with when no endpoint can take it.

use std::fmt;

/// No endpoint of the pool could take the call: the pool is empty, or every endpoint is
/// ejected or unhealthy and panic routing is off (or did not apply). The call was not sent.
///
/// It is returned at once, never after a wait. Like the crate's other rejections it says nothing
/// about the health of any endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoEndpointAvailable {
    endpoints: usize,
}

impl NoEndpointAvailable {
    pub(crate) fn new(endpoints: usize) -> Self {
        Self { endpoints }
    }

    /// How many endpoints the pool held when the call was rejected (zero: an empty pool).
    pub fn endpoints(&self) -> usize {
        self.endpoints
    }
}

impl fmt::Display for NoEndpointAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.endpoints == 0 {
            f.write_str("no endpoint available: the pool is empty")
        } else {
            write!(
                f,
                "no endpoint available: none of {} endpoints is eligible",
                self.endpoints
            )
        }
    }
}

impl std::error::Error for NoEndpointAvailable {}
