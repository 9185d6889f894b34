//! SIEVE (Zhang et al., NSDI '24): a FIFO with a visited bit and a hand that
//! survives between evictions.

use super::{Handle, IdList, Policy};
use crate::request::{ObjId, Request};

/// SIEVE: new objects enter at the head; a hit sets the object's visited bit.
/// The hand moves from the tail towards the head, clearing visited bits, and
/// evicts the first unvisited object; it then rests on that object's
/// neighbour towards the head and wraps to the tail when it runs off the head.
/// Survivors are never moved.
///
/// Matches libCacheSim's `Sieve` exactly in unit-size and sized mode.
///
/// Invariant: the hand, when set, is a node of the list.
#[derive(Debug, Default)]
pub struct Sieve {
    list: IdList,
    hand: Option<Handle>,
}

impl Sieve {
    /// An empty SIEVE; capacity is enforced by the [`super::Cache`] engine.
    pub fn new(_capacity_bytes: u64) -> Self {
        Self::default()
    }
}

impl Policy for Sieve {
    fn name(&self) -> &'static str {
        "sieve"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        match self.list.get(req.id) {
            Some(h) => {
                self.list.set_meta(h, 1);
                true
            }
            None => false,
        }
    }

    #[inline]
    fn insert(&mut self, req: &Request) {
        self.list.push_head(req.id, req.size, 0);
    }

    #[inline]
    fn evict(&mut self, _req: &Request) -> (ObjId, u64) {
        let tail = self.list.tail().expect("evict from empty SIEVE");
        let mut h = self.hand.unwrap_or(tail);
        while self.list.meta(h) != 0 {
            self.list.set_meta(h, 0);
            h = self.list.prev_toward_head(h).unwrap_or(tail);
        }
        self.hand = self.list.prev_toward_head(h);
        let (id, size, _) = self.list.remove(h);
        (id, size)
    }

    fn contains(&self, id: ObjId) -> bool {
        self.list.contains(id)
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    fn debug_check(&self) -> Result<(), String> {
        self.list.check()?;
        if let Some(hand) = self.hand {
            let mut h = self.list.head();
            while let Some(x) = h {
                if x == hand {
                    return Ok(());
                }
                h = self.list.next_toward_tail(x);
            }
            return Err("the hand points outside the list".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::Cache;
    use crate::request::Request;

    fn access_all(c: &mut Cache, ids: &[u64], vt: &mut u64) {
        for &id in ids {
            c.access(&Request::unit(id, *vt));
            *vt += 1;
        }
    }

    /// The walk-through of the SIEVE paper (NSDI '24), with objects A..I as
    /// 1..=9: a full cache A..G (A oldest) with A, B and G visited.
    #[test]
    fn paper_example() {
        let mut c = Cache::with_defaults("sieve", 7).unwrap();
        let mut vt = 0;
        access_all(&mut c, &[1, 2, 3, 4, 5, 6, 7], &mut vt);
        access_all(&mut c, &[1, 2, 7], &mut vt); // visit A, B, G
        // Insert H: the hand clears A and B and evicts C.
        access_all(&mut c, &[8], &mut vt);
        assert!(!c.contains(3));
        assert!([1, 2, 4, 5, 6, 7, 8].iter().all(|&id| c.contains(id)));
        // Insert I: the hand resumes at D and evicts it (A, B stay put).
        access_all(&mut c, &[9], &mut vt);
        assert!(!c.contains(4) && c.contains(1) && c.contains(2));
        c.debug_check().unwrap();
    }

    #[test]
    fn hand_wraps_to_tail() {
        let mut c = Cache::with_defaults("sieve", 2).unwrap();
        let mut vt = 0;
        // Both visited: the hand clears both, wraps, and evicts the oldest.
        access_all(&mut c, &[1, 2, 1, 2, 3], &mut vt);
        assert!(!c.contains(1) && c.contains(2) && c.contains(3));
        c.debug_check().unwrap();
    }
}
