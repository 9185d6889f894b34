//! Continuous batching on the event engine: FCFS admission, chunked
//! prefill, a token budget and a sequence cap per iteration, and
//! preemption by recompute or swap with a configurable victim.
//!
//! One iteration, in the order of vLLM v1's `Scheduler.schedule`
//! (`vllm/v1/core/sched/scheduler.py`): first the running requests in
//! admission order (a decode step for each sequence, or the next prefill
//! chunk); when one cannot grow its KV, a victim is preempted and the
//! request retries. Then, if nothing was preempted, swapped-out requests
//! come back (FCFS), and then waiting requests are admitted in FCFS order
//! until the head does not fit (head-of-line blocking, no skipping).
//! A preempted request goes back to the *front* of the waiting queue
//! (recompute) or to the swapped queue (swap, as vLLM v0's
//! `_preempt_by_swap`).
//!
//! The semantics: `scheduler/plan.rs` (one iteration's batching,
//! preemption, swap-ins and admission) and this file (the requests' state,
//! arrivals, an iteration's end, samples).
//!
//! Speed paths, each planning what the semantics would, bit for bit:
//! - `scheduler/quiet.rs`: a decode step skips the grows its KV manager
//!   promises to be quiet ([`KvManager::quiet_decode_tokens`], an optional
//!   capability) and tells it of the tokens at the next grow that is not,
//!   before a sample and before the request's free;
//! - `scheduler/decode_run.rs`: between events, a stretch of decode-only
//!   iterations runs in O(1) each without the event queue;
//! - `scheduler/cohort.rs`: under load, decoding requests whose next steps
//!   are quiet join the *cohort*, whose decode steps are implicit: an
//!   iteration visits only the other running requests and adds the
//!   cohort's work as sums.
//!
//! All of this is off with [`SchedulerConfig::fast_decode_runs`], and the
//! property tests compare: the same report, bit for bit. A KV manager that
//! promises no quiet grows (the default) gets every call.

use std::collections::VecDeque;

use memarena_core::error::{Error, Result};

use super::cost::CostModel;
use super::kv::{KvManager, KvRequest, invariant};
use super::metrics::{LogHistogram, Sample};
use crate::engine::{EventQueue, Model};

mod cohort;
mod decode_run;
mod plan;
mod quiet;

use cohort::Cohort;
use decode_run::RunSeq;

/// How a preempted request gives its memory back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreemptionMode {
    /// Drop its KV and recompute it later as a longer prompt.
    Recompute,
    /// Copy its KV to host memory over the host link and back later
    /// (requests still in their first prefill are recomputed; so are
    /// requests that do not fit in the host swap space).
    Swap,
}

/// Which running request is preempted when memory runs out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VictimPolicy {
    /// The most recently admitted (vLLM: `self.running.pop()`).
    LastAdmitted,
    /// The one holding the most KV memory.
    MostKv,
    /// The one with the fewest generated tokens (least work lost).
    LeastProgress,
}

/// Limits of the batching scheduler.
///
/// Deserializes (serde) from its user-facing fields, all required; the
/// speed-only `fast_decode_runs` and `cohort_min_running` take their
/// [`Default`] values.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Token budget of one iteration (vLLM `max_num_batched_tokens`).
    pub max_num_batched_tokens: u32,
    /// Sequences running at once (vLLM `max_num_seqs`; also vAttention's
    /// number of request slots).
    pub max_num_seqs: u32,
    /// Split prompts into chunks that fit the remaining budget. Without it a
    /// prompt is prefilled in one iteration, and a prompt longer than the
    /// budget is rejected.
    #[serde(deserialize_with = "memarena_core::config::strict_bool")]
    pub chunked_prefill: bool,
    /// Recompute or swap.
    pub preemption: PreemptionMode,
    /// Victim choice.
    pub victim: VictimPolicy,
    /// Skip the KV manager's quiet decode grows
    /// ([`KvManager::quiet_decode_tokens`]; it is told of the tokens later,
    /// in one call) and run stretches of decode-only iterations between
    /// events without the event queue. Results are identical either way
    /// (tested); off only to check that.
    #[serde(skip, default = "speed_default_fast_decode_runs")]
    pub fast_decode_runs: bool,
    /// With `fast_decode_runs`, the running requests below which none
    /// joins the cohort (see the module docs): a small batch is cheap to
    /// visit, and a cohort formed while one request waits for a moment (a
    /// lightly loaded server) would dissolve at once. Speed only: results
    /// are the same for any value (tested).
    #[serde(skip, default = "speed_default_cohort_min_running")]
    pub cohort_min_running: u32,
}

