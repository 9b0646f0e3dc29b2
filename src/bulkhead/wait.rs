//! Waiting for a permit for at most `max_wait`: the slow path of `poll_ready`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};

use super::state::{Admit, Permit, Semaphore};
use crate::sync::Arc;

pin_project! {
    /// One service's wait for a permit. Boxed and kept by the service, so it is allocated on the
    /// first wait only and reset for the next.
    ///
    /// While it waits it is registered in the permit word (`waiters`) and holds an enabled
    /// `Notified`. Finishing, or being dropped, unregisters it and drops the `Notified`, which
    /// hands a wake-up it received but did not use on to the next waiter.
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct Wait {
        // Declared first so it is dropped first: the `Notified` goes once we are unregistered.
        registration: Registration,
        #[pin]
        notified: Option<OwnedNotified>,
        // `None` once the wait is over, so a finished wait leaves no timer behind to wake the
        // task for nothing at its deadline.
        #[pin]
        sleep: Option<Sleep>,
        started: Instant,
    }
}

/// Unregisters a waiter that goes away while registered.
struct Registration {
    shared: Arc<Semaphore>,
    registered: bool,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.registered {
            self.shared.permits.deregister();
        }
    }
}

impl Wait {
    /// A wait starting now, for at most the bulkhead's `max_wait`.
    pub(crate) fn new(shared: Arc<Semaphore>) -> Self {
        let (started, deadline) = deadline(&shared);
        Self {
            registration: Registration {
                shared,
                registered: false,
            },
            notified: None,
            sleep: Some(tokio::time::sleep_until(deadline)),
            started,
        }
    }

    /// Restarts a finished (or cancelled) wait: starting now, for at most `max_wait`.
    pub(crate) fn restart(self: Pin<&mut Self>) {
        let mut this = self.project();
        let (started, deadline) = deadline(&this.registration.shared);
        *this.started = started;
        this.sleep.set(Some(tokio::time::sleep_until(deadline)));
    }

    /// Gives up waiting (a `call` that came without a successful `poll_ready`).
    pub(crate) fn cancel(self: Pin<&mut Self>) {
        let mut this = self.project();
        this.registration.unregister();
        this.notified.set(None);
        this.sleep.set(None);
    }

    /// Arms a fresh `Notified` (before the CAS that may register us, so that a release after that
    /// CAS finds it) and drops the previous one.
    fn arm(mut notified: Pin<&mut Option<OwnedNotified>>, shared: &Arc<Semaphore>) {
        notified.set(Some(std::sync::Arc::clone(&shared.notify).notified_owned()));
        if let Some(notified) = notified.as_pin_mut() {
            notified.enable();
        }
    }
}

impl Registration {
    fn unregister(&mut self) {
        if self.registered {
            self.registered = false;
            self.shared.permits.deregister();
        }
    }
}

fn deadline(shared: &Semaphore) -> (Instant, Instant) {
    let started = Instant::now();
    let deadline = crate::clock::saturating_add(started, shared.max_wait());
    (started, deadline)
}

impl Future for Wait {
    /// A permit, or how long the call waited before giving up.
    type Output = Result<Permit, Duration>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared = Arc::clone(&this.registration.shared);
        let acquired = loop {
            if !this.registration.registered {
                Wait::arm(this.notified.as_mut(), &shared);
                match shared.permits.acquire_or_register() {
                    Admit::Acquired => break true,
                    Admit::Registered => this.registration.registered = true,
                }
            }

            // The wake-up is polled before the deadline, so that a permit released at the very
            // instant the wait runs out is still taken.
            if let Some(notified) = this.notified.as_mut().as_pin_mut() {
                if notified.poll(cx).is_ready() {
                    // Re-arm before trying, so that a release right after the try wakes us.
                    Wait::arm(this.notified.as_mut(), &shared);
                    if shared.permits.acquire_registered() {
                        this.registration.registered = false;
                        break true;
                    }
                    // Someone else took it (a call on the fast path): wait again.
                    continue;
                }
            }

            if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
                ready!(sleep.poll(cx));
            }
            // Out of time: one last try, then give up.
            if shared.permits.acquire_registered() {
                this.registration.registered = false;
                break true;
            }
            this.registration.unregister();
            break false;
        };
        // Over: drop the `Notified` (passing on a wake-up we did not use) and the timer.
        this.notified.set(None);
        this.sleep.set(None);
        Poll::Ready(if acquired {
            Ok(Permit::taken(&shared))
        } else {
            Err(this.started.elapsed())
        })
    }
}

impl std::fmt::Debug for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wait")
            .field("registered", &self.registration.registered)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}
