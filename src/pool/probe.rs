//! Ready-made probes for [`Builder::health_check`](super::Builder::health_check): an HTTP `GET`
//! that expects a 2xx (feature `http`), and the [gRPC health checking protocol] through
//! `tonic-health`'s client (feature `tonic`).
//!
//! Each is a function of the endpoint's key that answers whether the endpoint is healthy. A probe
//! fails, rather than stalls, when its endpoint does not answer within its `timeout`
//! ([`DEFAULT_PROBE_TIMEOUT`], 1 s, by default; the health check also fails any probe that
//! outlasts its interval, so the effective bound is the shorter of the two). Why a probe failed
//! (the status, the error, the timeout) is a `debug!` event, target `steadfast::pool::probe`:
//!
//! | kind | name | when | fields |
//! |---|---|---|---|
//! | `tracing` event, `DEBUG` | `pool health probe failed` | a probe fails | `pool.endpoint`, `pool.probe` (`http_get` or `grpc_health`), `pool.probe_failure` (why: the status, the error, no answer in time) |
//!
//! The health check itself reports each probe's result (`pool health probe`, `TRACE`) and the
//! endpoints it marks unhealthy or healthy; see the [pool's telemetry](super#telemetry).
//!
//! # Example
//!
//! A pool of three HTTP replicas, each probed with `GET /health` every 5 s over the same
//! client that carries the calls:
//!
//! ```
//! # #[cfg(feature = "http")]
//! # mod example {
//! use std::time::Duration;
//! use steadfast::BoxError;
//! use steadfast::pool::{Pool, probe};
//! # use tower::service_fn;
//! # type Body = String;
//!
//! # pub async fn run() -> Result<(), BoxError> {
//! # let client = service_fn(|_: http::Request<Body>| async {
//! #     Ok::<_, BoxError>(http::Response::new(String::from("ok")))
//! # });
//! // `client` is any `Clone` tower service of `http::Request<B>` (hyper-util's client, say).
//! let replicas = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"];
//! let pool = Pool::builder()
//!     .health_check(
//!         Duration::from_secs(5),
//!         probe::http_get(client.clone(), |addr: &&str| format!("http://{addr}/health"))
//!             .timeout(Duration::from_millis(500))
//!             .build()?,
//!     )
//!     .build(replicas.map(|addr| (addr, client.clone())))?;
//! # drop(pool);
//! # Ok(())
//! # }
//! # }
//! # #[cfg(feature = "http")]
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
//! #     .block_on(example::run()).unwrap();
//! ```
//!
//! For gRPC, `grpc_health` asks each replica's `grpc.health.v1.Health/Check` over a tonic
//! `Channel` (see `docs/recipes.md`, "A tonic `Channel` per replica").
//!
//! # Allocation
//!
//! Each probe is one boxed future ([`ProbeFuture`]): one allocation per endpoint per interval,
//! off the call path. (The future of `tonic-health`'s client is an `async fn`'s, which cannot be
//! named, and the HTTP probe keeps the same type so that both read alike.)
//!
//! [gRPC health checking protocol]: https://github.com/grpc/grpc/blob/master/doc/health-checking.md

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::ConfigError;

/// Default for the `timeout` of the ready-made probes (`HttpGet::timeout`,
/// `GrpcHealth::timeout`): a probe with no answer after 1 s has failed.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The shortest probe timeout a builder accepts.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// How much of an HTTP probe's response body is read (and dropped) so that the connection can
/// be reused; past this the body is dropped unread, and the status alone decides.
#[cfg(feature = "http")]
const DRAIN_LIMIT: usize = 64 * 1024;

/// The future of one probe of one endpoint: `true` when the endpoint is healthy.
#[must_use = "futures do nothing unless polled"]
pub struct ProbeFuture {
    inner: Pin<Box<dyn Future<Output = bool> + Send>>,
}

