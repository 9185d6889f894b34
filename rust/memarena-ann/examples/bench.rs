//! Recall@10 and QPS of every index on a seeded Gaussian mixture.
//!
//! ```text
//! cargo run --release -p memarena-ann --example bench -- [n] [dim] [nq] [kinds,...]
//! ```
//! Defaults: 100000 base vectors, dim 128, 1000 held-out queries, all kinds.
//! QPS is reported single-threaded (`threads=1`) and on all cores.

use std::time::Instant;

use memarena_ann::dataset::{gaussian_mixture, ground_truth, recall_at_k};
use memarena_ann::{
    HnswConfig, IndexConfig, IvfBuildConfig, Metric, SearchParams, SimHashConfig, SpannBuildConfig,
    TenantFilter, TenantLists, VectorIndex, build,
};
use memarena_core::rng::Rng;

/// `(kind, build config, search points)`.
type Case<'a> = (&'a str, IndexConfig, Vec<SearchParams>);

fn main() -> memarena_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dim: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(128);
    let nq: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let only: Option<Vec<String>> = args
        .get(4)
        .map(|s| s.split(',').map(String::from).collect());
    let want = |k: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == k));
    let k = 10;
    let t = Instant::now();
    let ds = gaussian_mixture(n, nq, dim, 64, 0.5, 42)?;
    println!(
        "data: {n} x {dim}, {nq} queries, generated in {:.2}s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let truth = ground_truth(&ds.base, &ds.queries, dim, k, Metric::L2)?;
    println!(
        "ground truth (flat, all cores): {:.2}s",
        t.elapsed().as_secs_f64()
    );
    let ids: Vec<u64> = (0..n as u64).collect();

    let nlist = ((n as f64).sqrt() * 3.2) as usize; // 1024 at 100k
    let ivf = IndexConfig::Ivf(IvfBuildConfig {
        nlist,
        ..IvfBuildConfig::default()
    });
    let simhash = |n_bits, n_tables| {
        IndexConfig::SimHash(SimHashConfig {
            n_bits,
            n_tables,
            seed: 0,
            ..SimHashConfig::default()
        })
    };
    let configs: Vec<Case> = vec![
        ("flat", IndexConfig::Flat, vec![SearchParams::default()]),
        (
            "simhash",
            simhash(64, 4),
            [(0, 0), (100, 0), (500, 0), (1000, 0)]
                .iter()
                .map(|&(rerank, probes)| SearchParams {
                    rerank,
                    n_probes: probes,
                    ..Default::default()
                })
                .collect(),
        ),
        (
            "simhash",
            simhash(16, 16),
            [(1, 2000), (4, 4000), (16, 8000)]
                .iter()
                .map(|&(probes, rerank)| SearchParams {
                    rerank,
                    n_probes: probes,
                    ..Default::default()
                })
                .collect(),
        ),
        (
            "e2lsh", // width derived from the data (w = 0, w_scale = 4)
            IndexConfig::E2Lsh(Default::default()),
            [1, 4, 16]
                .iter()
                .map(|&p| SearchParams {
                    n_probes: p,
                    ..Default::default()
                })
                .collect(),
        ),
        (
            "ivf",
            ivf.clone(),
            [1, 4, 8, 16]
                .iter()
                .map(|&p| SearchParams {
                    nprobe: p,
                    ..Default::default()
                })
                .collect(),
        ),
        (
            "spann",
            IndexConfig::Spann(SpannBuildConfig {
                nlist,
                ..SpannBuildConfig::default()
            }),
            [1, 4, 8, 16]
                .iter()
                .map(|&p| SearchParams {
                    nprobe: p,
                    ..Default::default()
                })
                .collect(),
        ),
        (
            "hnsw",
            IndexConfig::Hnsw(HnswConfig::default()),
            [16, 32, 64, 128]
                .iter()
                .map(|&e| SearchParams {
                    ef_search: e,
                    ..Default::default()
                })
                .collect(),
        ),
        (
            "curator",
            IndexConfig::Curator(Default::default()),
            [100, 400, 1000, 2000]
                .iter()
                .map(|&e| SearchParams {
                    ef_search: e,
                    ..Default::default()
                })
                .collect(),
        ),
    ];
    println!(
        "| index | build params | search | recall@10 | QPS 1 thread | QPS all cores | build s | MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut built: Vec<(String, Box<dyn VectorIndex>)> = Vec::new();
    for (kind, bp, sps) in &configs {
        if !want(kind) {
            continue;
        }
        let t = Instant::now();
        let mut idx = build(Metric::L2, dim, bp)?;
        idx.train(&ds.base)?;
        idx.add(&ds.base, &ids)?;
        let build_s = t.elapsed().as_secs_f64();
        for sp in sps {
            let one = SearchParams {
                threads: 1,
                ..sp.clone()
            };
            let t = Instant::now();
            let r1 = idx.search(&ds.queries, k, &one, None)?;
            let qps1 = nq as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            let r = idx.search(&ds.queries, k, sp, None)?;
            let qps = nq as f64 / t.elapsed().as_secs_f64();
            assert_eq!(r1, r);
            let rec = recall_at_k(&r.ids, k, &truth, k);
            println!(
                "| {kind} | {bp:?} | nprobe={} ef={} n_probes={} rerank={} | {rec:.3} | {qps1:.0} | {qps:.0} | {build_s:.1} | {:.1} |",
                sp.nprobe,
                sp.ef_search,
                sp.n_probes,
                sp.rerank,
                idx.memory_bytes() as f64 / (1 << 20) as f64
            );
        }
        built.push((kind.to_string(), idx));
    }

    // Multi-tenant: 100 tenants of Zipf-like sizes, each vector in 1-2 tenants.
    if want("tenants") {
        let mut rng = Rng::seed_from_u64(7);
        let n_t = 100u32;
        let rows: Vec<Vec<u32>> = (0..n)
            .map(|_| {
                let mut r = vec![(rng.uniform().powi(3) * n_t as f64) as u32];
                if rng.bernoulli(0.2) {
                    r.push(rng.below(n_t as u64) as u32);
                }
                r
            })
            .collect();
        let csr = TenantLists::from_lists(&rows);
        let qt: Vec<u32> = (0..nq).map(|_| rng.below(n_t as u64) as u32).collect();
        let filter = TenantFilter::PerQuery(&qt);
        let mut flat = build(Metric::L2, dim, &IndexConfig::Flat)?;
        flat.add_with_tenants(&ds.base, &ids, Some(csr.as_tenants()))?;
        let ftruth = flat.search(&ds.queries, k, &SearchParams::default(), Some(&filter))?;
        println!(
            "\nfiltered search, {n_t} tenants (sizes {}..{})",
            flat.tenant_len(n_t - 1),
            flat.tenant_len(0)
        );
        println!("| index | search | recall@10 | QPS all cores | tenant bytes (median tenant) |");
        println!("|---|---|---|---|---|");
        let cases: Vec<Case> = vec![
            (
                "hnsw",
                IndexConfig::Hnsw(HnswConfig::default()),
                vec![
                    SearchParams {
                        ef_search: 64,
                        exact_filter_max: Some(0),
                        ..Default::default()
                    },
                    SearchParams {
                        ef_search: 64,
                        ..Default::default()
                    },
                ],
            ),
            (
                "ivf",
                ivf.clone(),
                vec![
                    SearchParams {
                        nprobe: 8,
                        exact_filter_max: Some(0),
                        ..Default::default()
                    },
                    SearchParams {
                        nprobe: 8,
                        ..Default::default()
                    },
                ],
            ),
            (
                "curator",
                IndexConfig::Curator(Default::default()),
                [200, 500, 1000]
                    .iter()
                    .map(|&e| SearchParams {
                        ef_search: e,
                        ..Default::default()
                    })
                    .collect(),
            ),
        ];
        for (kind, bp, sps) in cases {
            let mut idx = build(Metric::L2, dim, &bp)?;
            idx.train(&ds.base)?;
            idx.add_with_tenants(&ds.base, &ids, Some(csr.as_tenants()))?;
            for sp in sps {
                let t = Instant::now();
                let r = idx.search(&ds.queries, k, &sp, Some(&filter))?;
                let qps = nq as f64 / t.elapsed().as_secs_f64();
                let rec = recall_at_k(&r.ids, k, &ftruth.ids, k);
                let mut tb: Vec<usize> = (0..n_t).map(|t| idx.tenant_memory_bytes(t)).collect();
                tb.sort_unstable();
                println!(
                    "| {kind} | ef={} nprobe={} exact_filter_max={:?} | {rec:.3} | {qps:.0} | {} |",
                    sp.ef_search,
                    sp.nprobe,
                    sp.exact_filter_max,
                    tb[tb.len() / 2]
                );
            }
        }
    }
    drop(built);
    Ok(())
}
