//! How a request is sent again: [`Resend`], with [`CloneRequest`] (the default) and, with the
//! `http` feature, [`BufferBody`] and its [`ReplayBody`].

/// How the layer keeps a request so that it can send it again.
///
/// Implemented by [`CloneRequest`] (any `Clone` request; the default) and, with the `http`
/// feature, by [`BufferBody`] (an `http::Request<B>` whose body need not be `Clone`).
pub trait Resend<Req> {
    /// The request the inner service receives.
    type Sent;
    /// What the response future keeps to build the next attempt.
    type Kept;

    /// Converts a request that will not be retried.
    fn once(&self, request: Req) -> Self::Sent;

    /// Converts the first attempt of a request that may be retried, and keeps what the next
    /// attempts need.
    fn first(&self, request: Req) -> (Self::Sent, Self::Kept);

    /// Whether the kept request can still be sent again. Defaults to `true`.
    fn can_resend(&self, kept: &Self::Kept) -> bool {
        let _ = kept;
        true
    }

    /// The next attempt, or `None` if the request can no longer be sent.
    fn next(&self, kept: &Self::Kept) -> Option<Self::Sent>;
}

/// Keeps a clone of the request: the first attempt sends a clone, each retry another.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneRequest {
    _priv: (),
}

impl CloneRequest {
    /// Keeps a clone of each request.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl<Req: Clone> Resend<Req> for CloneRequest {
    type Sent = Req;
    type Kept = Req;

    #[inline]
    fn once(&self, request: Req) -> Req {
        request
    }

    #[inline]
    fn first(&self, request: Req) -> (Req, Req) {
        (request.clone(), request)
    }

    fn next(&self, kept: &Req) -> Option<Req> {
        Some(kept.clone())
    }
}

#[cfg(feature = "http")]
pub use self::body::{BufferBody, Recorded, ReplayBody};

#[cfg(feature = "http")]
mod body {
    use std::fmt;
    use std::pin::Pin;
    use std::sync::PoisonError;
    use std::task::{Context, Poll};

    use bytes::{Buf, Bytes};
    use http::HeaderMap;
    use http_body::{Body, Frame, SizeHint};

    use super::Resend;
    use crate::BoxError;
    use crate::sync::{Arc, Mutex, MutexGuard};

    /// Sends `http::Request<B>` again even when `B` is not `Clone`: the first attempt's body
    /// is recorded, up to `max_bytes`, as the inner service streams it, and replayed by each
    /// retry. A request whose body outgrows `max_bytes` (or declares a larger size up front,
    /// or fails) is not retried. Set with the builder's `replay_body(max_bytes)`.
    ///
    /// The inner service receives `http::Request<ReplayBody<B>>`.
    #[derive(Debug, Clone, Copy)]
    pub struct BufferBody {
        max_bytes: usize,
    }

    impl BufferBody {
        pub(crate) fn new(max_bytes: usize) -> Self {
            Self { max_bytes }
        }

        /// The cap on recorded bytes.
        pub fn max_bytes(&self) -> usize {
            self.max_bytes
        }

        /// Another copy of the kept request, read alongside the attempts already sent (a
        /// hedge): unlike [`Resend::next`], it supersedes none of them. The copies share the
        /// recording, so whichever reads furthest pulls the original body and the others
        /// replay what it recorded. `None` once the body outgrew the buffer or failed.
        #[cfg(feature = "hedge")]
        pub(crate) fn copy_alongside<B>(
            &self,
            kept: &Recorded<B>,
        ) -> Option<http::Request<ReplayBody<B>>> {
            let generation = {
                let recording = lock(&kept.shared);
                if recording.unreplayable {
                    return None;
                }
                recording.generation
            };
            let body = ReplayBody::replaying(Arc::clone(&kept.shared), generation);
            Some(http::Request::from_parts(kept.parts.clone(), body))
        }
    }

    /// The request kept by [`BufferBody`]: the head and the shared recording.
    pub struct Recorded<B> {
        parts: http::request::Parts,
        shared: Arc<Mutex<Recording<B>>>,
    }

