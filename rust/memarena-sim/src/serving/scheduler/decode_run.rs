//! Decode runs (a speed path): between events, a stretch of decode-only
//! iterations (nothing queued, no request finishing) runs in O(1) per
//! iteration without the event queue, with the same results as
//! `plan_step` and `finish_step` step by step.

use memarena_core::error::Result;

use super::{Scheduled, ServingEvent, ServingModel};
use crate::engine::EventQueue;
use crate::serving::cost::BatchWork;
use crate::serving::kv::KvManager;

/// A request in a run of decode iterations ([`ServingModel::decode_run`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct RunSeq {
    rid: u32,
    /// KV tokens per sequence when the run started.
    kv_tokens: u32,
    /// KV tokens per sequence the manager has been told of.
    grown: u32,
    n: u32,
    /// First iteration of the run whose grow is not quiet.
    due: u32,
}

impl<K: KvManager> ServingModel<K> {
    /// Whether the iteration starting at `now` (a step just finished)
    /// begins a run of decode iterations: nothing queued, and every running
    /// request decoding all its sequences, fitting the token budget
    /// together, with its last token sampled at `now`.
    pub(super) fn decode_run_ready(&self, now: f64) -> bool {
        if !self.cfg.fast_decode_runs
            || self.running.is_empty()
            || self.has_queued()
            || self.cohort.len > 0
        {
            return false;
        }
        let mut seqs = 0u64;
        for &rid in &self.running {
            let r = &self.reqs[rid as usize];
            if r.generated == 0
                || r.kv_tokens + 1 != r.len
                || r.seqs != r.n
                || r.last_token_s != now
            {
                return false;
            }
            seqs += r.n as u64;
        }
        seqs <= self.cfg.max_num_batched_tokens as u64
    }

    /// Runs decode iterations from `now` until one must go through the
    /// event queue: it ends at or after the next queued event (an arrival
    /// or a sample sees the state mid-iteration), a request samples its last
    /// token, or the KV manager cannot grow a request (preemption). That
    /// iteration is scheduled as usual ([`plan_step`](Self::plan_step) or
    /// the equivalent here).
    ///
    /// Between those points every iteration is what `plan_step` and
    /// `finish_step` would do, in O(1): the batch and its work are the same
    /// each time plus one token per sequence, every sequence gets the same
    /// gap between tokens, and the KV manager is only called where a grow is
    /// not quiet ([`KvManager::quiet_decode_tokens`]), in the order
    /// `plan_step` would call it. Per-request state is brought up to date
    /// when the run ends. Results are bit-identical to the step-by-step
    /// path (`tests/serving.rs` compares them on random workloads).
    pub(super) fn decode_run(&mut self, now: f64, q: &mut EventQueue<ServingEvent>) -> Result<()> {
        let horizon = q.peek_time().unwrap_or(f64::INFINITY);
        let (mut seqs, mut kv_read, mut attn_pairs) = (0u64, 0u64, 0u64);
        // Iterations until the first request samples its last token.
        let mut left = u32::MAX;
        self.run.clear();
        for &rid in &self.running {
            let r = &self.reqs[rid as usize];
            seqs += r.n as u64;
            kv_read += r.kv_tokens as u64 * r.n as u64;
            attn_pairs += r.n as u64 * (r.kv_tokens as u64 + 1);
            left = left.min(r.output_tokens - r.generated);
            self.run.push(RunSeq {
                rid,
                kv_tokens: r.kv_tokens,
                grown: r.kv_grown,
                n: r.n,
                due: r.quiet_end.saturating_sub(r.kv_tokens),
            });
        }
        let mut next_due = self.run.iter().map(|s| s.due).min().unwrap_or(u32::MAX);
        let requests = self.run.len() as u64;
        let (mut t, mut j) = (now, 0u32);
        loop {
            self.kv.set_time(t);
            if j == next_due {
                next_due = u32::MAX;
                for i in 0..self.run.len() {
                    let s = self.run[i];
                    if s.due == j {
                        let target = s.kv_tokens + j + 1;
                        // The skipped quiet grows, then this iteration's.
                        if s.grown + 1 < target {
                            if !self.kv.grow(s.rid, target - 1, s.n) {
                                return Err(self.broken_quiet_promise(s.rid, target - 1));
                            }
                            self.run[i].grown = target - 1;
                        }
                        if !self.kv.grow(s.rid, target, s.n) {
                            // Out of memory: this iteration preempts, the
                            // general way.
                            self.end_decode_run(j, t);
                            return self.try_start(t, q);
                        }
                        self.run[i].grown = target;
                        self.run[i].due =
                            (j + 1).saturating_add(self.kv.quiet_decode_tokens(s.rid, s.n));
                    }
                    next_due = next_due.min(self.run[i].due);
                }
            }
            if self.check {
                self.kv.check_invariants()?;
                self.check_breakdown()?;
            }
            let (extra_bytes, extra_s) = self.kv.take_step_overhead();
            let work = BatchWork {
                new_tokens: seqs,
                sampled_tokens: seqs,
                // Whole numbers below 2^53: the same value `plan_step`
                // sums in floating point.
                attn_pairs: (attn_pairs + j as u64 * seqs) as f64,
                kv_read_tokens: kv_read + j as u64 * seqs,
                extra_hbm_bytes: extra_bytes,
            };
            let dt = self.cost.iteration_time(&work) + extra_s;
            self.c.iterations += 1;
            self.c.busy_s += dt;
            self.c.batch_seqs_sum += seqs;
            self.c.batch_reqs_sum += requests;
            self.c.max_batch_seqs = self.c.max_batch_seqs.max(seqs as u32);
            let end = t + dt;
            // (A NaN end goes to the queue, which rejects it.)
            if j + 1 == left || end >= horizon || end.is_nan() {
                // This iteration ends through the queue (a sample during it
                // tells the manager of the skipped grows first).
                self.end_decode_run(j, t);
                self.batch.clear();
                self.batch.extend(self.run.iter().map(|s| Scheduled {
                    rid: s.rid,
                    kv_delta: 1,
                }));
                self.step_transfer_bytes = 0;
                self.busy = true;
                q.schedule_at(end, ServingEvent::StepDone)?;
                return Ok(());
            }
            // `finish_step` of iteration `j`: one token per sequence.
            self.tbt.record(end - t, seqs);
            self.c.output_tokens += seqs;
            t = end;
            j += 1;
        }
    }

    /// Brings the requests of a decode run up to date after its first
    /// `iterations` iterations, the last of which ended at `t`.
    pub(super) fn end_decode_run(&mut self, iterations: u32, t: f64) {
        for s in &self.run {
            let r = &mut self.reqs[s.rid as usize];
            (r.kv_grown, r.quiet_end) = (s.grown, s.kv_tokens.saturating_add(s.due));
            if iterations > 0 {
                r.kv_tokens += iterations;
                r.generated += iterations;
                r.len += iterations;
                r.last_token_s = t;
            }
        }
    }
}
