//! Cooperative cancellation of long core loops.
//!
//! The core knows nothing of signals or of Python. A caller that wants long
//! work to be stoppable installs a *poll* for the current thread with
//! [`with_poll`]; the core's long loops call [`check`] once per iteration.
//! [`check`] is cheap: it counts calls, reads the clock every
//! [`CALLS_PER_CLOCK_READ`] calls, and calls the poll at most once per
//! [`POLL_INTERVAL`] of wall time. When the poll answers `true`, [`check`]
//! returns [`Error::Interrupted`] — then and on every later call in the same
//! [`with_poll`] scope, so that nested loops all unwind — and the loop returns
//! it with `?`, dropping its partial work.
//!
//! With no poll installed (plain Rust use, tests), [`check`] always returns
//! `Ok(())`. The poll is per thread: loops on threads that a core function
//! spawns itself see none, so such functions check on the calling thread
//! between rounds of parallel work.
//!
//! Loops that check: the trace readers (CSV, oracleGeneral), synthesis and
//! the derived columns ([`crate::trace::try_derived`]), the paging replays
//! ([`crate::sim`]), [`crate::mrc`]; in `memarena-sim`, the serving engine,
//! the Azure reader and the workload generators; in `memarena-ann`, k-means
//! training, batched search and the adds of the graph, hash, list and tree
//! indexes (between two vectors, each inserted whole).
//!
//! `memarena-py` installs a poll that re-attaches to the interpreter and runs
//! its pending signal handlers (`PyErr_CheckSignals`), so Ctrl-C and SIGTERM
//! stop native work within about [`POLL_INTERVAL`] plus one loop iteration.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The poll: `true` asks the running core work to stop.
pub type Poll = fn() -> bool;

/// The least wall time between two calls of the poll.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// [`check`] reads the clock once per this many calls (a power of two).
pub const CALLS_PER_CLOCK_READ: u32 = 64;

#[derive(Clone, Copy)]
struct State {
    poll: Option<Poll>,
    interval: Duration,
    calls: u32,
    next_poll: Option<Instant>,
    stopped: bool,
}

const IDLE: State = State {
    poll: None,
    interval: POLL_INTERVAL,
    calls: 0,
    next_poll: None,
    stopped: false,
};

thread_local! {
    static STATE: Cell<State> = const { Cell::new(IDLE) };
}

/// Restores the previous state when a [`with_poll`] scope ends (a panic too).
struct Restore(State);

impl Drop for Restore {
    fn drop(&mut self) {
        STATE.with(|s| s.set(self.0));
    }
}

/// Run `f` with `poll` installed for this thread; the previous poll (if any)
/// is restored afterwards. Scopes nest: the innermost poll is the one called.
pub fn with_poll<T>(poll: Poll, f: impl FnOnce() -> T) -> T {
    with_poll_interval(poll, POLL_INTERVAL, f)
}

/// [`with_poll`] with another least time between polls (`Duration::ZERO`:
/// poll at every clock read, which tests use to stop a loop at once).
pub fn with_poll_interval<T>(poll: Poll, interval: Duration, f: impl FnOnce() -> T) -> T {
    let previous = STATE.with(|s| {
        s.replace(State {
            poll: Some(poll),
            interval,
            ..IDLE
        })
    });
    let _restore = Restore(previous);
    f()
}

/// Whether a poll is installed on this thread.
pub fn is_polled() -> bool {
    STATE.with(|s| s.get().poll.is_some())
}

/// Call once per iteration of a long loop: `Err(Error::Interrupted)` once
/// the installed poll has asked to stop, `Ok(())` otherwise.
///
/// Loops whose iterations are long (milliseconds each) call
/// [`check_now`] instead, which reads the clock on every call.
#[inline]
pub fn check() -> Result<()> {
    STATE.with(|s| {
        let mut st = s.get();
        if st.poll.is_none() {
            return Ok(());
        }
        st.calls = st.calls.wrapping_add(1);
        let due = st.calls & (CALLS_PER_CLOCK_READ - 1) == 0;
        s.set(st);
        if st.stopped {
            return Err(Error::Interrupted);
        }
        if due { poll_if_due(s) } else { Ok(()) }
    })
}

/// [`check`] that reads the clock on every call, for loops whose iterations
/// each take long (a k-means round, a block of rows).
pub fn check_now() -> Result<()> {
    STATE.with(|s| {
        let st = s.get();
        if st.poll.is_none() {
            return Ok(());
        }
        if st.stopped {
            return Err(Error::Interrupted);
        }
        poll_if_due(s)
    })
}

