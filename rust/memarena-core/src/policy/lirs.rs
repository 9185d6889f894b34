//! LIRS (Jiang and Zhang, SIGMETRICS '02): low inter-reference recency set.

use super::{Handle, IdList, Policy};
use crate::error::{Error, Result};
use crate::request::{ObjId, Request};

/// Stack-S flag: the entry is an LIR block.
const LIR: u32 = 1;
/// Stack-S flag: the entry is resident.
const IN_CACHE: u32 = 2;

/// What the last missed lookup found, for `admits` and `insert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// A non-resident HIR block still in stack S: it becomes LIR.
    NonResidentInS,
    /// In neither stack.
    New,
    /// Not admissible (larger than the cache, or a new object larger than
    /// the LIR or HIR budget).
    Refused,
}

/// LIRS over byte sizes, following libCacheSim's `LIRS`.
///
/// - Stack S (recency order) holds LIR blocks, resident HIR blocks and
///   non-resident HIR blocks; stack Q holds the resident HIR blocks; a third
///   list (NH) orders the non-resident entries of S by when they lost
///   residency.
/// - Budgets in bytes: HIR = `max(1, floor(capacity * hirs_ratio))` (default
///   ratio 0.01, fixed in libCacheSim), LIR = capacity - HIR.
/// - While the LIR budget has room, new objects become LIR; after that they
///   become resident HIR (in S and Q), evicting Q's LRU while the HIR budget
///   lacks room.
/// - Hit on LIR: move to S's top and prune S (drop non-LIR entries from its
///   bottom). Hit on a resident HIR in S: it becomes LIR (leaving Q), and
///   S's bottom LIR blocks are demoted to Q while the LIR budget overflows.
///   Hit on a resident HIR not in S: demote S's bottom LIR blocks while the
///   LIR budget cannot take the object (as libCacheSim does; the paper
///   demotes nothing here), then push it on S as resident HIR.
/// - Miss on a non-resident HIR in S: demote LIR blocks until it fits the LIR
///   budget, and admit it as LIR.
/// - A demoted LIR block larger than the HIR budget is evicted outright;
///   evicting Q's LRU keeps its S entry as non-resident.
/// - S is limited to twice the capacity (bytes) by dropping the oldest
///   non-resident entries.
///
/// Demotions and evictions happen inside `lookup` (hits included) and the
/// engine learns of them through [`Policy::take_self_evicted_bytes`]; the
/// engine's own eviction loop never runs for LIRS.
///
/// Deliberate difference: on a hit to a resident HIR block not in S,
/// libCacheSim's demotion can evict that very block from Q (always so when Q
/// holds one block, i.e. capacities under 200 unit objects); libCacheSim then
/// keeps it in S marked resident though it is in no resident set and
/// occupies no bytes, so later requests to it are hits for free. Here the
/// block is evicted like any other Q victim (kept in S as non-resident), so
/// such requests are misses. Miss counts are therefore equal to or slightly
/// above libCacheSim's on traces where this happens.
///
/// Second deliberate difference: pruning keeps S's top entry, so once every
/// LIR block has been demoted (only possible with tiny LIR budgets) an HIR
/// entry can end up below newer LIR blocks. libCacheSim's `evictLIR` then
/// takes that HIR entry for an LIR block, corrupting its byte counts and
/// inserting a duplicate into Q; here such entries are dropped from S and
/// the next bottom entry is demoted instead.
///
/// Invariants: LIR bytes <= LIR budget and Q bytes <= HIR budget; the LIR
/// byte count is the sum over LIR entries of S; resident HIR entries of S are
/// in Q; NH is exactly the non-resident entries of S.
#[derive(Debug)]
pub struct Lirs {
    s: IdList,
    q: IdList,
    nh: IdList,
    capacity_bytes: u64,
    lir_limit: u64,
    hir_limit: u64,
    lir_bytes: u64,
    hir_bytes: u64,
    n_resident: usize,
    pending: Pending,
    self_evicted_bytes: u64,
}

