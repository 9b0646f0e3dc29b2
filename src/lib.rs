//! Resilience middleware for [`tower`](https://docs.rs/tower): a lock-free circuit breaker (one
//! per service, or one per host or tenant), retry with jittered backoff and a retry budget,
//! timeout with deadline propagation, bulkhead and fallback; and, each behind its feature, a
//! pool of replicas (power of two choices, outlier ejection, health checks), hedged requests
//! against a slow tail, an adaptive concurrency limit (Gradient2, Vegas, AIMD) that sheds load
//! before queues grow, and a GCRA rate limiter (whole-service or keyed).
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
//! Outermost first: fallback → retry (with budget) → overall timeout → circuit breaker →
//! bulkhead → attempt timeout → the service. Why each layer sits where it does, and what each
//! timeout bounds, is written once, in [`stack`'s docs](stack#the-order), which
//! [`stack::ResilienceStack`] applies for you (with the five layer features on).
//!
//! # Features
//!
//! | feature | what it enables | default |
//! |---|---|---|
//! | `circuit-breaker` | [`circuit_breaker`], one breaker or one per key | yes |
//! | `retry` | [`retry`] | yes |
//! | `timeout` | [`timeout`] | yes |
//! | `bulkhead` | [`bulkhead`] | yes |
//! | `fallback` | [`fallback`] | yes |
//! | `pool` | [`pool`]: a pool of replicas (P2C, outlier ejection, health checks, tiers); turns on `circuit-breaker` | no |
//! | `hedge` | [`hedge`]: hedged requests within a retry budget; turns on `retry` | no |
//! | `limit` | [`limit`]: an adaptive concurrency limit (Gradient2, Vegas, AIMD) | no |
//! | `rate-limit` | [`rate_limit`]: a GCRA rate limit, whole-service or keyed | no |
//! | `chaos` | [`chaos`]: fault injection | no |
//! | `http` | HTTP status classification (tower-http's), replay bodies, deadline headers | no |
//! | `tonic` | rejections as `tonic::Status`; with `pool`, the gRPC health probe | no |
//! | `metrics` | metrics through the [`metrics`](https://docs.rs/metrics) facade | no |
//! | `serde` | [`config`]: configuration files and live reload | no |
//! | `redis` | [`rate_limit::redis`]: a rate limit shared by every replica, through Redis | no |
//! | `full` | all of the above | no |
//!
//! # Errors
//!
//! Layers that add a way to fail return [`BoxError`], as tower's own do. Each rejection is its
//! own type to downcast; the inner service's errors pass through boxed, never wrapped.
//!
//! # Futures
//!
//! A response future of this crate that is polled again after it returned `Poll::Ready`
//! panics with a message naming it (``"`timeout::ResponseFuture` polled after completion"``).
//! That is a breach of [`Future::poll`]'s contract, as it is for `async fn`s, which panic the
//! same way. A panic is the one answer every future can give (a retry's future has only the
//! inner service's error type, so it cannot make an error of its own), and it shows the bug
//! where it is instead of hanging the caller forever (`Pending` with no wake-up) or answering
//! twice (a second response, a rejection counted twice).
//!
//! A future that only wraps another (the inbound deadline's scope) passes every poll to it.
//!
//! # Time
//!
//! Every layer reads tokio's clock, so tests run on paused time
//! (`#[tokio::test(start_paused = true)]`) and are exact.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod classify;
mod clock;
mod completion;
#[cfg(feature = "serde")]
pub mod config;
pub mod deadline;
#[cfg(doctest)]
mod doc_snippets;
mod error;
mod field;
#[cfg(any(feature = "circuit-breaker", feature = "rate-limit"))]
mod keyed;
mod random;
mod rejection;
mod sync;
#[cfg(feature = "pool")]
mod tried;

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
#[cfg(feature = "hedge")]
pub mod hedge;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "limit")]
pub mod limit;
#[cfg(feature = "pool")]
pub mod pool;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
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

pub use error::{BoxError, ConfigError};
pub use rejection::{Rejection, is_rejection};