impl ProbeFuture {
    fn new(future: impl Future<Output = bool> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(future),
        }
    }
}

impl Future for ProbeFuture {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ProbeFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeFuture").finish_non_exhaustive()
    }
}

fn check_timeout(timeout: Duration) -> Result<(), ConfigError> {
    if timeout < MIN_TIMEOUT {
        return Err(ConfigError::new("timeout", "at least 1ms", timeout));
    }
    Ok(())
}

#[cfg(feature = "http")]
pub use self::http_probe::{HttpGet, http_get};

#[cfg(feature = "http")]
mod http_probe {
    use std::fmt;
    use std::time::Duration;

    use http::{Request, Response, Uri};
    use http_body::Body;
    use tower_service::Service;

    use super::{DEFAULT_PROBE_TIMEOUT, DRAIN_LIMIT, ProbeFuture, check_timeout};
    use crate::BoxError;
    use crate::error::ConfigError;

    /// An HTTP `GET` probe: healthy when the endpoint answers a 2xx in time. Made by
    /// [`http_get`]; [`build`](Self::build) gives the probe to pass to
    /// [`health_check`](crate::pool::Builder::health_check).
    #[derive(Clone)]
    #[must_use = "a probe builder does nothing until `build()` is called"]
    pub struct HttpGet<C, U> {
        client: C,
        uri: U,
        timeout: Duration,
    }

    /// An HTTP `GET` of `uri(&key)` through `client`, expecting a 2xx within
    /// [`DEFAULT_PROBE_TIMEOUT`] (set another with [`HttpGet::timeout`]).
    ///
    /// `client` is any `Clone` tower service of `http::Request<B>` that answers an
    /// `http::Response<_>` (hyper-util's client, a tower-http stack, one of the pool's own
    /// endpoint services); each probe drives its own clone. The request has an empty body
    /// (`B::default()`). `uri` gives the address to probe for an endpoint's key, as anything
    /// an [`http::Uri`] can be made from (`&'static str`, `String`, `Uri`); an address that is
    /// not a valid URI fails the probe.
    ///
    /// Any other status, an error of the client, and no answer within the timeout fail the
    /// probe. Up to 64 KiB of the response body are read, so that a pooled client can reuse
    /// the connection.
    pub fn http_get<C, U>(client: C, uri: U) -> HttpGet<C, U> {
        HttpGet {
            client,
            uri,
            timeout: DEFAULT_PROBE_TIMEOUT,
        }
    }

    impl<C, U> HttpGet<C, U> {
        /// How long a probe waits for the status and the body (at least 1 ms).
        ///
        /// Defaults to [`DEFAULT_PROBE_TIMEOUT`] (1 s).
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.timeout = timeout;
            self
        }

