//! Shared pieces of the marking-based, learning-augmented policies
//! (`marker`, `mark0`, `mark_and_predict`, `predictive_marker`): a set of
//! ids with O(1) uniform random choice, and the `seed` parameter.

use crate::FxHashMap;
use crate::request::ObjId;
use crate::rng::Rng;

/// A set of ids, each with a payload, supporting O(1) insert, remove and
/// uniform random choice (a vector plus an id -> position map).
///
/// Invariant: `pos[items[i].0] == i` for every `i`.
#[derive(Clone, Debug)]
pub(crate) struct IdSet<T: Copy> {
    items: Vec<(ObjId, T)>,
    pos: FxHashMap<ObjId, usize>,
}

impl<T: Copy> Default for IdSet<T> {
    fn default() -> Self {
        IdSet {
            items: Vec::new(),
            pos: FxHashMap::default(),
        }
    }
}

impl<T: Copy> IdSet<T> {
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    #[inline]
    pub(crate) fn contains(&self, id: ObjId) -> bool {
        self.pos.contains_key(&id)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: ObjId) -> Option<&mut T> {
        let i = *self.pos.get(&id)?;
        Some(&mut self.items[i].1)
    }

    /// Insert a new id. Debug-asserts it is absent.
    #[inline]
    pub(crate) fn insert(&mut self, id: ObjId, value: T) {
        let prev = self.pos.insert(id, self.items.len());
        debug_assert!(prev.is_none(), "id {id} inserted twice into an IdSet");
        self.items.push((id, value));
    }

    /// Remove `id`, returning its payload.
    #[inline]
    pub(crate) fn remove(&mut self, id: ObjId) -> Option<T> {
        let i = self.pos.remove(&id)?;
        let (_, value) = self.items.swap_remove(i);
        if let Some(&(moved, _)) = self.items.get(i) {
            self.pos.insert(moved, i);
        }
        Some(value)
    }

    /// Remove and return a uniformly random element (None if empty).
    #[inline]
    pub(crate) fn pop_random(&mut self, rng: &mut Rng) -> Option<(ObjId, T)> {
        if self.items.is_empty() {
            return None;
        }
        let i = rng.below(self.items.len() as u64) as usize;
        let (id, value) = self.items[i];
        self.remove(id);
        Some((id, value))
    }

    /// Remove every element, in arbitrary order.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (ObjId, T)> + '_ {
        self.pos.clear();
        self.items.drain(..)
    }

    /// Check the position-map invariant.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if self.items.len() != self.pos.len() {
            return Err(format!(
                "{} items but {} positions",
                self.items.len(),
                self.pos.len()
            ));
        }
        for (i, (id, _)) in self.items.iter().enumerate() {
            if self.pos.get(id) != Some(&i) {
                return Err(format!("id {id} at {i} is mapped elsewhere"));
            }
        }
        Ok(())
    }
}

/// The `k`-th harmonic number `H_k = 1 + 1/2 + ... + 1/k`.
/// Exact up to 10^6 terms, then the asymptotic `ln k + gamma + 1/(2k)`.
pub(crate) fn harmonic(k: u64) -> f64 {
    if k <= 1_000_000 {
        (1..=k).map(|i| 1.0 / i as f64).sum()
    } else {
        let k = k as f64;
        k.ln() + 0.577_215_664_901_532_9 + 1.0 / (2.0 * k)
    }
}
