//! The atomics of the lock-free state machines: std's, or loom's when built with
//! `RUSTFLAGS="--cfg steadfast_loom"`, so that the loom models explore every interleaving.
//! (A crate-specific cfg, because tokio reacts to a plain `--cfg loom` itself.)
//!
//! Each middleware uses its own subset, so a build with only some features leaves some unused.
#![allow(unused_imports)]

#[cfg(steadfast_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
#[cfg(not(steadfast_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

#[cfg(steadfast_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(steadfast_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