impl Lirs {
    /// An empty LIRS of `capacity_bytes` whose HIR budget is
    /// `max(1, floor(capacity * hirs_ratio))` bytes.
    pub fn new(capacity_bytes: u64, hirs_ratio: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&hirs_ratio) {
            return Err(Error::invalid("policy.hirs_ratio", "must be in [0, 1)"));
        }
        let hir_limit = ((hirs_ratio * capacity_bytes as f64) as u64).max(1);
        Ok(Lirs {
            s: IdList::new(),
            q: IdList::new(),
            nh: IdList::new(),
            capacity_bytes,
            lir_limit: capacity_bytes.saturating_sub(hir_limit),
            hir_limit,
            lir_bytes: 0,
            hir_bytes: 0,
            n_resident: 0,
            pending: Pending::Refused,
            self_evicted_bytes: 0,
        })
    }

    /// Evict Q's LRU block; its S entry, if any, becomes non-resident.
    fn evict_hir(&mut self) -> (ObjId, u64) {
        let (id, size, _) = self.q.pop_tail().expect("LIRS: evict from an empty Q");
        self.hir_bytes -= size;
        self.n_resident -= 1;
        if let Some(h) = self.s.get(id) {
            self.s.set_meta(h, self.s.meta(h) & !IN_CACHE);
            self.nh.push_head(id, size, 0);
        }
        (id, size)
    }

    /// Evict Q's LRU block on the policy's own initiative.
    fn self_evict_hir(&mut self) {
        let (_, size) = self.evict_hir();
        self.self_evicted_bytes += size;
    }

    /// Demote S's bottom (LIR) block to Q, evicting from Q to make room, or
    /// evict it outright when it exceeds the HIR budget; then prune S.
    fn demote_lir(&mut self) {
        let Some(t) = self.s.tail() else { return };
        let (id, size, meta) = self.s.remove(t);
        if meta & LIR == 0 {
            // Pruning keeps the top entry, so an HIR entry can sit below
            // LIR blocks pushed later: drop it from S (a resident one stays
            // in Q); the caller's loop then demotes the next bottom entry.
            if meta & IN_CACHE == 0 {
                self.nh.remove_id(id);
            }
            self.prune();
            return;
        }
        self.lir_bytes -= size;
        if size <= self.hir_limit {
            while self.hir_bytes + size > self.hir_limit {
                self.self_evict_hir();
            }
            self.q.push_head(id, size, 0);
            self.hir_bytes += size;
        } else {
            self.n_resident -= 1;
            self.self_evicted_bytes += size;
        }
        self.prune();
    }

    /// Drop HIR entries from the bottom of S until an LIR block is there
    /// (the top entry always stays).
    fn prune(&mut self) {
        while let Some(t) = self.s.tail() {
            let meta = self.s.meta(t);
            if Some(t) == self.s.head() || meta & LIR != 0 {
                break;
            }
            let (id, _, _) = self.s.remove(t);
            if meta & IN_CACHE == 0 {
                self.nh.remove_id(id);
            }
        }
    }

    /// Keep S within twice the capacity by forgetting the oldest
    /// non-resident entries.
    fn limit_stack(&mut self) {
        while self.s.bytes() > 2 * self.capacity_bytes {
            let Some((id, _, _)) = self.nh.pop_tail() else {
                break;
            };
            self.s.remove_id(id);
        }
    }

    /// A hit on a resident HIR block in S: it becomes LIR.
    fn hit_hir_in_s(&mut self, hs: Handle, hq: Option<Handle>) {
        let size = self.s.size(hs);
        if let Some(hq) = hq {
            self.q.remove(hq);
            self.hir_bytes -= size;
        }
        while self.lir_bytes + size > self.lir_limit {
            self.demote_lir();
        }
        self.s.set_meta(hs, LIR | IN_CACHE);
        self.lir_bytes += size;
    }

    /// A hit on a resident HIR block not in S.
    fn hit_hir_in_q(&mut self, id: ObjId, size: u64) {
        while self.lir_bytes + size > self.lir_limit {
            self.demote_lir();
        }
        if self.q.contains(id) {
            self.s.push_head(id, size, IN_CACHE);
        } else {
            // Demotion evicted it from Q (libCacheSim keeps a phantom here).
            self.s.push_head(id, size, 0);
            self.nh.push_head(id, size, 0);
        }
    }
}

