//! Resilience middleware for [`tower`](https://docs.rs/tower): a lock-free circuit breaker,
//! retry with jittered backoff and a retry budget, timeout with deadline propagation, bulkhead
//! and fallback.
//!
//! Each layer stands alone and composes with `tower::ServiceBuilder`, axum routers, tonic
//! servers and clients, and hyper clients. Each keeps its shared state (the breaker, the permits,
//! the budget) in the layer, so every clone of the layer and every service it makes share it: an
//! axum router that applies a layer per route still has one breaker.
//!
//! # Example
//!
//! The full stack in the recommended order, outermost first:
//!
//! ```
//! use std::time::Duration;
//! use steadfast::BoxError;
//! use steadfast::bulkhead::BulkheadLayer;
//! use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};
//! use steadfast::fallback::FallbackLayer;
//! use steadfast::retry::{Backoff, Jitter, RetryLayer};
//! use steadfast::timeout::TimeoutLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let breaker = CircuitBreakerLayer::builder()
//!     .failure_rate_threshold(0.5)
//!     .sliding_window(SlidingWindow::Count(100))
//!     .minimum_calls(20)
//!     .wait_in_open(Duration::from_secs(30))
//!     .build()?;
//!
//! let backend = service_fn(|id: u32| async move { Ok::<_, BoxError>(format!("item {id}")) });
//! let mut service = ServiceBuilder::new()
//!     .layer(FallbackLayer::new(|_: BoxError| Ok(String::from("cached item"))))
//!     .layer(
//!         RetryLayer::builder()
//!             .max_attempts(3) // 3 attempts = 2 retries
//!             .backoff(Backoff::exponential(Duration::from_millis(50)).jitter(Jitter::Full))
//!             .build()?,
//!     )
//!     .layer(TimeoutLayer::new(Duration::from_secs(2)))
//!     .layer(breaker.clone())
//!     .layer(BulkheadLayer::builder().max_concurrent_calls(64).build()?)
//!     .layer(TimeoutLayer::new(Duration::from_millis(500)))
//!     .service(backend);
//!
//! assert_eq!(service.ready().await?.call(7).await?, "item 7");
//! breaker.force_open();
//! assert_eq!(service.ready().await?.call(7).await?, "cached item");
//! assert_eq!(breaker.state(), State::ForcedOpen);
//! # Ok(())
//! # }
//! ```
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
//!  ├──────────────────┤  bounds one attempt through the breaker and the bulkhead
//!  │ overall timeout  │
//!  ├──────────────────┤  stops calling a service that keeps failing; fails fast while open
//!  │ circuit breaker  │
//!  ├──────────────────┤  caps concurrent calls so one slow dependency cannot take every thread
//!  │ bulkhead         │
//!  ├──────────────────┤  bounds the call to the service itself, so a hung call is cut and counted
//!  │ attempt timeout  │
//!  └──▼───────────────┘
//!   service
//! ```
//!
//! - **Fallback** is outermost so that it sees every way the rest can fail.
//! - **Retry** sits outside the breaker, so a breaker that opens mid-retry stops the retries at
//!   once (a [`CircuitOpen`](circuit_breaker::CircuitOpen) is never retried and costs no budget).
//!   It honours the current [`Deadline`](deadline::Deadline): it never starts a backoff or an
//!   attempt that cannot finish in time.
//! - **The overall timeout** bounds each attempt once it is sent, through the breaker and the
//!   bulkhead. (The wait for a bulkhead permit happens in `poll_ready`, which no timeout bounds:
//!   the bulkhead's own `max_wait` does.) For one deadline over all attempts and backoffs, set it
//!   where the request enters (an inbound `grpc-timeout`, or a
//!   [`TimeoutLayer`](timeout::TimeoutLayer) outside retry): retry reads it and stops early
//!   rather than sleep into it.
//! - **The breaker** counts each attempt, so it sees the true failure rate of the service, and
//!   a timed-out attempt counts as a failure.
//! - **The bulkhead** is inside the breaker, so calls rejected by an open breaker take no permit,
//!   and a full bulkhead (a local rejection) never trips the breaker.
//! - **The attempt timeout** is innermost: it bounds only the service, so a hung call is cut,
//!   counted by the breaker, and retried.
//!
//! [`stack::ResilienceStack`] applies any subset of these layers in this order (with the five
//! layer features on), as one layer or through a `ServiceBuilder` extension.
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
#[cfg(feature = "serde")]
pub mod config;
pub mod deadline;
mod error;
mod random;
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
#[cfg(all(
    feature = "fallback",
    feature = "retry",
    feature = "timeout",
    feature = "circuit-breaker",
    feature = "bulkhead"
))]
pub mod stack;
#[cfg(feature = "timeout")]
pub mod timeout;

pub use error::{BoxError, ConfigError, is_rejection};
