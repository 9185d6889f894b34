//! The discrete-event core: a time-ordered event queue with deterministic
//! tie-breaking, an engine that drives a [`Model`], and seeded RNG streams.
//!
//! Ordering: events pop in increasing `time`; events with equal times pop in
//! the order they were scheduled (a per-queue sequence number breaks ties),
//! so a run is a pure function of its inputs and seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use memarena_core::error::{Error, Result};
use memarena_core::rng::{Rng, mix64};

/// One scheduled event. `key` packs the time's bits (high 64; for times
/// `>= +0.0` the IEEE-754 bit order is the numeric order) and the
/// tie-breaking sequence number (low 64), so ordering is one `u128` compare.
#[derive(Debug)]
struct Entry<E> {
    key: u128,
    event: E,
}

impl<E> Entry<E> {
    #[inline]
    fn time(&self) -> f64 {
        f64::from_bits((self.key >> 64) as u64)
    }
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest event.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

/// Pending events kept in a sorted vector before they spill into the heap.
/// Most models keep a handful pending (an M/M/1 queue two, the serving
/// model three); a sorted vector pops with no sifting at all.
const SMALL: usize = 8;

/// A time-ordered queue of events of type `E`.
///
/// Invariants: every queued event has `time >= now()` (scheduling into the
/// past is an error); `now()` never decreases; equal times pop in scheduling
/// order. Events live either all in `small` (sorted, earliest last) or all
/// in `heap` (once more than `SMALL` (8) were pending, until it drains).
#[derive(Debug)]
pub struct EventQueue<E> {
    small: Vec<Entry<E>>,
    heap: BinaryHeap<Entry<E>>,
    next_seq: u64,
    now: f64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time 0.
    pub fn new() -> Self {
        EventQueue {
            small: Vec::with_capacity(SMALL),
            heap: BinaryHeap::new(),
            next_seq: 0,
            now: 0.0,
        }
    }

    /// The current simulated time in seconds (the time of the last popped
    /// event).
    #[inline]
    pub fn now(&self) -> f64 {
        self.now
    }

    /// Number of pending events.
    #[inline]
    pub fn len(&self) -> usize {
        self.small.len() + self.heap.len()
    }

    /// Whether no event is pending.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.small.is_empty() && self.heap.is_empty()
    }

    /// Schedules `event` at absolute time `time_s`; returns its sequence
    /// number (the tie-breaker). Errors if `time_s` is NaN or earlier than
    /// [`now`](Self::now).
    #[inline(always)]
    pub fn schedule_at(&mut self, time_s: f64, event: E) -> Result<u64> {
        if time_s.is_nan() || time_s < self.now {
            return Err(Error::invalid(
                "time_s",
                format!(
                    "cannot schedule at {time_s}: the simulation is at {}",
                    self.now
                ),
            ));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        // `+ 0.0` turns -0.0 into +0.0 so the bit order is the numeric order.
        let bits = (time_s + 0.0).to_bits();
        self.push(Entry {
            key: ((bits as u128) << 64) | seq as u128,
            event,
        });
        Ok(seq)
    }

    #[inline(always)]
    fn push(&mut self, e: Entry<E>) {
        if !self.heap.is_empty() {
            self.heap.push(e);
        } else if self.small.len() < SMALL {
            // Sorted by key, descending: the earliest event is last. One
            // insertion-sort step from the back (a few swaps at most).
            self.small.push(e);
            let s = self.small.as_mut_slice();
            let mut j = s.len() - 1;
            while j > 0 && s[j - 1].key < s[j].key {
                s.swap(j - 1, j);
                j -= 1;
            }
        } else {
            self.spill(e);
        }
    }

    #[cold]
    #[inline(never)]
    fn spill(&mut self, e: Entry<E>) {
        self.heap.extend(self.small.drain(..));
        self.heap.push(e);
    }

    /// Schedules `event` `delay_s >= 0` seconds from now.
    #[inline]
    pub fn schedule_in(&mut self, delay_s: f64, event: E) -> Result<u64> {
        if delay_s.is_nan() || delay_s < 0.0 {
            return Err(Error::invalid(
                "delay_s",
                format!("must be >= 0, got {delay_s}"),
            ));
        }
        self.schedule_at(self.now + delay_s, event)
    }

    /// The time of the next event in seconds, if any.
    #[inline]
    pub fn peek_time(&self) -> Option<f64> {
        match self.small.last() {
            Some(e) => Some(e.time()),
            None => self.heap.peek().map(|e| e.time()),
        }
    }

    /// Pops the earliest event and advances the clock to its time.
    #[inline]
    pub fn pop(&mut self) -> Option<(f64, E)> {
        let e = match self.small.pop() {
            Some(e) => e,
            None => self.heap.pop()?,
        };
        let t = e.time();
        debug_assert!(t >= self.now, "event queue went back in time");
        self.now = t;
        Some((t, e.event))
    }

    /// Drops every pending event (the clock stays where it is).
    pub fn clear(&mut self) {
        self.small.clear();
        self.heap.clear();
    }
}

/// A simulation model: state plus a handler for its events.
pub trait Model {
    /// The event payload type.
    type Event;

