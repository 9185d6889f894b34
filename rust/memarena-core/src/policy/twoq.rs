//! 2Q (Johnson and Shasha, VLDB '94): a FIFO for first-timers (Ain), a ghost
//! FIFO of ids evicted from it (Aout), and an LRU for re-referenced objects
//! (Am).

use super::{IdList, Policy};
use crate::error::{Error, Result};
use crate::request::{ObjId, Request};

/// 2Q, following libCacheSim's `TwoQ`.
///
/// - Sizes are bytes: Ain = `floor(capacity * ain_size_ratio)` (default
///   0.25), Aout = `floor(capacity * aout_size_ratio)` (default 0.5, ids and
///   sizes only), Am = capacity - Ain.
/// - A hit in Ain changes nothing (FIFO); a hit in Am moves it to the MRU end.
/// - A miss whose id is in Aout is admitted to Am; any other miss to Ain.
/// - Evicting: while Ain holds more than its size, Ain's oldest object leaves
///   the cache into Aout; otherwise Am's LRU object is evicted.
/// - Admission: objects larger than Ain are not admitted (libCacheSim's
///   `can_insert`).
/// - Am is a cache of its own in libCacheSim: admitting to Am evicts Am's
///   LRU objects until the object fits in Am's size, even when the whole
///   cache has room (possible with sized objects, once Ain has shrunk below
///   its size). Those evictions are reported to the engine through
///   [`Policy::take_self_evicted_bytes`].
///
/// Matches libCacheSim exactly in unit-size and sized mode.
///
/// Invariants: Ain, Aout and Am are disjoint; Aout bytes <= its size; Am
/// bytes <= its size right after an Aout hit is admitted.
#[derive(Debug)]
pub struct TwoQ {
    ain: IdList,
    aout: IdList,
    am: IdList,
    ain_bytes: u64,
    aout_bytes: u64,
    am_bytes: u64,
    hit_on_ghost: bool,
    self_evicted_bytes: u64,
}

impl TwoQ {
    /// A 2Q of `capacity_bytes` with the given queue ratios.
    pub fn new(capacity_bytes: u64, ain_size_ratio: f64, aout_size_ratio: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&ain_size_ratio) {
            return Err(Error::invalid("policy.ain_size_ratio", "must be in [0, 1]"));
        }
        if !(0.0..=16.0).contains(&aout_size_ratio) {
            return Err(Error::invalid(
                "policy.aout_size_ratio",
                "must be in [0, 16]",
            ));
        }
        let ain_bytes = (capacity_bytes as f64 * ain_size_ratio) as u64;
        Ok(TwoQ {
            ain: IdList::new(),
            aout: IdList::new(),
            am: IdList::new(),
            ain_bytes,
            aout_bytes: (capacity_bytes as f64 * aout_size_ratio) as u64,
            am_bytes: capacity_bytes - ain_bytes,
            hit_on_ghost: false,
            self_evicted_bytes: 0,
        })
    }
}

impl Policy for TwoQ {
    fn name(&self) -> &'static str {
        "twoq"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        self.hit_on_ghost = false;
        if self.ain.contains(req.id) {
            return true;
        }
        if self.aout.remove_id(req.id).is_some() {
            self.hit_on_ghost = true;
        }
        match self.am.get(req.id) {
            Some(h) => {
                self.am.move_to_head(h);
                true
            }
            None => false,
        }
    }

    #[inline]
    fn admits(&self, req: &Request) -> bool {
        req.size <= self.ain_bytes
    }

    #[inline]
    fn insert(&mut self, req: &Request) {
        if std::mem::take(&mut self.hit_on_ghost) {
            while self.am.bytes() + req.size > self.am_bytes {
                let (_, size, _) = self.am.pop_tail().expect("2Q: Am smaller than an object");
                self.self_evicted_bytes += size;
            }
            self.am.push_head(req.id, req.size, 0);
        } else {
            self.ain.push_head(req.id, req.size, 0);
        }
    }

    #[inline]
    fn evict(&mut self, _req: &Request) -> (ObjId, u64) {
        if self.ain.bytes() > self.ain_bytes || self.am.is_empty() {
            let (id, size, _) = self.ain.pop_tail().expect("2Q: evict from an empty cache");
            if size <= self.aout_bytes {
                while self.aout.bytes() + size > self.aout_bytes {
                    self.aout.pop_tail();
                }
                self.aout.push_head(id, size, 0);
            }
            return (id, size);
        }
        let (id, size, _) = self.am.pop_tail().expect("2Q: Am is non-empty");
        (id, size)
    }

    fn contains(&self, id: ObjId) -> bool {
        self.ain.contains(id) || self.am.contains(id)
    }

    fn len(&self) -> usize {
        self.ain.len() + self.am.len()
    }

    fn self_evicts(&self) -> bool {
        true
    }

    fn take_self_evicted_bytes(&mut self) -> u64 {
        std::mem::take(&mut self.self_evicted_bytes)
    }

    fn debug_check(&self) -> Result<(), String> {
        for l in [&self.ain, &self.aout, &self.am] {
            l.check()?;
        }
        if self.aout.bytes() > self.aout_bytes {
            return Err(format!(
                "Aout holds {} bytes > {}",
                self.aout.bytes(),
                self.aout_bytes
            ));
        }
        let lists = [("Ain", &self.ain), ("Aout", &self.aout), ("Am", &self.am)];
        IdList::check_disjoint(&lists)
    }
}

#[cfg(test)]
mod tests {
    use super::TwoQ;
    use crate::policy::{Cache, hit_string as access};
    use crate::request::Request;

    #[test]
    fn reference_after_ain_eviction_promotes_to_am() {
        // capacity 8: Ain 2, Aout 4, Am 6.
        let mut c = Cache::new(8, Box::new(TwoQ::new(8, 0.25, 0.5).unwrap()));
        access(&mut c, &(1..=8).collect::<Vec<_>>());
        // 9: Ain (8 objects) is over its size, so its oldest, 1, goes to Aout.
        access(&mut c, &[9]);
        assert!(!c.contains(1) && c.policy().aout.contains(1));
        // 1 again: an Aout hit, admitted to Am.
        assert_eq!(access(&mut c, &[1]), "m");
        assert!(c.policy().am.contains(1));
        // A hit in Ain does not protect against FIFO order.
        assert_eq!(access(&mut c, &[3]), "H");
        access(&mut c, &[10]);
        assert!(!c.contains(3));
    }

    #[test]
    fn objects_larger_than_ain_are_not_admitted() {
        let mut c = Cache::new(8, Box::new(TwoQ::new(8, 0.25, 0.5).unwrap()));
        let mut r = Request::unit(1, 0);
        r.size = 3;
        assert!(!c.access(&r).is_hit());
        assert!(c.is_empty());
    }
}
