//! libCacheSim's `oracleGeneral` binary trace format: packed little-endian
//! records of 24 bytes,
//!
//! ```text
//! offset 0   u32  timestamp (clock time, seconds)
//! offset 4   u64  obj_id
//! offset 12  u32  obj_size (bytes)
//! offset 16  i64  next_access_vtime (index of the next request to obj_id; -1 = never)
//! ```
//!
//! Semantics follow libCacheSim's reader (`oracleGeneralBin.h`):
//! `next_access_vtime` of `-1` or `i64::MAX` means "never"; records of size 0
//! are skipped by default (`ignore_size_zero_req`). The reader recomputes the
//! next-access column from the ids it keeps (so skipping stays consistent)
//! and only checks that each stored value is `-1`, `i64::MAX` or a later
//! record index.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::{Trace, next_access};
use crate::error::{Error, Result};
use crate::request::NEVER;

/// Bytes per oracleGeneral record.
pub const RECORD_BYTES: usize = 24;

/// Options of [`read_oracle_general`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OracleOptions {
    /// Skip records of size 0, as libCacheSim does by default. When false, a
    /// size-0 record is an error naming its byte offset.
    pub skip_zero_size: bool,
}

impl Default for OracleOptions {
    /// libCacheSim's default: skip size-0 records.
    fn default() -> Self {
        OracleOptions {
            skip_zero_size: true,
        }
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn malformed(path: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::Malformed {
        path: path.to_path_buf(),
        location: format!("byte offset {offset}"),
        reason: reason.into(),
    }
}

/// Read an oracleGeneral trace (streamed through a `BufReader`). The result
/// has sizes and timestamps. Errors name the file and the byte offset of the
/// offending record: a length that is not a multiple of 24 (truncated file),
/// a size-0 record when `skip_zero_size` is false, or a `next_access_vtime`
/// that is neither -1, `i64::MAX` nor a later record index. A directory is
/// refused by name. An empty file, or one whose records all have size 0, gives
/// an empty trace (as libCacheSim's reader does): callers that need requests
/// check [`Trace::is_empty`].
pub fn read_oracle_general(path: impl AsRef<Path>, opts: &OracleOptions) -> Result<Trace> {
    let path = path.as_ref();
    let file = super::open_input(path)?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let rem = len % RECORD_BYTES as u64;
    if rem != 0 {
        return Err(malformed(
            path,
            len - rem,
            format!(
                "truncated record: file length {len} is not a multiple of {RECORD_BYTES}; the last record has {rem} bytes"
            ),
        ));
    }
    let n = (len / RECORD_BYTES as u64) as usize;
    // `n` comes from the file's length: allocated fallibly.
    let name = format!("path {}", path.display());
    let mut ids = crate::fallible::try_with_capacity(n, &name)?;
    let mut sizes = crate::fallible::try_with_capacity(n, &name)?;
    let mut times = crate::fallible::try_with_capacity(n, &name)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut rec = [0u8; RECORD_BYTES];
    for i in 0..n as u64 {
        crate::cancel::check()?; // stoppable (see `crate::cancel`)
        let offset = i * RECORD_BYTES as u64;
        reader.read_exact(&mut rec).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                malformed(
                    path,
                    offset,
                    "file ended inside a record (changed while reading?)",
                )
            } else {
                io_err(path)(e)
            }
        })?;
        let field = |a: usize, b: usize| -> &[u8] { &rec[a..b] };
        let time = u32::from_le_bytes(field(0, 4).try_into().expect("4-byte slice"));
        let id = u64::from_le_bytes(field(4, 12).try_into().expect("8-byte slice"));
        let size = u32::from_le_bytes(field(12, 16).try_into().expect("4-byte slice"));
        let next = i64::from_le_bytes(field(16, 24).try_into().expect("8-byte slice"));
        if next != -1 && next != i64::MAX && (next < 0 || next as u64 <= i) {
            return Err(malformed(
                path,
                offset,
                format!(
                    "invalid next_access_vtime {next} for record {i}: must be -1 or a later record index"
                ),
            ));
        }
        if size == 0 {
            if opts.skip_zero_size {
                continue;
            }
            return Err(malformed(path, offset, format!("object {id} has size 0")));
        }
        ids.push(id);
        sizes.push(size as u64);
        times.push(time as u64);
    }
    Trace::try_new(ids, &name)?
        .with_sizes(Some(sizes))?
        .with_timestamps(Some(times))
}

/// Write a trace in oracleGeneral format, computing `next_access_vtime` from
/// the ids (-1 = never). Missing sizes are written as 1, missing timestamps
/// as 0. Sizes and timestamps above `u32::MAX` are an error naming the
/// request index.
pub fn write_oracle_general(path: impl AsRef<Path>, trace: &Trace) -> Result<()> {
    let path = path.as_ref();
    let next = next_access(trace.ids());
    let file = File::create(path).map_err(io_err(path))?;
    let mut w = BufWriter::with_capacity(1 << 16, file);
    let werr = io_err(path);
    for (i, &id) in trace.ids().iter().enumerate() {
        let size = trace.sizes().map_or(1, |s| s[i]);
        let time = trace.timestamps().map_or(0, |t| t[i]);
        let size = u32::try_from(size).map_err(|_| {
            Error::invalid(
                format!("sizes[{i}]"),
                format!("{size} does not fit oracleGeneral's u32"),
            )
        })?;
        let time = u32::try_from(time).map_err(|_| {
            Error::invalid(
                format!("timestamps[{i}]"),
                format!("{time} does not fit oracleGeneral's u32"),
            )
        })?;
        let nv: i64 = if next[i] == NEVER { -1 } else { next[i] as i64 };
        let mut rec = [0u8; RECORD_BYTES];
        rec[0..4].copy_from_slice(&time.to_le_bytes());
        rec[4..12].copy_from_slice(&id.to_le_bytes());
        rec[12..16].copy_from_slice(&size.to_le_bytes());
        rec[16..24].copy_from_slice(&nv.to_le_bytes());
        w.write_all(&rec).map_err(&werr)?;
    }
    w.flush().map_err(&werr)
}
