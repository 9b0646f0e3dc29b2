//! Following a `tower::discover::Discover` stream into a pool's membership.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::discover::{Change, Discover};

use super::Roster;

pin_project! {
    /// Applies the changes of a [`Discover`] stream to a pool: made by
    /// [`Pool::follow`](super::Pool::follow); spawn it or await it.
    ///
    /// It resolves when the stream ends (`Ok`), when the stream fails (its error), or at the
    /// first change after the last clone of the pool was dropped (`Ok`): it holds the pool only
    /// weakly, so following a stream never keeps a pool alive.
    #[must_use = "futures do nothing unless polled"]
    pub struct Follow<D, K, S> {
        #[pin]
        discover: D,
        pool: Weak<Roster<K, S>>,
    }
}

impl<D, K, S> Follow<D, K, S> {
    pub(crate) fn new(discover: D, pool: Weak<Roster<K, S>>) -> Self {
        Self { discover, pool }
    }
}

impl<D, K, S> Future for Follow<D, K, S>
where
    D: Discover<Key = K, Service = S>,
    K: Clone + Eq + Hash + fmt::Debug,
{
    type Output = Result<(), D::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let change = match std::task::ready!(this.discover.as_mut().poll_discover(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Err(error)) => return Poll::Ready(Err(error)),
                Some(Ok(change)) => change,
            };
            let Some(shared) = this.pool.upgrade() else {
                return Poll::Ready(Ok(()));
            };
            match change {
                Change::Insert(key, service) => shared.insert(super::Endpoint::new(key, service)),
                Change::Remove(key) => {
                    shared.remove(&key);
                }
            }
        }
    }
}

impl<D, K, S> fmt::Debug for Follow<D, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Follow")
            .field("pool_alive", &(self.pool.strong_count() > 0))
            .finish_non_exhaustive()
    }
}
