//! Retry across replicas: a retry lends the pool below it the set of endpoints its earlier
//! attempts went to, so that the pool sends the next attempt somewhere else (Envoy's
//! `previous_hosts`), without a word about pools in retry's API.
//!
//! A set is 64 bits, bit `id % 64` for an endpoint whose id is `id`. Retry puts its set in this
//! thread-local for the length of its inner, synchronous `call`; a pool's `call` in that scope
//! reads it, avoids those endpoints while another is eligible, and adds the one it picked. The
//! link holds only while the pool's `call` runs inside retry's: a `Buffer` in between moves the
//! pool's `call` to another task, and the pool then sees no set (and picks as for a first
//! attempt).
//!
//! Like the deadline's thread-locals, a `const`-initialized `Cell` of a `Copy` value behind the
//! crate's one scope guard (`clock::Enter`): entering a scope is two plain thread-local stores,
//! no allocation, no `unsafe`.

// Without `retry` nothing lends a set, and the pool only reads `None`.
#![cfg_attr(not(feature = "retry"), allow(dead_code))]

use std::cell::Cell;

use crate::clock::Enter;

thread_local! {
    static TRIED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` (retry's inner `call`) with `tried` lent to the pools it calls, and takes back the
/// set they extended.
#[inline]
pub(crate) fn scope<R>(tried: &mut u64, f: impl FnOnce() -> R) -> R {
    // Restores the outer set when the scope ends, also on a panic.
    let _enter = Enter::new(&TRIED, *tried);
    let result = f();
    if let Some(extended) = TRIED.get() {
        *tried = extended;
    }
    result
}

/// The set lent by the retry whose `call` is running on this thread, if any.
#[inline]
pub(crate) fn get() -> Option<u64> {
    TRIED.get()
}

/// Adds an endpoint to the lent set (no-op outside a scope).
#[inline]
pub(crate) fn add(id: u64) {
    if let Some(set) = TRIED.get() {
        TRIED.set(Some(set | 1 << (id % 64)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_lends_the_set_and_takes_back_what_was_added() {
        assert_eq!(get(), None);
        add(3); // outside a scope: nothing
        let mut tried = 1;
        scope(&mut tried, || {
            assert_eq!(get(), Some(1));
            add(64 + 2);
            let mut inner = 0;
            scope(&mut inner, || add(5));
            assert_eq!(inner, 1 << 5);
            assert_eq!(get(), Some(0b101), "the inner scope restored the outer set");
        });
        assert_eq!(tried, 0b101);
        assert_eq!(get(), None);
    }
}
