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
//! Speed without changing a result: a decode step skips the grows its KV
//! manager promises to be quiet ([`KvManager::quiet_decode_tokens`]) and
//! tells it of the tokens at the next grow that is not (or before a
//! sample); between events, a stretch of decode-only iterations runs in
//! O(1) each without the event queue (`decode_run`).
//!
//! Under load (requests queued) the decode steps of most running requests
//! are alike: one token per sequence, a quiet grow, the same gap between
//! tokens. Such requests join the *cohort* (`Cohort`): their progress is
//! implicit (a count of cohort iterations since they joined) and the
//! iteration's work sums over them in O(1). An iteration only touches the
//! other running requests (the *actives*: prefills, non-quiet grows,
//! requests sampling their last token, newly admitted ones), in running
//! order, so the KV manager sees the same calls in the same order. A
//! member returns to the actives at the iteration its grow is not quiet or
//! it samples its last token; the cohort dissolves (every member made
//! explicit) where the general path needs them all: a decode run, or an
//! iteration whose token budget could cut the batch. (A sample tells the
//! manager of every member's skipped grows without dissolving it.)
//!
//! All of this is off with [`SchedulerConfig::fast_decode_runs`], and the
//! property tests compare: the same report, bit for bit.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use memarena_core::error::{Error, Result};

use super::cost::{BatchWork, CostModel};
use super::kv::{KvManager, KvRequest, invariant};
use super::metrics::{LogHistogram, Sample};
use crate::engine::{EventQueue, Model};

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

/// Running requests whose decode steps are implicit: each iteration adds
/// one token per sequence to every member. Member `r` that joined at epoch
/// `e0` has, at epoch `epoch`, `kv_tokens + (epoch - e0)` KV tokens (and as
/// many more generated tokens and sequence length); the sums below give the
/// iteration's work without visiting the members. A member is visited only
/// at the epochs its queue entry names: for a grow that is not quiet (made
/// in running order, among the actives; it stays a member), or to sample
/// its last token (it leaves).
#[derive(Debug, Default)]
struct Cohort {
    /// Members.
    len: u32,
    /// Sequences of the members (each decodes all of them).
    seqs: u64,
    /// Sum over members of `n * (kv_tokens - e0)`: the KV tokens read at
    /// epoch `e` are `kv_base + seqs * e`.
    kv_base: i64,
    /// Cohort iterations run (the epoch of the next one).
    epoch: u64,
    /// When the members' last token was sampled (the last iteration's end).
    last_end_s: f64,
    /// When each member must be active again. Entries of members that left
    /// are skipped (their `seq_no` or membership no longer matches).
    due: DueQueue,
}

/// Buckets of [`DueQueue`]'s wheel: members due within this many epochs
/// (within a block's tokens, mostly) skip the heap.
const DUE_WHEEL: u64 = 64;

/// The epochs at which cohort members must be active again, drained at
/// every epoch in turn: a wheel of [`DUE_WHEEL`] buckets for the near ones
/// (bucket `e % DUE_WHEEL` holds exactly the entries due at `e`, the next
/// epoch of its residue) and a heap for the far ones.
#[derive(Debug)]
struct DueQueue {
    /// (due epoch, `seq_no`, rid) per bucket.
    wheel: Vec<Vec<(u64, u64, u32)>>,
    /// Entries in the wheel.
    near: usize,
    far: BinaryHeap<Reverse<(u64, u64, u32)>>,
}

impl Default for DueQueue {
    fn default() -> Self {
        DueQueue {
            wheel: vec![Vec::new(); DUE_WHEEL as usize],
            near: 0,
            far: BinaryHeap::new(),
        }
    }
}

impl DueQueue {
    /// Adds `rid` (stamp `seq`), due at epoch `due`, after epoch `now`.
    fn push(&mut self, now: u64, due: u64, seq: u64, rid: u32) {
        debug_assert!(due > now);
        if due - now < DUE_WHEEL {
            self.wheel[(due % DUE_WHEEL) as usize].push((due, seq, rid));
            self.near += 1;
        } else {
            self.far.push(Reverse((due, seq, rid)));
        }
    }

