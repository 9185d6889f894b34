//! The versioned binary file format and its bounds-checked reader.
//!
//! Layout (little endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `b"MEMARANN"` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 1 + n | index kind: length, then the registry name (`"hnsw"`, ...) |
//! | 8 | payload length in bytes |
//! | payload | the index, written by its own `write` |
//! | 4 | CRC-32 (IEEE) of every byte before it |
//!
//! Loading checks the magic, version, exact length and checksum before it
//! parses anything, then parses with a crate-private `Reader` that bounds-checks every
//! read (so even a file whose checksum happens to match never makes the
//! loader panic or allocate more than the file holds), then validates the
//! index's invariants. Every failure is [`Error::Malformed`] naming the byte
//! offset.
//!
//! A field added to an index's payload without a version bump is appended
//! at its end and read with `Reader::trailing_u64` (its default when
//! absent), so files written before it still load.

use std::path::{Path, PathBuf};

use memarena_core::{Error, Result};

/// File magic.
pub const MAGIC: &[u8; 8] = b"MEMARANN";
/// Current format version; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// CRC-32 (IEEE 802.3, as zlib computes it). Detects every error burst of up
/// to 32 bits, so any single corrupted byte is always caught.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// Little-endian writer of an index payload.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn f32(&mut self, v: f32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }
    pub(crate) fn f32s(&mut self, v: &[f32]) {
        self.usize(v.len());
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub(crate) fn u32s(&mut self, v: &[u32]) {
        self.usize(v.len());
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub(crate) fn u64s(&mut self, v: &[u64]) {
        self.usize(v.len());
        self.buf.reserve(v.len() * 8);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub(crate) fn bools(&mut self, v: &[bool]) {
        self.usize(v.len());
        self.buf.extend(v.iter().map(|&b| b as u8));
    }
}

/// Bounds-checked little-endian reader; every error names the byte offset
/// within the file.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` within the file.
    base: usize,
    path: PathBuf,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize, path: PathBuf) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            path,
        }
    }

    /// A Malformed error at the current offset.
    pub(crate) fn err(&self, reason: impl Into<String>) -> Error {
        malformed(&self.path, self.base + self.pos, reason)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "truncated: {what} needs {n} bytes, {} remain",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_bits(self.u32(what)?))
    }
    /// A count that must not exceed `max`.
    pub(crate) fn usize_max(&mut self, what: &str, max: usize) -> Result<usize> {
        let at = self.pos;
        let v = self.u64(what)?;
        if v > max as u64 {
            self.pos = at;
            return Err(self.err(format!("{what} = {v} exceeds its limit {max}")));
        }
        Ok(v as usize)
    }
    fn len_prefix(&mut self, what: &str, elem: usize) -> Result<usize> {
        let max = self.remaining().saturating_sub(8) / elem;
        self.usize_max(&format!("length of {what}"), max)
    }
    pub(crate) fn f32s(&mut self, what: &str) -> Result<Vec<f32>> {
        let n = self.len_prefix(what, 4)?;
        let b = self.take(n * 4, what)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    pub(crate) fn u32s(&mut self, what: &str) -> Result<Vec<u32>> {
        let n = self.len_prefix(what, 4)?;
        let b = self.take(n * 4, what)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    pub(crate) fn u64s(&mut self, what: &str) -> Result<Vec<u64>> {
        let n = self.len_prefix(what, 8)?;
        let b = self.take(n * 8, what)?;
        Ok(b.chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect())
    }
    pub(crate) fn bools(&mut self, what: &str) -> Result<Vec<bool>> {
        let n = self.len_prefix(what, 1)?;
        let at = self.pos;
        let b = self.take(n, what)?;
        if let Some(i) = b.iter().position(|&x| x > 1) {
            return Err(malformed(
                &self.path,
                self.base + at + i,
                format!("{what}: byte {} is not a boolean", b[i]),
            ));
        }
        Ok(b.iter().map(|&x| x == 1).collect())
    }

    /// Fails unless the whole payload was consumed.
    /// A field appended to the end of a payload after files without it were
    /// written: read when bytes remain, else `default`.
    pub(crate) fn trailing_u64(&mut self, what: &str, default: u64) -> Result<u64> {
        if self.remaining() == 0 {
            Ok(default)
        } else {
            self.u64(what)
        }
    }

    pub(crate) fn finish(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(self.err(format!("{} unexpected trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

pub(crate) fn malformed(path: &Path, offset: usize, reason: impl Into<String>) -> Error {
    Error::Malformed {
        path: path.to_path_buf(),
        location: format!("byte {offset}"),
        reason: reason.into(),
    }
}

/// Frames a payload: header, payload, checksum.
pub(crate) fn encode(kind: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 32 + kind.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(kind.len() as u8);
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Validates the frame; returns the kind name and a reader over the payload.
pub(crate) fn decode<'a>(bytes: &'a [u8], path: &Path) -> Result<(String, Reader<'a>)> {
    let mut r = Reader::new(bytes, 0, path.to_path_buf());
    let magic = r.take(8, "magic")?;
    if magic != MAGIC {
        return Err(malformed(
            path,
            0,
            "not a memarena index file (bad magic bytes)",
        ));
    }
    let version = r.u32("format version")?;
    if version != FORMAT_VERSION {
        return Err(malformed(
            path,
            8,
            format!("unsupported format version {version} (this build reads {FORMAT_VERSION})"),
        ));
    }
    let kind_len = r.u8("kind length")? as usize;
    let kind_at = r.pos;
    let kind = r.take(kind_len, "kind name")?;
    let kind = std::str::from_utf8(kind)
        .map_err(|_| malformed(path, kind_at, "index kind is not UTF-8"))?
        .to_string();
    let len_at = r.pos;
    let payload_len = r.u64("payload length")?;
    let header = r.pos;
    let expected = (header as u64)
        .checked_add(payload_len)
        .and_then(|v| v.checked_add(4));
    if expected != Some(bytes.len() as u64) {
        return Err(malformed(
            path,
            len_at,
            format!(
                "file is {} bytes but its header announces {} (truncated or corrupt)",
                bytes.len(),
                expected.map_or_else(|| "an impossible size".to_string(), |e| e.to_string())
            ),
        ));
    }
    let body_end = bytes.len() - 4;
    let stored = u32::from_le_bytes([
        bytes[body_end],
        bytes[body_end + 1],
        bytes[body_end + 2],
        bytes[body_end + 3],
    ]);
    let actual = crc32(&bytes[..body_end]);
    if stored != actual {
        return Err(malformed(
            path,
            body_end,
            format!(
                "checksum mismatch (stored {stored:#010x}, computed {actual:#010x}): the file is corrupt"
            ),
        ));
    }
    Ok((
        kind,
        Reader::new(&bytes[header..body_end], header, path.to_path_buf()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn reader_reports_offsets_and_never_overallocates() {
        let mut w = Writer::default();
        w.u64(u64::MAX); // a length prefix claiming an absurd size
        let p = PathBuf::from("x.idx");
        let mut r = Reader::new(&w.buf, 100, p);
        let e = r.f32s("data").unwrap_err().to_string();
        assert!(e.contains("byte 100"), "{e}");
    }
}
