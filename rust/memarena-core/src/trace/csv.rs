//! Delimited-text traces (CSV, TSV, space separated): columns chosen by header
//! name or 0-based index; the id column may hold integers or arbitrary
//! strings (hashed with [`super::hash_str`]); size and time columns are
//! optional. Read line by line through a `BufReader`.
//!
//! Quoting: a field wrapped in double quotes may contain the delimiter, and
//! `""` inside it stands for one quote. A record never spans lines.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::Trace;
use crate::error::{Error, Result};

/// A column chosen by header name or by 0-based index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    /// By header name (requires `has_header`).
    Name(String),
    /// By 0-based position.
    Index(usize),
}

/// How to turn the id field into an object id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IdFormat {
    /// A decimal `u64`; anything else is an error naming row and column.
    #[default]
    Integer,
    /// Any string, hashed with FNV-1a ([`super::hash_str`]); surrounding
    /// whitespace is trimmed first.
    Hash,
}

/// Options of [`read_csv`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// Field delimiter byte (`b','`, `b'\t'`, `b' '`, ...).
    pub delimiter: u8,
    /// Whether the first line is a header (needed for [`Column::Name`]).
    pub has_header: bool,
    /// The id column.
    pub id_column: Column,
    /// How ids are parsed.
    pub id_format: IdFormat,
    /// Optional size column (decimal bytes, at least 1).
    pub size_column: Option<Column>,
    /// Optional time column (decimal `u64`).
    pub time_column: Option<Column>,
}

impl Default for CsvOptions {
    /// Comma-delimited with a header, ids in column 0, no size or time.
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            has_header: true,
            id_column: Column::Index(0),
            id_format: IdFormat::Integer,
            size_column: None,
            time_column: None,
        }
    }
}

fn malformed(path: &Path, location: String, reason: impl Into<String>) -> Error {
    Error::Malformed {
        path: path.to_path_buf(),
        location,
        reason: reason.into(),
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Split one line into fields (see the module doc for quoting).
fn split_fields<'l>(
    line: &'l str,
    delim: char,
    out: &mut Vec<std::borrow::Cow<'l, str>>,
) -> std::result::Result<(), String> {
    out.clear();
    let mut rest = line;
    loop {
        if let Some(stripped) = rest.strip_prefix('"') {
            // Quoted field.
            let mut field = String::new();
            let mut chars = stripped.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if stripped[i + 1..].starts_with('"') {
                        field.push('"');
                        chars.next();
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    field.push(c);
                }
            }
            let end = end.ok_or("unterminated quoted field")?;
            out.push(std::borrow::Cow::Owned(field));
            rest = &stripped[end..];
            match rest.chars().next() {
                None => return Ok(()),
                Some(c) if c == delim => rest = &rest[c.len_utf8()..],
                Some(_) => return Err("text after a closing quote".into()),
            }
        } else {
            match rest.find(delim) {
                Some(i) => {
                    out.push(std::borrow::Cow::Borrowed(&rest[..i]));
                    rest = &rest[i + delim.len_utf8()..];
                }
                None => {
                    out.push(std::borrow::Cow::Borrowed(rest));
                    return Ok(());
                }
            }
        }
    }
}

fn resolve(col: &Column, header: Option<&[String]>, path: &Path, what: &str) -> Result<usize> {
    match col {
        Column::Index(i) => Ok(*i),
        Column::Name(name) => {
            let header = header.ok_or_else(|| {
                Error::invalid(
                    format!("{what}_column"),
                    format!("column {name:?} is chosen by name but has_header is false"),
                )
            })?;
            header.iter().position(|h| h.trim() == name).ok_or_else(|| {
                malformed(
                    path,
                    "row 1 (header)".into(),
                    format!(
                        "no column named {} for the {what}; header has: {}",
                        super::excerpt(name),
                        header_names(header)
                    ),
                )
            })
        }
    }
}

/// The header's column names for a message: each quoted short, at most 20.
fn header_names(header: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut names: Vec<String> = header
        .iter()
        .take(SHOWN)
        .map(|h| super::excerpt(h.trim()))
        .collect();
    if header.len() > SHOWN {
        names.push(format!("... ({} columns)", header.len()));
    }
    names.join(", ")
}

fn col_label(col: &Column, idx: usize) -> String {
    match col {
        Column::Name(n) => format!("column {n:?}"),
        Column::Index(_) => format!("column {idx}"),
    }
}

/// The lines of a delimited file as `&str`, read as bytes so that invalid
/// UTF-8 is reported with its row and byte offset.
struct Lines<'p> {
    path: &'p Path,
    buf: Vec<u8>,
    /// 1-based number of the line last returned.
    line_no: usize,
    /// Byte offset of the next line's start.
    offset: u64,
}

