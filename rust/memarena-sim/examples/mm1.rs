//! M/M/1 at ρ = 0.9 on the event engine: mean wait against ρ / (μ − λ) and
//! jobs simulated per second (the Rust side of the SimPy benchmark).
//!
//! ```text
//! cargo run --release -p memarena-sim --example mm1 [-- JOBS]
//! ```

use std::time::Instant;

use memarena_sim::mm1::{mm1_mean_wait, simulate_mm1};

/// CPU seconds of this process (user + system, from `/proc/self/stat`),
/// or `None` where unavailable.
fn cpu_time_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let f: Vec<&str> = s[s.rfind(')')? + 2..].split_whitespace().collect();
    Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let (lambda, mu) = (0.9, 1.0);
    let theory = mm1_mean_wait(lambda, mu).expect("stable");
    for seed in 0..3 {
        let t = Instant::now();
        let c0 = cpu_time_s();
        let r = simulate_mm1(lambda, mu, jobs, jobs / 100, seed)?;
        let wall = t.elapsed().as_secs_f64();
        let cpu = match (c0, cpu_time_s()) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => wall,
        };
        println!(
            "seed {seed}: {} jobs, mean wait {:.4} s vs theory {theory:.4} s ({:+.2}%), {:.1} M jobs/s wall, {:.1} M jobs per CPU-s ({} events)",
            r.jobs,
            r.mean_wait_s,
            100.0 * (r.mean_wait_s - theory) / theory,
            (jobs + jobs / 100) as f64 / wall / 1e6,
            (jobs + jobs / 100) as f64 / cpu / 1e6,
            r.events
        );
    }
    Ok(())
}
