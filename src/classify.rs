//! What counts as a failure: every layer that judges results asks a [`Classify`].
//!
//! A classifier looks at a call's `Result` and answers [`Outcome::Success`],
//! [`Outcome::Failure`] or [`Outcome::Ignored`] (the call says nothing about the health of the
//! service: a client's own cancellation, a 404, a local rejection).
//!
//! - [`ErrorsAsFailures`] (the default): every `Err` is a failure, except this crate's own local
//!   rejections (see [`is_rejection`](crate::is_rejection)), which are ignored.
//! - A closure `Fn(&Result<Res, E>) -> Outcome`.
//! - With the `http` feature, tower-http's own classifiers judge `http::Response`s, so there is
//!   one vocabulary for "failure" across tower-http's tracing and steadfast's layers:
//!   [`ServerErrorsAsFailures`] (5xx), [`StatusInRangeAsFailures`] (any range) and
//!   [`GrpcErrorsAsFailures`] (gRPC status codes, with [`GrpcCode`]). Any other
//!   `ClassifyResponse` works through [`HttpClassifier`].
//!
//! # tower-http's version
//!
//! The classifiers are tower-http 0.7's, re-exported here: use them as
//! `steadfast::classify::ServerErrorsAsFailures` and so on, and your code needs no tower-http
//! dependency of its own. If you name them through your own `tower-http` dependency instead, it
//! must be version 0.7: tower-http 0.6's types are other types, they implement no [`Classify`],
//! and the mistake shows up only later, where the breaker is used (the method `ready` exists but
//! its trait bounds were not satisfied).
//!
//! # Example
//!
//! ```
//! use steadfast::classify::{Classify, ErrorsAsFailures, Outcome};
//!
//! let default = ErrorsAsFailures::new();
//! assert_eq!(default.classify(&Ok::<_, std::io::Error>(())), Outcome::Success);
//!
//! // A 404 from our own service is not the dependency's fault: ignore it.
//! let not_found_ignored = |result: &Result<u16, std::io::Error>| match result {
//!     Ok(404) => Outcome::Ignored,
//!     Ok(status) if *status >= 500 => Outcome::Failure,
//!     Ok(_) => Outcome::Success,
//!     Err(_) => Outcome::Failure,
//! };
//! assert_eq!(not_found_ignored.classify(&Ok(404)), Outcome::Ignored);
//! assert_eq!(not_found_ignored.classify(&Ok(503)), Outcome::Failure);
//! ```

use std::any::Any;
use std::error::Error;

use crate::BoxError;

/// How a classifier judges one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The service answered as it should.
    Success,
    /// The service failed: counts against it.
    Failure,
    /// The result says nothing about the service's health and is not counted at all.
    Ignored,
}

/// Decides whether a call's result is a success, a failure or ignored.
///
/// Implemented by [`ErrorsAsFailures`], by closures `Fn(&Result<Res, E>) -> Outcome`, and with
/// the `http` feature by tower-http's classifiers.
pub trait Classify<Res, E> {
    /// Judges one result.
    fn classify(&self, result: &Result<Res, E>) -> Outcome;
}

impl<F, Res, E> Classify<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> Outcome,
{
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        self(result)
    }
}

/// The default classifier: `Ok` is a success, `Err` a failure, and this crate's own local
/// rejections (an open breaker or a full bulkhead further in) are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsAsFailures {
    _priv: (),
}

impl ErrorsAsFailures {
    /// The default classifier.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl<Res, E: 'static> Classify<Res, E> for ErrorsAsFailures {
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(error) => classify_error(error),
        }
    }
}

/// A failure, unless `error` is one of this crate's local rejections.
pub(crate) fn classify_error<E: 'static>(error: &E) -> Outcome {
    if is_local_rejection(error) {
        Outcome::Ignored
    } else {
        Outcome::Failure
    }
}

/// Whether an error of any type is a [`BoxError`] holding a local rejection. The inner error
/// type is generic, so look through `Any`: a `BoxError` is the only type a rejection arrives in.
pub(crate) fn is_local_rejection<E: 'static>(error: &E) -> bool {
    let any = error as &dyn Any;
    match any.downcast_ref::<BoxError>() {
        Some(boxed) => crate::is_rejection(&**boxed as &(dyn Error + 'static)),
        None => false,
    }
}

#[cfg(feature = "http")]
pub use self::http_classify::HttpClassifier;
/// tower-http 0.7's classifiers, which implement [`Classify`] for `http::Response`s. Re-exported
/// so that a breaker's `classify(..)` needs no `tower-http` dependency of the caller's own, and
/// cannot be given a classifier from another tower-http version.
#[cfg(feature = "http")]
pub use tower_http::classify::{
    GrpcCode, GrpcErrorsAsFailures, ServerErrorsAsFailures, StatusInRangeAsFailures,
};

#[cfg(feature = "http")]
mod http_classify {
    use super::{Classify, Outcome, classify_error};
    use tower_http::classify::{
        ClassifiedResponse, ClassifyResponse, GrpcErrorsAsFailures, ServerErrorsAsFailures,
        StatusInRangeAsFailures,
    };

    /// Adapts any tower-http [`ClassifyResponse`] to [`Classify`].
    ///
    /// tower-http's own `ServerErrorsAsFailures`, `StatusInRangeAsFailures` and
    /// `GrpcErrorsAsFailures` implement [`Classify`] directly; wrap your own classifier in this.
    ///
    /// A response whose classification needs the end of the stream (a gRPC status sent in
    /// trailers) counts as a success: the layers judge a call when its response head arrives and
    /// do not hold the body.
    #[derive(Debug, Clone, Default)]
    pub struct HttpClassifier<C>(pub C);

    fn classify_response<C, B, E>(classifier: C, result: &Result<http::Response<B>, E>) -> Outcome
    where
        C: ClassifyResponse,
        E: 'static,
    {
        match result {
            Ok(response) => match classifier.classify_response(response) {
                ClassifiedResponse::Ready(Ok(())) => Outcome::Success,
                ClassifiedResponse::Ready(Err(_)) => Outcome::Failure,
                ClassifiedResponse::RequiresEos(_) => Outcome::Success,
            },
            Err(error) => classify_error(error),
        }
    }

    impl<C, B, E> Classify<http::Response<B>, E> for HttpClassifier<C>
    where
        C: ClassifyResponse + Clone,
        E: 'static,
    {
        fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
            classify_response(self.0.clone(), result)
        }
    }

    macro_rules! tower_http_classifier {
        ($($name:ty),*) => {$(
            impl<B, E: 'static> Classify<http::Response<B>, E> for $name {
                fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
                    classify_response(self.clone(), result)
                }
            }
        )*};
    }

    tower_http_classifier!(
        ServerErrorsAsFailures,
        StatusInRangeAsFailures,
        GrpcErrorsAsFailures
    );
}
