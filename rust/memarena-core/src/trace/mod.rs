//! Request traces: an owned struct-of-arrays [`Trace`], the borrowed
//! [`TraceView`] that replay functions take (so bindings can pass numpy
//! buffers without copying), the derived columns (next access, first access),
//! and readers/writers/generators in the submodules.
//!
//! Virtual time is the index of a request in the trace.

pub mod csv;
pub mod oracle;
pub mod synth;

use crate::FxHashMap;
use crate::error::{Error, Result};
use crate::request::{NEVER, ObjId};

pub use csv::{Column, CsvOptions, IdFormat, read_csv, write_csv};
pub use oracle::{OracleOptions, read_oracle_general, write_oracle_general};
pub use synth::{SizeSpec, SynthSpec, generate};

use std::fs::File;
use std::path::Path;

/// Characters of a field that an error message quotes; longer text is cut
/// (a 10 MB field must not be echoed whole into a message).
pub const EXCERPT_CHARS: usize = 80;

/// `text` quoted for an error message (`{:?}`), cut to [`EXCERPT_CHARS`]
/// characters with the total length noted when it is longer.
pub fn excerpt(text: &str) -> String {
    let n = text.chars().count();
    if n <= EXCERPT_CHARS {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(EXCERPT_CHARS).collect();
    format!("{head:?}... ({n} characters)")
}

/// Open a trace file for reading. A directory (which `open` accepts on
/// Unix) is refused as an [`Error::Io`] of kind `IsADirectory` naming it, so
/// that a reader never reports a directory's size as a truncated record.
pub fn open_input(path: &Path) -> Result<File> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.is_dir() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory, not a trace file",
        )));
    }
    Ok(file)
}

/// Where the first invalid UTF-8 byte of `bytes` is, as
/// `(1-based line, byte offset)`, with `base_line`/`base_offset` the
/// position of `bytes[0]` in its file; `None` when `bytes` is valid UTF-8.
pub fn utf8_error_at(bytes: &[u8], base_line: usize, base_offset: u64) -> Option<(usize, u64)> {
    let err = std::str::from_utf8(bytes).err()?;
    let good = &bytes[..err.valid_up_to()];
    let line = base_line + good.iter().filter(|&&b| b == b'\n').count();
    Some((line, base_offset + err.valid_up_to() as u64))
}

/// Index of the next request to the same id, for every request; [`NEVER`]
/// where the id is not requested again. One backward pass, O(n).
pub fn next_access(ids: &[ObjId]) -> Vec<u64> {
    let mut next = vec![NEVER; ids.len()];
    fill_next_access(ids, &mut next, || Ok(())).expect("no check fails");
    next
}

/// Fill `next` (see [`next_access`]), calling `check` once per request: its
/// error (a stop request) ends the pass.
fn fill_next_access(
    ids: &[ObjId],
    next: &mut [u64],
    mut check: impl FnMut() -> Result<()>,
) -> Result<()> {
    let mut seen: FxHashMap<ObjId, u64> = FxHashMap::default();
    for (t, &id) in ids.iter().enumerate().rev() {
        check()?;
        if let Some(n) = seen.insert(id, t as u64) {
            next[t] = n;
        }
    }
    Ok(())
}

/// [`next_access`] and [`first_access`] of `ids`, allocated fallibly (an
/// error naming `name`, the input that set the length) and stoppable (see
/// [`crate::cancel`]: a long trace's derived columns take seconds).
pub fn try_derived(ids: &[ObjId], name: &str) -> Result<(Vec<u64>, Vec<bool>)> {
    let n = ids.len();
    let mut next_vtime = crate::fallible::try_with_capacity(n, name)?;
    next_vtime.resize(n, NEVER);
    fill_next_access(ids, &mut next_vtime, crate::cancel::check)?;
    let mut first = crate::fallible::try_with_capacity(n, name)?;
    let mut seen = crate::FxHashSet::default();
    for &id in ids {
        crate::cancel::check()?;
        first.push(seen.insert(id));
    }
    Ok((next_vtime, first))
}

/// Whether each request is the first ever to its id (a compulsory miss for
/// any cache that starts empty). One forward pass, O(n).
pub fn first_access(ids: &[ObjId]) -> Vec<bool> {
    let mut seen = crate::FxHashSet::default();
    ids.iter().map(|&id| seen.insert(id)).collect()
}

/// Deterministic 64-bit FNV-1a hash of a string id (used for trace files
/// whose ids are not integers). Stable across runs and platforms.
pub fn hash_str(s: &str) -> ObjId {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// An owned trace: one entry per request in each column.
///
/// Invariants (checked by every constructor): all present columns have the
/// same length as `ids`; `next_vtime` and `first_access` are derived from
/// `ids` and kept in sync (the ids are immutable once built).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    ids: Vec<ObjId>,
    sizes: Option<Vec<u64>>,
    timestamps: Option<Vec<u64>>,
    pred_next_vtime: Option<Vec<u64>>,
    pred_bit: Option<Vec<bool>>,
    next_vtime: Vec<u64>,
    first_access: Vec<bool>,
}

