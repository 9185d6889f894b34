//! Least frequently used, with O(1) frequency buckets.

use super::Policy;
use crate::FxHashMap;
use crate::request::{ObjId, Request};

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Obj {
    id: ObjId,
    size: u64,
    bucket: u32,
    prev: u32,
    next: u32,
}

/// All objects with one frequency, oldest arrival at `head`.
#[derive(Clone, Debug)]
struct Bucket {
    freq: u64,
    head: u32,
    tail: u32,
    /// Neighbouring buckets, in increasing frequency.
    lower: u32,
    higher: u32,
}

/// LFU: evict the object with the fewest accesses since it was admitted;
/// among equals, the one that reached that count earliest (libCacheSim
/// appends to a frequency bucket's tail and evicts from its head, so this is
/// the least recently accessed of the least frequent).
///
/// A new object has frequency 1; frequencies are forgotten on eviction.
/// Matches libCacheSim's `LFU` exactly in unit-size and sized mode.
///
/// Invariants: buckets are non-empty and strictly increasing in frequency
/// from `lowest`; every object sits in the bucket of its frequency.
#[derive(Debug, Default)]
pub struct Lfu {
    objs: Vec<Obj>,
    free_objs: Vec<u32>,
    buckets: Vec<Bucket>,
    free_buckets: Vec<u32>,
    map: FxHashMap<ObjId, u32>,
    lowest: Option<u32>,
}

impl Lfu {
    /// An empty LFU; capacity is enforced by the [`super::Cache`] engine.
    pub fn new(_capacity_bytes: u64) -> Self {
        Self::default()
    }

    /// A new empty bucket of `freq` linked between `lower` and `higher`.
    fn new_bucket(&mut self, freq: u64, lower: u32, higher: u32) -> u32 {
        let b = Bucket {
            freq,
            head: NIL,
            tail: NIL,
            lower,
            higher,
        };
        let i = match self.free_buckets.pop() {
            Some(i) => {
                self.buckets[i as usize] = b;
                i
            }
            None => {
                self.buckets.push(b);
                (self.buckets.len() - 1) as u32
            }
        };
        if lower != NIL {
            self.buckets[lower as usize].higher = i;
        } else {
            self.lowest = Some(i);
        }
        if higher != NIL {
            self.buckets[higher as usize].lower = i;
        }
        i
    }

    /// Append object `o` at the tail of bucket `b`.
    #[inline]
    fn append(&mut self, b: u32, o: u32) {
        let tail = self.buckets[b as usize].tail;
        {
            let obj = &mut self.objs[o as usize];
            obj.bucket = b;
            obj.prev = tail;
            obj.next = NIL;
        }
        if tail != NIL {
            self.objs[tail as usize].next = o;
        } else {
            self.buckets[b as usize].head = o;
        }
        self.buckets[b as usize].tail = o;
    }

    /// Unlink object `o` from its bucket, dropping the bucket if it empties.
    #[inline]
    fn unlink(&mut self, o: u32) {
        let Obj {
            bucket, prev, next, ..
        } = self.objs[o as usize];
        if prev != NIL {
            self.objs[prev as usize].next = next;
        } else {
            self.buckets[bucket as usize].head = next;
        }
        if next != NIL {
            self.objs[next as usize].prev = prev;
        } else {
            self.buckets[bucket as usize].tail = prev;
        }
        let b = &self.buckets[bucket as usize];
        if b.head == NIL {
            let (lower, higher) = (b.lower, b.higher);
            if lower != NIL {
                self.buckets[lower as usize].higher = higher;
            } else {
                self.lowest = (higher != NIL).then_some(higher);
            }
            if higher != NIL {
                self.buckets[higher as usize].lower = lower;
            }
            self.free_buckets.push(bucket);
        }
    }
}

