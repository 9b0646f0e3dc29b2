//! Unit tests that need crate-private constructors (local rejections).
