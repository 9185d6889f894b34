//! Property tests with huge sizes from input (issue 14): a `k`, a vector
//! count or a dimension that cannot be allocated is an error naming it,
//! never an allocation abort; a `k` above the stored count gives `k`-wide
//! rows padded with id -1 (faiss's shape) without buffers of `k` per query.

mod common;

use common::{DIM, data, kinds, make};
use memarena_ann::dataset::gaussian_mixture;
use memarena_ann::{Metric, TenantFilter};
use proptest::prelude::*;

fn huge() -> impl Strategy<Value = usize> {
    prop_oneof![Just(usize::MAX), (1usize << 40)..=usize::MAX]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Every index kind: a huge `k` is an error naming `k`; never a panic or abort.
    #[test]
    fn huge_k_is_an_error_naming_k(k in huge(), nq in 1usize..4, which in 0usize..8, filtered in any::<bool>()) {
        let ds = data(200, nq, 3);
        let (_, bp, sp) = kinds().swap_remove(which);
        let mut idx = make(&bp, Metric::L2, &ds.base);
        let ids: Vec<u64> = (0..200).collect();
        idx.add(&ds.base, &ids).unwrap();
        let filter = TenantFilter::Tenant(0);
        let err = idx
            .search(&ds.queries, k, &sp, if filtered { Some(&filter) } else { None })
            .unwrap_err();
        prop_assert!(err.to_string().contains("invalid value for k"), "{}", err);
    }

    /// A `k` above the stored count: `k` columns, the first ones found, the
    /// rest padded with -1, as faiss does.
    #[test]
    fn k_above_the_stored_count_pads(n in 1usize..30, extra in 1usize..5000, which in 0usize..8) {
        let ds = data(n, 2, 5);
        let (_, bp, sp) = kinds().swap_remove(which);
        let train = data(200, 1, 5);
        let mut idx = make(&bp, Metric::L2, &train.base);
        let ids: Vec<u64> = (0..n as u64).collect();
        idx.add(&ds.base, &ids).unwrap();
        let k = n + extra;
        let res = idx.search(&ds.queries, k, &sp, None).unwrap();
        prop_assert_eq!((res.nq, res.k), (2, k));
        for q in 0..2 {
            let row = res.row_ids(q);
            prop_assert!(row[n..].iter().all(|&id| id == -1));
            prop_assert!(row[..n].iter().all(|&id| id == -1 || (id as usize) < n));
        }
    }

    /// A dataset whose vectors cannot be allocated is an error naming the
    /// count or the dimension that makes them too many.
    #[test]
    fn huge_datasets_are_errors(n in huge(), nq in huge(), dim in prop_oneof![Just(DIM), huge()]) {
        let named = |e: &memarena_core::Error, keys: &[&str]| {
            let text = e.to_string();
            keys.iter().any(|k| text.contains(&format!("invalid value for {k}:")))
        };
        let err = gaussian_mixture(n, 1, dim, 2, 0.5, 0).unwrap_err();
        prop_assert!(named(&err, &["n_base", "n_clusters x dim"]), "{}", err);
        let err = gaussian_mixture(1, nq, dim, 2, 0.5, 0).unwrap_err();
        prop_assert!(named(&err, &["n_queries", "n_base", "n_clusters x dim"]), "{}", err);
    }
}