    /// Appends the entries due at `epoch` to `out` as (`seq_no`, rid), in
    /// no particular order; every earlier epoch must have been drained.
    fn drain(&mut self, epoch: u64, out: &mut Vec<(u64, u32)>) -> Result<()> {
        let bucket = &mut self.wheel[(epoch % DUE_WHEEL) as usize];
        self.near -= bucket.len();
        for (due, seq, rid) in bucket.drain(..) {
            if due != epoch {
                return Err(invariant(
                    "cohort",
                    format!("request {rid}, due at epoch {due}, was still queued at epoch {epoch}"),
                ));
            }
            out.push((seq, rid));
        }
        while let Some(&Reverse((due, seq, rid))) = self.far.peek() {
            if due > epoch {
                break;
            }
            self.far.pop();
            out.push((seq, rid));
        }
        Ok(())
    }

    /// The earliest due epoch queued.
    fn min_due(&self) -> Option<u64> {
        let near = self.wheel.iter().flatten().map(|e| e.0).min();
        let far = self.far.peek().map(|Reverse(e)| e.0);
        near.into_iter().chain(far).min()
    }

    fn clear(&mut self) {
        if self.near > 0 {
            self.wheel.iter_mut().for_each(Vec::clear);
            self.near = 0;
        }
        self.far.clear();
    }
}

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

/// A request in a run of decode iterations ([`ServingModel::decode_run`]).
#[derive(Clone, Copy, Debug)]
struct RunSeq {
    rid: u32,
    /// KV tokens per sequence when the run started.
    kv_tokens: u32,
    /// KV tokens per sequence the manager has been told of.
    grown: u32,
    n: u32,
    /// First iteration of the run whose grow is not quiet.
    due: u32,
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

    /// Makes `rid` (it just sampled a token and decodes on) a cohort
    /// member if its next decode step is quiet and not its last; returns
    /// whether it joined.
    fn try_join_cohort(&mut self, rid: u32) -> bool {
        let epoch = self.cohort.epoch;
        let r = &mut self.reqs[rid as usize];
        if r.generated == 0 || r.kv_tokens + 1 != r.len || r.seqs != r.n {
            return false;
        }
        // Iterations from the next one until the first grow that is not
        // quiet, and until the one that samples the last token: the
        // member is active again at the earlier.
        let quiet = r.quiet_end.saturating_sub(r.kv_tokens);
        let due = quiet.min(r.output_tokens - r.generated - 1);
        if due == 0 {
            return false;
        }
        r.cohort_e0 = epoch;
        let c = &mut self.cohort;
        c.len += 1;
        c.seqs += r.n as u64;
        c.kv_base += r.n as i64 * (r.kv_tokens as i64 - epoch as i64);
        c.due.push(epoch, epoch + due as u64, r.seq_no, rid);
        true
    }

    /// Makes member `rid` explicit again: its fields brought to the
    /// current epoch, its share taken out of the cohort's sums.
    fn leave_cohort(&mut self, rid: u32) {
        let c = &mut self.cohort;
        let r = &mut self.reqs[rid as usize];
        c.len -= 1;
        c.seqs -= r.n as u64;
        c.kv_base -= r.n as i64 * (r.kv_tokens as i64 - r.cohort_e0 as i64);
        let d = (c.epoch - r.cohort_e0) as u32;
        if d > 0 {
            r.kv_tokens += d;
            r.generated += d;
            r.len += d;
            r.last_token_s = c.last_end_s;
        }
        r.cohort_e0 = NOT_IN_COHORT;
        if c.len == 0 {
            debug_assert_eq!((c.seqs, c.kv_base), (0, 0));
            c.due.clear();
        }
    }