fn speed_default_fast_decode_runs() -> bool {
    SchedulerConfig::default().fast_decode_runs
}

fn speed_default_cohort_min_running() -> u32 {
    SchedulerConfig::default().cohort_min_running
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_num_batched_tokens: 8192,
            max_num_seqs: 256,
            chunked_prefill: true,
            preemption: PreemptionMode::Recompute,
            victim: VictimPolicy::LastAdmitted,
            fast_decode_runs: true,
            cohort_min_running: 16,
        }
    }
}

impl SchedulerConfig {
    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if self.max_num_batched_tokens == 0 {
            return Err(Error::invalid(
                "scheduler.max_num_batched_tokens",
                "must be >= 1",
            ));
        }
        if self.max_num_seqs == 0 {
            return Err(Error::invalid("scheduler.max_num_seqs", "must be >= 1"));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Pending,
    Waiting,
    Running,
    Swapped,
    Done,
    Rejected,
}

#[derive(Clone, Debug)]
pub(crate) struct Req {
    pub kv: KvRequest,
    pub arrival_s: f64,
    pub output_tokens: u32,
    pub n: u32,
    /// Current sequence length (prompt plus generated tokens).
    pub len: u32,
    pub generated: u32,
    /// KV tokens computed per sequence.
    pub kv_tokens: u32,
    /// Tokens per sequence the KV manager was last grown (or admitted) to:
    /// behind the scheduler's count while quiet decode grows are skipped.
    pub kv_grown: u32,
    /// Decode grows up to this many tokens per sequence are quiet (the
    /// manager's promise at the last grow); `kv_grown` when none.
    pub quiet_end: u32,
    /// Active sequences (1 until the first token, then `n`).
    pub seqs: u32,
    pub state: State,
    pub first_token_s: f64,
    pub last_token_s: f64,
    pub finish_s: f64,
    pub swapped_bytes: u64,
    /// Admission stamp: `running` is in increasing stamp order.
    pub seq_no: u64,
    /// The cohort epoch it joined at ([`Cohort`]; its `kv_tokens`,
    /// `generated`, `len` and `last_token_s` are as of then), or
    /// [`NOT_IN_COHORT`].
    pub cohort_e0: u64,
}

pub(crate) const NOT_IN_COHORT: u64 = u64::MAX;

/// Events of the serving model.
#[derive(Clone, Copy, Debug)]
pub enum ServingEvent {
    /// The request with this index (in arrival order) arrives.
    Arrival(u32),
    /// The running iteration ends.
    StepDone,
    /// Take a time-series sample.
    Sample,
}

#[derive(Clone, Copy, Debug)]
struct Scheduled {
    rid: u32,
    /// KV tokens added per sequence.
    kv_delta: u32,
}

/// Cumulative counters of the scheduler.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    pub iterations: u64,
    pub busy_s: f64,
    pub batch_seqs_sum: u64,
    pub batch_reqs_sum: u64,
    pub max_batch_seqs: u32,
    pub preempt_recompute: u64,
    pub preempt_swap: u64,
    pub swap_bytes: u64,
    pub recomputed_tokens: u64,
    pub prefix_query_tokens: u64,
    pub prefix_hit_tokens: u64,
    pub prompt_tokens_computed: u64,
    pub output_tokens: u64,
    pub rejected_too_long: u64,
    pub rejected_unservable: u64,
}

