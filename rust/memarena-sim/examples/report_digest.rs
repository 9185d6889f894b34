//! Prints the digest ([`ServingReport::digest`]: every metric, sample and
//! per-request outcome) of the report of each KV manager preset
//! ([`KvManagerConfig::presets`])
//! on the Azure conversation trace (at 1x and 8x speed, and with swap
//! preemption) and on synthetic shared-prefix, parallel-sampling and
//! multi-turn workloads. Used to check that a performance change leaves
//! every simulation result bit-identical.
//!
//! ```text
//! cargo run --release -p memarena-sim --example report_digest [-- DUMP_DIR]
//! ```
//! With `DUMP_DIR`, the full `Debug` print of each report is written there
//! (one file per scenario) for `diff`. The trace path comes from
//! `MEMARENA_AZURE_CONV_CSV`, else the shared data next to the repository;
//! without it only the synthetic scenarios run.

use std::path::{Path, PathBuf};

use memarena_sim::serving::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dump = std::env::args().nth(1).map(PathBuf::from);
    if let Some(d) = &dump {
        std::fs::create_dir_all(d)?;
    }
    let mut scenarios: Vec<(String, ServingConfig, Vec<RequestSpec>)> = Vec::new();
    let base = || {
        let mut c = ServingConfig::new(
            ModelSpec::preset("llama3_8b").expect("model preset"),
            Hardware::h100_sxm(),
        );
        c.sample_interval_s = 1.0;
        c
    };

    let path = std::env::var_os("MEMARENA_AZURE_CONV_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv")
        });
    if path.is_file() {
        let trace = read_azure_csv(&path)?;
        for scale in [1.0, 8.0] {
            let mut reqs = trace.clone();
            for r in &mut reqs {
                r.arrival_s /= scale;
            }
            for (name, kv) in KvManagerConfig::presets() {
                let mut c = base();
                c.kv = Some(kv);
                scenarios.push((format!("azure_x{scale}_{name}"), c, reqs.clone()));
            }
        }
        let mut reqs = trace.clone();
        for r in &mut reqs {
            r.arrival_s /= 8.0;
        }
        for (name, kv) in KvManagerConfig::presets() {
            let mut c = base();
            c.kv = Some(kv);
            c.scheduler.preemption = PreemptionMode::Swap;
            c.scheduler.victim = VictimPolicy::MostKv;
            scenarios.push((format!("azure_x8_swap_{name}"), c, reqs.clone()));
        }
    } else {
        eprintln!("{} not found: synthetic scenarios only", path.display());
    }

    for n_parallel in [1, 2] {
        let reqs = SharedPrefixWorkload {
            base: SyntheticWorkload {
                num_requests: 3000,
                arrivals: ArrivalProcess::Poisson { rate: 60.0 },
                prompt_tokens: LengthDist::LogNormal {
                    median: 300.0,
                    sigma: 1.0,
                },
                output_tokens: LengthDist::Exponential { mean: 150.0 },
                n_parallel,
                seed: 7,
            },
            num_groups: 20,
            prefix_tokens: 700,
            zipf_alpha: 1.1,
        }
        .generate()?;
        for (name, kv) in KvManagerConfig::presets() {
            for preemption in [PreemptionMode::Recompute, PreemptionMode::Swap] {
                let mut c = base();
                c.kv = Some(kv.clone());
                c.scheduler.preemption = preemption;
                // A small pool so that prefix-cache eviction and preemption happen.
                c.hardware.hbm_capacity_bytes = c.model.weight_bytes() + (3u64 << 30);
                c.gpu_memory_utilization = 1.0;
                c.sample_interval_s = 0.25;
                scenarios.push((
                    format!("prefix_n{n_parallel}_{preemption:?}_{name}"),
                    c,
                    reqs.clone(),
                ));
            }
        }
    }
    let reqs = MultiTurnWorkload {
        num_conversations: 600,
        conversation_rate: 4.0,
        turns: LengthDist::Uniform { min: 1, max: 8 },
        user_tokens: LengthDist::LogNormal {
            median: 120.0,
            sigma: 0.8,
        },
        output_tokens: LengthDist::Exponential { mean: 200.0 },
        mean_think_s: 5.0,
        seed: 3,
    }
    .generate()?;
    for (name, kv) in KvManagerConfig::presets() {
        let mut c = base();
        c.kv = Some(kv);
        c.hardware.hbm_capacity_bytes = c.model.weight_bytes() + (4u64 << 30);
        c.gpu_memory_utilization = 1.0;
        scenarios.push((format!("multiturn_{name}"), c, reqs.clone()));
    }

    let mut all = 0xcbf2_9ce4_8422_2325u64;
    for (name, c, reqs) in &scenarios {
        let r = simulate(c, reqs)?;
        let h = r.digest();
        all = (all ^ h).wrapping_mul(0x0000_0100_0000_01b3);
        println!("{name:<40} {h:016x}");
        if let Some(d) = &dump {
            std::fs::write(d.join(format!("{name}.txt")), format!("{r:#?}"))?;
        }
    }
    println!("{:<40} {all:016x}", "ALL");
    Ok(())
}
