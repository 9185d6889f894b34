//! Conformance of every index kind: recall floors against the flat index,
//! batch == single query, tenant isolation, deletes, persistence.

mod common;

use common::{DIM, data, kinds, make};
use memarena_ann::dataset::{ground_truth, recall_at_k};
use memarena_ann::{
    E2LshConfig, HnswConfig, IndexConfig, IvfBuildConfig, MAX_ID, Metric, SearchParams,
    SimHashConfig, TenantFilter, TenantLists, build, from_bytes,
};
use memarena_core::rng::Rng;

#[test]
fn recall_floors_against_flat_for_every_kind_and_metric() {
    let ds = data(3000, 60, 7);
    let ids: Vec<u64> = (0..ds.n_base() as u64).collect();
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let truth = ground_truth(&ds.base, &ds.queries, DIM, 10, metric).unwrap();
        for (kind, bp, sp) in kinds() {
            if kind == "e2lsh" && metric != Metric::L2 {
                continue; // p-stable hashing is an L2 scheme
            }
            let mut idx = make(&bp, metric, &ds.base);
            idx.add(&ds.base, &ids).unwrap();
            let res = idx.search(&ds.queries, 10, &sp, None).unwrap();
            let r = recall_at_k(&res.ids, 10, &truth, 10);
            let floor = match (kind, metric) {
                ("flat", _) => 0.999,
                ("simhash", Metric::L2) => 0.8,
                ("simhash", _) => 0.6,
                _ => 0.85,
            };
            assert!(
                r >= floor,
                "{kind} {metric:?} {bp:?}: recall@10 {r:.3} < {floor}"
            );
            // distances are sorted best first
            for q in 0..res.nq {
                let d = res.row_distances(q);
                let ok = d.windows(2).all(|w| {
                    if metric.is_similarity() {
                        w[0] >= w[1]
                    } else {
                        w[0] <= w[1]
                    }
                });
                assert!(
                    ok || (kind == "simhash" && sp.rerank == 0),
                    "{kind}: row {q} unsorted {d:?}"
                );
            }
        }
    }
}

#[test]
fn batch_equals_single_query_and_threads_do_not_matter() {
    let ds = data(1500, 24, 3);
    let ids: Vec<u64> = (0..ds.n_base() as u64).map(|i| i * 3 + 1).collect();
    for (kind, bp, sp) in kinds() {
        let mut idx = make(&bp, Metric::L2, &ds.base);
        idx.add(&ds.base, &ids).unwrap();
        let batch = idx.search(&ds.queries, 7, &sp, None).unwrap();
        let one = SearchParams {
            threads: 1,
            ..sp.clone()
        };
        let serial = idx.search(&ds.queries, 7, &one, None).unwrap();
        assert_eq!(batch, serial, "{kind}: thread count changed results");
        for q in 0..ds.n_queries() {
            let r = idx
                .search(&ds.queries[q * DIM..(q + 1) * DIM], 7, &one, None)
                .unwrap();
            assert_eq!(r.ids, batch.row_ids(q), "{kind}: query {q} differs alone");
            assert_eq!(
                r.distances,
                batch.row_distances(q),
                "{kind}: query {q} distances differ"
            );
        }
    }
}

