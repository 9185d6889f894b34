//! Predictions for learning-augmented paging: oracle labels computed from
//! the trace itself, and seeded noise models that degrade them.
//!
//! Three kinds of prediction, each a trace column read by the policies
//! through `Request::pred_next_vtime` / `Request::pred_bit`:
//!
//! - **next arrival** ([`next_arrival`]): the index of the next request to
//!   the same object (Lykouris & Vassilvitskii; BlindOracle). The oracle is
//!   exactly `next_vtime`.
//! - **discard bit** ([`discard_bits`], Antoniadis et al., ICML 2023,
//!   "Paging with Succinct Predictions", the discard-prediction setup): true
//!   when Belady's algorithm (LFD/FitF, "longest forward distance") with `k`
//!   slots evicts the page after this request and before its next one, i.e.
//!   the page is not in OPT's cache at its next request. A page never
//!   requested again gets `true` (it is always safe to discard).
//! - **phase bit** ([`phase_bits`], same paper, the phase-prediction setup):
//!   with the trace cut into k-phases ([`phases`]: maximal runs of requests to
//!   at most `k` distinct pages, the phases of every marking algorithm on a
//!   cache that starts empty), true when the page is requested again in the
//!   *next* k-phase. Requests in the last phase get `false`.
//!
//! The paper's abstract defines the two bits only in words ("safe to evict
//! this page"; "requested in the next phase, for an appropriate
//! partitioning of the input into phases"); taking Belady as the OPT behind
//! the discard bit and k-phases as the partition is this crate's reading,
//! the one under which `mark0` is exactly 1-consistent and
//! `mark_and_predict` pays exactly the clean pages (see their docs).
//!
//! All functions assume unit-size pages and a cache of `k` pages.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::request::{NEVER, ObjId};
use crate::rng::Rng;
use crate::{FxHashMap, FxHashSet};

/// The oracle prediction kinds a trace can be labelled with (the
/// `with_oracle_predictions` kinds of the bindings): [`next_arrival`],
/// [`discard_bits`], [`phase_bits`].
pub const PREDICTION_KINDS: [&str; 3] = ["next_arrival", "discard_bit", "phase_bit"];

/// The oracle next-arrival prediction: `next_access(ids)` (index of the next
/// request to the same id, [`NEVER`] if none).
pub fn next_arrival(ids: &[ObjId]) -> Vec<u64> {
    crate::trace::next_access(ids)
}

fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::invalid("k", "cache size must be at least 1 page"));
    }
    Ok(())
}

fn check_next(ids: &[ObjId], next_vtime: &[u64]) -> Result<()> {
    if ids.len() != next_vtime.len() {
        return Err(Error::invalid(
            "next_vtime",
            format!(
                "has {} entries for {} requests",
                next_vtime.len(),
                ids.len()
            ),
        ));
    }
    Ok(())
}

/// Outcome of running Belady (LFD) on a unit-size trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeladyRun {
    /// OPT's number of misses (page faults) with `k` slots, compulsory ones
    /// included.
    pub misses: u64,
    /// The discard bit of every request (see the module doc).
    pub discard: Vec<bool>,
}

/// Run Belady's algorithm with `k` slots: on a fault with a full cache, evict
/// the resident page whose next request is furthest (ties among pages never
/// requested again broken by the smallest id). O(n log k).
///
/// `next_vtime` must be `next_access(ids)`.
pub fn belady(ids: &[ObjId], next_vtime: &[u64], k: usize) -> Result<BeladyRun> {
    check_k(k)?;
    check_next(ids, next_vtime)?;
    // resident id -> index of its latest request; by_next orders by next use.
    let mut resident: FxHashMap<ObjId, usize> = FxHashMap::default();
    let mut by_next: BTreeSet<(u64, ObjId)> = BTreeSet::new();
    let mut discard: Vec<bool> = next_vtime.iter().map(|&n| n == NEVER).collect();
    let mut misses = 0u64;
    for (t, (&id, &next)) in ids.iter().zip(next_vtime).enumerate() {
        if let Some(last) = resident.get_mut(&id) {
            let removed = by_next.remove(&(t as u64, id));
            assert!(removed, "next_vtime is not next_access(ids) at request {t}");
            *last = t;
        } else {
            misses += 1;
            if resident.len() == k {
                let (_, victim) = by_next
                    .pop_last()
                    .expect("a full cache has a furthest page");
                let last = resident
                    .remove(&victim)
                    .expect("by_next and resident hold the same ids");
                discard[last] = true;
            }
            resident.insert(id, t);
        }
        by_next.insert((next, id));
    }
    Ok(BeladyRun { misses, discard })
}

/// OPT's (Belady's) miss count with `k` slots.
pub fn opt_misses(ids: &[ObjId], next_vtime: &[u64], k: usize) -> Result<u64> {
    Ok(belady(ids, next_vtime, k)?.misses)
}

/// The oracle discard bits for a cache of `k` pages (see the module doc).
pub fn discard_bits(ids: &[ObjId], next_vtime: &[u64], k: usize) -> Result<Vec<bool>> {
    Ok(belady(ids, next_vtime, k)?.discard)
}

/// The k-phase of every request: phase 0 starts at request 0, and a new
/// phase starts at each request that would make the current phase hold
/// `k + 1` distinct pages.
pub fn phases(ids: &[ObjId], k: usize) -> Result<Vec<u64>> {
    check_k(k)?;
    let mut out = Vec::with_capacity(ids.len());
    let mut distinct: FxHashSet<ObjId> = FxHashSet::default();
    let mut phase = 0u64;
    for &id in ids {
        if !distinct.contains(&id) {
            if distinct.len() == k {
                phase += 1;
                distinct.clear();
            }
            distinct.insert(id);
        }
        out.push(phase);
    }
    Ok(out)
}

