//! A doubly linked list of object ids over a slab, with an id -> node map:
//! the building block of LRU, FIFO, CLOCK, SIEVE, S3-FIFO, ARC, 2Q and LIRS.
//!
//! Nodes are addressed by [`Handle`]s (slab indices); freed slots are reused,
//! so a long trace does not grow memory beyond the peak resident count.

use crate::FxHashMap;
use crate::request::ObjId;

/// Index of a node in an [`IdList`]'s slab.
pub type Handle = u32;

const NIL: Handle = Handle::MAX;

#[derive(Clone, Debug)]
struct Node {
    id: ObjId,
    size: u64,
    /// Free-form per-policy state (a reference bit, a frequency, a queue tag).
    meta: u32,
    prev: Handle,
    next: Handle,
}

/// An ordered list of unique ids, head = most recently pushed.
///
/// Invariants: `map` and the linked nodes hold the same ids; `len` is the
/// number of linked nodes; `bytes` is the sum of their sizes.
#[derive(Clone, Debug, Default)]
pub struct IdList {
    nodes: Vec<Node>,
    free: Vec<Handle>,
    map: FxHashMap<ObjId, Handle>,
    head: Option<Handle>,
    tail: Option<Handle>,
    bytes: u64,
}

impl IdList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of ids in the list.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sum of the sizes of the ids in the list.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The handle of `id`, if present.
    #[inline]
    pub fn get(&self, id: ObjId) -> Option<Handle> {
        self.map.get(&id).copied()
    }

    /// Whether `id` is in the list.
    #[inline]
    pub fn contains(&self, id: ObjId) -> bool {
        self.map.contains_key(&id)
    }

    /// The id at `h`.
    #[inline]
    pub fn id(&self, h: Handle) -> ObjId {
        self.nodes[h as usize].id
    }

    /// The size at `h`.
    #[inline]
    pub fn size(&self, h: Handle) -> u64 {
        self.nodes[h as usize].size
    }

    /// The policy state at `h`.
    #[inline]
    pub fn meta(&self, h: Handle) -> u32 {
        self.nodes[h as usize].meta
    }

    /// Set the policy state at `h`.
    #[inline]
    pub fn set_meta(&mut self, h: Handle, meta: u32) {
        self.nodes[h as usize].meta = meta;
    }

    /// Head (most recently pushed).
    pub fn head(&self) -> Option<Handle> {
        self.head
    }

    /// Tail (least recently pushed).
    pub fn tail(&self) -> Option<Handle> {
        self.tail
    }

    /// The node after `h` towards the tail.
    #[inline]
    pub fn next_toward_tail(&self, h: Handle) -> Option<Handle> {
        let n = self.nodes[h as usize].next;
        (n != NIL).then_some(n)
    }

    /// The node before `h` towards the head.
    #[inline]
    pub fn prev_toward_head(&self, h: Handle) -> Option<Handle> {
        let p = self.nodes[h as usize].prev;
        (p != NIL).then_some(p)
    }

    /// Push a new id at the head. Panics (debug) if present.
    #[inline]
    pub fn push_head(&mut self, id: ObjId, size: u64, meta: u32) -> Handle {
        debug_assert!(!self.map.contains_key(&id), "id {id} already in list");
        let node = Node {
            id,
            size,
            meta,
            prev: NIL,
            next: self.head.unwrap_or(NIL),
        };
        let h = match self.free.pop() {
            Some(h) => {
                self.nodes[h as usize] = node;
                h
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as Handle
            }
        };
        if let Some(old) = self.head {
            self.nodes[old as usize].prev = h;
        } else {
            self.tail = Some(h);
        }
        self.head = Some(h);
        self.map.insert(id, h);
        self.bytes += size;
        h
    }

    fn unlink(&mut self, h: Handle) {
        let (prev, next) = {
            let n = &self.nodes[h as usize];
            (n.prev, n.next)
        };
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.head = (next != NIL).then_some(next);
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            self.tail = (prev != NIL).then_some(prev);
        }
    }

    /// Move `h` to the head.
    #[inline]
    pub fn move_to_head(&mut self, h: Handle) {
        if self.head == Some(h) {
            return;
        }
        self.unlink(h);
        let old = self.head.expect("non-empty list has a head");
        let n = &mut self.nodes[h as usize];
        n.prev = NIL;
        n.next = old;
        self.nodes[old as usize].prev = h;
        self.head = Some(h);
    }

    /// Remove `h`; returns `(id, size, meta)`.
    #[inline]
    pub fn remove(&mut self, h: Handle) -> (ObjId, u64, u32) {
        self.unlink(h);
        let n = &self.nodes[h as usize];
        let out = (n.id, n.size, n.meta);
        self.map.remove(&n.id);
        self.bytes -= n.size;
        self.free.push(h);
        out
    }

    /// Remove `id` if present; returns `(size, meta)`.
    pub fn remove_id(&mut self, id: ObjId) -> Option<(u64, u32)> {
        let h = self.get(id)?;
        let (_, size, meta) = self.remove(h);
        Some((size, meta))
    }

    /// Remove and return the tail.
    #[inline]
    pub fn pop_tail(&mut self) -> Option<(ObjId, u64, u32)> {
        let t = self.tail?;
        Some(self.remove(t))
    }

    /// Walk the list head to tail and check its invariants.
    pub fn check(&self) -> Result<(), String> {
        let mut count = 0usize;
        let mut bytes = 0u64;
        let mut prev = NIL;
        let mut cur = self.head.unwrap_or(NIL);
        while cur != NIL {
            let n = &self.nodes[cur as usize];
            if n.prev != prev {
                return Err(format!("broken prev link at id {}", n.id));
            }
            if self.map.get(&n.id) != Some(&cur) {
                return Err(format!("id {} linked but not mapped", n.id));
            }
            count += 1;
            bytes += n.size;
            if count > self.map.len() {
                return Err("list longer than its map (cycle?)".into());
            }
            prev = cur;
            cur = n.next;
        }
        if self.tail.unwrap_or(NIL) != prev {
            return Err("tail is not the last node".into());
        }
        if count != self.map.len() {
            return Err(format!("{count} linked ids but {} mapped", self.map.len()));
        }
        if bytes != self.bytes {
            return Err(format!("bytes {} but nodes sum to {bytes}", self.bytes));
        }
        Ok(())
    }

    /// Check that no id is in two of `lists` (named, for the message).
    pub fn check_disjoint(lists: &[(&str, &IdList)]) -> Result<(), String> {
        for (i, (name, list)) in lists.iter().enumerate() {
            let mut h = list.head();
            while let Some(x) = h {
                let id = list.id(x);
                if let Some((other, _)) = lists[i + 1..].iter().find(|(_, l)| l.contains(id)) {
                    return Err(format!("object {id} is in both {name} and {other}"));
                }
                h = list.next_toward_tail(x);
            }
        }
        Ok(())
    }
}
