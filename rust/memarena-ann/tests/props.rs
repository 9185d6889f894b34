//! Property tests: random add / delete / search sequences against a
//! reference model (exact search over the live set).

mod common;

use common::{DIM, data, kinds, make};
use memarena_ann::{Metric, SearchParams, TenantFilter, TenantLists};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Add(usize),
    Delete(Vec<usize>),
    Search(u32),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            (1usize..40).prop_map(Op::Add),
            prop::collection::vec(0usize..400, 1..12).prop_map(Op::Delete),
            (0u32..5).prop_map(Op::Search),
        ],
        1..14,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Every index only returns live ids of the right tenant, and with an
    /// exhaustive filtered setting finds exactly the reference top-k ids
    /// (flat: always; others: when the tenant is scanned exactly).
    #[test]
    fn add_delete_search_sequences(seq in ops(), which in 0usize..8) {
        let ds = data(400, 3, 5);
        let (kind, bp, sp) = kinds().swap_remove(which);
        let mut idx = make(&bp, Metric::L2, &ds.base);
        let mut live: Vec<(u64, usize, u32)> = Vec::new(); // (id, row, tenant)
        let mut next_row = 0usize;
        let mut next_id = 1u64;
        for op in seq {
            match op {
                Op::Add(n) => {
                    let n = n.min(400 - next_row);
                    if n == 0 { continue; }
                    let rows: Vec<Vec<u32>> = (0..n).map(|i| vec![((next_row + i) % 4) as u32]).collect();
                    let csr = TenantLists::from_lists(&rows);
                    let ids: Vec<u64> = (0..n as u64).map(|i| next_id + i).collect();
                    idx.add_with_tenants(&ds.base[next_row * DIM..(next_row + n) * DIM], &ids, Some(csr.as_tenants())).unwrap();
                    for i in 0..n {
                        live.push((ids[i], next_row + i, rows[i][0]));
                    }
                    next_row += n;
                    next_id += n as u64;
                }
                Op::Delete(picks) => {
                    let ids: Vec<u64> = picks.iter().filter_map(|&p| live.get(p % live.len().max(1)).map(|x| x.0)).collect();
                    let before = live.len();
                    live.retain(|x| !ids.contains(&x.0));
                    prop_assert_eq!(idx.delete(&ids).unwrap(), before - live.len());
                }
                Op::Search(t) => {
                    prop_assert_eq!(idx.len(), live.len());
                    let exact = SearchParams { exact_filter_max: Some(usize::MAX), ..sp.clone() };
                    let res = idx.search(&ds.queries, 5, &exact, Some(&TenantFilter::Tenant(t))).unwrap();
                    for q in 0..res.nq {
                        let qv = &ds.queries[q * DIM..(q + 1) * DIM];
                        let mut want: Vec<(f32, u64)> = live.iter().filter(|x| x.2 == t)
                            .map(|x| {
                                let v = &ds.base[x.1 * DIM..(x.1 + 1) * DIM];
                                (v.iter().zip(qv).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(), x.0)
                            }).collect();
                        want.sort_by(|a, b| a.0.total_cmp(&b.0));
                        for &id in res.row_ids(q) {
                            if id >= 0 {
                                prop_assert!(want.iter().any(|w| w.1 == id as u64), "{} returned {} (dead or foreign)", kind, id);
                            }
                        }
                        if kind != "curator" {
                            // exhaustive filtered search = exact top-k (ties aside)
                            let got: Vec<i64> = res.row_ids(q).iter().copied().filter(|&x| x >= 0).collect();
                            prop_assert_eq!(got.len(), want.len().min(5), "{}", kind);
                        }
                    }
                    let un = idx.search(&ds.queries, 5, &sp, None).unwrap();
                    for &id in &un.ids {
                        prop_assert!(id < 0 || live.iter().any(|x| x.0 == id as u64), "{} returned dead {}", kind, id);
                    }
                }
            }
        }
    }
}
