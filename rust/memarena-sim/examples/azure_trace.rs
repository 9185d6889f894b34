//! Replays the Azure LLM inference trace (2023, conversation) through the
//! serving model with each KV manager, on Llama-3-8B and an H100, and prints
//! simulation speed (requests per CPU-second) and the KV memory breakdown.
//!
//! ```text
//! cargo run --release -p memarena-sim --example azure_trace [-- TIME_SCALE [MANAGER [RUNS]]]
//! ```
//! The trace path comes from `MEMARENA_AZURE_CONV_CSV`, else
//! `../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv` next to the
//! repository. `TIME_SCALE` (default 1) divides the arrival timestamps
//! (e.g. 8 replays the trace 8x faster, saturating the device). `MANAGER`
//! (`all` for every one) picks a manager; `RUNS` (default 5) is the number
//! of timed runs (1 for profiling under callgrind). `MEMARENA_CLOCK=wall`
//! times by the wall clock instead of the CPU time's 10 ms ticks (finer;
//! for A/B comparisons of two builds, `benchmarks/sim_ab.py`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use memarena_sim::serving::*;

/// CPU time of this process (user + system), seconds; wall time where
/// `/proc` is unavailable.
fn cpu_time_s(wall: &Instant) -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or_else(|| wall.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var_os("MEMARENA_AZURE_CONV_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv")
        });
    if !path.is_file() {
        eprintln!("{} not found; set MEMARENA_AZURE_CONV_CSV", path.display());
        return Ok(());
    }
    let scale: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1.0);
    let mut reqs = read_azure_csv(&path)?;
    for r in &mut reqs {
        r.arrival_s /= scale;
    }
    println!(
        "{} requests, {:.0} s of arrivals (time scale 1/{scale}); llama3_8b on h100_sxm",
        reqs.len(),
        reqs.last().map_or(0.0, |r| r.arrival_s)
    );
    let managers = KvManagerConfig::presets();
    println!(
        "{:<17} {:>13} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6} | {:>6} {:>6} {:>6} {:>6} {:>6} | {:>6}",
        "manager",
        "req/cpu-s",
        "done",
        "rej",
        "req/s",
        "ttft50",
        "ttft99",
        "tbt99",
        "preempt",
        "token",
        "resv",
        "intfr",
        "extfr",
        "free",
        "tok/used"
    );
    let only = std::env::args().nth(2).filter(|m| m != "all");
    let runs: usize = std::env::args()
        .nth(3)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5)
        .max(1);
    for (name, kv) in managers {
        if only.as_deref().is_some_and(|o| name != o) {
            continue;
        }
        let mut c = ServingConfig::new(ModelSpec::preset("llama3_8b")?, Hardware::h100_sxm());
        c.kv = Some(kv);
        c.sample_interval_s = 1.0;
        // Best and median of the runs: the CPU time of one run is inflated
        // by other processes sharing the caches.
        let wall = Instant::now();
        let by_wall = std::env::var("MEMARENA_CLOCK").is_ok_and(|v| v == "wall");
        let clock = || {
            if by_wall {
                wall.elapsed().as_secs_f64()
            } else {
                cpu_time_s(&wall)
            }
        };
        let mut cpu_runs = Vec::new();
        let mut r = None;
        for _ in 0..runs {
            let t0 = clock();
            r = Some(simulate(&c, &reqs)?);
            cpu_runs.push((clock() - t0).max(1e-6));
        }
        cpu_runs.sort_by(f64::total_cmp);
        let (best, median) = (cpu_runs[0], cpu_runs[runs / 2]);
        let r = r.expect("ran");
        let b = r.mean_busy_breakdown;
        let pct = |x: u64| 100.0 * x as f64 / r.kv_pool_bytes as f64;
        println!(
            "{:<17} {:>13} {:>6} {:>5} {:>8.2} {:>8.3} {:>8.3} {:>8.4} {:>6} | {:>5.1}% {:>5.1}% {:>5.1}% {:>5.1}% {:>5.1}% | {:>5.1}%",
            name,
            format!(
                "{:.0}/{:.0}",
                reqs.len() as f64 / best,
                reqs.len() as f64 / median
            ),
            r.completed,
            r.rejected_too_long + r.rejected_unservable,
            r.throughput_requests_per_s,
            r.ttft_s.p50,
            r.ttft_s.p99,
            r.tbt_s.p99,
            r.preemptions_recompute + r.preemptions_swap,
            pct(b.token_states_bytes),
            pct(b.reserved_bytes),
            pct(b.internal_frag_bytes),
            pct(b.external_frag_bytes),
            pct(b.free_bytes),
            100.0 * r.token_state_share_of_used()
        );
    }
    Ok(())
}
