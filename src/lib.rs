//! Resilience middleware for [`tower`](https://docs.rs/tower): a lock-free circuit breaker,
//! retry with jittered backoff and a retry budget, timeout with deadline propagation, bulkhead
//! and fallback.
//!
//! Each layer stands alone and composes with `tower::ServiceBuilder`, axum routers, tonic
//! servers and clients, and hyper clients. Each keeps its shared state (the breaker, the permits,
//! the budget) in the layer, so every clone of the layer and every service it makes share it: an
//! axum router that applies a layer per route still has one breaker.
//!
//! # The order of a full stack
//!
//! Outermost first:
//!
//! ```text
//!  request
//!     │
//!  ┌──▼───────────────┐  answers from a function, or a backup service, when all else failed
//!  │ fallback         │
//!  ├──────────────────┤  re-sends failed attempts, within max_attempts and the retry budget
//!  │ retry (+ budget) │
//!  ├──────────────────┤  bounds the whole call, backoffs included; sets the deadline
//!  │ overall timeout  │
//!  ├──────────────────┤  stops calling a service that keeps failing; fails fast while open
//!  │ circuit breaker  │
//!  ├──────────────────┤  caps concurrent calls so one slow dependency cannot take every thread
//!  │ bulkhead         │
//!  ├──────────────────┤  bounds one attempt, so a hung attempt can be retried
//!  │ attempt timeout  │
//!  └──▼───────────────┘
//!   service
//! ```
//!
//! - **Fallback** is outermost so that it sees every way the rest can fail.
//! - **Retry** sits outside the breaker, so a breaker that opens mid-retry stops the retries at
//!   once (a [`CircuitOpen`](circuit_breaker::CircuitOpen) is never retried and costs no budget).
//! - **The overall timeout** is inside retry's loop only if you want a deadline per attempt; put
//!   it outside (here) and it bounds the sum of attempts and backoffs.
//! - **The breaker** counts each attempt, so it sees the true failure rate of the service.
//! - **The bulkhead** is inside the breaker, so calls rejected by an open breaker take no permit.
//! - **The attempt timeout** is innermost, so a hung attempt is cut and counted as a failure.
//!
//! # Features
//!
//! | feature | what it enables | default |
//! |---|---|---|
//! | `circuit-breaker` | [`circuit_breaker`] | yes |
//! | `retry` | [`retry`] | yes |
//! | `timeout` | [`timeout`] | yes |
//! | `bulkhead` | [`bulkhead`] | yes |
//! | `fallback` | [`fallback`] | yes |
//! | `chaos` | [`chaos`]: fault injection | no |
//! | `http` | HTTP status classification (tower-http's), replay bodies, deadline headers | no |
//! | `tonic` | rejections as `tonic::Status` | no |
//! | `metrics` | metrics through the [`metrics`](https://docs.rs/metrics) facade | no |
//! | `full` | all of the above | no |
//!
//! # Errors
//!
//! Layers that add a way to fail return [`BoxError`], as tower's own do. Each rejection is its
//! own type to downcast; the inner service's errors pass through boxed, never wrapped.
//!
//! # Time
//!
//! Every layer reads tokio's clock, so tests run on paused time
//! (`#[tokio::test(start_paused = true)]`) and are exact.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod classify;
pub mod deadline;
mod error;
mod sync;

#[cfg(feature = "bulkhead")]
pub mod bulkhead;
#[cfg(feature = "chaos")]
pub mod chaos;
#[cfg(feature = "circuit-breaker")]
pub mod circuit_breaker;
#[cfg(feature = "fallback")]
pub mod fallback;
#[cfg(feature = "tonic")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "retry")]
pub mod retry;
#[cfg(feature = "timeout")]
pub mod timeout;

pub use error::{BoxError, ConfigError, is_rejection};