#[test]
fn tenants_never_see_other_tenants_vectors() {
    let ds = data(2000, 40, 11);
    let n = ds.n_base();
    let mut rng = Rng::seed_from_u64(5);
    // Zipf-ish tenant sizes: tenant t gets a vector with probability ~ 1/(t+1).
    let n_tenants = 12u32;
    let rows: Vec<Vec<u32>> = (0..n)
        .map(|_| {
            (0..n_tenants)
                .filter(|&t| rng.bernoulli(0.5 / (t as f64 + 1.0)))
                .collect()
        })
        .collect();
    let csr = TenantLists::from_lists(&rows);
    let ids: Vec<u64> = (0..n as u64).map(|i| 1000 + i).collect();
    let qt: Vec<u32> = (0..ds.n_queries())
        .map(|_| rng.below(n_tenants as u64 + 2) as u32)
        .collect();
    for (kind, bp, sp) in kinds() {
        let mut idx = make(&bp, Metric::L2, &ds.base);
        idx.add_with_tenants(&ds.base, &ids, Some(csr.as_tenants()))
            .unwrap();
        // delete a random tenth
        let del: Vec<u64> = ids.iter().copied().filter(|_| rng.bernoulli(0.1)).collect();
        idx.delete(&del).unwrap();
        for forced in [None, Some(0), Some(usize::MAX)] {
            let p = SearchParams {
                exact_filter_max: forced,
                ..sp.clone()
            };
            let res = idx
                .search(&ds.queries, 10, &p, Some(&TenantFilter::PerQuery(&qt)))
                .unwrap();
            for (q, &t) in qt.iter().enumerate() {
                for &id in res.row_ids(q) {
                    if id < 0 {
                        continue;
                    }
                    let row = (id as u64 - 1000) as usize;
                    assert!(
                        rows[row].contains(&t),
                        "{kind}: tenant {t} saw vector {id} of {:?}",
                        rows[row]
                    );
                    assert!(!del.contains(&(id as u64)), "{kind}: deleted {id} returned");
                }
                // the tenant-grouped batch gives what the query gets alone
                let alone = idx
                    .search(
                        &ds.queries[q * DIM..(q + 1) * DIM],
                        10,
                        &SearchParams {
                            threads: 1,
                            ..p.clone()
                        },
                        Some(&TenantFilter::Tenant(t)),
                    )
                    .unwrap();
                assert_eq!(alone.ids, res.row_ids(q), "{kind}: query {q} alone");
                assert_eq!(alone.distances, res.row_distances(q), "{kind}: query {q}");
                // an exhaustive setting finds min(k, tenant size) results
                if forced == Some(usize::MAX) || kind == "flat" {
                    let want = idx.tenant_len(t).min(10);
                    let got = res.row_ids(q).iter().filter(|&&x| x >= 0).count();
                    assert_eq!(got, want, "{kind}: tenant {t}");
                }
            }
        }
        for t in 0..n_tenants {
            assert!(
                idx.tenant_memory_bytes(t) > 0,
                "{kind}: tenant {t} has no memory"
            );
        }
        assert_eq!(idx.tenant_memory_bytes(9999), 0, "{kind}");
    }
}

#[test]
fn filtered_recall_against_flat_on_selective_tenants() {
    let ds = data(3000, 60, 21);
    let n = ds.n_base();
    let mut rng = Rng::seed_from_u64(9);
    let rows: Vec<Vec<u32>> = (0..n)
        .map(|_| {
            let mut r = vec![rng.below(4) as u32]; // 4 big tenants (~25%)
            if rng.bernoulli(0.03) {
                r.push(10); // one selective tenant (~3%)
            }
            r
        })
        .collect();
    let csr = TenantLists::from_lists(&rows);
    let ids: Vec<u64> = (0..n as u64).collect();
    let qt: Vec<u32> = (0..ds.n_queries())
        .map(|i| if i % 2 == 0 { 10 } else { (i % 4) as u32 })
        .collect();
    let filter = TenantFilter::PerQuery(&qt);
    let mut flat = build(Metric::L2, DIM, &IndexConfig::Flat).unwrap();
    flat.add_with_tenants(&ds.base, &ids, Some(csr.as_tenants()))
        .unwrap();
    let truth = flat
        .search(&ds.queries, 10, &SearchParams::default(), Some(&filter))
        .unwrap();
    for (kind, bp, sp) in kinds() {
        let mut idx = make(&bp, Metric::L2, &ds.base);
        idx.add_with_tenants(&ds.base, &ids, Some(csr.as_tenants()))
            .unwrap();
        let res = idx.search(&ds.queries, 10, &sp, Some(&filter)).unwrap();
        let r = recall_at_k(&res.ids, 10, &truth.ids, 10);
        assert!(r >= 0.85, "{kind}: filtered recall {r:.3}");
    }
}

