//! Integration tests of the circuit breaker, on paused time: every transition, every count,
//! every error type, exactly.

#[path = "../support/events.rs"]
mod events;
mod support;

mod availability;
mod config;
mod half_open;
mod keyed;
mod manual;
mod model;
mod service;
mod telemetry;
mod windows;