impl Lines<'_> {
    /// The next line's 1-based number and text without its `\n`/`\r\n`,
    /// or `None` at the end.
    fn next(&mut self, reader: &mut impl BufRead) -> Result<Option<(usize, &str)>> {
        self.buf.clear();
        let n = reader
            .read_until(b'\n', &mut self.buf)
            .map_err(io_err(self.path))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        let start = self.offset;
        self.offset += n as u64;
        if let Some((_, at)) = super::utf8_error_at(&self.buf, self.line_no, start) {
            return Err(malformed(
                self.path,
                format!("row {}, byte offset {at}", self.line_no),
                "not valid UTF-8 text (is the file binary, or in another encoding?)",
            ));
        }
        let line = std::str::from_utf8(&self.buf).expect("checked above");
        Ok(Some((self.line_no, line.trim_end_matches(['\n', '\r']))))
    }
}

/// Read a delimited trace. Errors name the file, the 1-based line number and
/// the column (invalid UTF-8: the row and byte offset); a field quoted in a
/// message is cut to [`super::EXCERPT_CHARS`] characters. Blank lines are
/// skipped; a directory is refused by name.
pub fn read_csv(path: impl AsRef<Path>, opts: &CsvOptions) -> Result<Trace> {
    let path = path.as_ref();
    if !opts.delimiter.is_ascii() || opts.delimiter == b'"' || opts.delimiter == b'\n' {
        return Err(Error::invalid(
            "delimiter",
            "must be an ASCII byte other than a quote or newline",
        ));
    }
    let delim = opts.delimiter as char;
    let file = super::open_input(path)?;
    let mut reader = BufReader::new(file);
    let mut lines = Lines {
        path,
        buf: Vec::new(),
        line_no: 0,
        offset: 0,
    };

    let header: Option<Vec<String>> = if opts.has_header {
        let Some((_, first)) = lines.next(&mut reader)? else {
            return Err(malformed(
                path,
                "row 1 (header)".into(),
                "empty file, expected a header",
            ));
        };
        let mut fields = Vec::new();
        split_fields(first, delim, &mut fields)
            .map_err(|r| malformed(path, "row 1 (header)".into(), r))?;
        Some(fields.into_iter().map(|f| f.into_owned()).collect())
    } else {
        None
    };
    let id_idx = resolve(&opts.id_column, header.as_deref(), path, "id")?;
    let size_idx = opts
        .size_column
        .as_ref()
        .map(|c| resolve(c, header.as_deref(), path, "size"))
        .transpose()?;
    let time_idx = opts
        .time_column
        .as_ref()
        .map(|c| resolve(c, header.as_deref(), path, "time"))
        .transpose()?;

    let mut ids = Vec::new();
    let mut sizes = size_idx.map(|_| Vec::new());
    let mut times = time_idx.map(|_| Vec::new());
    while let Some((line_no, trimmed)) = lines.next(&mut reader)? {
        crate::cancel::check()?; // stoppable (see `crate::cancel`)
        if trimmed.trim().is_empty() {
            continue;
        }
        let row = || format!("row {line_no}");
        let mut fields = Vec::new();
        split_fields(trimmed, delim, &mut fields).map_err(|r| malformed(path, row(), r))?;
        let get = |idx: usize, col: &Column| -> Result<&str> {
            fields.get(idx).map(|f| f.as_ref()).ok_or_else(|| {
                malformed(
                    path,
                    format!("row {line_no}, {}", col_label(col, idx)),
                    format!("missing field: the row has only {} fields", fields.len()),
                )
            })
        };
        let parse_u64 = |idx: usize, col: &Column, what: &str| -> Result<u64> {
            let raw = get(idx, col)?;
            raw.trim().parse::<u64>().map_err(|_| {
                malformed(
                    path,
                    format!("row {line_no}, {}", col_label(col, idx)),
                    format!(
                        "{what} {} is not an integer in 0..={}",
                        super::excerpt(raw),
                        u64::MAX
                    ),
                )
            })
        };
        let id = match opts.id_format {
            IdFormat::Integer => parse_u64(id_idx, &opts.id_column, "id")?,
            IdFormat::Hash => super::hash_str(get(id_idx, &opts.id_column)?.trim()),
        };
        ids.push(id);
        if let (Some(idx), Some(col), Some(v)) =
            (size_idx, opts.size_column.as_ref(), sizes.as_mut())
        {
            let s = parse_u64(idx, col, "size")?;
            if s == 0 {
                return Err(malformed(
                    path,
                    format!("row {line_no}, {}", col_label(col, idx)),
                    "object size 0; sizes must be at least 1 byte",
                ));
            }
            v.push(s);
        }
        if let (Some(idx), Some(col), Some(v)) =
            (time_idx, opts.time_column.as_ref(), times.as_mut())
        {
            v.push(parse_u64(idx, col, "time")?);
        }
    }
    Trace::try_new(ids, &format!("path {}", path.display()))?
        .with_sizes(sizes)?
        .with_timestamps(times)
}