    /// Grows cohort member `rid` for its decode step in this iteration, a
    /// grow that is not quiet, without its leaving the cohort: the skipped
    /// quiet grows, then this one (the calls the active path makes), and
    /// queues it again for the first iteration after this one whose grow
    /// is not quiet or that samples its last token (as `try_join_cohort`
    /// would). False if the manager cannot grow it (the skipped grows are
    /// made; nothing else changed).
    fn grow_member(&mut self, rid: u32) -> Result<bool> {
        let epoch = self.cohort.epoch;
        let r = &self.reqs[rid as usize];
        let steps = (epoch - r.cohort_e0) as u32;
        let (target, n) = (r.kv_tokens + steps + 1, r.n);
        if r.kv_grown + 1 < target {
            if !self.kv.grow(rid, target - 1, n) {
                return Err(self.broken_quiet_promise(rid, target - 1));
            }
            self.reqs[rid as usize].kv_grown = target - 1;
        }
        if !self.kv.grow(rid, target, n) {
            return Ok(false);
        }
        let ahead = self.kv.quiet_decode_tokens(rid, n);
        let r = &mut self.reqs[rid as usize];
        (r.kv_grown, r.quiet_end) = (target, target.saturating_add(ahead));
        let generated = r.generated + steps + 1;
        let due = ahead.min(r.output_tokens - generated - 1);
        self.cohort
            .due
            .push(epoch, epoch + 1 + due as u64, r.seq_no, rid);
        Ok(true)
    }

    /// Takes the members due at this epoch out of the due queue. Those
    /// that sample their last token in this iteration return to the
    /// actives, in running order. The others, whose decode grow in this
    /// iteration is not quiet, stay members: they are listed in `due_now`
    /// (in running order), and step 1 of `plan_step` grows them where the
    /// step-by-step path would (`grow_member`).
    fn wake_due(&mut self) -> Result<()> {
        let mut woken = std::mem::take(&mut self.woken);
        woken.clear();
        self.due_now.clear();
        let epoch = self.cohort.epoch;
        self.cohort.due.drain(epoch, &mut woken)?;
        woken.retain(|&(seq, rid)| {
            let r = &self.reqs[rid as usize];
            // (Not those that left the cohort earlier: preempted.)
            r.cohort_e0 != NOT_IN_COHORT && r.seq_no == seq
        });
        woken.sort_unstable();
        let reqs = &self.reqs;
        let due_now = &mut self.due_now;
        woken.retain(|&(seq, rid)| {
            let r = &reqs[rid as usize];
            let last = r.generated + (epoch - r.cohort_e0) as u32 + 1 == r.output_tokens;
            if !last {
                due_now.push((seq, rid));
            }
            last
        });
        for &(_, rid) in &woken {
            self.leave_cohort(rid);
        }
        if !woken.is_empty() {
            let reqs = &self.reqs;
            let seq = |rid: u32| reqs[rid as usize].seq_no;
            let mut merged = std::mem::take(&mut self.merged);
            merged.clear();
            let (mut a, mut b) = (0, 0);
            while a < self.actives.len() && b < woken.len() {
                if seq(self.actives[a]) < woken[b].0 {
                    merged.push(self.actives[a]);
                    a += 1;
                } else {
                    merged.push(woken[b].1);
                    b += 1;
                }
            }
            merged.extend_from_slice(&self.actives[a..]);
            merged.extend(woken[b..].iter().map(|&(_, rid)| rid));
            self.merged = std::mem::replace(&mut self.actives, merged);
        }
        self.woken = woken;
        Ok(())
    }

    /// Whether every running request fits this iteration's token budget
    /// at once (the cohort's decodes, the actives' decodes and whole
    /// remaining prefills): then no request's place in running order can
    /// change what it gets, and the members need not be visited.
    fn cohort_fits(&self) -> bool {
        let mut need = self.cohort.seqs;
        for &rid in &self.actives {
            let r = &self.reqs[rid as usize];
            need += if r.kv_tokens + 1 < r.len || r.generated == 0 {
                (r.len - r.kv_tokens) as u64
            } else {
                r.n as u64
            };
        }
        need <= self.cfg.max_num_batched_tokens as u64
    }