    impl<B> fmt::Debug for Recorded<B> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Recorded")
                .field("method", &self.parts.method)
                .field("uri", &self.parts.uri)
                .finish_non_exhaustive()
        }
    }

    struct Recording<B> {
        /// The rest of the original body; `None` once it ended.
        source: Option<Pin<Box<B>>>,
        /// Data frames recorded so far (cleared once the cap is passed).
        chunks: Vec<Bytes>,
        recorded: usize,
        max_bytes: usize,
        /// Data frames taken from the source so far.
        frames: usize,
        trailers: Option<HeaderMap>,
        ended: bool,
        /// The body outgrew the cap or failed: it cannot be replayed.
        unreplayable: bool,
        /// The attempt whose body may read; older bodies fail.
        generation: u64,
    }

    fn lock<B>(shared: &Mutex<Recording<B>>) -> MutexGuard<'_, Recording<B>> {
        shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    impl<B> Resend<http::Request<B>> for BufferBody
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        type Sent = http::Request<ReplayBody<B>>;
        type Kept = Recorded<B>;

        fn once(&self, request: http::Request<B>) -> Self::Sent {
            request.map(|body| ReplayBody {
                inner: Inner::Direct { body },
            })
        }

        fn first(&self, request: http::Request<B>) -> (Self::Sent, Self::Kept) {
            let (parts, body) = request.into_parts();
            let too_big = usize::try_from(body.size_hint().lower())
                .map_or(true, |lower| lower > self.max_bytes);
            let shared = Arc::new(Mutex::new(Recording {
                source: Some(Box::pin(body)),
                chunks: Vec::new(),
                recorded: 0,
                max_bytes: self.max_bytes,
                frames: 0,
                trailers: None,
                ended: false,
                unreplayable: too_big,
                generation: 0,
            }));
            let body = ReplayBody::replaying(Arc::clone(&shared), 0);
            let sent = http::Request::from_parts(parts.clone(), body);
            (sent, Recorded { parts, shared })
        }

        fn can_resend(&self, kept: &Self::Kept) -> bool {
            !lock(&kept.shared).unreplayable
        }

        fn next(&self, kept: &Self::Kept) -> Option<Self::Sent> {
            let generation = {
                let mut recording = lock(&kept.shared);
                if recording.unreplayable {
                    return None;
                }
                recording.generation += 1;
                recording.generation
            };
            let body = ReplayBody::replaying(Arc::clone(&kept.shared), generation);
            Some(http::Request::from_parts(kept.parts.clone(), body))
        }
    }

    pin_project_lite::pin_project! {
        /// The body of a request sent through [`BufferBody`]: the original body, recorded as
        /// it streams, or a replay of the recording followed by whatever the original had
        /// not yet sent.
        ///
        /// A body of an attempt that has been superseded by a retry fails if it is still read.
        pub struct ReplayBody<B> {
            #[pin]
            inner: Inner<B>,
        }
    }

    pin_project_lite::pin_project! {
        #[project = InnerProj]
        enum Inner<B> {
            Direct { #[pin] body: B },
            Replaying {
                shared: Arc<Mutex<Recording<B>>>,
                generation: u64,
                // Data frames of the recording this body has sent.
                position: usize,
                trailers_sent: bool,
            },
        }
    }

    impl<B> ReplayBody<B> {
        fn replaying(shared: Arc<Mutex<Recording<B>>>, generation: u64) -> Self {
            Self {
                inner: Inner::Replaying {
                    shared,
                    generation,
                    position: 0,
                    trailers_sent: false,
                },
            }
        }
    }

    impl<B> fmt::Debug for ReplayBody<B> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match &self.inner {
                Inner::Direct { .. } => f.write_str("ReplayBody::Direct"),
                Inner::Replaying {
                    generation,
                    position,
                    ..
                } => f
                    .debug_struct("ReplayBody::Replaying")
                    .field("generation", generation)
                    .field("position", position)
                    .finish(),
            }
        }
    }

    /// Why a [`ReplayBody`] failed.
    #[derive(Debug)]
    struct ReplayError(&'static str);

    impl fmt::Display for ReplayError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for ReplayError {}

    impl<B> Body for ReplayBody<B>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            let (shared, generation, position, trailers_sent) = match self.project().inner.project()
            {
                InnerProj::Direct { body } => {
                    return match body.poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(
                            frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
                        ))),
                        Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
                        Poll::Ready(None) => Poll::Ready(None),
                        Poll::Pending => Poll::Pending,
                    };
                }
                InnerProj::Replaying {
                    shared,
                    generation,
                    position,
                    trailers_sent,
                } => (shared, generation, position, trailers_sent),
            };
            let mut recording = lock(shared);
            let recording = &mut *recording;
            if recording.generation != *generation {
                return Poll::Ready(Some(Err(Box::new(ReplayError(
                    "request body read by an attempt that a retry superseded",
                )))));
            }
            if !recording.unreplayable && *position < recording.chunks.len() {
                let chunk = recording.chunks[*position].clone();
                *position += 1;
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if *position < recording.frames {
                return Poll::Ready(Some(Err(Box::new(ReplayError(
                    "request body outgrew the replay buffer",
                )))));
            }
            loop {
                if recording.ended {
                    if !*trailers_sent {
                        *trailers_sent = true;
                        if let Some(trailers) = &recording.trailers {
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers.clone()))));
                        }
                    }
                    return Poll::Ready(None);
                }
                let Some(source) = recording.source.as_mut() else {
                    recording.ended = true;
                    continue;
                };
                return match source.as_mut().poll_frame(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(None) => {
                        recording.source = None;
                        recording.ended = true;
                        continue;
                    }
                    Poll::Ready(Some(Err(error))) => {
                        recording.unreplayable = true;
                        Poll::Ready(Some(Err(error.into())))
                    }
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(mut data) => {
                            let data = data.copy_to_bytes(data.remaining());
                            recording.frames += 1;
                            *position += 1;
                            if !recording.unreplayable {
                                if recording.recorded + data.len() <= recording.max_bytes {
                                    recording.recorded += data.len();
                                    recording.chunks.push(data.clone());
                                } else {
                                    recording.unreplayable = true;
                                    recording.chunks = Vec::new();
                                }
                            }
                            Poll::Ready(Some(Ok(Frame::data(data))))
                        }
                        Err(frame) => match frame.into_trailers() {
                            Ok(trailers) => {
                                recording.trailers = Some(trailers.clone());
                                *trailers_sent = true;
                                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                            }
                            // An unknown frame kind: pass nothing on, read the next frame.
                            Err(_) => continue,
                        },
                    },
                };
            }
        }

        fn is_end_stream(&self) -> bool {
            match &self.inner {
                Inner::Direct { body } => body.is_end_stream(),
                Inner::Replaying {
                    shared,
                    generation,
                    position,
                    trailers_sent,
                } => {
                    let recording = lock(shared);
                    if recording.generation != *generation {
                        return false;
                    }
                    if *position < recording.frames {
                        return false;
                    }
                    if recording.ended {
                        return *trailers_sent || recording.trailers.is_none();
                    }
                    recording
                        .source
                        .as_ref()
                        .is_none_or(|source| source.is_end_stream())
                        && recording.trailers.is_none()
                }
            }
        }

        fn size_hint(&self) -> SizeHint {
            match &self.inner {
                Inner::Direct { body } => body.size_hint(),
                Inner::Replaying {
                    shared, position, ..
                } => {
                    let recording = lock(shared);
                    let replay: u64 = if recording.unreplayable {
                        0
                    } else {
                        recording.chunks[(*position).min(recording.chunks.len())..]
                            .iter()
                            .map(|chunk| chunk.len() as u64)
                            .sum()
                    };
                    match &recording.source {
                        None => SizeHint::with_exact(replay),
                        Some(source) => {
                            let rest = source.size_hint();
                            let mut hint = SizeHint::new();
                            hint.set_lower(rest.lower().saturating_add(replay));
                            if let Some(upper) = rest.upper() {
                                hint.set_upper(upper.saturating_add(replay));
                            }
                            hint
                        }
                    }
                }
            }
        }
    }
}