#[test]
fn deletes_and_readds_survive_save_and_load() {
    let ds = data(1200, 20, 13);
    let n = ds.n_base();
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 7).collect();
    let rows: Vec<Vec<u32>> = (0..n).map(|i| vec![(i % 5) as u32]).collect();
    let csr = TenantLists::from_lists(&rows);
    let dir = std::env::temp_dir().join(format!("memarena-ann-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (kind, bp, sp) in kinds() {
        let mut idx = make(&bp, Metric::Cosine, &ds.base);
        idx.add_with_tenants(&ds.base, &ids, Some(csr.as_tenants()))
            .unwrap();
        let del: Vec<u64> = ids.iter().copied().step_by(3).collect();
        assert_eq!(idx.delete(&del).unwrap(), del.len());
        assert_eq!(idx.delete(&del).unwrap(), 0, "{kind}: double delete");
        assert!(
            idx.add(&ds.base[..DIM], &[ids[1]]).is_err(),
            "{kind}: duplicate live id accepted"
        );
        idx.add(&ds.base[..DIM], &[ids[0]]).unwrap(); // re-add a deleted id
        assert_eq!(idx.len(), n - del.len() + 1);
        let before = idx.search(&ds.queries, 10, &sp, None).unwrap();
        let before_t = idx
            .search(&ds.queries, 10, &sp, Some(&TenantFilter::Tenant(2)))
            .unwrap();
        let path = dir.join(format!("{kind}.idx"));
        idx.save(&path).unwrap();
        let loaded = memarena_ann::load(&path).unwrap();
        assert_eq!(loaded.kind(), idx.kind());
        assert_eq!(loaded.len(), idx.len());
        assert_eq!(
            loaded.search(&ds.queries, 10, &sp, None).unwrap(),
            before,
            "{kind}"
        );
        let after_t = loaded
            .search(&ds.queries, 10, &sp, Some(&TenantFilter::Tenant(2)))
            .unwrap();
        assert_eq!(after_t, before_t, "{kind}: tenant results changed");
        for id in &del[1..] {
            assert!(!loaded.contains(*id), "{kind}: deleted id {id} came back");
            assert!(!before.ids.contains(&(*id as i64)));
        }
        assert!(loaded.contains(ids[0]));
        assert_eq!(
            from_bytes(&idx.to_bytes()).unwrap().to_bytes(),
            idx.to_bytes(),
            "{kind}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn padding_reset_and_empty_index() {
    for (kind, bp, sp) in kinds() {
        let ds = data(300, 3, 2);
        let mut idx = make(&bp, Metric::L2, &ds.base);
        let r = idx.search(&ds.queries, 4, &sp, None).unwrap();
        assert!(
            r.ids.iter().all(|&i| i == -1),
            "{kind}: empty index returned {:?}",
            r.ids
        );
        idx.add(&ds.base[..3 * DIM], &[1, 2, 3]).unwrap();
        let r = idx.search(&ds.queries, 5, &sp, None).unwrap();
        for q in 0..3 {
            let row = r.row_ids(q);
            assert!(row[3] == -1 && row[4] == -1, "{kind}: {row:?}");
            assert!(r.row_distances(q)[4].is_infinite());
        }
        idx.reset();
        assert_eq!(idx.len(), 0);
        assert!(!idx.contains(1));
        idx.add(&ds.base[..DIM], &[1]).unwrap();
        let lsh_buckets = matches!(kind, "e2lsh") || (kind == "simhash" && sp.n_probes > 0);
        if !lsh_buckets {
            // (bucketed LSH may legitimately miss a lone vector; IVF probes all lists)
            let all = SearchParams {
                nprobe: 1 << 20,
                ..sp.clone()
            };
            let got = idx.search(&ds.queries[..DIM], 1, &all, None).unwrap().ids;
            assert_eq!(got, vec![1], "{kind}");
        }
    }
}

/// The error of deserializing `T` from a map of string values.
fn from_strings<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    pairs: &[(&str, &str)],
) -> String {
    use serde::de::value::{Error, MapDeserializer};
    let de = MapDeserializer::<_, Error>::new(pairs.iter().copied());
    T::deserialize(de).unwrap_err().to_string()
}

#[test]
fn bad_input_gives_errors_that_name_it() {
    let e = IndexConfig::defaults("annoy").unwrap_err().to_string();
    assert!(e.contains("annoy") && e.contains("hnsw"), "{e}");
    // unknown keys: the serde error names the key and the allowed ones
    let e = from_strings::<IndexConfig>(&[("kind", "ivf"), ("nlsit", "4")]);
    assert!(e.contains("nlsit") && e.contains("nlist"), "{e}");
    let e = from_strings::<IndexConfig>(&[("kind", "annoy")]);
    assert!(e.contains("annoy") && e.contains("curator"), "{e}");
    let e = from_strings::<SearchParams>(&[("efsearch", "3")]);
    assert!(e.contains("efsearch") && e.contains("ef_search"), "{e}");
    // out-of-range values: the range check names the key
    let hnsw = IndexConfig::Hnsw(HnswConfig {
        m: 1,
        ..HnswConfig::default()
    });
    let e = build(Metric::L2, 8, &hnsw).unwrap_err().to_string();
    assert!(e.contains("index.m") && e.contains("[2, 256]"), "{e}");
    let e = SearchParams {
        nprobe: 0,
        ..SearchParams::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("index.nprobe"), "{e}");
    let e = IndexConfig::E2Lsh(E2LshConfig {
        w_scale: f32::NAN,
        ..E2LshConfig::default()
    })
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("index.w_scale") && e.contains("finite"), "{e}");
    let two_lists = IndexConfig::Ivf(IvfBuildConfig {
        nlist: 2,
        ..IvfBuildConfig::default()
    });
    let mut ivf = build(Metric::L2, 4, &two_lists).unwrap();
    let e = ivf.add(&[0.0; 4], &[1]).unwrap_err().to_string();
    assert!(e.contains("train"), "{e}");
    let mut flat = build(Metric::L2, 4, &IndexConfig::Flat).unwrap();
    assert!(flat.add(&[0.0; 5], &[1]).is_err());
    assert!(flat.add(&[0.0; 8], &[1, 1]).is_err());
    assert!(flat.add(&[f32::NAN; 4], &[1]).is_err());
    assert!(
        flat.search(&[0.0; 3], 1, &SearchParams::default(), None)
            .is_err()
    );
    flat.add(&[0.0; 8], &[1, 2]).unwrap();
    let f = TenantFilter::PerQuery(&[1, 2]);
    assert!(
        flat.search(&[0.0; 4], 1, &SearchParams::default(), Some(&f))
            .is_err()
    );
}