    /// Makes every member explicit (between iterations).
    fn dissolve_cohort(&mut self) {
        self.due_now.clear();
        if self.cohort.len == 0 {
            return;
        }
        for k in 0..self.running.len() {
            let rid = self.running[k];
            if self.in_cohort(rid) {
                self.leave_cohort(rid);
            }
        }
        self.actives.clear();
        self.actives.extend_from_slice(&self.running);
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

    fn pick_victim(&self, from: usize) -> usize {
        let cand = from..self.running.len();
        match self.cfg.victim {
            VictimPolicy::LastAdmitted => self.running.len() - 1,
            VictimPolicy::MostKv => cand
                .rev()
                .max_by_key(|&i| self.kv.resident_bytes(self.running[i]))
                .expect("at least the current request"),
            VictimPolicy::LeastProgress => cand
                .rev()
                .min_by_key(|&i| self.generated_now(self.running[i]))
                .expect("at least the current request"),
        }
    }

    /// Preempts `running[idx]`.
    fn preempt(&mut self, idx: usize) -> Result<()> {
        let rid = self.running.remove(idx);
        if self.in_cohort(rid) {
            self.leave_cohort(rid);
        } else {
            let p = self.position_in(&self.actives, rid);
            self.actives.remove(p);
        }
        self.free_kv(rid)?;
        let r = &self.reqs[rid as usize];
        self.running_seqs -= r.n;
        let bytes = self.kv.resident_bytes(rid);
        let swap = self.cfg.preemption == PreemptionMode::Swap
            && r.generated > 0
            && r.kv_tokens + 1 == r.len
            && self.swap_used + bytes <= self.swap_capacity;
        self.kv.free(rid);
        let r = &mut self.reqs[rid as usize];
        (r.kv_grown, r.quiet_end) = (0, 0);
        if swap {
            r.state = State::Swapped;
            r.swapped_bytes = bytes;
            self.swap_used += bytes;
            self.step_transfer_bytes += bytes;
            self.c.swap_bytes += bytes;
            self.c.preempt_swap += 1;
            self.swapped.push_back(rid);
        } else {
            self.c.recomputed_tokens += r.kv_tokens as u64;
            r.kv_tokens = 0;
            r.seqs = 1;
            r.state = State::Waiting;
            self.c.preempt_recompute += 1;
            self.waiting.push_front(rid);
        }
        Ok(())
    }

    /// Before `rid`'s KV is freed: the decode grows skipped as quiet are
    /// made (the manager may defer work to them that shows after a free,
    /// such as caching a block's content; [`KvManager::quiet_decode_tokens`]).
    fn free_kv(&mut self, rid: u32) -> Result<()> {
        let r = &self.reqs[rid as usize];
        self.grow_quietly(rid, r.kv_tokens, r.n)
    }

    /// Plans one iteration; returns its duration (None: nothing to run).
    fn plan_step(&mut self, now: f64) -> Result<Option<f64>> {
        self.kv.set_time(now);
        self.batch.clear();
        self.step_transfer_bytes = 0;
        let mut budget = self.cfg.max_num_batched_tokens;
        let mut work = BatchWork::default();
        let mut preempted = false;
        let mut batch_seqs = 0u32;
        if self.cohort.len > 0 {
            self.wake_due()?;
            if self.cohort_fits() {
                budget -= self.cohort.seqs as u32;
            } else {
                self.dissolve_cohort();
            }
        }

        // 1. Running requests (the actives; the cohort's decode steps are
        // added after them): at most one entry each, written in place (`nb`
        // of them) rather than pushed.
        let unset = Scheduled {
            rid: u32::MAX,
            kv_delta: 0,
        };
        self.batch.resize(self.actives.len(), unset);
        let mut nb = 0;
        let mut i = 0;
        let mut d = 0;
        'running: loop {
            // A member due for a grow comes first where it precedes the
            // next active in running order (its tokens are the cohort's,
            // already out of the budget).
            if let Some(&(seq, m)) = self.due_now.get(d)
                && (i >= self.actives.len()
                    || budget == 0
                    || seq < self.reqs[self.actives[i] as usize].seq_no)
            {
                d += 1;
                let r = &self.reqs[m as usize];
                if r.cohort_e0 == NOT_IN_COHORT || r.seq_no != seq {
                    continue; // (Preempted earlier in this loop.)
                }
                if !self.grow_member(m)? {
                    // Out of memory: it takes the active path, which
                    // tries the grow again and preempts.
                    self.leave_cohort(m);
                    self.actives.insert(i, m);
                    self.batch.push(unset);
                }
                continue;
            }
            if i >= self.actives.len() || budget == 0 {
                break;
            }
            let rid = self.actives[i];
            let r = &self.reqs[rid as usize];
            // Fast path (most of a busy batch): a decode step whose grow is
            // quiet and that fits the budget; the same sums as below.
            if r.generated > 0
                && r.kv_tokens + 1 == r.len
                && r.len <= r.quiet_end
                && r.n > 0
                && r.n <= budget
            {
                let (n, kv) = (r.n, r.kv_tokens);
                work.new_tokens += n as u64;
                work.kv_read_tokens += kv as u64 * n as u64;
                work.attn_pairs += n as f64 * (kv as f64 + 1.0);
                work.sampled_tokens += n as u64;
                batch_seqs += r.seqs.max(1);
                self.batch[nb] = Scheduled { rid, kv_delta: 1 };
                nb += 1;
                budget -= n;
                i += 1;
                continue;
            }
            let prefill = r.kv_tokens + 1 < r.len || r.generated == 0;
            let (new_tokens, seqs) = if prefill {
                let left = r.len - r.kv_tokens;
                (left.min(budget), 1)
            } else {
                (r.n, r.n)
            };
            if new_tokens > budget || new_tokens == 0 {
                break;
            }
            let kv_delta = if prefill { new_tokens } else { 1 };
            let target = r.kv_tokens + kv_delta;
            let quiet = !prefill && target <= r.quiet_end;
            if !quiet && !prefill && r.kv_grown + 1 < target {
                // The skipped quiet grows, before this one.
                if !self.kv.grow(rid, target - 1, seqs) {
                    return Err(self.broken_quiet_promise(rid, target - 1));
                }
                self.reqs[rid as usize].kv_grown = target - 1;
            }
            while !quiet && !self.kv.grow(rid, target, seqs) {
                let v = self.pick_victim(self.position_in(&self.running, rid));
                let victim_is_self = self.running[v] == rid;
                if victim_is_self && self.running.len() == 1 {
                    // Alone on the device it fits (`can_ever_fit` admitted
                    // it): preempting it would only repeat this forever.
                    return Err(invariant(
                        "scheduler",
                        format!(
                            "request {rid} alone cannot grow to {target} tokens x {seqs} sequences \
                             in the {} KV manager",
                            self.kv.name()
                        ),
                    ));
                }
                self.preempt(v)?;
                preempted = true;
                if victim_is_self {
                    continue 'running;
                }
            }
            if !quiet {
                let ahead = if self.cfg.fast_decode_runs {
                    self.kv.quiet_decode_tokens(rid, self.reqs[rid as usize].n)
                } else {
                    0
                };
                let r = &mut self.reqs[rid as usize];
                (r.kv_grown, r.quiet_end) = (target, target.saturating_add(ahead));
            }
            let r = &self.reqs[rid as usize];
            work.new_tokens += (kv_delta * seqs) as u64;
            work.kv_read_tokens += r.kv_tokens as u64 * seqs as u64;
            work.attn_pairs += seqs as f64
                * (kv_delta as f64 * r.kv_tokens as f64
                    + (kv_delta as f64 * (kv_delta as f64 + 1.0)) / 2.0);
            if r.kv_tokens + kv_delta == r.len {
                work.sampled_tokens += seqs as u64;
            }
            // (Requests already in the batch are never preempted later in
            // the step, so their `seqs` is final here.)
            batch_seqs += r.seqs.max(1);
            self.batch[nb] = Scheduled { rid, kv_delta };
            nb += 1;
            budget -= new_tokens;
            i += 1;
        }
        self.batch.truncate(nb);
        if let Some(&(_, m)) = self.due_now[d..]
            .iter()
            .find(|&&(seq, m)| self.in_cohort(m) && self.reqs[m as usize].seq_no == seq)
        {
            return Err(invariant(
                "cohort",
                format!("member {m}, due for a grow, was left out of the iteration"),
            ));
        }
        if self.cohort.len > 0 {
            // Every member decodes all its sequences, one token each, with
            // the KV of its epoch: whole numbers below 2^53, so these sums
            // are the bits of adding the members one by one.
            let c = &self.cohort;
            let kv_read = (c.kv_base + c.seqs as i64 * c.epoch as i64) as u64;
            work.new_tokens += c.seqs;
            work.sampled_tokens += c.seqs;
            work.kv_read_tokens += kv_read;
            work.attn_pairs += (kv_read + c.seqs) as f64;
            batch_seqs += c.seqs as u32;
        }

        // 2. Swapped requests come back first, FCFS.
        while let Some(&rid) = self.swapped.front() {
            if preempted || budget == 0 {
                break;
            }
            let r = &self.reqs[rid as usize];
            if self.running_seqs + r.n > self.cfg.max_num_seqs {
                break;
            }
            let (tokens, seqs) = (r.kv_tokens, r.seqs);
            let kvreq = r.kv.clone();
            if !self.kv.swap_in(rid, &kvreq, tokens, seqs) {
                if self.running.is_empty() {
                    // Nothing will free memory for it: it must fit now.
                    return Err(invariant(
                        "scheduler",
                        format!(
                            "swapped request {rid} ({tokens} tokens x {seqs} sequences) cannot \
                             swap back in with nothing running in the {} KV manager",
                            self.kv.name()
                        ),
                    ));
                }
                break;
            }
            self.swapped.pop_front();
            let r = &mut self.reqs[rid as usize];
            (r.kv_grown, r.quiet_end) = (tokens, tokens);
            self.swap_used -= r.swapped_bytes;
            self.step_transfer_bytes += self.kv.resident_bytes(rid);
            r.state = State::Running;
            self.running_seqs += r.n;
            self.push_running(rid);
        }

        // 3. Waiting requests, FCFS with head-of-line blocking.
        while !preempted && self.swapped.is_empty() && budget > 0 {
            let Some(&rid) = self.waiting.front() else {
                break;
            };
            let r = &self.reqs[rid as usize];
            if self.running_seqs + r.n > self.cfg.max_num_seqs {
                break;
            }
            let len = r.len;
            let kvreq = r.kv.clone();
            let hit = self.kv.lookup(rid, &kvreq, len);
            let left = len - hit;
            let new_tokens = if self.cfg.chunked_prefill {
                left.min(budget)
            } else if left <= budget {
                left
            } else {
                break;
            };
            if !self.kv.admit(rid, &kvreq, hit, hit + new_tokens) {
                break;
            }
            self.waiting.pop_front();
            self.c.prefix_query_tokens += len as u64;
            self.c.prefix_hit_tokens += hit as u64;
            let r = &mut self.reqs[rid as usize];
            r.kv_tokens = hit;
            (r.kv_grown, r.quiet_end) = (hit + new_tokens, hit + new_tokens);
            r.seqs = 1;
            r.state = State::Running;
            self.running_seqs += r.n;
            self.push_running(rid);
            work.new_tokens += new_tokens as u64;
            work.kv_read_tokens += hit as u64;
            work.attn_pairs += new_tokens as f64 * hit as f64
                + (new_tokens as f64 * (new_tokens as f64 + 1.0)) / 2.0;
            if hit + new_tokens == len {
                work.sampled_tokens += 1;
            }
            batch_seqs += 1;
            self.batch.push(Scheduled {
                rid,
                kv_delta: new_tokens,
            });
            budget -= new_tokens;
        }

        if self.check {
            self.kv.check_invariants()?;
            self.check_breakdown()?;
            self.check_cohort()?;
        }
        let (extra_bytes, extra_s) = self.kv.take_step_overhead();
        work.extra_hbm_bytes += extra_bytes;
        if self.batch.is_empty() && self.cohort.len == 0 {
            if self.step_transfer_bytes > 0 {
                // A transfer-only iteration (swap-ins or swap-outs).
                let dt = self.step_transfer_bytes as f64 / self.host_link_bytes_per_s;
                self.c.busy_s += dt;
                return Ok(Some(dt));
            }
            if preempted {
                return Ok(None);
            }
            if !self.running.is_empty() || self.has_queued() {
                return Err(invariant(
                    "scheduler",
                    format!(
                        "no progress at t={now}: {} running, {} waiting, {} swapped",
                        self.running.len(),
                        self.waiting.len(),
                        self.swapped.len()
                    ),
                ));
            }
            return Ok(None);
        }
        let mut dt = self.cost.iteration_time(&work) + extra_s;
        dt += self.step_transfer_bytes as f64 / self.host_link_bytes_per_s;
        self.c.iterations += 1;
        self.c.busy_s += dt;
        let seqs = batch_seqs;
        self.c.batch_seqs_sum += seqs as u64;
        self.c.batch_reqs_sum += self.batch.len() as u64 + self.cohort.len as u64;
        self.c.max_batch_seqs = self.c.max_batch_seqs.max(seqs);
        Ok(Some(dt))
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

    /// The cohort's invariants: `running` is in admission-stamp order and
    /// is the members and the actives merged; the sums are the members'; a
    /// member is due no earlier than the current epoch, and decodes.
    fn check_cohort(&self) -> Result<()> {
        let bad = |reason: String| Err(invariant("cohort", reason));
        let (mut len, mut seqs, mut kv_base) = (0u32, 0u64, 0i64);
        let mut actives = self.actives.iter();
        for (k, &rid) in self.running.iter().enumerate() {
            let r = &self.reqs[rid as usize];
            if k > 0 && self.reqs[self.running[k - 1] as usize].seq_no >= r.seq_no {
                return bad(format!("running is out of admission order at {k}"));
            }
            if r.state != State::Running {
                return bad(format!(
                    "request {rid} is listed running in state {:?}",
                    r.state
                ));
            }
            if r.cohort_e0 == NOT_IN_COHORT {
                if actives.next() != Some(&rid) {
                    return bad(format!(
                        "running request {rid} is neither active nor a member"
                    ));
                }
                continue;
            }
            if r.cohort_e0 > self.cohort.epoch || r.kv_tokens + 1 != r.len || r.seqs != r.n {
                return bad(format!(
                    "member {rid} is not a decoding request of an epoch so far"
                ));
            }
            // (Checked after planning: this iteration's step is quiet, or
            // the manager was grown for it.)
            let target = r.kv_tokens + (self.cohort.epoch - r.cohort_e0) as u32 + 1;
            if target > r.quiet_end && r.kv_grown < target {
                return bad(format!(
                    "member {rid} decodes to {target} tokens in this iteration, past its quiet \
                     grows ({}), but the KV manager was grown to {}",
                    r.quiet_end, r.kv_grown
                ));
            }
            len += 1;
            seqs += r.n as u64;
            kv_base += r.n as i64 * (r.kv_tokens as i64 - r.cohort_e0 as i64);
        }
        if actives.next().is_some() {
            return bad("an active request is not running".into());
        }
        let c = &self.cohort;
        if (len, seqs, kv_base) != (c.len, c.seqs, c.kv_base) {
            return bad(format!(
                "sums (members, sequences, KV base) are ({}, {}, {}), recomputed ({len}, {seqs}, {kv_base})",
                c.len, c.seqs, c.kv_base
            ));
        }
        if len > 0
            && let Some(due) = c.due.min_due()
            && due <= c.epoch
        {
            return bad(format!(
                "a member due at epoch {due} was not woken by epoch {}",
                c.epoch
            ));
        }
        Ok(())
    }

    fn check_breakdown(&self) -> Result<()> {
        let b = self
            .kv
            .breakdown(self.waiting.front().map(|&r| &self.reqs[r as usize].kv));
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

    /// Tells the KV manager of the tokens whose quiet decode grows were
    /// skipped (every running request's computed tokens, plus the iteration
    /// in flight), so that its breakdown is exact.
    fn sync_kv(&mut self) -> Result<()> {
        for k in 0..self.running.len() {
            let rid = self.running[k];
            let want = self.kv_tokens_now(rid);
            self.grow_quietly(rid, want, self.reqs[rid as usize].n)?;
        }
        if self.busy && self.cohort.len > 0 {
            // The iteration in flight: its entries and the members (a token
            // each), in running order, as the batch would list them all.
            let mut p = 0;
            for k in 0..self.running.len() {
                let rid = self.running[k];
                let kv_delta = if self.in_cohort(rid) {
                    1
                } else if let Some(e) = self.batch.get(p)
                    && e.rid == rid
                {
                    p += 1;
                    e.kv_delta
                } else {
                    continue; // (Swapped in by this iteration: no entry.)
                };
                let want = self.kv_tokens_now(rid) + kv_delta;
                self.grow_quietly(rid, want, self.reqs[rid as usize].n)?;
            }
            if p != self.batch.len() {
                return Err(invariant(
                    "scheduler",
                    "the iteration in flight holds a request that is not running, or out of order"
                        .into(),
                ));
            }
        } else if self.busy {
            for k in 0..self.batch.len() {
                let Scheduled { rid, kv_delta } = self.batch[k];
                let (want, n) = {
                    let r = &self.reqs[rid as usize];
                    (r.kv_tokens + kv_delta, r.n)
                };
                self.grow_quietly(rid, want, n)?;
            }
        }
        Ok(())
    }

    /// Grows `rid` to `tokens` if the manager was told of fewer: a grow
    /// that `quiet_decode_tokens` promised to be quiet.
    fn grow_quietly(&mut self, rid: u32, tokens: u32, n: u32) -> Result<()> {
        if self.reqs[rid as usize].kv_grown < tokens {
            if !self.kv.grow(rid, tokens, n) {
                return Err(self.broken_quiet_promise(rid, tokens));
            }
            self.reqs[rid as usize].kv_grown = tokens;
        }
        Ok(())
    }

    fn sample(&mut self, now: f64) -> Result<()> {
        self.sync_kv()?;
        let b = self
            .kv
            .breakdown(self.waiting.front().map(|&r| &self.reqs[r as usize].kv));
        if b.total() != self.kv.pool_bytes() {
            self.check_breakdown()?;
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

    /// Whether the iteration starting at `now` (a step just finished)
    /// begins a run of decode iterations: nothing queued, and every running
    /// request decoding all its sequences, fitting the token budget
    /// together, with its last token sampled at `now`.
    fn decode_run_ready(&self, now: f64) -> bool {
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
    fn decode_run(&mut self, now: f64, q: &mut EventQueue<ServingEvent>) -> Result<()> {
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
    fn end_decode_run(&mut self, iterations: u32, t: f64) {
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

    fn broken_quiet_promise(&self, rid: u32, tokens: u32) -> Error {
        invariant(
            "scheduler",
            format!(
                "the {} KV manager's quiet_decode_tokens promised request {rid} could grow to \
                 {tokens} tokens, but grow failed",
                self.kv.name()
            ),
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    proptest::proptest! {
        /// Drained at every epoch, the due queue gives exactly the entries
        /// due then (near ones through the wheel, far ones through the
        /// heap), across wheel laps and clears.
        #[test]
        fn due_queue_drains_what_is_due(
            ops in proptest::collection::vec((0u8..8, 1u64..200), 1..400),
        ) {
            let (mut q, mut reference) = (DueQueue::default(), BTreeSet::new());
            let (mut epoch, mut seq) = (0u64, 0u64);
            for (op, ahead) in ops {
                match op {
                    // Mostly pushes (some beyond the wheel), then epochs.
                    0..=4 => {
                        q.push(epoch, epoch + ahead, seq, seq as u32);
                        reference.insert((epoch + ahead, seq));
                        seq += 1;
                    }
                    5 if ahead < 5 => {
                        q.clear();
                        reference.clear();
                    }
                    _ => {
                        epoch += 1;
                        let mut got = Vec::new();
                        q.drain(epoch, &mut got).unwrap();
                        got.sort_unstable();
                        let want: Vec<(u64, u32)> = reference
                            .iter()
                            .take_while(|e| e.0 <= epoch)
                            .map(|&(_, s)| (s, s as u32))
                            .collect();
                        reference.retain(|e| e.0 > epoch);
                        proptest::prop_assert_eq!(&got, &want, "epoch {}", epoch);
                        proptest::prop_assert_eq!(q.min_due(), reference.first().map(|e| e.0));
                    }
                }
            }
        }
    }
}