/// The oracle phase bits for a cache of `k` pages: whether each request's
/// page is requested in the next k-phase (see the module doc).
pub fn phase_bits(ids: &[ObjId], k: usize) -> Result<Vec<bool>> {
    let ph = phases(ids, k)?;
    // Start index of each phase, plus a sentinel.
    let mut starts: Vec<usize> = Vec::new();
    for (t, &p) in ph.iter().enumerate() {
        if t == 0 || p != ph[t - 1] {
            starts.push(t);
        }
    }
    starts.push(ids.len());
    let mut bits = vec![false; ids.len()];
    let mut next_set: FxHashSet<ObjId> = FxHashSet::default();
    for j in 0..starts.len().saturating_sub(1) {
        next_set.clear();
        if j + 2 < starts.len() {
            next_set.extend(&ids[starts[j + 1]..starts[j + 2]]);
        }
        for t in starts[j]..starts[j + 1] {
            bits[t] = next_set.contains(&ids[t]);
        }
    }
    Ok(bits)
}

/// Flip each bit independently with probability `p` in `[0, 1]` (seeded).
pub fn flip_bits(bits: &[bool], p: f64, seed: u64) -> Result<Vec<bool>> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::invalid(
            "p",
            format!("flip probability must be in [0, 1], got {p}"),
        ));
    }
    let mut rng = Rng::seed_from_u64(seed);
    Ok(bits.iter().map(|&b| b ^ rng.bernoulli(p)).collect())
}

/// Gaussian noise on next-arrival times (seeded): request `t` gets
/// `next_vtime[t] + round(sigma * N(0, 1))`, clamped to `[t + 1, NEVER - 1]`
/// (a prediction always lies in the future and a finite one never becomes
/// "never"). [`NEVER`] stays [`NEVER`]: the noise model perturbs *when* a
/// page returns, not *whether*. `sigma` is in requests, finite and `>= 0`.
pub fn noisy_next_arrival(next_vtime: &[u64], sigma: f64, seed: u64) -> Result<Vec<u64>> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(Error::invalid(
            "sigma",
            format!("must be finite and >= 0, got {sigma}"),
        ));
    }
    let mut rng = Rng::seed_from_u64(seed);
    Ok(next_vtime
        .iter()
        .enumerate()
        .map(|(t, &n)| {
            if n == NEVER {
                return NEVER;
            }
            let noisy = (n as f64 + (sigma * rng.normal()).round()).max(0.0);
            // f64 -> u64 saturates; NEVER - 1 keeps a finite prediction finite.
            (noisy as u64).clamp(t as u64 + 1, NEVER - 1)
        })
        .collect())
}

/// Count wrong predictions by the predicted value: `(eta_0, eta_1)` where
/// `eta_0` = predicted false but true, `eta_1` = predicted true but false
/// (the two error counts of Antoniadis et al.'s `(alpha, beta, gamma)`
/// bounds: cost <= alpha*OPT + beta*eta_0 + gamma*eta_1).
pub fn prediction_errors(predicted: &[bool], truth: &[bool]) -> Result<(u64, u64)> {
    if predicted.len() != truth.len() {
        return Err(Error::invalid(
            "predicted",
            format!(
                "has {} entries but truth has {}",
                predicted.len(),
                truth.len()
            ),
        ));
    }
    let mut e = (0, 0);
    for (&p, &t) in predicted.iter().zip(truth) {
        match (p, t) {
            (false, true) => e.0 += 1,
            (true, false) => e.1 += 1,
            _ => {}
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::next_access;

    #[test]
    fn belady_on_a_textbook_trace() {
        // Classic example: 7 0 1 2 0 3 0 4 2 3 0 3 2 with 3 frames -> 7 faults.
        let ids = [7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2];
        let run = belady(&ids, &next_access(&ids), 3).unwrap();
        assert_eq!(run.misses, 7);
        // 7 is evicted at request 3 (never used again): its bit is set.
        assert!(run.discard[0]);
        // 0 at request 1 is kept until request 4.
        assert!(!run.discard[1]);
    }

    #[test]
    fn phases_and_phase_bits() {
        let ids = [1, 2, 1, 3, 4, 3, 1, 5];
        // k = 2: [1 2 1] [3 4 3] [1 5]
        assert_eq!(phases(&ids, 2).unwrap(), vec![0, 0, 0, 1, 1, 1, 2, 2]);
        assert_eq!(
            phase_bits(&ids, 2).unwrap(),
            vec![false, false, false, false, false, false, false, false]
        );
        let ids = [1, 2, 3, 1, 2, 3];
        // k = 2: [1 2] [3 1] [2 3]
        assert_eq!(
            phase_bits(&ids, 2).unwrap(),
            vec![true, false, true, false, false, false]
        );
    }

    #[test]
    fn noise_models() {
        let next = [3, NEVER, 10, 4, NEVER];
        assert_eq!(noisy_next_arrival(&next, 0.0, 1).unwrap(), next.to_vec());
        let noisy = noisy_next_arrival(&next, 50.0, 1).unwrap();
        for (t, (&a, &b)) in next.iter().zip(&noisy).enumerate() {
            assert_eq!(a == NEVER, b == NEVER);
            assert!(b > t as u64);
        }
        let bits = vec![true; 1000];
        let flipped = flip_bits(&bits, 0.25, 3).unwrap();
        let n = flipped.iter().filter(|&&b| !b).count();
        assert!((200..300).contains(&n), "{n}");
        assert_eq!(prediction_errors(&flipped, &bits).unwrap(), (n as u64, 0));
        assert!(flip_bits(&bits, 1.5, 0).is_err());
        assert!(noisy_next_arrival(&next, -1.0, 0).is_err());
    }
}