/// The serving model: requests, queues, the KV manager and the cost model.
/// Generic over the manager so that its per-step calls (a decode step's
/// `grow` above all) are direct and inlined.
pub struct ServingModel<K: KvManager> {
    pub(crate) cfg: SchedulerConfig,
    pub(crate) kv: K,
    pub(crate) cost: CostModel,
    pub(crate) reqs: Vec<Req>,
    /// Request indices in arrival order.
    pub(crate) order: Vec<u32>,
    pub(crate) waiting: VecDeque<u32>,
    pub(crate) running: Vec<u32>,
    /// The running requests not in the cohort, in running order.
    actives: Vec<u32>,
    cohort: Cohort,
    next_seq_no: u64,
    /// Scratch lists of `wake_due`.
    woken: Vec<(u64, u32)>,
    merged: Vec<u32>,
    /// Members due this iteration for a grow that is not quiet, as
    /// (`seq_no`, rid) in running order (see `wake_due`).
    due_now: Vec<(u64, u32)>,
    pub(crate) swapped: VecDeque<u32>,
    /// The request the KV manager refused at the last admission try, while
    /// it is at the head of the waiting queue: the one request blocked on
    /// memory, for external fragmentation (see [`Self::blocked_on_memory`]).
    pub(crate) refused: Option<u32>,
    pub(crate) running_seqs: u32,
    pub(crate) busy: bool,
    pub(crate) arrivals_done: bool,
    pub(crate) max_model_len: u32,
    pub(crate) host_link_bytes_per_s: f64,
    pub(crate) swap_capacity: u64,
    pub(crate) swap_used: u64,
    pub(crate) sample_interval_s: f64,
    pub(crate) check: bool,
    pub(crate) samples: Vec<Sample>,
    /// The most samples `samples` may hold ([`super::sim::ServingConfig::max_samples`]).
    pub(crate) max_samples: usize,
    pub(crate) tbt: LogHistogram,
    pub(crate) c: Counters,
    batch: Vec<Scheduled>,
    run: Vec<RunSeq>,
    step_transfer_bytes: u64,
}