impl Policy for Lfu {
    fn name(&self) -> &'static str {
        "lfu"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        let Some(&o) = self.map.get(&req.id) else {
            return false;
        };
        let b = self.objs[o as usize].bucket;
        let Bucket {
            freq,
            higher,
            head,
            tail,
            ..
        } = self.buckets[b as usize];
        let alone = head == o && tail == o;
        let target = if higher != NIL && self.buckets[higher as usize].freq == freq + 1 {
            higher
        } else if alone {
            // Reuse the bucket in place: it stays between the same neighbours.
            self.buckets[b as usize].freq = freq + 1;
            return true;
        } else {
            self.new_bucket(freq + 1, b, higher)
        };
        self.unlink(o);
        self.append(target, o);
        true
    }

    #[inline]
    fn insert(&mut self, req: &Request) {
        let obj = Obj {
            id: req.id,
            size: req.size,
            bucket: NIL,
            prev: NIL,
            next: NIL,
        };
        let o = match self.free_objs.pop() {
            Some(o) => {
                self.objs[o as usize] = obj;
                o
            }
            None => {
                self.objs.push(obj);
                (self.objs.len() - 1) as u32
            }
        };
        let b = match self.lowest {
            Some(b) if self.buckets[b as usize].freq == 1 => b,
            lowest => self.new_bucket(1, NIL, lowest.unwrap_or(NIL)),
        };
        self.append(b, o);
        self.map.insert(req.id, o);
    }

    #[inline]
    fn evict(&mut self, _req: &Request) -> (ObjId, u64) {
        let b = self.lowest.expect("evict from empty LFU");
        let o = self.buckets[b as usize].head;
        self.unlink(o);
        self.free_objs.push(o);
        let Obj { id, size, .. } = self.objs[o as usize];
        self.map.remove(&id);
        (id, size)
    }

    fn contains(&self, id: ObjId) -> bool {
        self.map.contains_key(&id)
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn debug_check(&self) -> Result<(), String> {
        let mut seen = 0usize;
        let mut b = self.lowest.unwrap_or(NIL);
        let mut last_freq = 0u64;
        let mut lower = NIL;
        while b != NIL {
            let bk = &self.buckets[b as usize];
            if bk.freq <= last_freq {
                return Err(format!("bucket frequencies not increasing at {}", bk.freq));
            }
            if bk.lower != lower {
                return Err(format!("broken lower link at frequency {}", bk.freq));
            }
            if bk.head == NIL {
                return Err(format!("empty bucket of frequency {}", bk.freq));
            }
            let (mut o, mut prev) = (bk.head, NIL);
            while o != NIL {
                let obj = &self.objs[o as usize];
                if obj.bucket != b || obj.prev != prev {
                    return Err(format!("object {} badly linked", obj.id));
                }
                if self.map.get(&obj.id) != Some(&o) {
                    return Err(format!("object {} linked but not mapped", obj.id));
                }
                seen += 1;
                if seen > self.map.len() {
                    return Err("more linked objects than mapped (cycle?)".into());
                }
                prev = o;
                o = obj.next;
            }
            if bk.tail != prev {
                return Err(format!("tail of bucket {} is not its last object", bk.freq));
            }
            last_freq = bk.freq;
            lower = b;
            b = bk.higher;
        }
        if seen != self.map.len() {
            return Err(format!(
                "{seen} linked objects but {} mapped",
                self.map.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::Cache;
    use crate::request::Request;

    fn run(cap: u64, ids: &[u64]) -> Cache {
        let mut c = Cache::with_defaults("lfu", cap).unwrap();
        for (vt, &id) in ids.iter().enumerate() {
            c.access(&Request::unit(id, vt as u64));
            c.debug_check().unwrap();
        }
        c
    }

    #[test]
    fn evicts_least_frequent() {
        // 1 twice, 2 once: 3 evicts 2.
        let c = run(2, &[1, 2, 1, 3]);
        assert!(c.contains(1) && !c.contains(2) && c.contains(3));
    }

    #[test]
    fn ties_go_to_the_earliest_to_reach_the_count() {
        // A frequency-1 object goes before any frequency-2 one.
        let c = run(3, &[1, 2, 2, 1, 3, 4]);
        assert!(!c.contains(3) && c.contains(4));
        // 1 and 2 both reach frequency 2, 2 first: 2 goes first.
        let c = run(2, &[1, 2, 2, 1, 3]);
        assert!(!c.contains(2) && c.contains(1) && c.contains(3));
    }

    #[test]
    fn frequency_is_forgotten_on_eviction() {
        let c = run(1, &[1, 1, 1, 2, 1, 3]);
        assert!(c.contains(3) && !c.contains(1));
    }
}
