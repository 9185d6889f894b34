//! Trace replay and its metrics.
//!
//! [`replay`] drives a [`Cache`] over a [`TraceView`] and returns
//! [`PagingStats`]. The loop fills one [`Request`] per index from the view's
//! slices (no allocation per request) and is generic over the policy type, so
//! `Cache<Lru>` monomorphizes; `Cache<dyn Policy>` works too.

use crate::error::{Error, Result};
use crate::policy::{Cache, Outcome, Policy};
use crate::request::{NEVER, Request};
use crate::trace::TraceView;

/// Options of [`replay`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayOptions {
    /// The first `warmup_requests` requests go through the cache but are not
    /// counted in any statistic (windows included).
    pub warmup_requests: u64,
    /// `0`: no windows. Otherwise the counted requests are cut into windows
    /// of this many requests (the last one may be shorter) and
    /// [`PagingStats::window_requests`]/[`PagingStats::window_misses`] get
    /// one entry per window.
    pub window_requests: u64,
    /// Treat every request as size 1 (object miss ratio on a cache of
    /// `capacity` objects), whatever the trace's sizes.
    pub ignore_size: bool,
}

/// Counts from one replay.
///
/// Invariants (property-tested): `misses <= requests`;
/// `compulsory_misses <= misses`; `too_large_misses <= misses`;
/// `bytes_missed <= bytes_requested`; `compulsory_bytes <= bytes_missed`;
/// the window vectors have equal length and sum to `requests` and `misses`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PagingStats {
    /// Counted requests.
    pub requests: u64,
    /// Counted misses, compulsory and too-large ones included (libCacheSim
    /// semantics).
    pub misses: u64,
    /// Sum of the sizes of the counted requests.
    pub bytes_requested: u64,
    /// Sum of the sizes of the counted misses.
    pub bytes_missed: u64,
    /// Misses on the first request ever to an object in the trace (cold
    /// misses; also counted in `misses`).
    pub compulsory_misses: u64,
    /// Bytes of the compulsory misses.
    pub compulsory_bytes: u64,
    /// Misses on objects larger than the whole cache (never admitted; also
    /// counted in `misses`).
    pub too_large_misses: u64,
    /// Requests per window (empty when `window_requests == 0`).
    pub window_requests: Vec<u64>,
    /// Misses per window (same length as `window_requests`).
    pub window_misses: Vec<u64>,
}

impl PagingStats {
    /// Hits = requests - misses.
    pub fn hits(&self) -> u64 {
        self.requests - self.misses
    }

    /// Object miss ratio (0 for an empty replay).
    pub fn miss_ratio(&self) -> f64 {
        ratio(self.misses, self.requests)
    }

    /// Byte miss ratio (0 for an empty replay).
    pub fn byte_miss_ratio(&self) -> f64 {
        ratio(self.bytes_missed, self.bytes_requested)
    }

    /// Miss ratio without compulsory misses: misses a larger cache could
    /// have avoided, over requests.
    pub fn non_compulsory_miss_ratio(&self) -> f64 {
        ratio(self.misses - self.compulsory_misses, self.requests)
    }

    /// Miss ratio of each window.
    pub fn window_miss_ratios(&self) -> Vec<f64> {
        self.window_requests
            .iter()
            .zip(&self.window_misses)
            .map(|(&r, &m)| ratio(m, r))
            .collect()
    }

