//! The one behaviour of every future of this crate that is polled again after it completed: a
//! panic naming the future (see the crate docs, "Futures").
#![allow(dead_code)] // each middleware uses it for its own futures

/// Panics: `future` was polled after it returned `Poll::Ready`.
///
/// `#[cold]` and out of line, so that the check costs the futures' fast paths one
/// never-taken branch.
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn polled_after_completion(future: &'static str) -> ! {
    panic!("`{future}` polled after completion")
}
