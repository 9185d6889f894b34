//! The cohort: running requests whose decode steps are implicit (a speed
//! path; the semantics it keeps are those of `plan_step`).
//!
//! Under load (requests queued) the decode steps of most running requests
//! are alike: one token per sequence, a quiet grow, the same gap between
//! tokens. Such requests join the *cohort* ([`Cohort`]): their progress is
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
//! A KV manager that promises no quiet grows
//! ([`KvManager::quiet_decode_tokens`] returning 0, the default) never has
//! a member.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use memarena_core::error::Result;

use super::plan::Plan;
use super::{NOT_IN_COHORT, Scheduled, ServingModel, State};
use crate::serving::kv::{KvManager, invariant};

/// Running requests whose decode steps are implicit: each iteration adds
/// one token per sequence to every member. Member `r` that joined at epoch
/// `e0` has, at epoch `epoch`, `kv_tokens + (epoch - e0)` KV tokens (and as
/// many more generated tokens and sequence length); the sums below give the
/// iteration's work without visiting the members. A member is visited only
/// at the epochs its queue entry names: for a grow that is not quiet (made
/// in running order, among the actives; it stays a member), or to sample
/// its last token (it leaves).
#[derive(Debug, Default)]
pub(super) struct Cohort {
    /// Members.
    pub(super) len: u32,
    /// Sequences of the members (each decodes all of them).
    pub(super) seqs: u64,
    /// Sum over members of `n * (kv_tokens - e0)`: the KV tokens read at
    /// epoch `e` are `kv_base + seqs * e`.
    pub(super) kv_base: i64,
    /// Cohort iterations run (the epoch of the next one).
    pub(super) epoch: u64,
    /// When the members' last token was sampled (the last iteration's end).
    pub(super) last_end_s: f64,
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

impl<K: KvManager> ServingModel<K> {
    /// Makes `rid` (it just sampled a token and decodes on) a cohort
    /// member if its next decode step is quiet and not its last; returns
    /// whether it joined.
    pub(super) fn try_join_cohort(&mut self, rid: u32) -> bool {
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
    pub(super) fn leave_cohort(&mut self, rid: u32) {
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
    pub(super) fn grow_member(&mut self, rid: u32) -> Result<bool> {
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
    pub(super) fn wake_due(&mut self) -> Result<()> {
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
    pub(super) fn cohort_fits(&self) -> bool {
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

    /// Before the running requests' part of an iteration: wakes the
    /// members due now ([`wake_due`](Self::wake_due)); the members' decode
    /// tokens come out of the budget if every running request fits it
    /// ([`cohort_fits`](Self::cohort_fits)), else the cohort dissolves.
    pub(super) fn start_cohort_step(&mut self, p: &mut Plan) -> Result<()> {
        self.wake_due()?;
        if self.cohort_fits() {
            p.budget -= self.cohort.seqs as u32;
        } else {
            self.dissolve_cohort();
        }
        Ok(())
    }

    /// A member due for a grow in this iteration (`seq`, `m` from
    /// `due_now`), reached before the active at position `i`: grown in
    /// place ([`grow_member`](Self::grow_member)). Out of memory, it leaves
    /// the cohort and becomes that active, whose general path tries the
    /// grow again and preempts. (Nothing for a member preempted earlier in
    /// this iteration.)
    #[inline(always)]
    pub(super) fn grow_due_member(&mut self, seq: u64, m: u32, i: usize) -> Result<()> {
        let r = &self.reqs[m as usize];
        if r.cohort_e0 == NOT_IN_COHORT || r.seq_no != seq {
            return Ok(()); // (Preempted earlier in this iteration.)
        }
        if !self.grow_member(m)? {
            self.leave_cohort(m);
            self.actives.insert(i, m);
            self.batch.push(Scheduled {
                rid: u32::MAX,
                kv_delta: 0,
            });
        }
        Ok(())
    }

    /// After the running requests' part: every member due for a grow in
    /// this iteration was visited (`due_now[d..]` holds none still in the
    /// cohort).
    pub(super) fn check_due_done(&self, d: usize) -> Result<()> {
        if let Some(&(_, m)) = self.due_now[d..]
            .iter()
            .find(|&&(seq, m)| self.in_cohort(m) && self.reqs[m as usize].seq_no == seq)
        {
            return Err(invariant(
                "cohort",
                format!("member {m}, due for a grow, was left out of the iteration"),
            ));
        }
        Ok(())
    }

    /// The members' part of the iteration's work: every member decodes all
    /// its sequences, one token each, with the KV of its epoch. The sums
    /// are whole numbers below 2^53, so they are the bits of adding the
    /// members one by one.
    pub(super) fn add_cohort_work(&self, p: &mut Plan) {
        let c = &self.cohort;
        let kv_read = (c.kv_base + c.seqs as i64 * c.epoch as i64) as u64;
        p.work.new_tokens += c.seqs;
        p.work.sampled_tokens += c.seqs;
        p.work.kv_read_tokens += kv_read;
        p.work.attn_pairs += (kv_read + c.seqs) as f64;
        p.batch_seqs += c.seqs as u32;
    }

    /// Makes every member explicit (between iterations).
    pub(super) fn dissolve_cohort(&mut self) {
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

    /// The cohort's invariants: `running` is in admission-stamp order and
    /// is the members and the actives merged; the sums are the members'; a
    /// member is due no earlier than the current epoch, and decodes.
    pub(super) fn check_cohort(&self) -> Result<()> {
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