impl<K: KvManager> ServingModel<K> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: SchedulerConfig,
        kv: K,
        cost: CostModel,
        reqs: Vec<Req>,
        order: Vec<u32>,
        max_model_len: u32,
        host_link_bytes_per_s: f64,
        swap_capacity: u64,
        sample_interval_s: f64,
        check: bool,
    ) -> Self {
        ServingModel {
            cfg,
            kv,
            cost,
            reqs,
            order,
            waiting: VecDeque::new(),
            running: Vec::new(),
            actives: Vec::new(),
            cohort: Cohort::default(),
            next_seq_no: 0,
            woken: Vec::new(),
            merged: Vec::new(),
            due_now: Vec::new(),
            swapped: VecDeque::new(),
            refused: None,
            running_seqs: 0,
            busy: false,
            arrivals_done: false,
            max_model_len,
            host_link_bytes_per_s,
            swap_capacity,
            swap_used: 0,
            sample_interval_s,
            check,
            samples: Vec::new(),
            max_samples: usize::MAX,
            tbt: LogHistogram::default(),
            c: Counters::default(),
            batch: Vec::new(),
            run: Vec::new(),
            step_transfer_bytes: 0,
        }
    }

    fn has_work(&self) -> bool {
        !self.arrivals_done
            || self.busy
            || !self.waiting.is_empty()
            || !self.running.is_empty()
            || !self.swapped.is_empty()
    }

    fn has_queued(&self) -> bool {
        !self.waiting.is_empty() || !self.swapped.is_empty()
    }

    fn in_cohort(&self, rid: u32) -> bool {
        self.reqs[rid as usize].cohort_e0 != NOT_IN_COHORT
    }

    /// Cohort iterations member `rid` has run since it joined (0 for a
    /// request outside the cohort).
    fn cohort_steps(&self, rid: u32) -> u32 {
        let e0 = self.reqs[rid as usize].cohort_e0;
        if e0 == NOT_IN_COHORT {
            0
        } else {
            (self.cohort.epoch - e0) as u32
        }
    }

    /// Tokens generated so far by running request `rid` (a member's are
    /// implicit).
    fn generated_now(&self, rid: u32) -> u32 {
        self.reqs[rid as usize].generated + self.cohort_steps(rid)
    }

    /// KV tokens computed so far for running request `rid`.
    fn kv_tokens_now(&self, rid: u32) -> u32 {
        self.reqs[rid as usize].kv_tokens + self.cohort_steps(rid)
    }

    /// Starts running `rid`, last in running order.
    fn push_running(&mut self, rid: u32) {
        self.reqs[rid as usize].seq_no = self.next_seq_no;
        self.next_seq_no += 1;
        self.running.push(rid);
        self.actives.push(rid);
    }

    /// Index of running request `rid` in `list` (a list in running order
    /// that holds it).
    fn position_in(&self, list: &[u32], rid: u32) -> usize {
        let seq = self.reqs[rid as usize].seq_no;
        list.binary_search_by_key(&seq, |&x| self.reqs[x as usize].seq_no)
            .expect("the list holds the request")
    }

    fn on_arrival(&mut self, rid: u32) {
        let r = &mut self.reqs[rid as usize];
        let total = r.kv.prompt_tokens as u64 + r.output_tokens as u64;
        if total > self.max_model_len as u64 {
            r.state = State::Rejected;
            self.c.rejected_too_long += 1;
            return;
        }
        let unservable = !self.kv.can_ever_fit(&r.kv)
            || r.n > self.cfg.max_num_seqs
            || r.n > self.cfg.max_num_batched_tokens
            || (!self.cfg.chunked_prefill && r.kv.max_tokens > self.cfg.max_num_batched_tokens);
        if unservable {
            r.state = State::Rejected;
            self.c.rejected_unservable += 1;
            return;
        }
        r.state = State::Waiting;
        self.waiting.push_back(rid);
    }

    /// Applies the finished iteration.
    fn finish_step(&mut self, now: f64) -> Result<()> {
        if self.cohort.len > 0 {
            // Every member sampled a token per sequence, after the same gap.
            self.tbt
                .record(now - self.cohort.last_end_s, self.cohort.seqs);
            self.c.output_tokens += self.cohort.seqs;
            self.cohort.epoch += 1;
        }
        self.cohort.last_end_s = now;
        // Under load (requests queued, a batch large enough to be worth it),
        // decoding requests join the cohort.
        let may_join = self.cfg.fast_decode_runs
            && self.has_queued()
            && self.running.len() >= self.cfg.cohort_min_running as usize;
        let mut joined = false;
        // Sequences that got a token after the same gap are recorded as one
        // histogram entry (in a decode batch: all of them).
        let (mut gap_s, mut gap_seqs) = (f64::NAN, 0u64);
        let batch = std::mem::take(&mut self.batch);
        for &Scheduled { rid, kv_delta } in &batch {
            let r = &mut self.reqs[rid as usize];
            let prefill = r.generated == 0 || r.kv_tokens + 1 < r.len;
            if prefill {
                self.c.prompt_tokens_computed += kv_delta as u64;
            }
            r.kv_tokens += kv_delta;
            if r.kv_tokens < r.len {
                continue;
            }
            // A token is sampled for each sequence.
            let seqs = r.n;
            if r.generated == 0 {
                r.first_token_s = now;
            } else {
                let gap = now - r.last_token_s;
                if gap == gap_s {
                    gap_seqs += seqs as u64;
                } else {
                    self.tbt.record(gap_s, gap_seqs);
                    (gap_s, gap_seqs) = (gap, seqs as u64);
                }
            }
            r.seqs = r.n;
            r.generated += 1;
            r.len += 1;
            r.last_token_s = now;
            self.c.output_tokens += seqs as u64;
            if r.generated == r.output_tokens {
                r.state = State::Done;
                r.finish_s = now;
                self.running_seqs -= r.n;
                self.free_kv(rid)?;
                self.kv.free(rid);
                let p = self.position_in(&self.running, rid);
                self.running.remove(p);
                let p = self.position_in(&self.actives, rid);
                self.actives.remove(p);
            } else if may_join && self.try_join_cohort(rid) {
                joined = true;
            }
        }
        self.batch = batch;
        self.tbt.record(gap_s, gap_seqs);
        if joined {
            let reqs = &self.reqs;
            self.actives
                .retain(|&rid| reqs[rid as usize].cohort_e0 == NOT_IN_COHORT);
        }
        Ok(())
    }

    /// The head of the waiting queue if it is blocked on memory: the KV
    /// manager refused it at its last admission try. A head that waits for
    /// compute (the token budget, the sequence cap) or has not been tried
    /// yet is not: free memory counts as external fragmentation only while
    /// a request is blocked on memory (see the module docs of `kv`).
    pub(crate) fn blocked_on_memory(&self) -> Option<&KvRequest> {
        match (self.waiting.front(), self.refused) {
            (Some(&head), Some(r)) if head == r => Some(&self.reqs[head as usize].kv),
            _ => None,
        }
    }

    fn check_breakdown(&self) -> Result<()> {
        let b = self.kv.breakdown(self.blocked_on_memory());
        if b.total() != self.kv.pool_bytes() || b.cached_free_bytes > b.free_bytes {
            return Err(invariant(
                "breakdown",
                format!(
                    "categories sum to {} bytes, pool is {} ({b:?})",
                    b.total(),
                    self.kv.pool_bytes()
                ),
            ));
        }
        Ok(())
    }

    fn sample(&mut self, now: f64) -> Result<()> {
        self.sync_kv()?;
        let b = self.kv.breakdown(self.blocked_on_memory());
        if b.total() != self.kv.pool_bytes() {
            self.check_breakdown()?;
        }
        // The series' length is the simulated span over `sample_interval_s`,
        // both from the input: it grows fallibly, never an allocation abort,
        // and the error says what stretched the span.
        if self.samples.len() >= self.max_samples
            || memarena_core::fallible::try_grow(&mut self.samples, "sample_interval_s").is_err()
        {
            return Err(series_too_long(
                now,
                self.samples.len(),
                self.sample_interval_s,
            ));
        }
        self.samples.push(Sample {
            time_s: now,
            running_requests: self.running.len() as u32,
            running_seqs: self.running_seqs,
            waiting_requests: self.waiting.len() as u32,
            swapped_requests: self.swapped.len() as u32,
            token_states_bytes: b.token_states_bytes,
            reserved_bytes: b.reserved_bytes,
            internal_frag_bytes: b.internal_frag_bytes,
            external_frag_bytes: b.external_frag_bytes,
            idle_mapped_bytes: b.idle_mapped_bytes,
            free_bytes: b.free_bytes,
            cached_free_bytes: b.cached_free_bytes,
        });
        Ok(())
    }

    fn try_start(&mut self, now: f64, q: &mut EventQueue<ServingEvent>) -> Result<()> {
        if self.busy {
            return Ok(());
        }
        let mut planned = self.plan_step(now)?;
        if planned.is_none() && self.has_queued() {
            // Everything running was preempted this round; admit next round.
            planned = self.plan_step(now)?;
        }
        if let Some(dt) = planned {
            self.busy = true;
            // (`now` is later than the queue's clock after a decode run.)
            q.schedule_at(now + dt, ServingEvent::StepDone)?;
        }
        Ok(())
    }
}

