//! The Rust snippets of README.md, docs/guide.md, docs/recipes.md, docs/migrating.md and
//! docs/telemetry.md,
//! compiled as doctests so that they cannot drift from the API: rustdoc treats every
//! ```` ```rust ```` block of an included file as a doctest (`no_run` where a snippet needs a
//! network, `text`, `toml` or `sh` where it is not Rust).
//!
//! Compiled only under `cfg(doctest)`, so `cargo doc` never sees these pages. The guide, the
//! recipes and migrating.md use most layers, so they are checked with every feature on
//! (`full`, as `cargo test --all-features` in README and `.ci/run` has it); README needs only
//! the default features, telemetry.md the breaker and `metrics`.
//!
//! The crate's `deny(warnings)` for doctests holds here, unused imports included, except for
//! unused variables and items: a snippet that ends by building a layer or defines a helper it
//! does not call is the normal shape of a documentation example.

#[doc = include_str!("../README.md")]
#[cfg(all(
    feature = "circuit-breaker",
    feature = "retry",
    feature = "timeout",
    feature = "bulkhead",
    feature = "fallback"
))]
mod readme {}

#[doc = include_str!("../docs/guide.md")]
#[doc(test(attr(allow(unused_variables, dead_code))))]
#[cfg(feature = "full")]
mod guide {}

#[doc = include_str!("../docs/recipes.md")]
#[doc(test(attr(allow(unused_variables, dead_code))))]
#[cfg(feature = "full")]
mod recipes {}

#[doc = include_str!("../docs/migrating.md")]
#[doc(test(attr(allow(unused_variables, dead_code))))]
#[cfg(feature = "full")]
mod migrating {}

#[doc = include_str!("../docs/telemetry.md")]
#[doc(test(attr(allow(unused_variables, dead_code))))]
#[cfg(all(feature = "circuit-breaker", feature = "metrics"))]
mod telemetry {}
