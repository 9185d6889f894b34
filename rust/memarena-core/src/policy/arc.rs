//! ARC (Megiddo and Modha, FAST '03): adaptive replacement between recency
//! (T1) and frequency (T2), steered by ghost lists B1 and B2.

use super::{IdList, Policy};
use crate::request::{ObjId, Request};

/// ARC over byte sizes, following libCacheSim's `ARC`.
///
/// - T1 holds objects seen once recently, T2 objects seen at least twice; B1
///   and B2 hold the ids (and sizes) recently evicted from T1 and T2. All four
///   sizes are in bytes, and the target size `p` of T1 is a float, as in
///   libCacheSim (which follows the reference Python ARC here).
/// - A hit in T1 or T2 moves the object to T2's MRU end.
/// - A miss found in B1 raises `p` by `max(|B2| / |B1|, 1)` (capped at the
///   capacity); one found in B2 lowers it by `max(|B1| / |B2|, 1)` (floored
///   at 0). Either way the ghost entry is dropped and the object is admitted
///   to T2; evictions for it use REPLACE only.
/// - A miss found nowhere (the paper's case IV): if `|T1| + |B1| + size`
///   exceeds the capacity, drop B1's LRU and REPLACE, or, with B1 empty, evict
///   T1's LRU outright; otherwise, when all four lists reach twice the
///   capacity, drop B2's LRU, then REPLACE.
/// - REPLACE demotes T1's LRU to B1 if T1 is non-empty and larger than `p`
///   (or equal to it on a B2 hit), or if T2 is empty; otherwise T2's LRU to
///   B2.
///
/// The engine calls `evict` until the object fits, so for sized objects the
/// case analysis is repeated per eviction, exactly as libCacheSim does.
/// Matches libCacheSim exactly in unit-size and sized mode.
///
/// Invariants: the four lists are disjoint; `0 <= p <= capacity`.
#[derive(Debug)]
pub struct Arc {
    t1: IdList,
    t2: IdList,
    b1: IdList,
    b2: IdList,
    p: f64,
    capacity_bytes: u64,
    in_b1: bool,
    in_b2: bool,
}

impl Arc {
    /// An empty ARC of `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        Arc {
            t1: IdList::new(),
            t2: IdList::new(),
            b1: IdList::new(),
            b2: IdList::new(),
            p: 0.0,
            capacity_bytes,
            in_b1: false,
            in_b2: false,
        }
    }

    /// The paper's REPLACE: demote one object from T1 or T2 to its ghost.
    fn replace(&mut self) -> (ObjId, u64) {
        let t1 = self.t1.bytes() as f64;
        let from_t1 =
            (t1 > 0.0 && (t1 > self.p || (t1 == self.p && self.in_b2))) || self.t2.is_empty();
        let (data, ghost) = if from_t1 {
            (&mut self.t1, &mut self.b1)
        } else {
            (&mut self.t2, &mut self.b2)
        };
        let (id, size, _) = data.pop_tail().expect("ARC: evict from an empty cache");
        ghost.push_head(id, size, 0);
        (id, size)
    }

    /// Case IV: the requested object is in no list.
    fn evict_cold_miss(&mut self, size: u64) -> (ObjId, u64) {
        let c = self.capacity_bytes;
        if self.t1.bytes() + self.b1.bytes() + size > c {
            if self.b1.is_empty() {
                let (id, size, _) = self.t1.pop_tail().expect("ARC: T1 empty in case IV");
                return (id, size);
            }
            self.b1.pop_tail();
        } else if self.t1.bytes() + self.b1.bytes() + self.t2.bytes() + self.b2.bytes() >= 2 * c {
            self.b2.pop_tail();
        }
        self.replace()
    }
}

impl Policy for Arc {
    fn name(&self) -> &'static str {
        "arc"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        self.in_b1 = false;
        self.in_b2 = false;
        if let Some(h) = self.t1.get(req.id) {
            let (id, size, _) = self.t1.remove(h);
            self.t2.push_head(id, size, 0);
            return true;
        }
        if let Some(h) = self.t2.get(req.id) {
            self.t2.move_to_head(h);
            return true;
        }
        let c = self.capacity_bytes as f64;
        if let Some(h) = self.b1.get(req.id) {
            let delta = (self.b2.bytes() as f64 / self.b1.bytes() as f64).max(1.0);
            self.p = (self.p + delta).min(c);
            self.b1.remove(h);
            self.in_b1 = true;
        } else if let Some(h) = self.b2.get(req.id) {
            let delta = (self.b1.bytes() as f64 / self.b2.bytes() as f64).max(1.0);
            self.p = (self.p - delta).max(0.0);
            self.b2.remove(h);
            self.in_b2 = true;
        }
        false
    }

    #[inline]
    fn insert(&mut self, req: &Request) {
        if self.in_b1 || self.in_b2 {
            self.t2.push_head(req.id, req.size, 0);
        } else {
            self.t1.push_head(req.id, req.size, 0);
        }
        self.in_b1 = false;
        self.in_b2 = false;
    }

    #[inline]
    fn evict(&mut self, req: &Request) -> (ObjId, u64) {
        if self.in_b1 || self.in_b2 {
            self.replace()
        } else {
            self.evict_cold_miss(req.size)
        }
    }

    fn contains(&self, id: ObjId) -> bool {
        self.t1.contains(id) || self.t2.contains(id)
    }

    fn len(&self) -> usize {
        self.t1.len() + self.t2.len()
    }

    fn debug_check(&self) -> Result<(), String> {
        for l in [&self.t1, &self.t2, &self.b1, &self.b2] {
            l.check()?;
        }
        if !(0.0..=self.capacity_bytes as f64).contains(&self.p) {
            return Err(format!(
                "p = {} outside [0, {}]",
                self.p, self.capacity_bytes
            ));
        }
        let lists = [
            ("T1", &self.t1),
            ("T2", &self.t2),
            ("B1", &self.b1),
            ("B2", &self.b2),
        ];
        IdList::check_disjoint(&lists)
    }
}

#[cfg(test)]
mod tests {
    use super::Arc;
    use crate::policy::{Cache, hit_string as access};

    #[test]
    fn second_hit_promotes_to_t2_and_scan_cannot_flush_it() {
        let mut c = Cache::new(4, Box::new(Arc::new(4)));
        access(&mut c, &[1, 2, 1, 2]);
        assert!(c.policy().t2.contains(1) && c.policy().t2.contains(2));
        // A scan of new ids only cycles through T1 (p = 0 so REPLACE takes
        // from T1 whenever it is non-empty).
        access(&mut c, &[10, 11, 12, 13, 14, 15]);
        assert!(c.contains(1) && c.contains(2));
        assert_eq!(access(&mut c, &[1, 2]), "HH");
    }

    #[test]
    fn ghost_hit_in_b1_grows_p_and_admits_to_t2() {
        let mut c = Cache::new(2, Box::new(Arc::new(2)));
        // 1 goes to T2; 3 is a case-IV miss with |T1| + |B1| < c, so
        // REPLACE demotes T1's LRU (2) to B1.
        access(&mut c, &[1, 1, 2, 3]);
        assert!(c.policy().b1.contains(2));
        access(&mut c, &[2]);
        assert_eq!(c.policy().p, 1.0);
        assert!(c.policy().t2.contains(2) && !c.policy().b1.contains(2));
        // With |T1| = p = 1, REPLACE took T2's LRU (1) into B2.
        assert!(c.policy().b2.contains(1));
    }
}
