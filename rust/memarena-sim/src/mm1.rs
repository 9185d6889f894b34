//! M/M/1 and M/M/c queues on the [`Engine`]: the simplest models the event
//! core runs, with closed forms to check it against (and the model behind
//! the SimPy speed benchmark).

use std::collections::VecDeque;

use memarena_core::error::{Error, Result};
use memarena_core::rng::Rng;

use crate::dist::ExpZiggurat;
use crate::engine::{Engine, EventQueue, Model, rng_stream};

/// Parameters of an M/M/c run.
#[derive(Clone, Debug, PartialEq)]
pub struct MmcConfig {
    /// Arrival rate λ (jobs per second), > 0.
    pub arrival_rate: f64,
    /// Service rate μ of one server (jobs per second), > 0.
    pub service_rate: f64,
    /// Number of servers c ≥ 1.
    pub servers: u32,
    /// Jobs whose waits are measured.
    pub jobs: u64,
    /// Jobs served first and not measured (warm-up from the empty state).
    pub warmup_jobs: u64,
    /// Seed; arrivals and services use separate streams of it.
    pub seed: u64,
}

/// Result of an M/M/c run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MmcReport {
    /// Measured jobs (those that started service after the warm-up).
    pub jobs: u64,
    /// Mean time in queue before service starts (W_q), seconds.
    pub mean_wait_s: f64,
    /// Mean time in system (W = W_q + service), seconds.
    pub mean_sojourn_s: f64,
    /// Events the engine handled.
    pub events: u64,
    /// Simulated time at the end, seconds.
    pub sim_time_s: f64,
}

/// Events of the queue model.
#[derive(Clone, Copy, Debug)]
pub enum MmcEvent {
    /// A job arrives.
    Arrival,
    /// A job leaves; carries its arrival time and its service start time.
    Departure {
        /// When the job arrived.
        arrived_s: f64,
        /// Whether it is measured.
        measured: bool,
    },
}

/// The M/M/c model state (public so other engines can embed it).
#[derive(Debug)]
pub struct MmcModel {
    /// Mean interarrival time `1 / λ` and mean service time `1 / μ`
    /// (a multiply per draw instead of a divide).
    mean_interarrival: f64,
    mean_service: f64,
    servers: u32,
    busy: u32,
    queue: VecDeque<f64>,
    arrivals: Rng,
    services: Rng,
    exp: &'static ExpZiggurat,
    arrivals_left: u64,
    started: u64,
    warmup: u64,
    measured_left: u64,
    sum_wait: f64,
    sum_sojourn: f64,
    measured: u64,
}

impl MmcModel {
    fn start_service(
        &mut self,
        now: f64,
        arrived_s: f64,
        q: &mut EventQueue<MmcEvent>,
    ) -> Result<()> {
        self.busy += 1;
        self.started += 1;
        let measured = self.started > self.warmup && self.measured_left > 0;
        if measured {
            self.measured_left -= 1;
            self.sum_wait += now - arrived_s;
        }
        let s = self.exp.sample(&mut self.services) * self.mean_service;
        q.schedule_at(
            now + s,
            MmcEvent::Departure {
                arrived_s,
                measured,
            },
        )?;
        Ok(())
    }
}

impl Model for MmcModel {
    type Event = MmcEvent;

    #[inline]
    fn handle(&mut self, now: f64, event: MmcEvent, q: &mut EventQueue<MmcEvent>) -> Result<()> {
        match event {
            MmcEvent::Arrival => {
                if self.arrivals_left > 1 {
                    self.arrivals_left -= 1;
                    let dt = self.exp.sample(&mut self.arrivals) * self.mean_interarrival;
                    q.schedule_at(now + dt, MmcEvent::Arrival)?;
                } else {
                    self.arrivals_left = 0;
                }
                if self.busy < self.servers {
                    self.start_service(now, now, q)?;
                } else {
                    self.queue.push_back(now);
                }
            }
            MmcEvent::Departure {
                arrived_s,
                measured,
            } => {
                if measured {
                    self.measured += 1;
                    self.sum_sojourn += now - arrived_s;
                }
                self.busy -= 1;
                if let Some(a) = self.queue.pop_front() {
                    self.start_service(now, a, q)?;
                }
            }
        }
        Ok(())
    }
}

