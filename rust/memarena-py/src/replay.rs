//! A resumable replay: [`memarena_core::sim::replay`]'s loop and counters,
//! cut so that a trace can be fed in chunks (`Replay::feed` up to `stop`,
//! then again from there). Results equal one `sim::replay` over the whole
//! trace whatever the chunking; `tests/unit/paging` checks both that and the
//! equality with the core's one-shot replay (exposed as `_core.replay`).
//!
//! It lives in the bindings because only the bindings need to stop part-way
//! (progress bars, Ctrl-C, a Python exception in a callback); the counting
//! rules are the core's, documented on [`PagingStats`].

use memarena_core::policy::{Cache, Outcome, Policy};
use memarena_core::request::{NEVER, Request};
use memarena_core::sim::{PagingStats, ReplayOptions};
use memarena_core::trace::TraceView;
use memarena_core::{Error, Result};

/// Counters of a replay in progress and the index of the next request.
pub(crate) struct Replay {
    opts: ReplayOptions,
    next: usize,
    in_window: u64,
    stats: PagingStats,
}

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

impl Replay {
    pub(crate) fn new(opts: &ReplayOptions) -> Self {
        Replay {
            opts: *opts,
            next: 0,
            in_window: 0,
            stats: PagingStats::default(),
        }
    }

    /// Index of the next request to replay.
    pub(crate) fn position(&self) -> usize {
        self.next
    }

    /// The counts so far.
    pub(crate) fn stats(&self) -> &PagingStats {
        &self.stats
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
            let last = s.window_requests.len() - 1;
            s.window_requests[last] += 1;
            s.window_misses[last] += miss as u64;
            self.in_window += 1;
            if self.in_window == self.opts.window_requests {
                self.in_window = 0;
            }
        }
    }

    fn check(&self, view: &TraceView<'_>, stop: usize) -> Result<()> {
        view.validate()?;
        if stop < self.next || stop > view.len() {
            return Err(Error::invalid(
                "stop",
                format!("must be in [{}, {}], got {stop}", self.next, view.len()),
            ));
        }
        Ok(())
    }

    /// Replay requests `position()..stop` of `view` through `cache`.
    pub(crate) fn feed<P: ?Sized + Policy>(
        &mut self,
        view: &TraceView<'_>,
        cache: &mut Cache<P>,
        stop: usize,
    ) -> Result<()> {
        self.check(view, stop)?;
        for i in self.next..stop {
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
    pub(crate) fn feed_checked<P: ?Sized + Policy>(
        &mut self,
        view: &TraceView<'_>,
        cache: &mut Cache<P>,
        stop: usize,
    ) -> Result<()> {
        self.check(view, stop)?;
        for i in self.next..stop {
            let req = request_at(view, i, self.opts.ignore_size);
            let outcome = cache.access_checked(&req)?;
            self.record(i, &req, view.first_access[i], outcome);
            self.next = i + 1;
        }
        Ok(())
    }
}