    /// Handles `event` at time `now`; may schedule further events.
    fn handle(
        &mut self,
        now: f64,
        event: Self::Event,
        queue: &mut EventQueue<Self::Event>,
    ) -> Result<()>;
}

/// What one [`Engine::run_until`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunStats {
    /// Events handled.
    pub events: u64,
    /// Simulated time at the end of the call, seconds.
    pub now_s: f64,
}

/// Drives a [`Model`] over its [`EventQueue`].
#[derive(Debug)]
pub struct Engine<M: Model> {
    /// The model; public so a caller can read its state between runs.
    pub model: M,
    queue: EventQueue<M::Event>,
    events: u64,
}

impl<M: Model> Engine<M> {
    /// An engine at time 0 with an empty queue.
    pub fn new(model: M) -> Self {
        Engine {
            model,
            queue: EventQueue::new(),
            events: 0,
        }
    }

    /// The event queue (to schedule initial events).
    pub fn queue_mut(&mut self) -> &mut EventQueue<M::Event> {
        &mut self.queue
    }

    /// The current simulated time, seconds.
    pub fn now(&self) -> f64 {
        self.queue.now()
    }

    /// Total events handled so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Handles one event; `Ok(false)` when the queue is empty.
    pub fn step(&mut self) -> Result<bool> {
        match self.queue.pop() {
            Some((t, e)) => {
                self.events += 1;
                self.model.handle(t, e, &mut self.queue)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Handles events while the next one is at or before `until_s` (use
    /// `f64::INFINITY` to run until the queue drains). Returns
    /// [`memarena_core::Error::Interrupted`] when the poll installed with
    /// [`memarena_core::cancel::with_poll`] asks to stop.
    pub fn run_until(&mut self, until_s: f64) -> Result<RunStats> {
        let start = self.events;
        while let Some(t) = self.queue.peek_time() {
            if t > until_s {
                break;
            }
            // Stoppable on request (Ctrl-C in memarena); a no-op unless the
            // caller installed a poll (see `memarena_core::cancel`).
            memarena_core::cancel::check()?;
            let (t, e) = self.queue.pop().expect("peeked event exists");
            self.events += 1;
            self.model.handle(t, e, &mut self.queue)?;
        }
        Ok(RunStats {
            events: self.events - start,
            now_s: self.queue.now(),
        })
    }

    /// Consumes the engine and returns the model.
    pub fn into_model(self) -> M {
        self.model
    }
}

/// An independent RNG stream derived from `(seed, stream)`: the same pair
/// always gives the same stream, and different stream ids give unrelated
/// streams (arrivals, lengths and service times each take their own, so
/// changing one distribution does not shift the others' draws).
pub fn rng_stream(seed: u64, stream: u64) -> Rng {
    Rng::seed_from_u64(mix64(
        mix64(seed) ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_with_fifo_ties() {
        let mut q = EventQueue::new();
        q.schedule_at(2.0, 'c').unwrap();
        q.schedule_at(1.0, 'a').unwrap();
        q.schedule_at(1.0, 'b').unwrap();
        q.schedule_at(2.0, 'd').unwrap();
        let order: Vec<char> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec!['a', 'b', 'c', 'd']);
        assert_eq!(q.now(), 2.0);
    }

    #[test]
    fn many_pending_events_spill_into_the_heap_in_order() {
        // More than SMALL pending, interleaved pops and pushes, ties.
        let mut q = EventQueue::new();
        let mut want = Vec::new();
        for i in 0..40u32 {
            let t = ((i * 7) % 13) as f64;
            q.schedule_at(t, i).unwrap();
            want.push((t, i));
        }
        want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut got = Vec::new();
        while let Some((t, e)) = q.pop() {
            got.push((t, e));
            if e < 3 {
                // Scheduled while draining: after everything at this time.
                q.schedule_at(t, 100 + e).unwrap();
                let k = want.iter().rposition(|w| w.0 <= t).unwrap();
                want.insert(k + 1, (t, 100 + e));
            }
        }
        assert_eq!(got, want);
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn rejects_the_past_and_nan() {
        let mut q = EventQueue::new();
        q.schedule_at(5.0, ()).unwrap();
        q.pop();
        let err = q.schedule_at(4.0, ()).unwrap_err().to_string();
        assert!(err.contains("time_s"), "{err}");
        assert!(q.schedule_at(f64::NAN, ()).is_err());
        assert!(q.schedule_in(-1.0, ()).is_err());
        q.schedule_in(0.0, ()).unwrap();
    }

    struct Counter {
        seen: Vec<(f64, u32)>,
    }
    impl Model for Counter {
        type Event = u32;
        fn handle(&mut self, now: f64, e: u32, q: &mut EventQueue<u32>) -> Result<()> {
            self.seen.push((now, e));
            if e < 3 {
                q.schedule_in(1.0, e + 1)?;
            }
            Ok(())
        }
    }

    #[test]
    fn engine_runs_a_chain_and_stops_at_the_horizon() {
        let mut eng = Engine::new(Counter { seen: vec![] });
        eng.queue_mut().schedule_at(0.5, 0).unwrap();
        let s = eng.run_until(2.0).unwrap();
        assert_eq!(s.events, 2);
        let s = eng.run_until(f64::INFINITY).unwrap();
        assert_eq!(s.events, 2);
        assert_eq!(eng.model.seen, vec![(0.5, 0), (1.5, 1), (2.5, 2), (3.5, 3)]);
    }

    /// Schedules its successor forever: only a stop request ends its run.
    struct Forever;
    impl Model for Forever {
        type Event = ();
        fn handle(&mut self, _now: f64, _e: (), q: &mut EventQueue<()>) -> Result<()> {
            q.schedule_in(1.0, ())?;
            Ok(())
        }
    }

    #[test]
    fn a_stop_request_ends_an_endless_run() {
        let mut eng = Engine::new(Forever);
        eng.queue_mut().schedule_at(0.0, ()).unwrap();
        let r = memarena_core::cancel::with_poll(|| true, || eng.run_until(f64::INFINITY));
        assert!(matches!(r, Err(memarena_core::Error::Interrupted)));
        assert!(eng.events() > 0);
    }

    #[test]
    fn polling_does_not_change_a_run() {
        let mut eng = Engine::new(Counter { seen: vec![] });
        eng.queue_mut().schedule_at(0.5, 0).unwrap();
        let s = memarena_core::cancel::with_poll_interval(
            || false,
            std::time::Duration::ZERO,
            || eng.run_until(f64::INFINITY),
        )
        .unwrap();
        assert_eq!(s.events, 4);
        assert_eq!(eng.model.seen, vec![(0.5, 0), (1.5, 1), (2.5, 2), (3.5, 3)]);
    }

    #[test]
    fn streams_are_deterministic_and_distinct() {
        assert_eq!(rng_stream(1, 2).next_u64(), rng_stream(1, 2).next_u64());
        assert_ne!(rng_stream(1, 2).next_u64(), rng_stream(1, 3).next_u64());
        assert_ne!(rng_stream(1, 2).next_u64(), rng_stream(2, 2).next_u64());
    }
}