        /// Checks the configuration and gives the probe: a function of an endpoint's key.
        ///
        /// # Errors
        ///
        /// A [`ConfigError`] naming `timeout` when it is under 1 ms.
        pub fn build<K, B, RB, T>(
            self,
        ) -> Result<impl Fn(K) -> ProbeFuture + Clone + Send + Sync + 'static, ConfigError>
        where
            K: fmt::Debug + Send + 'static,
            C: Service<Request<B>, Response = Response<RB>> + Clone + Send + Sync + 'static,
            C::Error: Into<BoxError>,
            C::Future: Send + 'static,
            B: Default + Send + 'static,
            RB: Body + Send + 'static,
            U: Fn(&K) -> T + Clone + Send + Sync + 'static,
            Uri: TryFrom<T>,
            <Uri as TryFrom<T>>::Error: fmt::Display,
        {
            check_timeout(self.timeout)?;
            let Self {
                client,
                uri,
                timeout,
            } = self;
            Ok(move |key: K| {
                let target = Uri::try_from(uri(&key)).map_err(|error| error.to_string());
                let client = client.clone();
                ProbeFuture::new(async move {
                    let target = match target {
                        Ok(target) => target,
                        Err(error) => {
                            return failed(&key, format_args!("not a URI: {error}"));
                        }
                    };
                    match tokio::time::timeout(timeout, get(client, target)).await {
                        Ok(Ok(())) => true,
                        Ok(Err(why)) => failed(&key, format_args!("{why}")),
                        Err(_) => failed(&key, format_args!("no answer within {timeout:?}")),
                    }
                })
            })
        }
    }

    fn failed<K: fmt::Debug>(key: &K, why: fmt::Arguments<'_>) -> bool {
        tracing::event!(
            target: "steadfast::pool::probe",
            tracing::Level::DEBUG,
            pool.endpoint = ?key,
            pool.probe = "http_get",
            pool.probe_failure = %why,
            "pool health probe failed"
        );
        false
    }

    /// One `GET`: `Ok` for a 2xx, whose body was read up to [`DRAIN_LIMIT`].
    async fn get<C, B, RB>(mut client: C, uri: Uri) -> Result<(), BoxError>
    where
        C: Service<Request<B>, Response = Response<RB>>,
        C::Error: Into<BoxError>,
        B: Default,
        RB: Body,
    {
        let mut request = Request::new(B::default());
        *request.uri_mut() = uri;
        std::future::poll_fn(|cx| client.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        let response = client.call(request).await.map_err(Into::into)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("status {status}").into());
        }
        let body = std::pin::pin!(response.into_body());
        drain(body).await;
        Ok(())
    }

    /// Reads `body` to its end, or to [`DRAIN_LIMIT`] bytes, or to its first error.
    async fn drain<RB: Body>(mut body: std::pin::Pin<&mut RB>) {
        let mut read = 0usize;
        while read <= DRAIN_LIMIT {
            let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
            match frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        read = read.saturating_add(bytes::Buf::remaining(data));
                    }
                }
                Some(Err(_)) | None => return,
            }
        }
    }

    impl<C, U> fmt::Debug for HttpGet<C, U> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("HttpGet")
                .field("timeout", &self.timeout)
                .finish_non_exhaustive()
        }
    }
}

#[cfg(feature = "tonic")]
pub use self::grpc_probe::{GrpcHealth, grpc_health};

#[cfg(feature = "tonic")]
mod grpc_probe {
    use std::borrow::Cow;
    use std::fmt;
    use std::time::Duration;

    use tonic::body::Body as TonicBody;
    use tonic::client::GrpcService;
    use tonic::codegen::{Body, Bytes, StdError};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    use super::{DEFAULT_PROBE_TIMEOUT, ProbeFuture, check_timeout};
    use crate::error::ConfigError;

    /// A gRPC health probe: healthy when the endpoint's `grpc.health.v1.Health/Check` answers
    /// `SERVING` in time. Made by [`grpc_health`]; [`build`](Self::build) gives the probe to
    /// pass to [`health_check`](crate::pool::Builder::health_check).
    #[derive(Clone)]
    #[must_use = "a probe builder does nothing until `build()` is called"]
    pub struct GrpcHealth<F> {
        channel: F,
        service: Cow<'static, str>,
        timeout: Duration,
    }

    /// Asks `grpc.health.v1.Health/Check` about `service` (`""`: the server as a whole) over
    /// `channel(&key)`, expecting `SERVING` within [`DEFAULT_PROBE_TIMEOUT`] (set another with
    /// [`GrpcHealth::timeout`]), through `tonic-health`'s generated client.
    ///
    /// `channel` gives the transport for an endpoint's key: a clone of the tonic `Channel` kept
    /// for that replica (cheap; the probe then shares the replica's connection), or any
    /// `GrpcService`. `NOT_SERVING`, `UNKNOWN`, `SERVICE_UNKNOWN`, an error status (a server
    /// without the health service answers `UNIMPLEMENTED`) and no answer within the timeout
    /// fail the probe. The timeout is also sent as the call's `grpc-timeout`.
    pub fn grpc_health<F>(channel: F, service: impl Into<Cow<'static, str>>) -> GrpcHealth<F> {
        GrpcHealth {
            channel,
            service: service.into(),
            timeout: DEFAULT_PROBE_TIMEOUT,
        }
    }

