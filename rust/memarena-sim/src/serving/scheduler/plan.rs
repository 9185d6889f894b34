//! One iteration's plan: the scheduling semantics (batching, preemption,
//! swap-ins, admission), in the order of the module docs of
//! [`scheduler`](super). The speed paths it calls are marked as such; each
//! plans what the general path would, with the same sums.

use memarena_core::error::Result;

use super::{PreemptionMode, Scheduled, ServingModel, State, VictimPolicy};
use crate::serving::cost::BatchWork;
use crate::serving::kv::{KvManager, invariant};

/// The sums of the iteration being planned.
pub(super) struct Plan {
    /// Tokens left in the iteration's budget.
    pub(super) budget: u32,
    /// The batch's work so far (the cost model's input).
    pub(super) work: BatchWork,
    /// Whether a running request was preempted (then nothing is swapped in
    /// or admitted).
    pub(super) preempted: bool,
    /// Sequences in the batch so far.
    pub(super) batch_seqs: u32,
}

/// What the general path did with an active request.
enum Active {
    /// It is in the batch with this entry.
    Scheduled(Scheduled),
    /// It was the victim of its own preemption: the next active request
    /// takes its place.
    Preempted,
    /// It does not fit the budget: the running requests' part ends.
    Stop,
}

impl<K: KvManager> ServingModel<K> {
    /// Plans one iteration; returns its duration (None: nothing to run).
    pub(super) fn plan_step(&mut self, now: f64) -> Result<Option<f64>> {
        self.kv.set_time(now);
        self.batch.clear();
        self.step_transfer_bytes = 0;
        let mut p = Plan {
            budget: self.cfg.max_num_batched_tokens,
            work: BatchWork::default(),
            preempted: false,
            batch_seqs: 0,
        };
        if self.cohort.len > 0 {
            self.start_cohort_step(&mut p)?;
        }
        self.schedule_running(&mut p)?;
        if self.cohort.len > 0 {
            self.add_cohort_work(&mut p);
        }
        self.schedule_swapped(&mut p)?;
        self.schedule_waiting(&mut p);
        self.close_step(now, p)
    }

    /// Step 1, the running requests in running order: each a decode step
    /// (every sequence) or its next prefill chunk, until the budget is
    /// spent or one does not fit; a request that cannot grow preempts a
    /// victim and retries. Only the actives are visited: cohort members decode
    /// implicitly (their tokens are out of the budget already), except that
    /// a member due for a grow that is not quiet is grown where the
    /// step-by-step path would grow it. The entries are written in place
    /// (at most one per active) rather than pushed.
    #[inline(always)]
    fn schedule_running(&mut self, p: &mut Plan) -> Result<()> {
        let unset = Scheduled {
            rid: u32::MAX,
            kv_delta: 0,
        };
        self.batch.resize(self.actives.len(), unset);
        let (mut nb, mut i, mut d) = (0, 0, 0);
        loop {
            // A member due for a grow comes first where it precedes the
            // next active in running order.
            if let Some(&(seq, m)) = self.due_now.get(d)
                && (i >= self.actives.len()
                    || p.budget == 0
                    || seq < self.reqs[self.actives[i] as usize].seq_no)
            {
                d += 1;
                self.grow_due_member(seq, m, i)?;
                continue;
            }
            if i >= self.actives.len() || p.budget == 0 {
                break;
            }
            let rid = self.actives[i];
            let entry = match self.quiet_decode_step(rid, p) {
                Some(e) => e,
                None => match self.schedule_active(rid, p)? {
                    Active::Scheduled(e) => e,
                    Active::Preempted => continue,
                    Active::Stop => break,
                },
            };
            self.batch[nb] = entry;
            nb += 1;
            i += 1;
        }
        self.batch.truncate(nb);
        self.check_due_done(d)
    }

