//! The load: the same requests at the same rate for every client, and what became of each.

use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use http_body_util::Empty;
use steadfast::BoxError;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use crate::client::{FALLBACK_HEADER, Req, Res};
use crate::scenario::{EVERY, MAX_IN_FLIGHT, RUN_FOR};

/// What the caller got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A 2xx from the backend.
    Success,
    /// The steadfast client's fallback (a stale cached answer).
    Fallback,
    /// A 5xx or an error.
    Error,
}

impl Answer {
    /// Whether the caller can use it: a success or a fallback.
    pub(crate) fn is_useful(self) -> bool {
        matches!(self, Self::Success | Self::Fallback)
    }
}

/// One client request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    /// When it was sent, from the start of the run.
    pub(crate) sent: Duration,
    /// How long the caller waited for the answer.
    pub(crate) latency: Duration,
    /// What the caller got.
    pub(crate) answer: Answer,
}

/// Sends a GET to `url` every [`EVERY`] from `start` until [`RUN_FOR`], at most
/// [`MAX_IN_FLIGHT`] at a time, through `service`; waits for every answer.
pub(crate) async fn drive<S>(
    service: S,
    url: String,
    start: Instant,
) -> Result<Vec<Record>, BoxError>
where
    S: Service<Req, Response = Res> + Clone + Send + 'static,
    S::Error: Send,
    S::Future: Send,
{
    let request: Req = Request::get(url).body(Empty::new())?;
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let total = RUN_FOR.as_millis() / EVERY.as_millis();
    let mut in_flight = Vec::new();
    for n in 0..total {
        let at = start + EVERY * u32::try_from(n)?;
        tokio::time::sleep_until(at).await;
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let service = service.clone();
        let request = request.clone();
        in_flight.push(tokio::spawn(async move {
            let sent = Instant::now();
            let result = service.oneshot(request).await;
            let latency = sent.elapsed();
            drop(permit);
            let answer = match result {
                Ok(response) if response.headers().contains_key(FALLBACK_HEADER) => {
                    Answer::Fallback
                }
                Ok(response) if response.status().is_success() => Answer::Success,
                _ => Answer::Error,
            };
            Record {
                sent: sent - start,
                latency,
                answer,
            }
        }));
    }
    let mut records = Vec::with_capacity(in_flight.len());
    for request in in_flight {
        records.push(request.await?);
    }
    Ok(records)
}
