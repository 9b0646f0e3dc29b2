//! The error a timeout fails a call with.

use std::fmt;

/// The call did not finish before its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elapsed {
    _priv: (),
}

impl Elapsed {
    #[allow(dead_code)]
    pub(crate) fn new() -> Self {
        Self { _priv: () }
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request timed out")
    }
}

impl std::error::Error for Elapsed {}
