//! Per-query-tenant batches: queries grouped per tenant, tenant blocks scanned
//! in row chunks, threads cut by estimated work. Whatever the grouping, the
//! chunking or the thread split, a batch must give what each query gives
//! alone, only the tenant's live vectors, and the exact answer wherever the
//! tenant is scanned exactly.

mod common;

use common::{DIM, data, kinds, make};
use memarena_ann::{IndexConfig, Metric, SearchParams, TenantFilter, TenantLists, VectorIndex};
use memarena_core::rng::Rng;

/// Brute-force `k` best `(score, id)` of `q` among `tenant`'s live rows
/// (scores as the index ranks them: lower is better).
fn reference(
    metric: Metric,
    base: &[f32],
    rows: &[Vec<u32>],
    deleted: &[bool],
    q: &[f32],
    tenant: u32,
    k: usize,
) -> Vec<(f32, i64)> {
    let unit = |v: &[f32]| {
        let n = v
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        v.iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    let q = if metric == Metric::Cosine {
        unit(q)
    } else {
        q.to_vec()
    };
    let mut all: Vec<(f32, i64)> = (0..rows.len())
        .filter(|&r| rows[r].contains(&tenant) && !deleted[r])
        .map(|r| {
            let mut v = base[r * DIM..(r + 1) * DIM].to_vec();
            if metric == Metric::Cosine {
                v = unit(&v);
            }
            let s = match metric {
                Metric::L2 => q.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum(),
                _ => -q.iter().zip(&v).map(|(a, b)| a * b).sum::<f32>(),
            };
            (s, r as i64)
        })
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all
}

#[test]
fn grouped_chunked_and_split_batches_equal_single_queries_and_the_reference() {
    // 3000 vectors: tenant 0 about half (a block of ~1500 rows: several row
    // chunks and a ragged tail), tenant 1 a quarter, tenants 2..20 small; a
    // tenth of the vectors are shared with a second tenant.
    let ds = data(3000, 400, 21);
    let n = ds.n_base();
    let mut rng = Rng::seed_from_u64(77);
    let rows: Vec<Vec<u32>> = (0..n)
        .map(|_| {
            let u = rng.below(1000);
            let owner = if u < 500 {
                0
            } else if u < 750 {
                1
            } else {
                2 + rng.below(18) as u32
            };
            let mut r = vec![owner];
            if rng.bernoulli(0.1) {
                r.push(rng.below(20) as u32);
            }
            r
        })
        .collect();
    let csr = TenantLists::from_lists(&rows);
    // 400 queries: 150 for tenant 0 (more than one group of 64), 100 for
    // tenant 1, the rest spread (some tenants get none, 25 is unknown),
    // in a shuffled order.
    let qt: Vec<u32> = (0..ds.n_queries())
        .map(|i| match i % 8 {
            0..=2 => 0,
            3 | 4 => 1,
            _ => [2, 3, 5, 8, 13, 19, 25][rng.below(7) as usize],
        })
        .collect();
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        for (kind, bp, sp) in kinds()
            .into_iter()
            .filter(|c| ["flat", "hnsw", "curator"].contains(&c.0))
        {
            let mut idx = make(&bp, metric, &ds.base);
            let ids: Vec<u64> = (0..n as u64).collect();
            idx.add_with_tenants(&ds.base, &ids, Some(csr.as_tenants()))
                .unwrap();
            let del: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|_| rng.bernoulli(0.15))
                .collect();
            idx.delete(&del).unwrap();
            let mut deleted = vec![false; n];
            del.iter().for_each(|&d| deleted[d as usize] = true);
            let exact = SearchParams {
                exact_filter_max: Some(usize::MAX),
                ..sp.clone()
            };
            for p in [sp.clone(), exact] {
                let alone: Vec<_> = (0..qt.len())
                    .map(|q| {
                        let one = SearchParams {
                            threads: 1,
                            ..p.clone()
                        };
                        let f = TenantFilter::Tenant(qt[q]);
                        idx.search(&ds.queries[q * DIM..(q + 1) * DIM], 10, &one, Some(&f))
                            .unwrap()
                    })
                    .collect();
                for threads in [1, 2, 3, 7] {
                    let pt = SearchParams {
                        threads,
                        ..p.clone()
                    };
                    let res = idx
                        .search(&ds.queries, 10, &pt, Some(&TenantFilter::PerQuery(&qt)))
                        .unwrap();
                    for (q, a) in alone.iter().enumerate() {
                        let what = format!("{kind} {metric:?} threads={threads} query {q}");
                        assert_eq!(a.ids, res.row_ids(q), "{what}");
                        assert_eq!(a.distances, res.row_distances(q), "{what}");
                    }
                }
                if p.exact_filter_max != Some(usize::MAX) && kind != "flat" {
                    continue;
                }
                for (q, a) in alone.iter().enumerate() {
                    let t = qt[q];
                    let want = reference(
                        metric,
                        &ds.base,
                        &rows,
                        &deleted,
                        &ds.queries[q * DIM..(q + 1) * DIM],
                        t,
                        10,
                    );
                    let got: Vec<i64> = a.ids.iter().copied().filter(|&i| i >= 0).collect();
                    assert_eq!(got.len(), want.len(), "{kind} {metric:?} query {q}");
                    for (r, &id) in got.iter().enumerate() {
                        let row = id as usize;
                        assert!(rows[row].contains(&t) && !deleted[row], "{kind}: leak {id}");
                        // same ranking up to float rounding of near-ties
                        let (d, w) = (idx.metric().report(want[r].0), a.distances[r]);
                        assert!(
                            (d - w).abs() <= 1e-3 * (1.0 + d.abs()),
                            "{kind} {metric:?} query {q} rank {r}: {w} vs {d}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn one_tenant_batches_and_empty_tenants() {
    let ds = data(1200, 150, 4);
    let n = ds.n_base();
    // tenant 7 holds every third vector; tenant 9 a single one
    let rows: Vec<Vec<u32>> = (0..n)
        .map(|i| match i {
            5 => vec![7, 9],
            _ if i % 3 == 0 => vec![7],
            _ => vec![],
        })
        .collect();
    let csr = TenantLists::from_lists(&rows);
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 2 + 1).collect();
    for (kind, bp, sp) in kinds() {
        let mut idx = make(&bp, Metric::L2, &ds.base);
        idx.add_with_tenants(&ds.base, &ids, Some(csr.as_tenants()))
            .unwrap();
        for threads in [1, 2, 5] {
            let p = SearchParams {
                threads,
                ..sp.clone()
            };
            let all7 = idx
                .search(&ds.queries, 5, &p, Some(&TenantFilter::Tenant(7)))
                .unwrap();
            let per = idx
                .search(
                    &ds.queries,
                    5,
                    &p,
                    Some(&TenantFilter::PerQuery(&vec![7; 150])),
                )
                .unwrap();
            assert_eq!(all7, per, "{kind} threads={threads}");
            let one = idx
                .search(&ds.queries, 5, &p, Some(&TenantFilter::Tenant(9)))
                .unwrap();
            for q in 0..ds.n_queries() {
                assert_eq!(one.row_ids(q), &[11, -1, -1, -1, -1], "{kind}");
            }
            let none = idx
                .search(&ds.queries, 5, &p, Some(&TenantFilter::Tenant(3)))
                .unwrap();
            assert!(none.ids.iter().all(|&i| i == -1), "{kind}");
        }
    }
}

#[test]
fn tenant_block_max_trades_memory_for_the_same_answers_and_is_saved() {
    let ds = data(1500, 60, 8);
    let n = ds.n_base();
    let mut rng = Rng::seed_from_u64(3);
    // tenant 0 ~700 vectors, tenants 1..10 ~80 each
    let rows: Vec<Vec<u32>> = (0..n)
        .map(|_| {
            if rng.bernoulli(0.5) {
                vec![0]
            } else {
                vec![1 + rng.below(9) as u32]
            }
        })
        .collect();
    let csr = TenantLists::from_lists(&rows);
    let ids: Vec<u64> = (0..n as u64).collect();
    let qt: Vec<u32> = (0..ds.n_queries()).map(|i| (i % 10) as u32).collect();
    for (kind, bp, sp) in kinds()
        .into_iter()
        .filter(|c| ["hnsw", "curator"].contains(&c.0))
    {
        let exact = SearchParams {
            exact_filter_max: Some(usize::MAX),
            ..sp
        };
        let f = TenantFilter::PerQuery(&qt);
        let mut runs = Vec::new();
        let with_block_max = |m: usize| {
            let mut p = bp.clone();
            match &mut p {
                IndexConfig::Hnsw(c) => c.tenant_block_max = m,
                IndexConfig::Curator(c) => c.tenant_block_max = m,
                _ => unreachable!("{kind} has no tenant_block_max"),
            }
            p
        };
        for block_max in [None, Some(0), Some(200)] {
            let p = block_max.map_or_else(|| bp.clone(), with_block_max);
            let mut idx = make(&p, Metric::L2, &ds.base);
            idx.add_with_tenants(&ds.base, &ids, Some(csr.as_tenants()))
                .unwrap();
            idx.delete(&[3, 4, 5]).unwrap();
            let res = idx.search(&ds.queries, 10, &exact, Some(&f)).unwrap();
            // saved with the index: same bytes, memory and answers after a load
            let bytes = idx.to_bytes();
            let back = memarena_ann::from_bytes(&bytes).unwrap();
            assert_eq!(back.to_bytes(), bytes, "{kind} {block_max:?}");
            assert_eq!(
                back.search(&ds.queries, 10, &exact, Some(&f)).unwrap(),
                res,
                "{kind} {block_max:?}"
            );
            runs.push((idx, back, res));
        }
        let [
            (def, def_back, r_def),
            (zero, zero_back, r0),
            (mid, mid_back, r200),
        ] = &runs[..]
        else {
            unreachable!()
        };
        // no copies at 0; at 200 only the small tenants keep theirs (also
        // after a load, which rebuilds the copies for the saved setting)
        for (d, z, m) in [(def, zero, mid), (def_back, zero_back, mid_back)] {
            let small =
                |i: &dyn VectorIndex| -> usize { (1..10).map(|t| i.tenant_memory_bytes(t)).sum() };
            assert!(z.memory_bytes() < m.memory_bytes(), "{kind}");
            assert!(m.memory_bytes() < d.memory_bytes(), "{kind}");
            let (d, z, m) = (d.as_ref(), z.as_ref(), m.as_ref());
            assert!(small(z) < small(m) && small(m) == small(d), "{kind}");
            assert!(
                z.tenant_memory_bytes(0) == m.tenant_memory_bytes(0),
                "{kind}"
            );
            assert!(
                m.tenant_memory_bytes(0) < d.tenant_memory_bytes(0),
                "{kind}"
            );
        }
        // exact either way: the same neighbours (distances up to rounding)
        for r in [r0, r200] {
            for (a, b) in r.distances.iter().zip(&r_def.distances) {
                assert!(
                    (a - b).abs() <= 1e-3 * (1.0 + b.abs()),
                    "{kind}: {a} vs {b}"
                );
            }
            let same = r.ids.iter().zip(&r_def.ids).filter(|(a, b)| a == b).count();
            assert!(
                same * 100 >= r.ids.len() * 99,
                "{kind}: {same} of {}",
                r.ids.len()
            );
        }
        let bad = memarena_ann::build(Metric::L2, DIM, &with_block_max(u32::MAX as usize + 1));
        let e = bad.unwrap_err().to_string();
        assert!(e.contains("index.tenant_block_max"), "{kind}: {e}");
    }
}