    /// The general path of active request `rid`: its next prefill chunk
    /// (as much as the budget allows) or a decode step of every sequence.
    /// The KV manager grows it (after the grows skipped as quiet) unless
    /// the step is quiet; out of memory, victims are preempted until it
    /// fits.
    #[inline(always)]
    fn schedule_active(&mut self, rid: u32, p: &mut Plan) -> Result<Active> {
        let r = &self.reqs[rid as usize];
        let prefill = r.kv_tokens + 1 < r.len || r.generated == 0;
        let (new_tokens, seqs) = if prefill {
            let left = r.len - r.kv_tokens;
            (left.min(p.budget), 1)
        } else {
            (r.n, r.n)
        };
        if new_tokens > p.budget || new_tokens == 0 {
            return Ok(Active::Stop);
        }
        let kv_delta = if prefill { new_tokens } else { 1 };
        let target = r.kv_tokens + kv_delta;
        let quiet = !prefill && target <= r.quiet_end;
        if !quiet {
            if !prefill {
                // The skipped quiet grows, before this one.
                self.grow_quietly(rid, target - 1, seqs)?;
            }
            if !self.grow_or_preempt(rid, target, seqs, p)? {
                return Ok(Active::Preempted);
            }
            self.note_grown(rid, target);
        }
        let r = &self.reqs[rid as usize];
        let w = &mut p.work;
        w.new_tokens += (kv_delta * seqs) as u64;
        w.kv_read_tokens += r.kv_tokens as u64 * seqs as u64;
        w.attn_pairs += seqs as f64
            * (kv_delta as f64 * r.kv_tokens as f64
                + (kv_delta as f64 * (kv_delta as f64 + 1.0)) / 2.0);
        if r.kv_tokens + kv_delta == r.len {
            w.sampled_tokens += seqs as u64;
        }
        // (Requests already in the batch are never preempted later in the
        // step, so their `seqs` is final here.)
        p.batch_seqs += r.seqs.max(1);
        p.budget -= new_tokens;
        Ok(Active::Scheduled(Scheduled { rid, kv_delta }))
    }

    /// Grows `rid` to `target` tokens x `seqs` sequences, preempting
    /// victims ([`pick_victim`](Self::pick_victim)) until it fits; false if
    /// `rid` itself was preempted. Errors if it cannot grow alone.
    #[inline(always)]
    fn grow_or_preempt(&mut self, rid: u32, target: u32, seqs: u32, p: &mut Plan) -> Result<bool> {
        while !self.kv.grow(rid, target, seqs) {
            let v = self.pick_victim(self.position_in(&self.running, rid));
            let victim_is_self = self.running[v] == rid;
            if victim_is_self && self.running.len() == 1 {
                // Alone on the device it fits (`can_ever_fit` admitted it):
                // preempting it would only repeat this forever.
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
            p.preempted = true;
            if victim_is_self {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Step 2: swapped requests come back first, FCFS, while nothing was
    /// preempted and they fit the sequence cap and the KV manager.
    fn schedule_swapped(&mut self, p: &mut Plan) -> Result<()> {
        while let Some(&rid) = self.swapped.front() {
            if p.preempted || p.budget == 0 {
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
        Ok(())
    }

    /// Step 3: waiting requests, FCFS with head-of-line blocking (none
    /// while a request is swapped out or one was preempted): the prefix
    /// cache is looked up, and the first chunk of the rest admitted.
    fn schedule_waiting(&mut self, p: &mut Plan) {
        while !p.preempted && self.swapped.is_empty() && p.budget > 0 {
            let Some(&rid) = self.waiting.front() else {
                break;
            };
            let r = &self.reqs[rid as usize];
            if self.running_seqs + r.n > self.cfg.max_num_seqs {
                self.refused = None; // waits for compute
                break;
            }
            let len = r.len;
            let kvreq = r.kv.clone();
            let hit = self.kv.lookup(rid, &kvreq, len);
            let left = len - hit;
            let new_tokens = if self.cfg.chunked_prefill {
                left.min(p.budget)
            } else if left <= p.budget {
                left
            } else {
                self.refused = None; // waits for compute
                break;
            };
            if !self.kv.admit(rid, &kvreq, hit, hit + new_tokens) {
                self.refused = Some(rid); // blocked on memory
                break;
            }
            self.refused = None;
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
            let w = &mut p.work;
            w.new_tokens += new_tokens as u64;
            w.kv_read_tokens += hit as u64;
            w.attn_pairs += new_tokens as f64 * hit as f64
                + (new_tokens as f64 * (new_tokens as f64 + 1.0)) / 2.0;
            if hit + new_tokens == len {
                w.sampled_tokens += 1;
            }
            p.batch_seqs += 1;
            self.batch.push(Scheduled {
                rid,
                kv_delta: new_tokens,
            });
            p.budget -= new_tokens;
        }
    }

    /// The planned iteration's duration and counters (None: nothing to
    /// run); a transfer-only iteration where only swaps happened. Errors if
    /// requests are left but nothing could run.
    fn close_step(&mut self, now: f64, p: Plan) -> Result<Option<f64>> {
        let Plan {
            mut work,
            preempted,
            batch_seqs,
            ..
        } = p;
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

    /// The running request a request that cannot grow preempts: one from
    /// `running[from..]` (that request and those after it in running
    /// order), by the configured [`VictimPolicy`].
    pub(super) fn pick_victim(&self, from: usize) -> usize {
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

    /// Preempts `running[idx]`: its KV is freed (after the grows skipped
    /// as quiet); it goes to the swapped queue (swap, if it decodes and the
    /// host swap space holds it) or to the front of the waiting queue, to
    /// be recomputed.
    pub(super) fn preempt(&mut self, idx: usize) -> Result<()> {
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
}
