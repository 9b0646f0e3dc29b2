use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::{AllErrors, Failover, Fallback, FallbackCore, Predicate};
use crate::BoxError;

/// Default for [`FallbackLayer::name`]: `"default"`.
pub const DEFAULT_NAME: &str = "default";

/// Answers failed calls from a function, or fails them over to a backup service; see the
/// [module docs](super).
///
/// Made by [`FallbackLayer::new`] (a function) or [`FallbackLayer::with_backup`] (a backup
/// service), then tuned with [`when`](Self::when) and [`name`](Self::name). It holds no state
/// that changes: cloning it copies its function (or backup) and predicate, and each service it
/// makes keeps them in one `Arc` shared by that service's clones.
pub struct FallbackLayer<H, P = AllErrors> {
    handler: H,
    predicate: P,
    name: Cow<'static, str>,
}

/// The handler of a [`FallbackLayer`] made by [`FallbackLayer::new`]: a function of the error.
#[derive(Clone, Copy)]
pub struct Function<F>(F);

impl<F> fmt::Debug for Function<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Function")
            .field(&std::any::type_name::<F>())
            .finish()
    }
}

/// The handler of a [`FallbackLayer`] made by [`FallbackLayer::with_backup`]: a second service.
#[derive(Clone, Copy, Debug)]
pub struct Backup<B>(B);

#[cfg(feature = "metrics")]
fn answers_counter(name: &str) -> metrics::Counter {
    metrics::describe_counter!(
        "steadfast_fallback_answers_total",
        metrics::Unit::Count,
        "Failed calls answered by the fallback (its function or its backup service)"
    );
    metrics::counter!("steadfast_fallback_answers_total", "name" => name.to_owned())
}

impl<F> FallbackLayer<Function<F>> {
    /// Answers each failed call with `f(error)`: a response, or an error of its own.
    ///
    /// `f` runs only on a failure the [predicate](Self::when) accepts (by default, every error).
    /// To make services, `f` must be `Clone`: it is cloned once per service the layer makes (not
    /// per call) and shared by that service's clones, behind one `Arc`.
    pub fn new<Res>(f: F) -> Self
    where
        F: Fn(BoxError) -> Result<Res, BoxError>,
    {
        Self::with_handler(Function(f))
    }
}

impl<B> FallbackLayer<Backup<B>> {
    /// Fails a failed call over to `backup`, a second service that takes the same request (a
    /// backup system, a replica, a stale cache): the primary's error is dropped and the backup's
    /// answer, response or error, is the call's.
    ///
    /// Failing over needs the request again, so the request type must be `Clone`: it is cloned
    /// before each call to the primary. The backup is cloned per call too (as tower's `Retry`
    /// clones its service), and its readiness is polled before it is called; use a backup that
    /// is cheap to clone (most clients are a handle around an `Arc`).
    pub fn with_backup(backup: B) -> Self {
        Self::with_handler(Backup(backup))
    }
}

impl<H> FallbackLayer<H> {
    fn with_handler(handler: H) -> Self {
        Self {
            handler,
            predicate: AllErrors,
            name: Cow::Borrowed(DEFAULT_NAME),
        }
    }
}

impl<H, P> FallbackLayer<H, P> {
    /// Which errors the fallback answers: a [`Predicate`], such as
    /// [`RejectionsAndTimeouts`](super::RejectionsAndTimeouts) or a closure
    /// `Fn(&BoxError) -> bool`. Errors it declines pass through unchanged.
    ///
    /// Defaults to [`AllErrors`].
    pub fn when<Q>(self, predicate: Q) -> FallbackLayer<H, Q>
    where
        Q: Predicate,
    {
        FallbackLayer {
            handler: self.handler,
            predicate,
            name: self.name,
        }
    }

    /// The instance name: the `name` label of the metrics and the `fallback.name` field of the
    /// tracing events.
    ///
    /// Defaults to [`DEFAULT_NAME`] (`"default"`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The state of one service; with the `metrics` feature, registers its counter (once per
    /// service made, never per call).
    fn shared<F: Clone>(&self, f: &F) -> Arc<FallbackCore<F, P>>
    where
        P: Clone,
    {
        Arc::new(FallbackCore {
            f: f.clone(),
            predicate: self.predicate.clone(),
            name: self.name.clone(),
            #[cfg(feature = "metrics")]
            answers: answers_counter(&self.name),
        })
    }
}

impl<H: Clone, P: Clone> Clone for FallbackLayer<H, P> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            predicate: self.predicate.clone(),
            name: self.name.clone(),
        }
    }
}

impl<H: fmt::Debug, P: fmt::Debug> fmt::Debug for FallbackLayer<H, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("handler", &self.handler)
            .field("predicate", &self.predicate)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S, F: Clone, P: Clone> Layer<S> for FallbackLayer<Function<F>, P> {
    type Service = Fallback<S, F, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback::new(inner, self.shared(&self.handler.0))
    }
}

impl<S, B: Clone, P: Clone> Layer<S> for FallbackLayer<Backup<B>, P> {
    type Service = Failover<S, B, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Failover::new(inner, self.handler.0.clone(), self.shared(&()))
    }
}
