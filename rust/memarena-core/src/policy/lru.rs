//! Least recently used.

use super::{IdList, Policy};
use crate::request::{ObjId, Request};

/// LRU: evict the object whose last access is oldest.
#[derive(Debug, Default)]
pub struct Lru {
    list: IdList,
}

impl Lru {
    /// An empty LRU; capacity is enforced by the [`super::Cache`] engine.
    pub fn new(_capacity_bytes: u64) -> Self {
        Self::default()
    }
}

impl Policy for Lru {
    fn name(&self) -> &'static str {
        "lru"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        match self.list.get(req.id) {
            Some(h) => {
                self.list.move_to_head(h);
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
        let (id, size, _) = self.list.pop_tail().expect("evict from empty LRU");
        (id, size)
    }

    fn contains(&self, id: ObjId) -> bool {
        self.list.contains(id)
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    fn debug_check(&self) -> Result<(), String> {
        self.list.check()
    }
}
