//! Replay a libCacheSim oracleGeneral trace through built-in policies and
//! print miss counts and throughput; used to check parity with libCacheSim.
//!
//! ```text
//! cargo run --release -p memarena-core --example replay -- \
//!     TRACE.bin unit|sized CAPACITY [POLICY ...]
//! ```
//!
//! `unit` treats every object as size 1 (libCacheSim's `ignore_obj_size`);
//! `CAPACITY` is then in objects, otherwise in bytes. With no POLICY, all
//! registered policies run. The record layout (24 bytes, little-endian) is
//! u32 timestamp, u64 object id, u32 size, i64 next access vtime (-1: never).

use std::time::Instant;

use memarena_core::policy::{Cache, names};
use memarena_core::{NEVER, Request};

const RECORD_BYTES: usize = 24;

fn read_trace(path: &str, unit: bool) -> Vec<Request> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        bytes.len().is_multiple_of(RECORD_BYTES),
        "{path}: not a whole number of records"
    );
    bytes
        .chunks_exact(RECORD_BYTES)
        .enumerate()
        .map(|(t, r)| {
            let id = u64::from_le_bytes(r[4..12].try_into().unwrap());
            let size = u32::from_le_bytes(r[12..16].try_into().unwrap());
            let next = i64::from_le_bytes(r[16..24].try_into().unwrap());
            let mut req = Request::unit(id, t as u64);
            req.size = if unit { 1 } else { u64::from(size) };
            req.next_vtime = if next < 0 { NEVER } else { next as u64 };
            req
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: replay TRACE.bin unit|sized CAPACITY [POLICY ...]");
        std::process::exit(2);
    }
    let unit = match args[1].as_str() {
        "unit" => true,
        "sized" => false,
        other => panic!("mode must be unit or sized, not {other}"),
    };
    let capacity: u64 = args[2].parse().expect("CAPACITY must be an integer");
    let reqs = read_trace(&args[0], unit);
    let policies: Vec<String> = if args.len() > 3 {
        args[3..].to_vec()
    } else {
        names().into_iter().map(String::from).collect()
    };
    for name in policies {
        let mut cache = Cache::with_defaults(&name, capacity).expect("known policy");
        let start = Instant::now();
        let mut misses = 0u64;
        for r in &reqs {
            misses += u64::from(!cache.access(r).is_hit());
        }
        let wall_s = start.elapsed().as_secs_f64();
        println!(
            "{name} {misses} {} {wall_s:.3} {:.2}",
            reqs.len(),
            reqs.len() as f64 / wall_s / 1e6
        );
    }
}