/// Runs an M/M/c queue to completion of `warmup_jobs + jobs` jobs.
pub fn simulate_mmc(cfg: &MmcConfig) -> Result<MmcReport> {
    if !(cfg.arrival_rate > 0.0 && cfg.arrival_rate.is_finite()) {
        return Err(Error::invalid(
            "arrival_rate",
            format!("must be finite and > 0, got {}", cfg.arrival_rate),
        ));
    }
    if !(cfg.service_rate > 0.0 && cfg.service_rate.is_finite()) {
        return Err(Error::invalid(
            "service_rate",
            format!("must be finite and > 0, got {}", cfg.service_rate),
        ));
    }
    if cfg.servers == 0 {
        return Err(Error::invalid("servers", "must be >= 1"));
    }
    if cfg.jobs == 0 {
        return Err(Error::invalid("jobs", "must be >= 1"));
    }
    let model = MmcModel {
        mean_interarrival: 1.0 / cfg.arrival_rate,
        mean_service: 1.0 / cfg.service_rate,
        servers: cfg.servers,
        busy: 0,
        queue: VecDeque::new(),
        arrivals: rng_stream(cfg.seed, 0),
        services: rng_stream(cfg.seed, 1),
        exp: ExpZiggurat::get(),
        arrivals_left: cfg.jobs + cfg.warmup_jobs,
        started: 0,
        warmup: cfg.warmup_jobs,
        measured_left: cfg.jobs,
        sum_wait: 0.0,
        sum_sojourn: 0.0,
        measured: 0,
    };
    let mut eng = Engine::new(model);
    let first = eng.model.exp.sample(&mut eng.model.arrivals) * eng.model.mean_interarrival;
    eng.queue_mut().schedule_at(first, MmcEvent::Arrival)?;
    let stats = eng.run_until(f64::INFINITY)?;
    let m = &eng.model;
    let n = m.measured.max(1) as f64;
    Ok(MmcReport {
        jobs: m.measured,
        mean_wait_s: m.sum_wait / n,
        mean_sojourn_s: m.sum_sojourn / n,
        events: stats.events,
        sim_time_s: stats.now_s,
    })
}

/// Runs an M/M/1 queue (`servers = 1`).
pub fn simulate_mm1(
    arrival_rate: f64,
    service_rate: f64,
    jobs: u64,
    warmup_jobs: u64,
    seed: u64,
) -> Result<MmcReport> {
    simulate_mmc(&MmcConfig {
        arrival_rate,
        service_rate,
        servers: 1,
        jobs,
        warmup_jobs,
        seed,
    })
}

/// Closed-form mean wait in queue of M/M/1: `W_q = ρ / (μ − λ)` with
/// `ρ = λ / μ < 1`; `None` when the queue is unstable.
pub fn mm1_mean_wait(arrival_rate: f64, service_rate: f64) -> Option<f64> {
    mmc_mean_wait(arrival_rate, service_rate, 1)
}

/// Closed-form mean wait in queue of M/M/c (Erlang C):
/// `W_q = C(c, a) / (c μ − λ)` with `a = λ / μ`; `None` when `λ ≥ c μ`.
pub fn mmc_mean_wait(arrival_rate: f64, service_rate: f64, servers: u32) -> Option<f64> {
    let c = servers as f64;
    let a = arrival_rate / service_rate;
    let rho = a / c;
    if servers == 0 || rho.is_nan() || rho >= 1.0 {
        return None;
    }
    // sum_{k < c} a^k / k!, computed term by term.
    let mut term = 1.0;
    let mut sum = 0.0;
    for k in 0..servers {
        if k > 0 {
            term *= a / k as f64;
        }
        sum += term;
    }
    let last = term * a / c; // a^c / c!
    let tail = last / (1.0 - rho);
    let erlang_c = tail / (sum + tail);
    Some(erlang_c / (c * service_rate - arrival_rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_reduces_to_mm1() {
        let w1 = mm1_mean_wait(0.9, 1.0).unwrap();
        assert!((w1 - 9.0).abs() < 1e-12);
        let wc = mmc_mean_wait(0.9, 1.0, 1).unwrap();
        assert!((wc - 9.0).abs() < 1e-12);
        // M/M/2, λ = 1, μ = 1: a = 1, ρ = 0.5, C = 1/3, W_q = (1/3) / (2 - 1).
        assert!((mmc_mean_wait(1.0, 1.0, 2).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!(mm1_mean_wait(1.0, 1.0).is_none());
    }

    #[test]
    fn mm1_mean_wait_matches_theory_within_2_percent() {
        // ρ = 0.9: W_q = 9 s. 4M measured jobs keep the estimate well within 2%.
        let r = simulate_mm1(0.9, 1.0, 4_000_000, 100_000, 42).unwrap();
        let theory = mm1_mean_wait(0.9, 1.0).unwrap();
        let rel = (r.mean_wait_s - theory).abs() / theory;
        assert_eq!(r.jobs, 4_000_000);
        assert!(
            rel < 0.02,
            "mean wait {} vs {theory} ({:.2}%)",
            r.mean_wait_s,
            rel * 100.0
        );
        let rel_w = (r.mean_sojourn_s - 10.0).abs() / 10.0;
        assert!(rel_w < 0.02, "sojourn {}", r.mean_sojourn_s);
    }

    #[test]
    fn mmc_matches_erlang_c() {
        let r = simulate_mmc(&MmcConfig {
            arrival_rate: 3.2,
            service_rate: 1.0,
            servers: 4,
            jobs: 1_000_000,
            warmup_jobs: 10_000,
            seed: 3,
        })
        .unwrap();
        let theory = mmc_mean_wait(3.2, 1.0, 4).unwrap();
        assert!(
            (r.mean_wait_s - theory).abs() / theory < 0.03,
            "{} vs {theory}",
            r.mean_wait_s
        );
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(
            simulate_mm1(0.0, 1.0, 10, 0, 0)
                .unwrap_err()
                .to_string()
                .contains("arrival_rate")
        );
        assert!(simulate_mm1(1.0, f64::NAN, 10, 0, 0).is_err());
        assert!(simulate_mm1(1.0, 2.0, 0, 0, 0).is_err());
    }
}