impl Policy for Lirs {
    fn name(&self) -> &'static str {
        "lirs"
    }

    fn lookup(&mut self, req: &Request) -> bool {
        let hs = self.s.get(req.id);
        let hq = self.q.get(req.id);
        if let Some(h) = hs {
            self.s.move_to_head(h);
        }
        if let Some(h) = hq {
            self.q.move_to_head(h);
        }
        match (hs, hq) {
            (Some(h), _) if self.s.meta(h) & LIR != 0 => {
                self.prune();
            }
            (Some(h), _) if self.s.meta(h) & IN_CACHE != 0 => {
                self.hit_hir_in_s(h, hq);
            }
            (Some(_), _) => {
                // A non-resident HIR block: libCacheSim's can_insert work.
                if req.size > self.capacity_bytes {
                    self.pending = Pending::Refused;
                } else {
                    let size = self.s.size(self.s.head().expect("just moved"));
                    while self.lir_bytes + size > self.lir_limit {
                        self.demote_lir();
                    }
                    self.nh.remove_id(req.id);
                    self.pending = Pending::NonResidentInS;
                }
                return false;
            }
            (None, Some(h)) => {
                let size = self.q.size(h);
                self.hit_hir_in_q(req.id, size);
            }
            (None, None) => {
                let size = req.size;
                if size > self.capacity_bytes || size > self.lir_limit || size > self.hir_limit {
                    self.pending = Pending::Refused;
                } else {
                    if self.lir_bytes + size > self.lir_limit
                        && self.hir_bytes + size > self.hir_limit
                    {
                        while self.hir_bytes + size > self.hir_limit {
                            self.self_evict_hir();
                        }
                    }
                    self.pending = Pending::New;
                }
                return false;
            }
        }
        self.limit_stack();
        true
    }

    fn admits(&self, _req: &Request) -> bool {
        self.pending != Pending::Refused
    }

    fn insert(&mut self, req: &Request) {
        match std::mem::replace(&mut self.pending, Pending::Refused) {
            Pending::NonResidentInS => {
                let h = self.s.get(req.id).expect("LIRS: pending entry left S");
                self.s.set_meta(h, LIR | IN_CACHE);
                self.lir_bytes += self.s.size(h);
            }
            Pending::New if self.lir_bytes + req.size <= self.lir_limit => {
                self.s.push_head(req.id, req.size, LIR | IN_CACHE);
                self.lir_bytes += req.size;
            }
            Pending::New => {
                self.s.push_head(req.id, req.size, IN_CACHE);
                self.q.push_head(req.id, req.size, 0);
                self.hir_bytes += req.size;
            }
            Pending::Refused => unreachable!("LIRS: insert of a refused object"),
        }
        self.n_resident += 1;
        self.limit_stack();
    }

    fn evict(&mut self, _req: &Request) -> (ObjId, u64) {
        // Not reached through the engine (lookup keeps both budgets within
        // the capacity), but keep the contract: evict exactly one object.
        if !self.q.is_empty() {
            return self.evict_hir();
        }
        let t = self.s.tail().expect("LIRS: evict from an empty cache");
        let (id, size, _) = self.s.remove(t);
        self.lir_bytes -= size;
        self.n_resident -= 1;
        self.prune();
        (id, size)
    }

    fn contains(&self, id: ObjId) -> bool {
        self.q.contains(id) || self.s.get(id).is_some_and(|h| self.s.meta(h) & LIR != 0)
    }

    fn len(&self) -> usize {
        self.n_resident
    }

    fn self_evicts(&self) -> bool {
        true
    }

    fn take_self_evicted_bytes(&mut self) -> u64 {
        std::mem::take(&mut self.self_evicted_bytes)
    }

    fn debug_check(&self) -> Result<(), String> {
        self.s.check()?;
        self.q.check()?;
        self.nh.check()?;
        let (mut lir_bytes, mut n_lir, mut n_nonresident) = (0u64, 0usize, 0usize);
        let mut h = self.s.head();
        while let Some(x) = h {
            let (id, meta) = (self.s.id(x), self.s.meta(x));
            if meta & LIR != 0 {
                if meta & IN_CACHE == 0 || self.q.contains(id) {
                    return Err(format!("LIR block {id} is non-resident or in Q"));
                }
                lir_bytes += self.s.size(x);
                n_lir += 1;
            } else if meta & IN_CACHE != 0 {
                if !self.q.contains(id) {
                    return Err(format!("resident HIR block {id} is not in Q"));
                }
            } else {
                if !self.nh.contains(id) || self.q.contains(id) {
                    return Err(format!("non-resident block {id} missing from NH or in Q"));
                }
                n_nonresident += 1;
            }
            h = self.s.next_toward_tail(x);
        }
        if n_nonresident != self.nh.len() {
            return Err(format!(
                "{} NH entries but {n_nonresident} in S",
                self.nh.len()
            ));
        }
        if lir_bytes != self.lir_bytes || self.lir_bytes > self.lir_limit {
            return Err(format!(
                "LIR bytes {} (counted {lir_bytes}), budget {}",
                self.lir_bytes, self.lir_limit
            ));
        }
        if self.q.bytes() != self.hir_bytes || self.hir_bytes > self.hir_limit {
            return Err(format!(
                "HIR bytes {} (Q holds {}), budget {}",
                self.hir_bytes,
                self.q.bytes(),
                self.hir_limit
            ));
        }
        if n_lir + self.q.len() != self.n_resident {
            return Err(format!(
                "{} resident but {n_lir} LIR + {} in Q",
                self.n_resident,
                self.q.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Lirs;
    use crate::policy::{Cache, hit_string as access};

    /// The example of the LIRS paper (Table 1 / Figure 3 setting): 2 LIR
    /// blocks and 1 resident HIR block.
    #[test]
    fn paper_example() {
        // Capacity 3 with a 1-block HIR budget: LIR budget 2.
        let mut c = Cache::new(3, Box::new(Lirs::new(3, 0.01).unwrap()));
        // A B become LIR; C, D, E are HIR; each new one evicts the last.
        assert_eq!(access(&mut c, &[1, 2, 3, 4, 5]), "mmmmm");
        assert!(c.contains(1) && c.contains(2) && c.contains(5));
        // 4 is a non-resident HIR still in S: its miss makes it LIR and
        // demotes S's bottom LIR block (1) to Q, which evicts 5.
        assert_eq!(access(&mut c, &[4]), "m");
        assert!(c.contains(4) && c.contains(2) && c.contains(1) && !c.contains(5));
        // 1 is now a resident HIR in Q only; 2 and 4 are LIR.
        assert_eq!(access(&mut c, &[2, 4, 1]), "HHH");
        // The hit on 1 (not in S) demoted 2 into Q, whose one slot held 1:
        // 1 is evicted (libCacheSim would keep it as a phantom).
        assert!(!c.contains(1) && c.contains(2) && c.contains(4));
        assert_eq!(access(&mut c, &[1]), "m");
    }

    #[test]
    fn scan_does_not_flush_lir_blocks() {
        let mut c = Cache::new(10, Box::new(Lirs::new(10, 0.01).unwrap()));
        let hot: Vec<u64> = (1..=9).collect();
        access(&mut c, &hot);
        access(&mut c, &hot);
        access(&mut c, &(100..200).collect::<Vec<_>>());
        assert_eq!(access(&mut c, &hot), "HHHHHHHHH");
    }
}