#[cold]
fn poll_if_due(s: &Cell<State>) -> Result<()> {
    let mut st = s.get();
    let Some(poll) = st.poll else { return Ok(()) };
    let now = Instant::now();
    match st.next_poll {
        None => {
            // The first clock read of a scope starts the interval.
            st.next_poll = Some(now + st.interval);
            s.set(st);
            return Ok(());
        }
        Some(t) if now < t => return Ok(()),
        Some(_) => {}
    }
    st.next_poll = Some(now + st.interval);
    s.set(st);
    // The poll may itself run core work that checks: it sees the state set
    // above, so it cannot recurse into the poll within one interval.
    if poll() {
        let mut st = s.get();
        st.stopped = true;
        s.set(st);
        return Err(Error::Interrupted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    fn always_stop() -> bool {
        CALLS.fetch_add(1, Ordering::SeqCst);
        true
    }

    fn never_stop() -> bool {
        false
    }

    /// Spin through `check` until it fails or the deadline passes.
    fn spin(deadline: Duration) -> (Result<()>, u64) {
        let end = Instant::now() + deadline;
        let mut n = 0u64;
        loop {
            n += 1;
            if let Err(e) = check() {
                return (Err(e), n);
            }
            if Instant::now() > end {
                return (Ok(()), n);
            }
        }
    }

    #[test]
    fn without_a_poll_check_never_fails() {
        assert!(!is_polled());
        for _ in 0..10_000 {
            check().unwrap();
            check_now().unwrap();
        }
    }

    #[test]
    fn a_poll_that_says_stop_stops_the_loop_and_stays_stopped() {
        with_poll(always_stop, || {
            assert!(is_polled());
            let (r, _) = spin(Duration::from_secs(60));
            assert!(matches!(r, Err(Error::Interrupted)));
            // Sticky: nested loops unwind too, without calling the poll again.
            let before = CALLS.load(Ordering::SeqCst);
            assert!(matches!(check(), Err(Error::Interrupted)));
            assert!(matches!(check_now(), Err(Error::Interrupted)));
            assert_eq!(CALLS.load(Ordering::SeqCst), before);
        });
        // The scope ended: the previous (no) poll is back.
        assert!(!is_polled());
        check().unwrap();
    }

    #[test]
    fn a_poll_that_says_go_on_never_stops_the_loop() {
        with_poll(never_stop, || {
            let (r, n) = spin(Duration::from_millis(3 * POLL_INTERVAL.as_millis() as u64));
            assert!(r.is_ok());
            assert!(n > 0);
        });
    }

    #[test]
    fn scopes_nest_and_restore_after_a_panic() {
        with_poll(never_stop, || {
            let caught = std::panic::catch_unwind(|| {
                with_poll(always_stop, || panic!("inner"));
            });
            assert!(caught.is_err());
            assert!(is_polled());
            // The outer poll (never stop) is back, not the stopped inner state.
            let (r, _) = spin(Duration::from_millis(2 * POLL_INTERVAL.as_millis() as u64));
            assert!(r.is_ok());
        });
    }

    #[test]
    fn a_zero_interval_polls_at_the_second_clock_read() {
        with_poll_interval(always_stop, Duration::ZERO, || {
            for _ in 0..2 * CALLS_PER_CLOCK_READ - 1 {
                check().unwrap();
            }
            assert!(matches!(check(), Err(Error::Interrupted)));
        });
    }

    #[test]
    fn check_now_polls_after_one_interval() {
        with_poll(always_stop, || {
            check_now().unwrap(); // starts the interval
            std::thread::sleep(POLL_INTERVAL + Duration::from_millis(5));
            assert!(matches!(check_now(), Err(Error::Interrupted)));
        });
    }

    proptest::proptest! {
        /// At a zero interval, a stop request takes effect at the second
        /// clock read and sticks; a poll that says go on never stops a loop.
        #[test]
        fn stops_exactly_at_the_second_clock_read(n in 1u32..1000) {
            let first_err = with_poll_interval(always_stop, Duration::ZERO, || {
                (1..=n).find(|_| check().is_err())
            });
            let expected = (n >= 2 * CALLS_PER_CLOCK_READ).then_some(2 * CALLS_PER_CLOCK_READ);
            proptest::prop_assert_eq!(first_err, expected);
            let errs = with_poll_interval(never_stop, Duration::ZERO, || {
                (0..n).filter(|_| check().is_err()).count()
            });
            proptest::prop_assert_eq!(errs, 0);
        }
    }
}
