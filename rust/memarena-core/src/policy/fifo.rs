//! First in, first out.

use super::{IdList, Policy};
use crate::request::{ObjId, Request};

/// FIFO: evict the object admitted longest ago; hits change nothing.
///
/// Matches libCacheSim's `FIFO` exactly in both unit-size and sized mode.
#[derive(Debug, Default)]
pub struct Fifo {
    list: IdList,
}

impl Fifo {
    /// An empty FIFO; capacity is enforced by the [`super::Cache`] engine.
    pub fn new(_capacity_bytes: u64) -> Self {
        Self::default()
    }
}

impl Policy for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        self.list.contains(req.id)
    }

    #[inline]
    fn insert(&mut self, req: &Request) {
        self.list.push_head(req.id, req.size, 0);
    }

    #[inline]
    fn evict(&mut self, _req: &Request) -> (ObjId, u64) {
        let (id, size, _) = self.list.pop_tail().expect("evict from empty FIFO");
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

#[cfg(test)]
mod tests {
    use crate::policy::Cache;
    use crate::request::Request;

    #[test]
    fn hits_do_not_reorder() {
        let mut c = Cache::with_defaults("fifo", 2).unwrap();
        for (vt, id) in [1, 2, 1, 3].into_iter().enumerate() {
            c.access(&Request::unit(id, vt as u64));
        }
        // 1 was admitted first, so 3 evicts it despite the hit.
        assert!(!c.contains(1) && c.contains(2) && c.contains(3));
    }
}
