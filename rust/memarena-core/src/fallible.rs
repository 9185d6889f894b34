//! Allocations whose size comes from input: checked, and fallible.
//!
//! A length taken from a config, a file or a caller (`n_requests`, `dim`,
//! `k`, a trace's span over its sample interval) must never reach
//! `Vec::with_capacity` unchecked: an overflowing product or a size the
//! allocator refuses aborts the process. These helpers turn both into an
//! [`Error::InvalidArgument`] naming the value, which crosses into Python as
//! `InvalidConfigError`.

use crate::{Error, Result};

/// `a * b`, or an error naming `name` when it overflows `usize`.
pub fn checked_len(a: usize, b: usize, name: &str) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| Error::invalid(name, format!("{a} x {b} overflows the address space")))
}

/// An empty vector with room for `n` items, or an error naming `name` when
/// their bytes overflow or the allocator refuses them.
pub fn try_with_capacity<T>(n: usize, name: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_reserve(&mut v, n, name)?;
    Ok(v)
}

/// Room for `additional` more items in `v` (exactly), or an error naming
/// `name`; `v` is unchanged on error.
pub fn try_reserve<T>(v: &mut Vec<T>, additional: usize, name: &str) -> Result<()> {
    v.try_reserve_exact(additional).map_err(|_| {
        let bytes = (v.len() as u128 + additional as u128) * std::mem::size_of::<T>() as u128;
        Error::invalid(
            name,
            format!(
                "needs {} items ({bytes} bytes), which cannot be allocated",
                v.len() as u128 + additional as u128
            ),
        )
    })
}

/// Room for `additional` more items in `v`, growing amortized (like
/// `Vec::extend`, so repeated small batches stay linear), or an error naming
/// `name`; `v` is unchanged on error.
pub fn try_reserve_amortized<T>(v: &mut Vec<T>, additional: usize, name: &str) -> Result<()> {
    if v.try_reserve(additional).is_ok() {
        return Ok(());
    }
    try_reserve(v, additional, name)
}

/// Room for one more item, growing like `Vec::push` (doubling) but
/// fallibly: for series whose final length is not known in advance.
pub fn try_grow<T>(v: &mut Vec<T>, name: &str) -> Result<()> {
    if v.len() < v.capacity() {
        return Ok(());
    }
    let extra = v.capacity().max(4);
    if v.try_reserve_exact(extra).is_ok() {
        return Ok(());
    }
    try_reserve(v, 1, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn overflowing_or_refused_sizes_are_errors_naming_the_value() {
        let e = checked_len(usize::MAX, 2, "k").unwrap_err();
        assert!(e.to_string().contains("invalid value for k"), "{e}");
        let e = try_with_capacity::<u64>(usize::MAX / 2, "n_requests").unwrap_err();
        assert!(e.to_string().contains("n_requests"), "{e}");
        assert!(e.to_string().contains("cannot be allocated"), "{e}");
    }

    proptest! {
        /// Any length either allocates with room for it or is an error naming
        /// the key; a huge one is always an error, never an abort.
        #[test]
        fn any_length_allocates_or_errs(n in prop_oneof![0usize..4096, (usize::MAX / 64)..=usize::MAX]) {
            match try_with_capacity::<u64>(n, "n") {
                Ok(v) => prop_assert!(v.capacity() >= n && n < 4096),
                Err(e) => {
                    prop_assert!(n >= 4096);
                    prop_assert!(e.to_string().contains("invalid value for n"), "{}", e);
                }
            }
        }

        /// `checked_len` is the product when it fits, an error otherwise.
        #[test]
        fn checked_len_is_the_product_or_an_error(a in any::<usize>(), b in any::<usize>()) {
            match checked_len(a, b, "dim") {
                Ok(l) => prop_assert_eq!(Some(l), a.checked_mul(b)),
                Err(_) => prop_assert!(a.checked_mul(b).is_none()),
            }
        }

        /// `try_reserve_amortized` leaves room for the batch, and small
        /// batches do not reallocate every time (amortized growth).
        #[test]
        fn try_reserve_amortized_leaves_room(batches in prop::collection::vec(0usize..50, 1..100)) {
            let mut v: Vec<u8> = Vec::new();
            let mut reallocations = 0;
            for b in batches {
                let cap = v.capacity();
                try_reserve_amortized(&mut v, b, "vectors").unwrap();
                prop_assert!(v.capacity() >= v.len() + b);
                reallocations += usize::from(v.capacity() != cap);
                v.extend(std::iter::repeat_n(0u8, b));
            }
            prop_assert!(reallocations <= 16, "{} reallocations", reallocations);
        }

        /// `try_grow` always leaves room for one more push.
        #[test]
        fn try_grow_leaves_room(n in 0usize..300) {
            let mut v: Vec<u32> = Vec::new();
            for i in 0..n {
                try_grow(&mut v, "samples").unwrap();
                prop_assert!(v.len() < v.capacity());
                v.push(i as u32);
            }
        }
    }
}
