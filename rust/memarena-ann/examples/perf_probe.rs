//! Workload drivers for profiling (`valgrind --tool=callgrind`):
//! `MEMARENA_PROBE=ivf|lsh4x64|lsh16x16 cargo run --release -p memarena-ann
//! --example perf_probe`. The index is built once and
//! cached in `MEMARENA_PROBE_DIR` (default the system temp dir), so a
//! profiled run only loads it and searches 1000 queries on one thread.

use memarena_ann::dataset::gaussian_mixture;
use memarena_ann::{
    IndexConfig, IvfBuildConfig, SearchParams, SimHashConfig, VectorIndex, build, from_bytes,
};

/// Search parameters from `name=value,...` (`nprobe`, `n_probes`, `rerank`,
/// `ef_search`: the knobs the probes sweep) over the Rust defaults.
fn search_params(s: &str) -> SearchParams {
    let mut p = SearchParams::default();
    for kv in s.split(',').filter(|x| !x.is_empty()) {
        let (k, v) = kv.split_once('=').expect("name=value");
        let v: usize = v.parse().expect("an integer");
        match k {
            "nprobe" => p.nprobe = v,
            "n_probes" => p.n_probes = v,
            "rerank" => p.rerank = v,
            "ef_search" => p.ef_search = v,
            other => panic!("unknown search parameter {other}"),
        }
    }
    p
}

fn simhash(n_bits: usize, n_tables: usize) -> IndexConfig {
    IndexConfig::SimHash(SimHashConfig {
        n_bits,
        n_tables,
        seed: 0,
        ..SimHashConfig::default()
    })
}

fn main() {
    let which = std::env::var("MEMARENA_PROBE").unwrap_or_else(|_| "ivf".into());
    let (config, search_p) = match which.as_str() {
        "ivf" => (
            IndexConfig::Ivf(IvfBuildConfig {
                nlist: 1024,
                ..IvfBuildConfig::default()
            }),
            "nprobe=12",
        ),
        "lsh4x64" => (simhash(64, 4), "n_probes=0,rerank=20"),
        "lsh16x16" => (simhash(16, 16), "n_probes=4,rerank=4000"),
        other => panic!("unknown probe {other}"),
    };
    let search_p = std::env::var("MEMARENA_PROBE_SEARCH").unwrap_or_else(|_| search_p.into());
    let data = gaussian_mixture(100_000, 1000, 128, 64, 0.5, 42).expect("data");
    let dir = std::env::var("MEMARENA_PROBE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let path = dir.join(format!("memarena_probe_{which}.bin"));
    let idx: Box<dyn VectorIndex> = match std::fs::read(&path) {
        Ok(bytes) => from_bytes(&bytes).expect("cached index"),
        Err(_) => {
            let mut idx = build(memarena_ann::Metric::L2, 128, &config).expect("build");
            idx.train(&data.base).expect("train");
            let ids: Vec<u64> = (0..data.n_base() as u64).collect();
            idx.add(&data.base, &ids).expect("add");
            std::fs::write(&path, idx.to_bytes()).expect("cache");
            idx
        }
    };
    let mut p = search_params(&search_p);
    p.threads = 1;
    // `MEMARENA_PROBE_REPS` timed repeats; the median is reported.
    let reps: usize = std::env::var("MEMARENA_PROBE_REPS").map_or(1, |v| v.parse().expect("reps"));
    let mut times = Vec::new();
    let mut r = None;
    for _ in 0..reps.max(1) {
        let t0 = std::time::Instant::now();
        r = Some(idx.search(&data.queries, 10, &p, None).expect("search"));
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let s = times[times.len() / 2];
    let r = r.expect("searched");
    if std::env::var_os("MEMARENA_PROBE_RECALL").is_none() {
        eprintln!("{which} {search_p}: {:.0} q/s (1 thread)", 1000.0 / s);
        return;
    }
    let truth = memarena_ann::dataset::ground_truth(
        &data.base,
        &data.queries,
        128,
        10,
        memarena_ann::Metric::L2,
    )
    .expect("truth");
    let rec = memarena_ann::dataset::recall_at_k(&r.ids, 10, &truth, 10);
    eprintln!(
        "{which} {search_p}: recall {rec:.3}, {:.0} q/s (1 thread)",
        1000.0 / s
    );
}
