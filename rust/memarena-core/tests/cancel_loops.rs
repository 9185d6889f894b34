//! A stop request (`memarena_core::cancel`) ends the trace readers, the
//! derivation of a trace's columns and the paging replays with
//! `Error::Interrupted`; a poll that never says stop changes no result.

use std::path::PathBuf;
use std::time::Duration;

use memarena_core::cancel::with_poll_interval;
use memarena_core::sim::{Replay, ReplayOptions, access_batch, replay, replay_checked};
use memarena_core::trace::{CsvOptions, OracleOptions, Trace, read_csv, read_oracle_general};
use memarena_core::trace::{write_csv, write_oracle_general};
use memarena_core::{Cache, Error};
use proptest::prelude::*;

fn stop() -> bool {
    true
}

fn go_on() -> bool {
    false
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memarena-core-cancel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir.join(name)
}

/// A sized, timed trace of `n` requests over `n / 3 + 1` objects.
fn trace(n: usize) -> Trace {
    let ids: Vec<u64> = (0..n as u64)
        .map(|i| (i * 7919) % (n as u64 / 3 + 1))
        .collect();
    let sizes = (0..n as u64).map(|i| 1 + i % 5).collect();
    let times = (0..n as u64).collect();
    Trace::new(ids)
        .with_sizes(Some(sizes))
        .unwrap()
        .with_timestamps(Some(times))
        .unwrap()
}

fn interrupted<T: std::fmt::Debug>(r: memarena_core::Result<T>) -> bool {
    matches!(r, Err(Error::Interrupted))
}

#[test]
fn a_stop_request_ends_the_readers_and_the_derivation() {
    let t = trace(5000);
    let csv = scratch("stop.csv");
    write_csv(&csv, &t, b',').unwrap();
    let bin = scratch("stop.bin");
    write_oracle_general(&bin, &t).unwrap();
    let opts = CsvOptions::default();
    let r = with_poll_interval(stop, Duration::ZERO, || read_csv(&csv, &opts));
    assert!(interrupted(r));
    let r = with_poll_interval(stop, Duration::ZERO, || {
        read_oracle_general(&bin, &OracleOptions::default())
    });
    assert!(interrupted(r));
    let ids = t.ids().to_vec();
    let r = with_poll_interval(stop, Duration::ZERO, || Trace::try_new(ids, "ids"));
    assert!(interrupted(r));
    std::fs::remove_file(&csv).ok();
    std::fs::remove_file(&bin).ok();
}

#[test]
fn a_stop_request_ends_the_replays_and_leaves_a_resumable_position() {
    let t = trace(5000);
    let view = t.view();
    let opts = ReplayOptions::default();
    let mut c = Cache::with_defaults("lru", 100).unwrap();
    assert!(interrupted(with_poll_interval(
        stop,
        Duration::ZERO,
        || { replay(&view, &mut c, &opts) }
    )));
    let mut c = Cache::with_defaults("lru", 100).unwrap();
    assert!(interrupted(with_poll_interval(
        stop,
        Duration::ZERO,
        || { replay_checked(&view, &mut c, &opts) }
    )));
    let mut c = Cache::with_defaults("lru", 100).unwrap();
    assert!(interrupted(with_poll_interval(
        stop,
        Duration::ZERO,
        || { access_batch(&view, &mut c) }
    )));

    // An interrupted feed stops between two requests: going on from its
    // position gives what one uninterrupted replay gives.
    let mut c = Cache::with_defaults("lru", 100).unwrap();
    let mut r = Replay::new(&opts);
    let e = with_poll_interval(stop, Duration::ZERO, || r.feed(&view, &mut c, view.len()));
    assert!(interrupted(e));
    assert!(
        r.position() > 0 && r.position() < view.len(),
        "{}",
        r.position()
    );
    assert_eq!(r.stats().requests, r.position() as u64);
    r.feed(&view, &mut c, view.len()).unwrap();
    let mut fresh = Cache::with_defaults("lru", 100).unwrap();
    assert_eq!(r.into_stats(), replay(&view, &mut fresh, &opts).unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Polling never changes what the readers, the derivation and the
    /// replays return.
    #[test]
    fn polling_changes_no_result(n in 0usize..3000, case in 0u32..1000) {
        let t = trace(n);
        let csv = scratch(&format!("go-{case}.csv"));
        write_csv(&csv, &t, b',').unwrap();
        let bin = scratch(&format!("go-{case}.bin"));
        write_oracle_general(&bin, &t).unwrap();
        let copts = CsvOptions {
            size_column: Some(memarena_core::trace::Column::Name("size".into())),
            time_column: Some(memarena_core::trace::Column::Name("timestamp".into())),
            ..CsvOptions::default()
        };
        let polled = with_poll_interval(go_on, Duration::ZERO, || {
            (
                read_csv(&csv, &copts),
                read_oracle_general(&bin, &OracleOptions::default()),
                Trace::try_new(t.ids().to_vec(), "ids"),
            )
        });
        prop_assert_eq!(polled.0.unwrap(), read_csv(&csv, &copts).unwrap());
        prop_assert_eq!(polled.1.unwrap(), read_oracle_general(&bin, &OracleOptions::default()).unwrap());
        prop_assert_eq!(polled.2.unwrap(), Trace::new(t.ids().to_vec()));
        std::fs::remove_file(&csv).ok();
        std::fs::remove_file(&bin).ok();

        let view = t.view();
        let opts = ReplayOptions { window_requests: 7, ..ReplayOptions::default() };
        let run = |polled: bool| {
            let go = || {
                let mut c = Cache::with_defaults("lru", 50).unwrap();
                let s = replay(&view, &mut c, &opts).unwrap();
                let mut c = Cache::with_defaults("lru", 50).unwrap();
                (s, access_batch(&view, &mut c).unwrap())
            };
            if polled { with_poll_interval(go_on, Duration::ZERO, go) } else { go() }
        };
        prop_assert_eq!(run(true), run(false));
    }
}