impl<K: KvManager> Model for ServingModel<K> {
    type Event = ServingEvent;

    fn handle(
        &mut self,
        now: f64,
        event: ServingEvent,
        q: &mut EventQueue<ServingEvent>,
    ) -> Result<()> {
        match event {
            ServingEvent::Arrival(k) => {
                let rid = self.order[k as usize];
                self.on_arrival(rid);
                match self.order.get(k as usize + 1) {
                    Some(&next) => {
                        q.schedule_at(
                            self.reqs[next as usize].arrival_s,
                            ServingEvent::Arrival(k + 1),
                        )?;
                    }
                    None => self.arrivals_done = true,
                }
                self.try_start(now, q)
            }
            ServingEvent::StepDone => {
                self.busy = false;
                self.finish_step(now)?;
                if self.cohort.len > 0 && !self.has_queued() {
                    self.dissolve_cohort();
                }
                if self.decode_run_ready(now) {
                    self.decode_run(now, q)
                } else {
                    self.try_start(now, q)
                }
            }
            ServingEvent::Sample => {
                self.sample(now)?;
                if self.has_work() {
                    q.schedule_in(self.sample_interval_s, ServingEvent::Sample)?;
                }
                Ok(())
            }
        }
    }
}

/// The error of a sample series that cannot grow: the simulated time it
/// reached and the keys that stretch it (slow iterations or spread-out
/// arrivals), in the core's names.
fn series_too_long(now: f64, samples: usize, interval: f64) -> Error {
    let bytes = samples as f64 * std::mem::size_of::<Sample>() as f64;
    Error::invalid(
        "sample_interval_s",
        format!(
            "the simulation reached {now:.3e} s of simulated time, {samples} samples at \
             sample_interval_s={interval} ({bytes:.3e} B) and the series cannot grow further: raise \
             sample_interval_s (0: no series), or check what slows the simulated iterations \
             (cost.compute_efficiency, cost.bandwidth_efficiency, cost.iteration_overhead_s, \
             kv.page_map_latency_s) or spreads the arrivals (the workload's rate, time_scale)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series error says how far the simulation got and names every key
    /// that stretches the simulated span (it named only
    /// `sample_interval_s`, which is rarely the cause).
    #[test]
    fn a_series_that_cannot_grow_names_what_stretches_the_span() {
        let e = series_too_long(1.5e12, 16_947_456, 1.0).to_string();
        assert!(
            e.starts_with("invalid value for sample_interval_s: "),
            "{e}"
        );
        for key in [
            "1.500e12 s of simulated time",
            "16947456 samples",
            "cost.compute_efficiency",
            "cost.bandwidth_efficiency",
            "cost.iteration_overhead_s",
            "kv.page_map_latency_s",
            "rate",
        ] {
            assert!(e.contains(key), "{key} missing: {e}");
        }
    }
}