fn check_len(name: &str, len: usize, n: usize) -> Result<()> {
    if len != n {
        return Err(Error::invalid(
            name,
            format!("has {len} entries but the trace has {n} requests"),
        ));
    }
    Ok(())
}

impl Trace {
    /// A unit-size trace of `ids`; derives next-access and first-access.
    pub fn new(ids: Vec<ObjId>) -> Self {
        let next_vtime = next_access(&ids);
        let first_access = first_access(&ids);
        Self::with_derived(ids, next_vtime, first_access)
    }

    /// [`Trace::new`], with the derived columns allocated fallibly: a trace
    /// whose columns cannot be allocated is an error naming `name` (the input
    /// that set its length, e.g. `n_requests`), never an allocation abort.
    pub fn try_new(ids: Vec<ObjId>, name: &str) -> Result<Self> {
        let (next_vtime, first) = try_derived(&ids, name)?;
        Ok(Self::with_derived(ids, next_vtime, first))
    }

    /// A unit-size trace of `ids` with its derived columns already computed.
    fn with_derived(ids: Vec<ObjId>, next_vtime: Vec<u64>, first_access: Vec<bool>) -> Self {
        debug_assert_eq!(
            (next_vtime.len(), first_access.len()),
            (ids.len(), ids.len())
        );
        Trace {
            ids,
            sizes: None,
            timestamps: None,
            pred_next_vtime: None,
            pred_bit: None,
            next_vtime,
            first_access,
        }
    }

    /// Attach object sizes in bytes (one per request). `None` = unit size.
    pub fn with_sizes(mut self, sizes: Option<Vec<u64>>) -> Result<Self> {
        if let Some(s) = &sizes {
            check_len("sizes", s.len(), self.len())?;
        }
        self.sizes = sizes;
        Ok(self)
    }

    /// Attach timestamps (one per request, any unit).
    pub fn with_timestamps(mut self, timestamps: Option<Vec<u64>>) -> Result<Self> {
        if let Some(s) = &timestamps {
            check_len("timestamps", s.len(), self.len())?;
        }
        self.timestamps = timestamps;
        Ok(self)
    }

    /// Attach predicted next-arrival virtual times ([`NEVER`] = none).
    pub fn with_pred_next_vtime(mut self, pred: Option<Vec<u64>>) -> Result<Self> {
        if let Some(s) = &pred {
            check_len("pred_next_vtime", s.len(), self.len())?;
        }
        self.pred_next_vtime = pred;
        Ok(self)
    }

    /// Attach one-bit predictions (discard or phase bits, see `predict`).
    pub fn with_pred_bit(mut self, pred: Option<Vec<bool>>) -> Result<Self> {
        if let Some(s) = &pred {
            check_len("pred_bit", s.len(), self.len())?;
        }
        self.pred_bit = pred;
        Ok(self)
    }

    /// Number of requests.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the trace has no request.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Object ids.
    pub fn ids(&self) -> &[ObjId] {
        &self.ids
    }

    /// Sizes in bytes, if the trace is sized.
    pub fn sizes(&self) -> Option<&[u64]> {
        self.sizes.as_deref()
    }

    /// Timestamps, if the source had them.
    pub fn timestamps(&self) -> Option<&[u64]> {
        self.timestamps.as_deref()
    }

    /// Predicted next-arrival times, if attached.
    pub fn pred_next_vtime(&self) -> Option<&[u64]> {
        self.pred_next_vtime.as_deref()
    }

    /// One-bit predictions, if attached.
    pub fn pred_bit(&self) -> Option<&[bool]> {
        self.pred_bit.as_deref()
    }

    /// Derived: index of the next request to the same id, or [`NEVER`].
    pub fn next_vtime(&self) -> &[u64] {
        &self.next_vtime
    }

    /// Derived: whether each request is the first to its id.
    pub fn first_access(&self) -> &[bool] {
        &self.first_access
    }

    /// Number of distinct ids.
    pub fn num_objects(&self) -> usize {
        self.first_access.iter().filter(|&&f| f).count()
    }

    /// A borrowed view for the replay functions.
    pub fn view(&self) -> TraceView<'_> {
        TraceView {
            ids: &self.ids,
            sizes: self.sizes.as_deref(),
            next_vtime: &self.next_vtime,
            first_access: &self.first_access,
            pred_next_vtime: self.pred_next_vtime.as_deref(),
            pred_bit: self.pred_bit.as_deref(),
        }
    }
}