    impl<F> GrpcHealth<F> {
        /// How long a probe waits for the answer (at least 1 ms).
        ///
        /// Defaults to [`DEFAULT_PROBE_TIMEOUT`] (1 s).
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.timeout = timeout;
            self
        }

        /// Checks the configuration and gives the probe: a function of an endpoint's key.
        ///
        /// # Errors
        ///
        /// A [`ConfigError`] naming `timeout` when it is under 1 ms.
        pub fn build<K, T>(
            self,
        ) -> Result<impl Fn(K) -> ProbeFuture + Clone + Send + Sync + 'static, ConfigError>
        where
            K: fmt::Debug + Send + 'static,
            F: Fn(&K) -> T + Clone + Send + Sync + 'static,
            T: GrpcService<TonicBody> + Send + 'static,
            T::Error: Into<StdError>,
            T::Future: Send,
            T::ResponseBody: Body<Data = Bytes> + Send + 'static,
            <T::ResponseBody as Body>::Error: Into<StdError> + Send,
        {
            check_timeout(self.timeout)?;
            let Self {
                channel,
                service,
                timeout,
            } = self;
            Ok(move |key: K| {
                let mut client = HealthClient::new(channel(&key));
                let mut request = tonic::Request::new(HealthCheckRequest {
                    service: service.clone().into_owned(),
                });
                request.set_timeout(timeout);
                ProbeFuture::new(async move {
                    let why = match tokio::time::timeout(timeout, client.check(request)).await {
                        Ok(Ok(response)) => {
                            let status = response.into_inner().status;
                            if status == ServingStatus::Serving as i32 {
                                return true;
                            }
                            let name = ServingStatus::try_from(status)
                                .map_or("an unknown status", |s| s.as_str_name());
                            format!("answered {name}")
                        }
                        Ok(Err(status)) => {
                            format!("status {:?}: {}", status.code(), status.message())
                        }
                        Err(_) => format!("no answer within {timeout:?}"),
                    };
                    tracing::event!(
                        target: "steadfast::pool::probe",
                        tracing::Level::DEBUG,
                        pool.endpoint = ?key,
                        pool.probe = "grpc_health",
                        pool.probe_failure = %why,
                        "pool health probe failed"
                    );
                    false
                })
            })
        }
    }

    impl<F> fmt::Debug for GrpcHealth<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("GrpcHealth")
                .field("service", &self.service)
                .field("timeout", &self.timeout)
                .finish_non_exhaustive()
        }
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use std::time::Duration;

    use super::check_timeout;

    #[test]
    fn a_timeout_under_a_millisecond_is_refused() {
        let err = check_timeout(Duration::from_micros(999)).unwrap_err();
        assert_eq!(err.field(), "timeout");
        assert!(err.to_string().contains("at least 1ms"), "{err}");
        assert!(check_timeout(Duration::from_millis(1)).is_ok());
    }

    #[cfg(feature = "http")]
    mod http {
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        use bytes::Bytes;
        use http::{Request, Response, StatusCode, Uri};
        use tokio::time::Instant;
        use tower::service_fn;

        use super::super::{DEFAULT_PROBE_TIMEOUT, http_get};
        use crate::BoxError;

        /// How the fake server answers.
        #[derive(Clone, Copy)]
        enum Answer {
            Status(u16),
            Error,
            Hang,
        }

        /// A client that answers `answer` and writes down the URIs it was asked for.
        fn client(
            answer: Answer,
            seen: Arc<Mutex<Vec<Uri>>>,
        ) -> impl tower_service::Service<
            Request<String>,
            Response = Response<String>,
            Error = BoxError,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static {
            service_fn(move |request: Request<String>| {
                seen.lock().unwrap().push(request.uri().clone());
                async move {
                    match answer {
                        Answer::Status(code) => {
                            let mut response = Response::new(String::from("body"));
                            *response.status_mut() = StatusCode::from_u16(code).unwrap();
                            Ok(response)
                        }
                        Answer::Error => Err::<_, BoxError>("connection refused".into()),
                        Answer::Hang => std::future::pending().await,
                    }
                }
            })
        }

        async fn probe_once(answer: Answer, timeout: Duration) -> (bool, Vec<Uri>) {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let probe = http_get(client(answer, Arc::clone(&seen)), |key: &u16| {
                format!("http://127.0.0.1:{key}/health")
            })
            .timeout(timeout)
            .build()
            .unwrap();
            let healthy = probe(8080).await;
            let seen = seen.lock().unwrap().clone();
            (healthy, seen)
        }

        #[tokio::test(start_paused = true)]
        async fn a_2xx_passes_and_anything_else_fails() {
            let (healthy, seen) = probe_once(Answer::Status(204), DEFAULT_PROBE_TIMEOUT).await;
            assert!(healthy);
            assert_eq!(seen, ["http://127.0.0.1:8080/health"]);
            for answer in [
                Answer::Status(503),
                Answer::Status(301),
                Answer::Status(404),
            ] {
                assert!(!probe_once(answer, DEFAULT_PROBE_TIMEOUT).await.0);
            }
            assert!(!probe_once(Answer::Error, DEFAULT_PROBE_TIMEOUT).await.0);
        }

        #[tokio::test(start_paused = true)]
        async fn a_probe_that_hangs_fails_at_its_timeout() {
            let start = Instant::now();
            let (healthy, _) = probe_once(Answer::Hang, Duration::from_millis(250)).await;
            assert!(!healthy);
            assert_eq!(start.elapsed(), Duration::from_millis(250));
        }

        #[tokio::test(start_paused = true)]
        async fn an_address_that_is_not_a_uri_fails_without_a_call() {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let probe = http_get(
                client(Answer::Status(200), Arc::clone(&seen)),
                |_: &u16| "http://bad host/",
            )
            .build()
            .unwrap();
            assert!(!probe(1).await);
            assert!(seen.lock().unwrap().is_empty());
        }

        #[test]
        fn a_zero_timeout_is_a_config_error() {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let err = http_get(client(Answer::Status(200), seen), |_: &u16| "http://a/")
                .timeout(Duration::ZERO)
                .build()
                .map(|_| ())
                .unwrap_err();
            assert_eq!(err.field(), "timeout");
        }

        /// The body is read to its end: a pooled client gets its connection back.
        #[tokio::test(start_paused = true)]
        async fn the_body_is_read() {
            use std::pin::Pin;
            use std::sync::atomic::{AtomicBool, Ordering};
            use std::task::{Context, Poll};

            struct Tracked(Option<Bytes>, Arc<AtomicBool>);
            impl http_body::Body for Tracked {
                type Data = Bytes;
                type Error = BoxError;
                fn poll_frame(
                    mut self: Pin<&mut Self>,
                    _: &mut Context<'_>,
                ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
                    match self.0.take() {
                        Some(data) => Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
                        None => {
                            self.1.store(true, Ordering::SeqCst);
                            Poll::Ready(None)
                        }
                    }
                }
            }

            let ended = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&ended);
            let client = service_fn(move |_: Request<String>| {
                let flag = Arc::clone(&flag);
                async move {
                    Ok::<_, BoxError>(Response::new(Tracked(
                        Some(Bytes::from_static(b"ok")),
                        flag,
                    )))
                }
            });
            let probe = http_get(client, |_: &u16| "http://a/health")
                .build()
                .unwrap();
            assert!(probe(1).await);
            assert!(ended.load(Ordering::SeqCst));
        }
    }
}