#[test]
fn ids_above_i64_max_are_refused_and_the_largest_round_trips() {
    // Results carry ids as i64 with -1 for "no result": 2^64 - 1 would come
    // back as -1 and any id >= 2^63 negative, so every kind refuses them.
    let ds = data(64, 1, 3);
    let ids: Vec<u64> = (0..64).collect();
    for (kind, bp, sp) in kinds() {
        let mut idx = make(&bp, Metric::L2, &ds.base);
        idx.add(&ds.base, &ids).unwrap();
        for bad in [MAX_ID + 1, u64::MAX] {
            let e = idx.add(&ds.base[..DIM], &[bad]).unwrap_err().to_string();
            assert!(
                e.contains("ids") && e.contains(&bad.to_string()),
                "{kind}: {e}"
            );
        }
        idx.add(&ds.base[..DIM], &[MAX_ID]).unwrap();
        let r = idx.search(&ds.base[..DIM], 1, &sp, None).unwrap();
        assert!(
            [0, MAX_ID as i64].contains(&r.ids[0]),
            "{kind}: {:?}",
            r.ids
        );
    }
}

#[test]
fn hamming_scan_groups_equal_single_queries_with_deletes() {
    // The blocked scan (groups of queries, reservoir top-n) against one query
    // at a time, with and without re-ranking, after deletes.
    let ds = data(2500, 19, 5);
    let ids: Vec<u64> = (0..ds.n_base() as u64).collect();
    let wide = IndexConfig::SimHash(SimHashConfig {
        n_bits: 64,
        n_tables: 4,
        seed: 3,
        ..SimHashConfig::default()
    });
    let mut idx = build(Metric::L2, DIM, &wide).unwrap();
    idx.add(&ds.base, &ids).unwrap();
    let gone: Vec<u64> = (0..ds.n_base() as u64).step_by(3).collect();
    idx.delete(&gone).unwrap();
    for rerank in [0usize, 1, 40, 5000] {
        let sp = SearchParams {
            n_probes: 0,
            rerank,
            threads: 2,
            ..SearchParams::default()
        };
        let batch = idx.search(&ds.queries, 7, &sp, None).unwrap();
        assert!(
            batch.ids.iter().all(|&i| i == -1 || i % 3 != 0),
            "rerank {rerank}: {:?}",
            &batch.ids[..21]
        );
        let one = SearchParams {
            threads: 1,
            ..sp.clone()
        };
        for q in 0..ds.n_queries() {
            let r = idx
                .search(&ds.queries[q * DIM..(q + 1) * DIM], 7, &one, None)
                .unwrap();
            assert_eq!(r.ids, batch.row_ids(q), "rerank {rerank}: query {q}");
            assert_eq!(r.distances, batch.row_distances(q));
        }
    }
}
