//! The mapping and the layer on errors that only the crate can make (a timeout, a full
//! bulkhead); the rest is tested from outside in `tests/rejections.rs`.

use std::error::Error;
use std::fmt;

use ::http::{Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::*;
use crate::BoxError;

mod timeout {
    use ::http::header::CONTENT_TYPE;

    use super::*;
    use crate::deadline::Elapsed;

    fn elapsed() -> BoxError {
        Box::new(Elapsed::new())
    }

    #[test]
    fn a_timeout_is_a_504_without_headers() {
        let response = RejectionResponses::new().to_response::<String>(&elapsed());
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(response.headers().is_empty());
        assert_eq!(response.body(), "");
        assert_eq!(Rejection::classify(&*elapsed()).kind(), "timeout");
    }

    #[test]
    fn a_timeout_status_is_configurable_and_plain_text_tells_it() {
        let responses = RejectionResponses::builder()
            .timeout_status(StatusCode::SERVICE_UNAVAILABLE)
            .body(PlainText)
            .build()
            .unwrap();
        let response = responses.to_response::<String>(&elapsed());
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.body(), "request timed out");
        assert_eq!(response.headers().len(), 1);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }

    #[test]
    fn the_layer_answers_an_inner_timeout_with_504() {
        use std::future::Future;
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};

        let inner = tower_service_fn(|| Err(elapsed()));
        let mut service = RejectionsAsResponsesLayer::new().layer(inner);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let mut future = pin!(service.call(()));
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => {
                let response: Response<String> = response;
                assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
            }
            _ => panic!("not ready"),
        }
    }

    /// A ready service answering every call with `answer()`.
    fn tower_service_fn<F>(answer: F) -> Answer<F> {
        Answer(answer)
    }

    struct Answer<F>(F);

    impl<F> Service<()> for Answer<F>
    where
        F: Fn() -> Result<Response<String>, BoxError>,
    {
        type Response = Response<String>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Response<String>, BoxError>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), BoxError>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: ()) -> Self::Future {
            std::future::ready((self.0)())
        }
    }
}

#[cfg(feature = "bulkhead")]
mod bulkhead {
    use crate::bulkhead::BulkheadFull;
    use std::time::Duration;

    use ::http::header::{CONTENT_TYPE, RETRY_AFTER};

    use super::*;

    fn full() -> BoxError {
        Box::new(BulkheadFull::new(4, Duration::from_millis(20)))
    }

    #[test]
    fn a_full_bulkhead_is_a_503_without_retry_after() {
        let response = RejectionResponses::new().to_response::<String>(&full());
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().is_empty());
        assert_eq!(response.body(), "");
    }

    #[test]
    fn a_full_bulkhead_can_be_a_429_with_its_message() {
        let responses = RejectionResponses::builder()
            .bulkhead_full_status(StatusCode::TOO_MANY_REQUESTS)
            .body(PlainText)
            .build()
            .unwrap();
        let response = responses.to_response::<String>(&full());
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.body(),
            "bulkhead full: 4 concurrent calls in flight"
        );
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert!(!response.headers().contains_key(RETRY_AFTER));
    }

    #[test]
    fn a_full_bulkhead_is_found_in_a_source_chain() {
        #[derive(Debug)]
        struct Wrapper(BulkheadFull);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl Error for Wrapper {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let error: BoxError = Box::new(Wrapper(BulkheadFull::new(1, Duration::ZERO)));
        let rejection = Rejection::classify(&*error);
        assert_eq!(rejection.kind(), "bulkhead_full");
        let response = RejectionResponses::new().to_response::<String>(&error);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn the_closure_body_maker_sees_the_bulkhead() {
        let responses = RejectionResponses::builder()
            .body(
                |rejection: Rejection<'_>, status: StatusCode| match rejection {
                    Rejection::BulkheadFull(full) => {
                        format!("{} {}", status.as_u16(), full.max_concurrent_calls())
                    }
                    _ => String::new(),
                },
            )
            .build()
            .unwrap();
        assert_eq!(responses.to_response(&full()).into_body(), "503 4");
    }
}