    /// Check the documented invariants; an `Err` names the broken one.
    pub fn check(&self) -> std::result::Result<(), String> {
        let fail = |what: &str| Err(format!("PagingStats invariant broken: {what} ({self:?})"));
        if self.misses > self.requests {
            return fail("misses > requests");
        }
        if self.compulsory_misses > self.misses || self.too_large_misses > self.misses {
            return fail("compulsory or too-large misses > misses");
        }
        if self.bytes_missed > self.bytes_requested || self.compulsory_bytes > self.bytes_missed {
            return fail("byte counts out of order");
        }
        if self.window_requests.len() != self.window_misses.len() {
            return fail("window vectors differ in length");
        }
        if !self.window_requests.is_empty()
            && (self.window_requests.iter().sum::<u64>() != self.requests
                || self.window_misses.iter().sum::<u64>() != self.misses)
        {
            return fail("windows do not sum to the totals");
        }
        Ok(())
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The request at index `i` of a validated view.
#[inline(always)]
fn request_at(view: &TraceView<'_>, i: usize, ignore_size: bool) -> Request {
    Request {
        id: view.ids[i],
        size: match view.sizes {
            Some(s) if !ignore_size => s[i],
            _ => 1,
        },
        vtime: i as u64,
        next_vtime: view.next_vtime[i],
        pred_next_vtime: view.pred_next_vtime.map_or(NEVER, |p| p[i]),
        pred_bit: view.pred_bit.is_some_and(|p| p[i]),
    }
}

/// A replay in progress: the counters and the index of the next request.
///
/// A trace can be fed in chunks (`feed(view, cache, stop)`, then again from
/// there), so callers can report progress or stop between chunks; the
/// result equals one [`replay`] over the whole trace whatever the chunking.
#[derive(Clone, Debug)]
pub struct Replay {
    opts: ReplayOptions,
    next: usize,
    in_window: u64,
    stats: PagingStats,
}

impl Replay {
    /// A replay that starts at request 0.
    pub fn new(opts: &ReplayOptions) -> Self {
        Replay {
            opts: *opts,
            next: 0,
            in_window: 0,
            stats: PagingStats::default(),
        }
    }

    /// Index of the next request to replay.
    pub fn position(&self) -> usize {
        self.next
    }

    /// The counts so far.
    pub fn stats(&self) -> &PagingStats {
        &self.stats
    }

    /// The counts, consuming the replay.
    pub fn into_stats(self) -> PagingStats {
        debug_assert_eq!(self.stats.check(), Ok(()));
        self.stats
    }

    #[inline(always)]
    fn record(&mut self, i: usize, req: &Request, first: bool, outcome: Outcome) {
        if (i as u64) < self.opts.warmup_requests {
            return;
        }
        let s = &mut self.stats;
        s.requests += 1;
        s.bytes_requested += req.size;
        let miss = !outcome.is_hit();
        if miss {
            s.misses += 1;
            s.bytes_missed += req.size;
            if first {
                s.compulsory_misses += 1;
                s.compulsory_bytes += req.size;
            }
            if outcome == Outcome::MissTooLarge {
                s.too_large_misses += 1;
            }
        }
        if self.opts.window_requests != 0 {
            if self.in_window == 0 {
                s.window_requests.push(0);
                s.window_misses.push(0);
            }
            *s.window_requests.last_mut().expect("window opened above") += 1;
            *s.window_misses.last_mut().expect("window opened above") += miss as u64;
            self.in_window += 1;
            if self.in_window == self.opts.window_requests {
                self.in_window = 0;
            }
        }
    }

    /// Room for every window the requests up to `stop` open, allocated
    /// fallibly: `window_requests` comes from the config, and 1 on a long
    /// trace is a window per request.
    fn reserve_windows(&mut self, stop: usize) -> Result<()> {
        let w = self.opts.window_requests;
        if w == 0 {
            return Ok(());
        }
        let counted = (stop as u64).saturating_sub(self.opts.warmup_requests);
        let need = usize::try_from(counted.div_ceil(w)).unwrap_or(usize::MAX);
        let more = need.saturating_sub(self.stats.window_requests.len());
        crate::fallible::try_reserve(&mut self.stats.window_requests, more, "window_requests")?;
        crate::fallible::try_reserve(&mut self.stats.window_misses, more, "window_requests")
    }

    fn check_stop(&self, view: &TraceView<'_>, stop: usize) -> Result<()> {
        view.validate()?;
        if stop < self.next || stop > view.len() {
            return Err(Error::invalid(
                "stop",
                format!("must be in [{}, {}], got {stop}", self.next, view.len()),
            ));
        }
        Ok(())
    }

    /// Replay requests `position()..stop` of `view` through `cache`. A stop
    /// request ([`crate::cancel`]) ends it with [`Error::Interrupted`] and
    /// `position()` at the first request not replayed.
    pub fn feed<P: ?Sized + Policy>(
        &mut self,
        view: &TraceView<'_>,
        cache: &mut Cache<P>,
        stop: usize,
    ) -> Result<()> {
        self.check_stop(view, stop)?;
        self.reserve_windows(stop)?;
        for i in self.next..stop {
            // Stoppable (see `crate::cancel`): a stop leaves the replay at
            // request `i`, consistent with the cache, so it can go on.
            if let Err(e) = crate::cancel::check() {
                self.next = i;
                return Err(e);
            }
            let req = request_at(view, i, self.opts.ignore_size);
            let outcome = cache.access(&req);
            self.record(i, &req, view.first_access[i], outcome);
        }
        self.next = stop;
        Ok(())
    }

    /// Like [`Replay::feed`], through [`Cache::access_checked`] (policies
    /// written outside the core). On error, `position()` is the request
    /// that failed.
    pub fn feed_checked<P: ?Sized + Policy>(
        &mut self,
        view: &TraceView<'_>,
        cache: &mut Cache<P>,
        stop: usize,
    ) -> Result<()> {
        self.check_stop(view, stop)?;
        self.reserve_windows(stop)?;
        for i in self.next..stop {
            crate::cancel::check()?; // stoppable; `position()` is `i`
            let req = request_at(view, i, self.opts.ignore_size);
            let outcome = cache.access_checked(&req)?;
            self.record(i, &req, view.first_access[i], outcome);
            self.next = i + 1;
        }
        Ok(())
    }
}

/// Replay `view` through `cache` and count. The cache keeps its state, so
/// consecutive replays continue from where the last stopped (compulsory
/// misses are then those on first-access requests that still miss).
pub fn replay<P: ?Sized + Policy>(
    view: &TraceView<'_>,
    cache: &mut Cache<P>,
    opts: &ReplayOptions,
) -> Result<PagingStats> {
    let mut r = Replay::new(opts);
    r.feed(view, cache, view.len())?;
    Ok(r.into_stats())
}

/// Like [`replay`], but through [`Cache::access_checked`]: a policy that
/// breaks its contract yields `Error::Invariant` instead of corrupting the
/// accounting. For policies written outside the core.
pub fn replay_checked<P: ?Sized + Policy>(
    view: &TraceView<'_>,
    cache: &mut Cache<P>,
    opts: &ReplayOptions,
) -> Result<PagingStats> {
    let mut r = Replay::new(opts);
    r.feed_checked(view, cache, view.len())?;
    Ok(r.into_stats())
}

/// Replay `view` through `cache` and return the hit mask (one entry per
/// request, true = hit). Uses the trace's sizes.
pub fn access_batch<P: ?Sized + Policy>(
    view: &TraceView<'_>,
    cache: &mut Cache<P>,
) -> Result<Vec<bool>> {
    view.validate()?;
    (0..view.ids.len())
        .map(|i| {
            crate::cancel::check()?; // stoppable (see `crate::cancel`)
            Ok(cache.access(&request_at(view, i, false)).is_hit())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Lru;
    use crate::trace::Trace;

    #[test]
    fn counts_a_tiny_lru_replay() {
        let t = Trace::new(vec![1, 2, 1, 3, 2, 1]);
        let mut c = Cache::new(2, Box::new(Lru::new(2)));
        let s = replay(&t.view(), &mut c, &ReplayOptions::default()).unwrap();
        // 1 m, 2 m, 1 h, 3 m (evict 2), 2 m (evict 1), 1 m.
        assert_eq!((s.requests, s.misses, s.compulsory_misses), (6, 5, 3));
        assert_eq!(s.hits(), 1);
    }

    #[test]
    fn warmup_and_windows() {
        let t = Trace::new(vec![1, 2, 1, 3, 2, 1]);
        let mut c = Cache::with_defaults("lru", 2).unwrap();
        let opts = ReplayOptions {
            warmup_requests: 2,
            window_requests: 3,
            ignore_size: false,
        };
        let s = replay(&t.view(), &mut c, &opts).unwrap();
        assert_eq!(s.requests, 4);
        assert_eq!(s.misses, 3);
        assert_eq!(s.compulsory_misses, 1);
        assert_eq!(s.window_requests, vec![3, 1]);
        assert_eq!(s.window_misses, vec![2, 1]);
        s.check().unwrap();
    }

    #[test]
    fn chunked_feed_equals_one_shot() {
        let ids: Vec<u64> = (0..500u64).map(|i| (i * 7919) % 37).collect();
        let t = Trace::new(ids);
        let opts = ReplayOptions {
            warmup_requests: 13,
            window_requests: 50,
            ignore_size: false,
        };
        let mut a = Cache::with_defaults("lru", 8).unwrap();
        let whole = replay(&t.view(), &mut a, &opts).unwrap();
        let mut b = Cache::with_defaults("lru", 8).unwrap();
        let mut r = Replay::new(&opts);
        for stop in [1, 13, 14, 99, 250, 500] {
            r.feed(&t.view(), &mut b, stop).unwrap();
            assert_eq!(r.position(), stop);
        }
        assert!(
            r.feed(&t.view(), &mut b, 499).is_err(),
            "going back is refused"
        );
        assert_eq!(r.into_stats(), whole);
    }

    #[test]
    fn hit_mask_matches_replay() {
        let t = Trace::new(vec![5, 5, 6, 5, 7, 6]);
        let mut a = Cache::with_defaults("lru", 2).unwrap();
        let mask = access_batch(&t.view(), &mut a).unwrap();
        assert_eq!(mask, vec![false, true, false, true, false, false]);
    }
}