/// A borrowed trace: what `sim::replay` and friends read. Bindings build one
/// directly from numpy buffers (no copy); an owned [`Trace`] hands one out
/// with [`Trace::view`].
///
/// Invariant (checked by [`TraceView::validate`], which every replay function
/// calls first): every present column has `ids.len()` entries. `next_vtime`
/// and `first_access` must be derived from `ids` (see [`next_access`] and
/// [`first_access`]) — compute them once per trace and reuse them across
/// policies and cache sizes. Absent prediction columns read as [`NEVER`] and
/// `false`.
#[derive(Clone, Copy, Debug)]
pub struct TraceView<'a> {
    /// Object ids.
    pub ids: &'a [ObjId],
    /// Sizes in bytes; `None` = every request has size 1.
    pub sizes: Option<&'a [u64]>,
    /// Index of the next request to the same id, or [`NEVER`].
    pub next_vtime: &'a [u64],
    /// Whether each request is the first ever to its id.
    pub first_access: &'a [bool],
    /// Predicted next-arrival virtual times; `None` = no prediction.
    pub pred_next_vtime: Option<&'a [u64]>,
    /// One-bit predictions; `None` = all false.
    pub pred_bit: Option<&'a [bool]>,
}

impl<'a> TraceView<'a> {
    /// A unit-size view without predictions; checks the column lengths.
    pub fn new(ids: &'a [ObjId], next_vtime: &'a [u64], first_access: &'a [bool]) -> Result<Self> {
        let v = TraceView {
            ids,
            sizes: None,
            next_vtime,
            first_access,
            pred_next_vtime: None,
            pred_bit: None,
        };
        v.validate()?;
        Ok(v)
    }

    /// Number of requests.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the view has no request.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Check that every present column has one entry per request. O(1).
    pub fn validate(&self) -> Result<()> {
        let n = self.ids.len();
        check_len("next_vtime", self.next_vtime.len(), n)?;
        check_len("first_access", self.first_access.len(), n)?;
        if let Some(s) = self.sizes {
            check_len("sizes", s.len(), n)?;
        }
        if let Some(s) = self.pred_next_vtime {
            check_len("pred_next_vtime", s.len(), n)?;
        }
        if let Some(s) = self.pred_bit {
            check_len("pred_bit", s.len(), n)?;
        }
        Ok(())
    }

    /// Check that `next_vtime` and `first_access` really derive from `ids`.
    /// O(n) with a hash map: for bindings that accept user-supplied columns.
    pub fn validate_derived(&self) -> Result<()> {
        self.validate()?;
        if next_access(self.ids) != self.next_vtime {
            return Err(Error::invalid(
                "next_vtime",
                "does not match next_access(ids)",
            ));
        }
        if first_access(self.ids) != self.first_access {
            return Err(Error::invalid(
                "first_access",
                "does not match first_access(ids)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_columns() {
        let ids = [1, 2, 1, 3, 2, 1];
        assert_eq!(next_access(&ids), vec![2, 4, 5, NEVER, NEVER, NEVER]);
        assert_eq!(
            first_access(&ids),
            vec![true, true, false, true, false, false]
        );
        let t = Trace::new(ids.to_vec());
        assert_eq!(t.num_objects(), 3);
        t.view().validate_derived().unwrap();
    }

    #[test]
    fn column_length_mismatch_is_named() {
        let err = Trace::new(vec![1, 2])
            .with_sizes(Some(vec![1]))
            .unwrap_err();
        assert!(err.to_string().contains("sizes"), "{err}");
        let ids = [1u64, 2];
        let err = TraceView::new(&ids, &[NEVER], &[true, true]).unwrap_err();
        assert!(err.to_string().contains("next_vtime"), "{err}");
    }

    #[test]
    fn excerpt_cuts_long_text() {
        assert_eq!(excerpt("abc"), "\"abc\"");
        let long = "x".repeat(10_000);
        let e = excerpt(&long);
        assert!(e.len() < 120, "{e}");
        assert!(e.ends_with("(10000 characters)"), "{e}");
        // Multi-byte characters are never split.
        let e = excerpt(&"é".repeat(100));
        assert!(e.contains("(100 characters)"), "{e}");
    }

    #[test]
    fn utf8_error_names_line_and_offset() {
        assert_eq!(utf8_error_at(b"ab\ncd", 1, 0), None);
        assert_eq!(utf8_error_at(b"ab\nc\xffd", 1, 0), Some((2, 4)));
        assert_eq!(utf8_error_at(b"\xfe", 7, 100), Some((7, 100)));
    }

    #[test]
    fn a_directory_is_not_a_trace() {
        let dir = std::env::temp_dir();
        let err = open_input(&dir).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn fnv1a_reference_values() {
        assert_eq!(hash_str(""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(hash_str("a"), 0xAF63_DC4C_8601_EC8C);
    }
}
