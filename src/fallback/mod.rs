//! Fallback.
