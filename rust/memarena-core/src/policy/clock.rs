//! CLOCK (FIFO-Reinsertion, second chance) with an n-bit frequency counter.

use super::{IdList, Policy};
use crate::error::{Error, Result};
use crate::request::{ObjId, Request};

/// CLOCK: a FIFO whose objects carry a saturating counter. A hit increments
/// the counter (up to `2^n_bit_counter - 1`); eviction scans from the tail,
/// and an object with a non-zero counter is decremented and reinserted at the
/// head instead of evicted.
///
/// Parameters, named as in libCacheSim's `Clock`: `n_bit_counter` (default 1:
/// classic one-bit CLOCK) and `init_freq` (counter of a new object, default
/// 0). Matches libCacheSim exactly in unit-size and sized mode.
///
/// Invariant: every counter is at most `max(max_freq, init_freq)`.
#[derive(Debug)]
pub struct Clock {
    list: IdList,
    max_freq: u32,
    init_freq: u32,
}

impl Clock {
    /// A CLOCK with `n_bit_counter`-bit counters (1 to 16) and new objects
    /// starting at `init_freq`.
    pub fn new(n_bit_counter: u32, init_freq: u32) -> Result<Self> {
        if !(1..=16).contains(&n_bit_counter) {
            return Err(Error::invalid(
                "policy.n_bit_counter",
                "must be an integer in 1..=16",
            ));
        }
        Ok(Clock {
            list: IdList::new(),
            max_freq: (1 << n_bit_counter) - 1,
            init_freq,
        })
    }
}

impl Policy for Clock {
    fn name(&self) -> &'static str {
        "clock"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        match self.list.get(req.id) {
            Some(h) => {
                let f = self.list.meta(h);
                if f < self.max_freq {
                    self.list.set_meta(h, f + 1);
                }
                true
            }
            None => false,
        }
    }

    #[inline]
    fn insert(&mut self, req: &Request) {
        self.list.push_head(req.id, req.size, self.init_freq);
    }

    #[inline]
    fn evict(&mut self, _req: &Request) -> (ObjId, u64) {
        loop {
            let t = self.list.tail().expect("evict from empty CLOCK");
            let f = self.list.meta(t);
            if f == 0 {
                let (id, size, _) = self.list.remove(t);
                return (id, size);
            }
            self.list.set_meta(t, f - 1);
            self.list.move_to_head(t);
        }
    }

    fn contains(&self, id: ObjId) -> bool {
        self.list.contains(id)
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    fn debug_check(&self) -> Result<(), String> {
        self.list.check()?;
        let bound = self.max_freq.max(self.init_freq);
        let mut h = self.list.head();
        while let Some(x) = h {
            if self.list.meta(x) > bound {
                return Err(format!("counter of {} exceeds {bound}", self.list.id(x)));
            }
            h = self.list.next_toward_tail(x);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::{Cache, ClockParams, PolicyConfig};
    use crate::request::Request;

    fn run(cap: u64, n_bit_counter: u32, ids: &[u64]) -> Cache {
        let p = ClockParams {
            n_bit_counter,
            init_freq: 0,
        };
        let mut c = Cache::with_policy(&PolicyConfig::Clock(p), cap).unwrap();
        for (vt, &id) in ids.iter().enumerate() {
            c.access(&Request::unit(id, vt as u64));
        }
        c
    }

    #[test]
    fn referenced_object_gets_a_second_chance() {
        // 1 is referenced, so 3 evicts 2 and 1's bit is cleared.
        let c = run(2, 1, &[1, 2, 1, 3]);
        assert!(c.contains(1) && !c.contains(2) && c.contains(3));
        // 4 then evicts 1: its bit was cleared, and it is the oldest again.
        let c = run(2, 1, &[1, 2, 1, 3, 4]);
        assert!(!c.contains(1) && c.contains(3) && c.contains(4));
    }

    #[test]
    fn two_bit_counter_survives_two_sweeps() {
        // 1 hit three times saturates at 3: it outlives 2, 3 and 4.
        let c = run(2, 2, &[1, 1, 1, 1, 2, 3, 4]);
        assert!(c.contains(1) && c.contains(4));
    }

    #[test]
    fn bad_parameter_is_rejected() {
        let p = ClockParams {
            n_bit_counter: 0,
            init_freq: 0,
        };
        assert!(Cache::with_policy(&PolicyConfig::Clock(p), 2).is_err());
    }
}
