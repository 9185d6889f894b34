//! Skipped quiet grows (a speed path): the scheduler's side of
//! [`KvManager::quiet_decode_tokens`]. A decode step whose grow the KV
//! manager promised to be quiet is not sent to it; the skipped grows are
//! made in one call at the next grow that is not quiet, before a sample
//! (so that the breakdown is exact) and before the request's `free`.
//! With a manager that promises nothing (the default) nothing is skipped.

use memarena_core::error::{Error, Result};

use super::plan::Plan;
use super::{Scheduled, ServingModel};
use crate::serving::kv::{KvManager, invariant};

impl<K: KvManager> ServingModel<K> {
    /// Before `rid`'s KV is freed: the decode grows skipped as quiet are
    /// made (the manager may defer work to them that shows after a free,
    /// such as caching a block's content; [`KvManager::quiet_decode_tokens`]).
    pub(super) fn free_kv(&mut self, rid: u32) -> Result<()> {
        let r = &self.reqs[rid as usize];
        self.grow_quietly(rid, r.kv_tokens, r.n)
    }

    /// The running requests' part of an iteration for active `rid` when
    /// it takes a decode step whose grow is quiet and that fits the budget
    /// (most of a busy batch): the same sums as the general path
    /// (`schedule_active`), without calling the KV manager; None where
    /// that does not apply.
    #[inline(always)]
    pub(super) fn quiet_decode_step(&self, rid: u32, p: &mut Plan) -> Option<Scheduled> {
        let r = &self.reqs[rid as usize];
        if r.generated > 0
            && r.kv_tokens + 1 == r.len
            && r.len <= r.quiet_end
            && r.n > 0
            && r.n <= p.budget
        {
            let (n, kv) = (r.n, r.kv_tokens);
            let w = &mut p.work;
            w.new_tokens += n as u64;
            w.kv_read_tokens += kv as u64 * n as u64;
            w.attn_pairs += n as f64 * (kv as f64 + 1.0);
            w.sampled_tokens += n as u64;
            p.batch_seqs += r.seqs.max(1);
            p.budget -= n;
            return Some(Scheduled { rid, kv_delta: 1 });
        }
        None
    }

    /// After a grow of `rid` to `target` tokens that was made: records it,
    /// and how far the manager promises its next decode grows to be quiet
    /// (nothing without
    /// [`fast_decode_runs`](super::SchedulerConfig::fast_decode_runs)).
    #[inline(always)]
    pub(super) fn note_grown(&mut self, rid: u32, target: u32) {
        let ahead = if self.cfg.fast_decode_runs {
            self.kv.quiet_decode_tokens(rid, self.reqs[rid as usize].n)
        } else {
            0
        };
        let r = &mut self.reqs[rid as usize];
        (r.kv_grown, r.quiet_end) = (target, target.saturating_add(ahead));
    }

    /// Tells the KV manager of the tokens whose quiet decode grows were
    /// skipped (every running request's computed tokens, plus the iteration
    /// in flight), so that its breakdown is exact.
    pub(super) fn sync_kv(&mut self) -> Result<()> {
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
    pub(super) fn grow_quietly(&mut self, rid: u32, tokens: u32, n: u32) -> Result<()> {
        if self.reqs[rid as usize].kv_grown < tokens {
            if !self.kv.grow(rid, tokens, n) {
                return Err(self.broken_quiet_promise(rid, tokens));
            }
            self.reqs[rid as usize].kv_grown = tokens;
        }
        Ok(())
    }

    pub(super) fn broken_quiet_promise(&self, rid: u32, tokens: u32) -> Error {
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