/// Write a trace as delimited text with a header: `id`, then `size` and
/// `timestamp` when the trace has them. Ids are written as integers, so a
/// trace read with [`IdFormat::Hash`] round-trips to its hashed ids.
pub fn write_csv(path: impl AsRef<Path>, trace: &Trace, delimiter: u8) -> Result<()> {
    let path: PathBuf = path.as_ref().to_path_buf();
    if !delimiter.is_ascii()
        || delimiter.is_ascii_digit()
        || delimiter == b'"'
        || delimiter == b'\n'
    {
        return Err(Error::invalid(
            "delimiter",
            "must be an ASCII byte other than a digit, quote or newline",
        ));
    }
    let d = delimiter as char;
    let file = File::create(&path).map_err(io_err(&path))?;
    let mut w = BufWriter::new(file);
    let mut header = String::from("id");
    if trace.sizes().is_some() {
        header.push(d);
        header.push_str("size");
    }
    if trace.timestamps().is_some() {
        header.push(d);
        header.push_str("timestamp");
    }
    let werr = io_err(&path);
    writeln!(w, "{header}").map_err(&werr)?;
    for (i, id) in trace.ids().iter().enumerate() {
        write!(w, "{id}").map_err(&werr)?;
        if let Some(s) = trace.sizes() {
            write!(w, "{d}{}", s[i]).map_err(&werr)?;
        }
        if let Some(t) = trace.timestamps() {
            write!(w, "{d}{}", t[i]).map_err(&werr)?;
        }
        writeln!(w).map_err(&werr)?;
    }
    w.flush().map_err(&werr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str, d: char) -> std::result::Result<Vec<String>, String> {
        let mut out = Vec::new();
        split_fields(line, d, &mut out)?;
        Ok(out.into_iter().map(|c| c.into_owned()).collect())
    }

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("memarena-csv-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn invalid_utf8_names_row_and_offset() {
        let p = temp_file("utf8.csv", b"id,size\n1,2\n3,\xff\xfe\n");
        let opts = CsvOptions {
            size_column: Some(Column::Index(1)),
            ..CsvOptions::default()
        };
        let e = read_csv(&p, &opts).unwrap_err().to_string();
        std::fs::remove_file(&p).unwrap();
        assert!(e.contains("row 3, byte offset 14"), "{e}");
        assert!(e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn a_huge_field_is_not_echoed_whole() {
        let mut text = b"id\n1\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 1_000_000));
        text.push(b'\n');
        let p = temp_file("huge.csv", &text);
        let e = read_csv(&p, &CsvOptions::default())
            .unwrap_err()
            .to_string();
        std::fs::remove_file(&p).unwrap();
        assert!(
            e.contains("row 3") && e.contains("(1000000 characters)"),
            "{e}"
        );
        assert!(e.len() < 400, "{} bytes", e.len());
    }

    #[test]
    fn a_missing_column_lists_the_header_briefly() {
        let mut header: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
        header[1] = "y".repeat(5000);
        let text = format!("{}\n1\n", header.join(","));
        let p = temp_file("wide.csv", text.as_bytes());
        let opts = CsvOptions {
            id_column: Column::Name("id".into()),
            ..CsvOptions::default()
        };
        let e = read_csv(&p, &opts).unwrap_err().to_string();
        std::fs::remove_file(&p).unwrap();
        assert!(e.contains("header has: \"c0\", \"yyy"), "{e}");
        assert!(
            e.contains("(5000 characters)") && e.ends_with("... (30 columns)"),
            "{e}"
        );
        assert!(e.len() < 600, "{} bytes", e.len());
    }

    #[test]
    fn a_directory_is_named() {
        let e = read_csv(std::env::temp_dir(), &CsvOptions::default()).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let e = super::super::read_oracle_general(std::env::temp_dir(), &Default::default())
            .unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }

    #[test]
    fn splits_quoted_fields() {
        assert_eq!(split("a,b,,c", ',').unwrap(), vec!["a", "b", "", "c"]);
        assert_eq!(split("\"x,y\",2", ',').unwrap(), vec!["x,y", "2"]);
        assert_eq!(
            split("\"say \"\"hi\"\"\"", ',').unwrap(),
            vec!["say \"hi\""]
        );
        assert!(split("\"open", ',').is_err());
        assert!(split("\"a\"b,c", ',').is_err());
    }
}
