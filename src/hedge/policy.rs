//! Which requests may be hedged and how their copies are made: [`HedgePolicy`], with
//! [`CloneRequest`] (the default), [`HedgeIf`] and, with the `http` feature, [`HttpHedge`].

pub use crate::retry::CloneRequest;

/// Decides whether a request may be hedged, and makes its copies.
///
/// Implemented by [`CloneRequest`] (every request, copied with `Clone`; the default), by
/// [`HedgeIf`] (the requests a predicate accepts, copied with `Clone`) and, with the `http`
/// feature, by [`HttpHedge`] (`http::Request<B>` of idempotent methods, its body replayed
/// from a bounded buffer, so `B` need not be `Clone`).
pub trait HedgePolicy<Req> {
    /// The request the inner service receives.
    type Sent;
    /// What the response future keeps to make copies.
    type Kept;

    /// The first attempt's request, and what copies are made from when the request may be
    /// hedged (`None`: it is sent once, never hedged).
    fn first(&self, request: Req) -> (Self::Sent, Option<Self::Kept>);

    /// A copy for the next hedge, or `None` if the request can no longer be copied (no hedge
    /// is sent, as when the budget is exhausted).
    fn copy(&self, kept: &Self::Kept) -> Option<Self::Sent>;
}

impl<Req: Clone> HedgePolicy<Req> for CloneRequest {
    type Sent = Req;
    type Kept = Req;

    #[inline]
    fn first(&self, request: Req) -> (Req, Option<Req>) {
        (request.clone(), Some(request))
    }

    #[inline]
    fn copy(&self, kept: &Req) -> Option<Req> {
        Some(kept.clone())
    }
}

/// Hedges the requests for which a predicate returns `true`, copied with `Clone`; the others
/// are sent once. Set with the builder's [`hedge_if`](super::Builder::hedge_if).
#[derive(Clone, Copy)]
pub struct HedgeIf<F> {
    predicate: F,
}

impl<F> HedgeIf<F> {
    /// Hedges the requests `predicate` accepts.
    pub const fn new(predicate: F) -> Self {
        Self { predicate }
    }
}

impl<F> std::fmt::Debug for HedgeIf<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HedgeIf").finish_non_exhaustive()
    }
}

impl<Req: Clone, F: Fn(&Req) -> bool> HedgePolicy<Req> for HedgeIf<F> {
    type Sent = Req;
    type Kept = Req;

    #[inline]
    fn first(&self, request: Req) -> (Req, Option<Req>) {
        if (self.predicate)(&request) {
            (request.clone(), Some(request))
        } else {
            (request, None)
        }
    }

    #[inline]
    fn copy(&self, kept: &Req) -> Option<Req> {
        Some(kept.clone())
    }
}

#[cfg(feature = "http")]
pub use self::http_hedge::HttpHedge;

#[cfg(feature = "http")]
mod http_hedge {
    use http::Method;
    use http_body::Body;

    use super::HedgePolicy;
    use crate::BoxError;
    use crate::retry::replay::{BufferBody, Recorded, ReplayBody, Resend};

    /// Hedges `http::Request<B>` of idempotent methods (GET, HEAD, OPTIONS, PUT and DELETE,
    /// as retry's `HttpPolicy`), replaying the body from a buffer of at most `max_bytes`, so
    /// `B` need not be `Clone`. Set with the builder's
    /// [`replay_body`](super::super::Builder::replay_body).
    ///
    /// Every attempt reads the same recording of the body: whichever reads furthest pulls the
    /// original, the others replay what it recorded. A body that outgrows `max_bytes` (or
    /// declares a larger size up front) is not copied again, and an attempt that had not read
    /// as far as the others when that happened fails; the others go on.
    ///
    /// The inner service receives `http::Request<ReplayBody<B>>`.
    #[derive(Debug, Clone)]
    pub struct HttpHedge {
        replay: BufferBody,
        methods: Vec<Method>,
    }

    impl HttpHedge {
        /// Hedges GET, HEAD, OPTIONS, PUT and DELETE, with a replay buffer of `max_bytes`.
        pub fn new(max_bytes: usize) -> Self {
            Self {
                replay: BufferBody::new(max_bytes),
                methods: vec![
                    Method::GET,
                    Method::HEAD,
                    Method::OPTIONS,
                    Method::PUT,
                    Method::DELETE,
                ],
            }
        }

        /// The methods whose requests may be hedged. Add `POST` only for endpoints you know to
        /// be idempotent. Defaults to GET, HEAD, OPTIONS, PUT and DELETE.
        pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
            self.methods = methods.into_iter().collect();
            self
        }
    }

    impl<B> HedgePolicy<http::Request<B>> for HttpHedge
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        type Sent = http::Request<ReplayBody<B>>;
        type Kept = Recorded<B>;

        fn first(&self, request: http::Request<B>) -> (Self::Sent, Option<Self::Kept>) {
            if self.methods.contains(request.method()) {
                let (sent, kept) = self.replay.first(request);
                (sent, Some(kept))
            } else {
                (self.replay.once(request), None)
            }
        }

        fn copy(&self, kept: &Self::Kept) -> Option<Self::Sent> {
            self.replay.copy_alongside(kept)
        }
    }
}
