//! Fields of packed atomic words: one name per field instead of a shift and a mask at every use.
//!
//! A lock-free state machine keeps everything that must change together in one word, so that a
//! transition is one compare-and-swap. [`Field`] names a run of bits of that word; its accessors
//! are `const` and `#[inline(always)]`, so reading a field compiles to the same shift and mask
//! that a hand-written expression does (a load and an `and` for a field at bit 0), and writing
//! one checks in debug builds that the value fits, which the hand-written masks never did.
#![allow(dead_code)] // each middleware uses its own subset

/// `bits` bits of a `u64` word, starting at bit `shift` (0 is the least significant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    shift: u32,
    bits: u32,
}

impl Field {
    /// The field of `bits` bits at bit `shift`. Compile-time constants only: a field that does
    /// not fit the word fails the build.
    pub(crate) const fn new(shift: u32, bits: u32) -> Self {
        assert!(
            bits >= 1 && shift + bits <= 64,
            "a field must fit in 64 bits"
        );
        Self { shift, bits }
    }

    /// The field of `bits` bits just above this one, for laying out a word from bit 0 up.
    pub(crate) const fn next(self, bits: u32) -> Self {
        Self::new(self.end(), bits)
    }

    /// The field's lowest bit: where a value is shifted to, for arithmetic on the whole word
    /// that must not be masked (a difference that wraps out of the top field).
    pub(crate) const fn shift(self) -> u32 {
        self.shift
    }

    /// The field's width.
    pub(crate) const fn bits(self) -> u32 {
        self.bits
    }

    /// The first bit above the field.
    pub(crate) const fn end(self) -> u32 {
        self.shift + self.bits
    }

    /// The largest value the field holds.
    #[inline(always)]
    pub(crate) const fn max(self) -> u64 {
        u64::MAX >> (64 - self.bits)
    }

    /// The field's bits in place.
    #[inline(always)]
    pub(crate) const fn mask(self) -> u64 {
        self.max() << self.shift
    }

    /// The field's value in `word`.
    #[inline(always)]
    pub(crate) const fn get(self, word: u64) -> u64 {
        (word >> self.shift) & self.max()
    }

    /// Whether a one-bit field (a flag) is set in `word`.
    #[inline(always)]
    pub(crate) const fn is_set(self, word: u64) -> bool {
        self.get(word) != 0
    }

    /// `value` in the field's place, every other bit zero. `value` must fit: checked in debug
    /// builds; release builds drop the excess bits rather than corrupt a neighbouring field.
    #[inline(always)]
    pub(crate) const fn put(self, value: u64) -> u64 {
        debug_assert!(value <= self.max(), "value does not fit its field");
        (value & self.max()) << self.shift
    }

    /// `word` with the field replaced by `value` (which must fit, as for [`put`](Self::put)).
    #[inline(always)]
    pub(crate) const fn set(self, word: u64, value: u64) -> u64 {
        (word & !self.mask()) | self.put(value)
    }

    /// `value` reduced modulo 2^bits: for a field that counts around (an index, a distance
    /// between two indexes), where dropping the high bits is the meaning and not an overflow.
    #[inline(always)]
    pub(crate) const fn wrap(self, value: u64) -> u64 {
        value & self.max()
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LOW: Field = Field::new(0, 3);
    const MID: Field = LOW.next(16);
    const HIGH: Field = MID.next(45);

    #[test]
    fn a_layout_fills_the_word() {
        assert_eq!((LOW.mask(), MID.shift, HIGH.end()), (0b111, 3, 64));
        assert_eq!(LOW.mask() | MID.mask() | HIGH.mask(), u64::MAX);
        assert_eq!(LOW.mask() & MID.mask(), 0);
        assert_eq!(Field::new(0, 64).max(), u64::MAX);
        assert_eq!(Field::new(63, 1).mask(), 1 << 63);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "does not fit")]
    fn a_value_too_wide_is_caught_in_debug_builds() {
        let _ = MID.put(1 << 16);
    }

    proptest! {
        #[test]
        fn fields_round_trip_and_leave_their_neighbours(
            word in any::<u64>(),
            low in 0..=LOW.max(),
            mid in 0..=MID.max(),
            high in 0..=HIGH.max(),
        ) {
            let packed = LOW.put(low) | MID.put(mid) | HIGH.put(high);
            prop_assert_eq!((LOW.get(packed), MID.get(packed), HIGH.get(packed)), (low, mid, high));
            let changed = MID.set(word, mid);
            prop_assert_eq!(MID.get(changed), mid);
            prop_assert_eq!(changed & !MID.mask(), word & !MID.mask());
            prop_assert_eq!(MID.wrap(word), word % (1 << 16));
        }
    }
}
