//! Okapi BM25 over an inverted index, scoring bit for bit as
//! `rank_bm25.BM25Okapi` (rank_bm25 0.2.2, dorianbrown/rank_bm25) does: the
//! scorer of LongMemEval's `flat-bm25` baseline.
//!
//! Upstream, `rank_bm25.py`:
//!
//! * `BM25Okapi._calc_idf`: for every term, in the order of its first
//!   appearance in the corpus, `idf = math.log(N - n + 0.5) -
//!   math.log(n + 0.5)` (`n` of the `N` documents hold it), summed into
//!   `idf_sum`; `average_idf = idf_sum / len(idf)`; every term whose idf is
//!   negative then gets `epsilon * average_idf`;
//! * `BM25Okapi.get_scores`: `score = zeros(N)`, then for each query term `q`
//!   in order, `score += idf(q) * (q_freq * (k1 + 1) / (q_freq + k1 * (1 - b
//!   + b * doc_len / avgdl)))` in numpy float64, `avgdl` the total number of
//!   terms over `N` (Python's true division).
//!
//! [`Bm25`] performs the same IEEE-754 double operations in the same order
//! (the idf sum in first-appearance order, `ln` from the C library as
//! Python's `math.log`, the length norm as `k1 * ((1 - b) + (b * dl) /
//! avgdl)`, then `(tf * (k1 + 1)) / (tf + norm)` times the idf added to the
//! score), so its scores equal upstream's to the last bit. It touches only the
//! documents holding a query term: a document without it gains
//! `idf * 0 / norm = 0` upstream, which leaves the score unchanged. Two
//! documented differences: an empty document scores 0 where upstream divides
//! 0 by 0 (`b = 1`, or every document empty) and returns nan, and a term of
//! idf exactly 0 is skipped (it adds 0 upstream).
//!
//! Documents grow one [`Bm25::add_tokens`] at a time; the idf and the length
//! norms are recomputed at the next query after an add.
//!
//! Tokenizers ([`Tokenizer`]): `whitespace_split` is Python's `str.split(" ")`
//! (LongMemEval's, two spaces in a row give an empty term), `whitespace` is
//! Python's `str.split()` (runs of Python's whitespace characters).

use memarena_core::{Error, FxHashMap, Result};

/// The names of [`Tokenizer`], as configs spell them.
pub const TOKENIZERS: &[&str] = &["whitespace_split", "whitespace"];

/// A way to split a text into terms, with Python's semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tokenizer {
    /// `text.split(" ")`: every single space separates, empty terms kept.
    WhitespaceSplit,
    /// `text.split()`: runs of [`is_python_whitespace`], no empty terms.
    Whitespace,
}

/// Whether Python's `str.isspace()` (and so `str.split()`) treats `c` as
/// whitespace: `Py_UNICODE_ISSPACE`, the ASCII `\t \n \x0b \x0c \r \x1c-\x1f`
/// and space, and the characters of bidirectional class WS, B or S or
/// category Zs above ASCII. Rust's `char::is_whitespace` (Unicode
/// White_Space) is the same set less the four separators `\x1c-\x1f`.
pub fn is_python_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\x1c'..='\x1f'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Calls `f` on every piece of `text.split(' ')`, in order.
///
/// A space (0x20) is never part of a multi-byte UTF-8 sequence, so the cuts
/// are found on bytes, eight at a time: in `x = word ^ 0x2020...`, a space is
/// a zero byte, and `!(((x & 0x7f..) + 0x7f..) | x) & 0x80..` sets exactly
/// the high bit of each zero byte (no borrow crosses bytes, unlike the
/// `(x - 0x01..) & !x & 0x80..` test, which also flags bytes above a zero).
/// `str::split(' ')` costs several times more per term on the short terms of
/// text, and tokenising is most of a BM25 build.
fn split_spaces<'a>(text: &'a str, mut f: impl FnMut(&'a str)) {
    const SPACES: u64 = 0x2020_2020_2020_2020;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes")) ^ SPACES;
        let mut zeros = !(((x & LOW7) + LOW7) | x) & HIGH;
        while zeros != 0 {
            let cut = at + (zeros.trailing_zeros() / 8) as usize;
            f(&text[start..cut]);
            start = cut + 1;
            zeros &= zeros - 1;
        }
        at += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == b' ' {
            f(&text[start..at + i]);
            start = at + i + 1;
        }
    }
    f(&text[start..]);
}

impl Tokenizer {
    /// The tokenizer called `name` (one of [`TOKENIZERS`]).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "whitespace_split" => Ok(Tokenizer::WhitespaceSplit),
            "whitespace" => Ok(Tokenizer::Whitespace),
            _ => Err(Error::invalid(
                "tokenizer",
                format!("must be one of {}, got {name:?}", TOKENIZERS.join(", ")),
            )),
        }
    }

    /// The registry name.
    pub fn name(self) -> &'static str {
        match self {
            Tokenizer::WhitespaceSplit => "whitespace_split",
            Tokenizer::Whitespace => "whitespace",
        }
    }

    /// Calls `f` on every term of `text`, in order.
    pub fn for_each<'a>(self, text: &'a str, mut f: impl FnMut(&'a str)) {
        match self {
            Tokenizer::WhitespaceSplit => split_spaces(text, f),
            Tokenizer::Whitespace => text
                .split(is_python_whitespace)
                .filter(|t| !t.is_empty())
                .for_each(&mut f),
        }
    }

    /// The terms of `text`, in order.
    pub fn tokenize(self, text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        self.for_each(text, |t| out.push(t));
        out
    }
}

/// Okapi BM25 over a growing set of documents (see the module docs).
///
/// Storage: every document's `(term id, count)` pairs go to a forward
/// "tail" in the order they are added (sequential writes: an add touches no
/// per-term list), and the inverted index (per term, its documents
/// increasing and their counts, one CSR array) covers the documents before
/// the tail. A query scores the inverted part term by term and scans the
/// tail document by document; when the tail holds more than a quarter of
/// the postings (and at least [`MIN_TAIL_POSTINGS`]), the query first merges
/// it into the inverted index, so each posting is copied a bounded number
/// of times however adds and queries interleave.
#[derive(Clone, Debug)]
pub struct Bm25 {
    k1: f64,
    b: f64,
    epsilon: f64,
    /// Term -> id; ids in order of the term's first appearance in the corpus.
    vocab: FxHashMap<Box<str>, u32>,
    term_bytes: usize,
    /// Per term id: the number of documents holding it.
    df: Vec<u32>,
    /// Terms of each document, repeats counted.
    doc_len: Vec<u32>,
    total_terms: u64,
    /// Inverted index of documents `0..inv_docs`: term `t`'s postings are
    /// `inv_doc[inv_start[t]..inv_start[t + 1]]` (documents increasing) and
    /// the same range of `inv_tf`; terms at or past `inv_start.len() - 1` have none yet.
    inv_start: Vec<usize>,
    inv_doc: Vec<u32>,
    inv_tf: Vec<u32>,
    inv_docs: usize,
    /// Forward index of documents `inv_docs..`: document `inv_docs + i`'s
    /// pairs are `tail_term[tail_start[i]..tail_start[i + 1]]` (first
    /// appearance order) and the same range of `tail_tf`.
    tail_start: Vec<usize>,
    tail_term: Vec<u32>,
    tail_tf: Vec<u32>,
    /// Per term id, the count in the document being added (0 between adds).
    scratch_tf: Vec<u32>,
    touched: Vec<u32>,
    /// The tail is merged past `max(this, a quarter of the postings)` postings.
    min_tail: usize,
    stale: bool,
    idf: Vec<f64>,
    norm: Vec<f64>,
}

/// The tail is merged into the inverted index only past this many postings.
pub const MIN_TAIL_POSTINGS: usize = 1 << 14;

impl Bm25 {
    /// An empty index; `k1 > 0`, `0 <= b <= 1`, `epsilon >= 0` (finite), else
    /// an error naming the parameter.
    pub fn new(k1: f64, b: f64, epsilon: f64) -> Result<Self> {
        if !(k1 > 0.0 && k1.is_finite()) {
            return Err(Error::invalid("k1", format!("must be > 0, got {k1}")));
        }
        if !(0.0..=1.0).contains(&b) {
            return Err(Error::invalid("b", format!("must be in [0, 1], got {b}")));
        }
        if !(epsilon >= 0.0 && epsilon.is_finite()) {
            return Err(Error::invalid(
                "epsilon",
                format!("must be >= 0, got {epsilon}"),
            ));
        }
        Ok(Bm25 {
            k1,
            b,
            epsilon,
            vocab: FxHashMap::default(),
            term_bytes: 0,
            df: Vec::new(),
            doc_len: Vec::new(),
            total_terms: 0,
            inv_start: vec![0],
            inv_doc: Vec::new(),
            inv_tf: Vec::new(),
            inv_docs: 0,
            tail_start: vec![0],
            tail_term: Vec::new(),
            tail_tf: Vec::new(),
            scratch_tf: Vec::new(),
            touched: Vec::new(),
            min_tail: MIN_TAIL_POSTINGS,
            stale: true,
            idf: Vec::new(),
            norm: Vec::new(),
        })
    }

    /// `(k1, b, epsilon)`.
    pub fn params(&self) -> (f64, f64, f64) {
        (self.k1, self.b, self.epsilon)
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.doc_len.len()
    }

    /// Whether no document was added.
    pub fn is_empty(&self) -> bool {
        self.doc_len.is_empty()
    }

    /// Number of distinct terms.
    pub fn n_terms(&self) -> usize {
        self.df.len()
    }

    /// Terms of every document (repeats counted), by document id.
    pub fn doc_lens(&self) -> &[u32] {
        &self.doc_len
    }

    /// Number of documents holding `term` (0 for an unknown one).
    pub fn doc_freq(&self, term: &str) -> usize {
        self.vocab
            .get(term)
            .map_or(0, |&id| self.df[id as usize] as usize)
    }

    /// Postings: `(term id, count)` pairs over every document.
    pub fn n_postings(&self) -> usize {
        self.inv_doc.len() + self.tail_term.len()
    }

    /// Appends one document given as its terms; its id is the former [`Bm25::len`].
    pub fn add_tokens<'a>(&mut self, terms: impl IntoIterator<Item = &'a str>) -> Result<()> {
        u32::try_from(self.doc_len.len())
            .ok()
            .filter(|&d| d < u32::MAX)
            .ok_or_else(|| {
                Error::invalid("texts", "a BM25 index holds at most 2^32 - 1 documents")
            })?;
        let mut len: u64 = 0;
        for term in terms {
            len += 1;
            let id = match self.vocab.get(term) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(self.df.len()).map_err(|_| {
                        Error::invalid("texts", "a BM25 index holds at most 2^32 terms")
                    })?;
                    self.vocab.insert(term.into(), id);
                    self.term_bytes += term.len();
                    self.df.push(0);
                    self.scratch_tf.push(0);
                    id
                }
            };
            let count = &mut self.scratch_tf[id as usize];
            if *count == 0 {
                self.touched.push(id);
            }
            *count = count.saturating_add(1);
        }
        let len = match u32::try_from(len) {
            Ok(len) => len,
            Err(_) => {
                for &id in &self.touched {
                    self.scratch_tf[id as usize] = 0;
                }
                self.touched.clear();
                return Err(Error::invalid("texts", "a document of 2^32 terms or more"));
            }
        };
        self.tail_term.reserve(self.touched.len());
        self.tail_tf.reserve(self.touched.len());
        for &id in &self.touched {
            let i = id as usize;
            self.tail_term.push(id);
            self.tail_tf.push(self.scratch_tf[i]);
            self.df[i] += 1;
            self.scratch_tf[i] = 0;
        }
        self.touched.clear();
        self.tail_start.push(self.tail_term.len());
        self.doc_len.push(len);
        self.total_terms += u64::from(len);
        self.stale = true;
        Ok(())
    }

    /// Appends one document, split by `tokenizer`.
    pub fn add_text(&mut self, tokenizer: Tokenizer, text: &str) -> Result<()> {
        let mut terms = Vec::new();
        tokenizer.for_each(text, |t| terms.push(t));
        self.add_tokens(terms)
    }

    /// Moves the tail's documents into the inverted index (a counting sort by term).
    fn merge_tail(&mut self) {
        if self.tail_term.is_empty() && self.inv_docs == self.doc_len.len() {
            return;
        }
        let n_terms = self.df.len();
        let mut start = vec![0usize; n_terms + 1];
        let old_terms = self.inv_start.len() - 1;
        for t in 0..old_terms {
            start[t + 1] = self.inv_start[t + 1] - self.inv_start[t];
        }
        for &t in &self.tail_term {
            start[t as usize + 1] += 1;
        }
        for t in 0..n_terms {
            start[t + 1] += start[t];
        }
        let total = start[n_terms];
        let mut doc = vec![0u32; total];
        let mut tf = vec![0u32; total];
        let mut at = start.clone();
        for (next, w) in at.iter_mut().zip(self.inv_start.windows(2)) {
            let (a, b) = (w[0], w[1]);
            doc[*next..*next + (b - a)].copy_from_slice(&self.inv_doc[a..b]);
            tf[*next..*next + (b - a)].copy_from_slice(&self.inv_tf[a..b]);
            *next += b - a;
        }
        for (i, w) in self.tail_start.windows(2).enumerate() {
            let d = (self.inv_docs + i) as u32;
            for j in w[0]..w[1] {
                let t = self.tail_term[j] as usize;
                doc[at[t]] = d;
                tf[at[t]] = self.tail_tf[j];
                at[t] += 1;
            }
        }
        self.inv_start = start;
        self.inv_doc = doc;
        self.inv_tf = tf;
        self.inv_docs = self.doc_len.len();
        self.tail_start.clear();
        self.tail_start.push(0);
        self.tail_term = Vec::new();
        self.tail_tf = Vec::new();
    }

    /// Recomputes the idf of every term and the length norm of every
    /// document, as `BM25Okapi._calc_idf` and `get_scores` do.
    fn refresh(&mut self) {
        if !self.stale {
            return;
        }
        if self.tail_term.len() > (self.inv_doc.len() / 4).max(self.min_tail) {
            self.merge_tail();
        }
        let n = self.doc_len.len() as f64;
        self.idf.clear();
        self.idf.reserve(self.df.len());
        let mut idf_sum = 0.0_f64;
        let mut any_negative = false;
        for &df in &self.df {
            let df = f64::from(df);
            let value = (n - df + 0.5).ln() - (df + 0.5).ln();
            idf_sum += value;
            any_negative |= value < 0.0;
            self.idf.push(value);
        }
        if any_negative {
            let floor = self.epsilon * (idf_sum / self.idf.len() as f64);
            for v in &mut self.idf {
                if *v < 0.0 {
                    *v = floor;
                }
            }
        }
        self.norm.clear();
        if self.total_terms > 0 {
            let avgdl = self.total_terms as f64 / n;
            let (k1, b) = (self.k1, self.b);
            let one_minus_b = 1.0 - b;
            self.norm.extend(
                self.doc_len
                    .iter()
                    .map(|&dl| k1 * (one_minus_b + (b * f64::from(dl)) / avgdl)),
            );
        } else {
            self.norm.resize(self.doc_len.len(), 1.0); // every document empty: nothing matches
        }
        self.stale = false;
    }

    /// The idf of `term` after the epsilon floor (0 for an unknown term).
    pub fn idf(&mut self, term: &str) -> f64 {
        self.refresh();
        self.vocab
            .get(term)
            .map_or(0.0, |&id| self.idf[id as usize])
    }

    /// BM25 score of every document for the query `terms`, by document id.
    pub fn scores<'a>(&mut self, terms: impl IntoIterator<Item = &'a str>) -> Vec<f64> {
        self.refresh();
        let mut score = vec![0.0_f64; self.doc_len.len()];
        let k1_plus_1 = self.k1 + 1.0;
        // The query's known terms of nonzero idf, in order (a repeated term counts each time).
        let query: Vec<usize> = terms
            .into_iter()
            .filter_map(|t| self.vocab.get(t).map(|&id| id as usize))
            .filter(|&id| self.idf[id] != 0.0)
            .collect();
        let inverted = self.inv_start.len() - 1;
        for &id in &query {
            if id >= inverted {
                continue;
            }
            let idf = self.idf[id];
            let (a, b) = (self.inv_start[id], self.inv_start[id + 1]);
            for (&d, &tf) in self.inv_doc[a..b].iter().zip(&self.inv_tf[a..b]) {
                let f = f64::from(tf);
                let d = d as usize;
                score[d] += idf * (f * k1_plus_1 / (f + self.norm[d]));
            }
        }
        if query.is_empty() || self.tail_term.is_empty() {
            return score;
        }
        // The tail, document by document: each document's terms added in the
        // query's order, as the inverted part (and upstream) add them.
        let mut in_query = vec![false; self.df.len()];
        for &id in &query {
            in_query[id] = true;
        }
        let mut tf_of: FxHashMap<usize, u32> = FxHashMap::default();
        for (i, w) in self.tail_start.windows(2).enumerate() {
            tf_of.clear();
            for j in w[0]..w[1] {
                let t = self.tail_term[j] as usize;
                if in_query[t] {
                    tf_of.insert(t, self.tail_tf[j]);
                }
            }
            if tf_of.is_empty() {
                continue;
            }
            let d = self.inv_docs + i;
            for &id in &query {
                if let Some(&tf) = tf_of.get(&id) {
                    let f = f64::from(tf);
                    score[d] += self.idf[id] * (f * k1_plus_1 / (f + self.norm[d]));
                }
            }
        }
        score
    }

    /// BM25 scores for `query` split by `tokenizer`.
    pub fn scores_text(&mut self, tokenizer: Tokenizer, query: &str) -> Vec<f64> {
        self.scores(tokenizer.tokenize(query))
    }

    /// Heap bytes: 8 per posting (term or document id and count), the
    /// terms' UTF-8 bytes plus 40 per term (its key, id, document frequency,
    /// list start, idf and the add's scratch count), 20 per document (length,
    /// norm, and where its postings start while it is in the forward tail:
    /// counted always, so the figure does not depend on when the tail was
    /// merged).
    pub fn memory_bytes(&self) -> usize {
        8 * self.n_postings() + self.term_bytes + 40 * self.df.len() + 20 * self.doc_len.len()
    }

    /// Every document's `(term id, count)` pairs in increasing term id.
    fn doc_pairs(&self) -> Vec<Vec<(u32, u32)>> {
        let mut per_doc: Vec<Vec<(u32, u32)>> = vec![Vec::new(); self.doc_len.len()];
        for t in 0..self.inv_start.len() - 1 {
            let (a, b) = (self.inv_start[t], self.inv_start[t + 1]);
            for (&d, &tf) in self.inv_doc[a..b].iter().zip(&self.inv_tf[a..b]) {
                per_doc[d as usize].push((t as u32, tf));
            }
        }
        for (i, w) in self.tail_start.windows(2).enumerate() {
            let pairs = &mut per_doc[self.inv_docs + i];
            pairs.extend((w[0]..w[1]).map(|j| (self.tail_term[j], self.tail_tf[j])));
            pairs.sort_unstable();
        }
        per_doc
    }

    /// Serialises the index: a magic, the parameters, the terms in id order,
    /// then every document as `(term id, count)` pairs in the order they were
    /// first seen in it. [`Bm25::from_bytes`] rebuilds the same index.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.memory_bytes());
        out.extend_from_slice(MAGIC);
        for v in [self.k1, self.b, self.epsilon] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut terms: Vec<(&str, u32)> = self.vocab.iter().map(|(t, &id)| (&**t, id)).collect();
        terms.sort_unstable_by_key(|&(_, id)| id);
        put_u64(&mut out, terms.len() as u64);
        for (t, _) in &terms {
            put_u64(&mut out, t.len() as u64);
            out.extend_from_slice(t.as_bytes());
        }
        // Documents as (term, count) lists; within a document the terms in
        // increasing id, which is their order of first appearance in it
        // whenever the term was new there, and which only the term-id
        // assignment (not the scores) depends on. The same bytes whether or
        // not the tail was merged.
        let per_doc = self.doc_pairs();
        put_u64(&mut out, self.doc_len.len() as u64);
        for (pairs, &len) in per_doc.iter().zip(&self.doc_len) {
            put_u64(&mut out, u64::from(len));
            put_u64(&mut out, pairs.len() as u64);
            for &(id, tf) in pairs {
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&tf.to_le_bytes());
            }
        }
        out
    }

    /// The index [`Bm25::to_bytes`] wrote; a truncated or inconsistent
    /// input is an [`Error::Malformed`] naming the byte offset.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        let mut r = Reader { data, pos: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(malformed(0, "not a memarena BM25 index (bad magic)"));
        }
        let k1 = r.f64()?;
        let b = r.f64()?;
        let epsilon = r.f64()?;
        let mut index = Bm25::new(k1, b, epsilon)?;
        let n_terms = r.len_u32("terms")?;
        let mut terms: Vec<Box<str>> = Vec::with_capacity(n_terms.min(1 << 20));
        for _ in 0..n_terms {
            let at = r.pos;
            let len = usize::try_from(r.u64()?).map_err(|_| malformed(at, "term length"))?;
            let bytes = r.take(len)?;
            let term =
                std::str::from_utf8(bytes).map_err(|_| malformed(at, "term is not UTF-8"))?;
            if index
                .vocab
                .insert(term.into(), terms.len() as u32)
                .is_some()
            {
                return Err(malformed(at, format!("term {term:?} twice")));
            }
            index.term_bytes += term.len();
            terms.push(term.into());
        }
        index.df = vec![0; n_terms];
        index.scratch_tf = vec![0; n_terms];
        let n_docs = r.len_u32("documents")?;
        for doc in 0..n_docs {
            let at = r.pos;
            let len = u32::try_from(r.u64()?).map_err(|_| malformed(at, "document length"))?;
            let pairs = r.len_u32("document terms")?;
            let mut sum: u64 = 0;
            let first = index.tail_term.len();
            for _ in 0..pairs {
                let at = r.pos;
                let id = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
                let tf = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
                if id as usize >= n_terms {
                    return Err(malformed(at, format!("term id {id} of {n_terms}")));
                }
                if tf == 0 || index.scratch_tf[id as usize] != 0 {
                    return Err(malformed(at, "a zero or repeated posting"));
                }
                index.scratch_tf[id as usize] = 1; // seen in this document
                index.tail_term.push(id);
                index.tail_tf.push(tf);
                index.df[id as usize] += 1;
                sum += u64::from(tf);
            }
            for &id in &index.tail_term[first..] {
                index.scratch_tf[id as usize] = 0;
            }
            if sum != u64::from(len) {
                return Err(malformed(
                    at,
                    format!("document {doc}: length {len}, counts sum to {sum}"),
                ));
            }
            index.tail_start.push(index.tail_term.len());
            index.doc_len.push(len);
            index.total_terms += u64::from(len);
        }
        if r.pos != data.len() {
            return Err(malformed(r.pos, "trailing bytes"));
        }
        if let Some(id) = index.df.iter().position(|&df| df == 0) {
            return Err(malformed(
                r.pos,
                format!("term {:?} in no document", terms[id]),
            ));
        }
        index.merge_tail();
        Ok(index)
    }
}

const MAGIC: &[u8] = b"MABM25\x00\x01";

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn malformed(offset: usize, reason: impl std::fmt::Display) -> Error {
    Error::Malformed {
        path: "<BM25 index bytes>".into(),
        location: format!("byte {offset}"),
        reason: reason.to_string(),
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| malformed(self.pos, format!("truncated: {n} more bytes needed")))?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn len_u32(&mut self, what: &str) -> Result<usize> {
        let at = self.pos;
        let n = self.u64()?;
        if n >= u64::from(u32::MAX) {
            return Err(malformed(at, format!("{n} {what}")));
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn index(docs: &[&str]) -> Bm25 {
        let mut bm = Bm25::new(1.5, 0.75, 0.25).unwrap();
        for d in docs {
            bm.add_text(Tokenizer::WhitespaceSplit, d).unwrap();
        }
        bm
    }

    #[test]
    fn tokenizers_follow_python() {
        let ws = Tokenizer::WhitespaceSplit;
        assert_eq!(ws.tokenize("a  b"), ["a", "", "b"]);
        assert_eq!(ws.tokenize(""), [""]);
        assert_eq!(ws.tokenize(" a\tb "), ["", "a\tb", ""]);
        let w = Tokenizer::Whitespace;
        assert_eq!(
            w.tokenize("  a\tb\u{3000}c\x1fd\u{85} "),
            ["a", "b", "c", "d"]
        );
        assert!(w.tokenize(" \n ").is_empty());
        assert_eq!(w.tokenize("a\u{200b}b"), ["a\u{200b}b"]); // zero-width space is not whitespace
        assert!(Tokenizer::from_name("nltk").is_err());
        for name in TOKENIZERS {
            assert_eq!(Tokenizer::from_name(name).unwrap().name(), *name);
        }
    }

    #[test]
    fn hand_computed_scores() {
        // N = 3, lengths 2, 2, 1, avgdl 5/3; "a" in every document: negative
        // idf, floored to 0.25 * the (negative) mean idf.
        let mut bm = index(&["a b", "a c", "a"]);
        let idf_b = 2.5_f64.ln() - 1.5_f64.ln();
        let idf_a = 0.5_f64.ln() - 3.5_f64.ln();
        let mean = (idf_a + 2.0 * idf_b) / 3.0;
        assert_eq!(bm.idf("b"), idf_b);
        assert_eq!(bm.idf("a"), 0.25 * mean);
        assert_eq!(bm.idf("zzz"), 0.0);
        let term = |idf: f64, f: f64, dl: f64| {
            idf * (f * 2.5 / (f + 1.5 * ((1.0 - 0.75) + (0.75 * dl) / (5.0 / 3.0))))
        };
        let s = bm.scores(["a", "b"]);
        assert_eq!(
            s,
            [
                0.0 + term(0.25 * mean, 1.0, 2.0) + term(idf_b, 1.0, 2.0),
                0.0 + term(0.25 * mean, 1.0, 2.0),
                0.0 + term(0.25 * mean, 1.0, 1.0)
            ]
        );
        // a repeated term counts twice, an unknown one not at all
        let s = bm.scores(["b", "b", "zzz"]);
        assert_eq!(s, [term(idf_b, 1.0, 2.0) + term(idf_b, 1.0, 2.0), 0.0, 0.0]);
        assert_eq!(bm.len(), 3);
        assert_eq!(bm.n_terms(), 3);
        assert_eq!(bm.doc_freq("a"), 3);
    }

    #[test]
    fn empty_documents_and_index() {
        let mut bm = Bm25::new(1.2, 1.0, 0.25).unwrap();
        assert!(bm.scores(["a"]).is_empty());
        bm.add_tokens([]).unwrap();
        bm.add_tokens([]).unwrap();
        assert_eq!(bm.scores(["a"]), [0.0, 0.0]);
        bm.add_tokens(["a"]).unwrap();
        let s = bm.scores(["a"]);
        assert_eq!(s[..2], [0.0, 0.0]); // b = 1 and dl = 0: upstream's 0/0 is 0 here
        assert!(s[2] > 0.0);
    }

    #[test]
    fn bad_params_are_named() {
        for (k1, b, e, name) in [
            (0.0, 0.5, 0.1, "k1"),
            (1.0, 1.5, 0.1, "b"),
            (1.0, f64::NAN, 0.1, "b"),
            (1.0, 0.5, -1.0, "epsilon"),
        ] {
            let err = Bm25::new(k1, b, e).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn bytes_round_trip_and_corruption() {
        let mut bm = index(&["the cat", "the the dog", "", "a  cat"]);
        let bytes = bm.to_bytes();
        let mut back = Bm25::from_bytes(&bytes).unwrap();
        assert_eq!(
            back.scores(["cat", "the", ""]),
            bm.scores(["cat", "the", ""])
        );
        assert_eq!(back.doc_lens(), bm.doc_lens());
        assert_eq!(back.memory_bytes(), bm.memory_bytes());
        for cut in [0, 5, 8, 20, bytes.len() - 1] {
            assert!(Bm25::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(
            Bm25::from_bytes(&extra)
                .unwrap_err()
                .to_string()
                .contains("trailing")
        );
    }

    /// Scores recomputed from the documents alone, upstream's way: every
    /// document gets every query term's term (zero where it is absent).
    fn naive(docs: &[Vec<&str>], query: &[&str], k1: f64, b: f64, eps: f64) -> Vec<f64> {
        let n = docs.len();
        let mut order: Vec<&str> = Vec::new();
        let mut df: FxHashMap<&str, usize> = FxHashMap::default();
        for d in docs {
            let mut seen: Vec<&str> = Vec::new();
            for &t in d {
                if !seen.contains(&t) {
                    seen.push(t);
                    let e = df.entry(t).or_insert(0);
                    if *e == 0 {
                        order.push(t);
                    }
                    *e += 1;
                }
            }
        }
        let mut idf: FxHashMap<&str, f64> = FxHashMap::default();
        let mut sum = 0.0;
        for &t in &order {
            let f = df[t] as f64;
            let v = (n as f64 - f + 0.5).ln() - (f + 0.5).ln();
            sum += v;
            idf.insert(t, v);
        }
        let floor = eps * (sum / order.len().max(1) as f64);
        for v in idf.values_mut() {
            if *v < 0.0 {
                *v = floor;
            }
        }
        let total: usize = docs.iter().map(Vec::len).sum();
        let avgdl = total as f64 / n as f64;
        let mut score = vec![0.0; n];
        for &q in query {
            let w = idf.get(q).copied().unwrap_or(0.0);
            for (s, d) in score.iter_mut().zip(docs) {
                let f = d.iter().filter(|&&t| t == q).count() as f64;
                let norm = k1 * (1.0 - b + b * d.len() as f64 / avgdl);
                *s += w * (f * (k1 + 1.0) / (f + norm));
            }
        }
        score
    }

    const WORDS: &[&str] = &["a", "b", "c", "d", "e", "", "é"];

    proptest! {
        #[test]
        fn scores_equal_a_naive_recomputation(
            docs in prop::collection::vec(prop::collection::vec(0..WORDS.len(), 1..12), 1..25),
            query in prop::collection::vec(0..WORDS.len() + 1, 0..8),
            k1 in 0.01f64..3.0,
            b in 0.0f64..1.0,
            eps in 0.0f64..1.0,
            cut in 0usize..25,
        ) {
            let docs: Vec<Vec<&str>> =
                docs.iter().map(|d| d.iter().map(|&i| WORDS[i]).collect()).collect();
            let query: Vec<&str> = query.iter().map(|&i| WORDS.get(i).copied().unwrap_or("unseen")).collect();
            let mut bm = Bm25::new(k1, b, eps).unwrap();
            let cut = cut.min(docs.len());
            for d in &docs[..cut] {
                bm.add_tokens(d.iter().copied()).unwrap();
            }
            let _ = bm.scores(query.iter().copied()); // a query between adds
            for d in &docs[cut..] {
                bm.add_tokens(d.iter().copied()).unwrap();
            }
            let got = bm.scores(query.iter().copied());
            let want = naive(&docs, &query, k1, b, eps);
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(g.to_bits(), w.to_bits());
            }
            // document count, lengths and document frequencies
            prop_assert_eq!(bm.len(), docs.len());
            let df_sum: usize = WORDS.iter().map(|w| bm.doc_freq(w)).sum();
            let distinct: usize = docs
                .iter()
                .map(|d| WORDS.iter().filter(|w| d.contains(w)).count())
                .sum();
            prop_assert_eq!(df_sum, distinct);
            let lens: Vec<u32> = docs.iter().map(|d| d.len() as u32).collect();
            prop_assert_eq!(bm.doc_lens(), &lens[..]);
            let mut back = Bm25::from_bytes(&bm.to_bytes()).unwrap();
            prop_assert_eq!(back.scores(query.iter().copied()), got);
        }

        #[test]
        fn interleaved_adds_and_queries_score_as_one_batch(
            docs in prop::collection::vec(prop::collection::vec(0..WORDS.len(), 1..12), 1..40),
            queries in prop::collection::vec(prop::collection::vec(0..WORDS.len() + 1, 0..6), 1..6),
            every in 1usize..8,
            min_tail in prop::sample::select(vec![0usize, 1, 5, 30, MIN_TAIL_POSTINGS]),
        ) {
            // Queries between adds merge the tail at different points (min_tail 0: at
            // every query after an add); scores, lengths and bytes never depend on it.
            let docs: Vec<Vec<&str>> =
                docs.iter().map(|d| d.iter().map(|&i| WORDS[i]).collect()).collect();
            let queries: Vec<Vec<&str>> = queries
                .iter()
                .map(|q| q.iter().map(|&i| WORDS.get(i).copied().unwrap_or("unseen")).collect())
                .collect();
            let mut bm = Bm25::new(1.5, 0.75, 0.25).unwrap();
            bm.min_tail = min_tail;
            let mut batch = Bm25::new(1.5, 0.75, 0.25).unwrap();
            for (i, d) in docs.iter().enumerate() {
                bm.add_tokens(d.iter().copied()).unwrap();
                batch.add_tokens(d.iter().copied()).unwrap();
                if i % every == 0 {
                    let q = &queries[i % queries.len()];
                    let want = naive(&docs[..=i], q, 1.5, 0.75, 0.25);
                    let got = bm.scores(q.iter().copied());
                    prop_assert_eq!(
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                    );
                }
            }
            prop_assert_eq!(bm.n_postings(), batch.n_postings());
            prop_assert_eq!(bm.memory_bytes(), batch.memory_bytes());
            prop_assert_eq!(bm.to_bytes(), batch.to_bytes());
            for q in &queries {
                prop_assert_eq!(bm.scores(q.iter().copied()), batch.scores(q.iter().copied()));
            }
            let mut back = Bm25::from_bytes(&bm.to_bytes()).unwrap();
            prop_assert_eq!(back.to_bytes(), bm.to_bytes());
            prop_assert_eq!(back.scores(queries[0].iter().copied()), bm.scores(queries[0].iter().copied()));
        }

        #[test]
        fn split_spaces_is_str_split(text in "[a b\u{e9}\u{4e2d}]{0,40}") {
            let mut got = Vec::new();
            split_spaces(&text, |t| got.push(t));
            prop_assert_eq!(got, text.split(' ').collect::<Vec<_>>());
        }

        #[test]
        fn whitespace_split_joins_back(words in prop::collection::vec("[a-c ]{0,4}", 0..6)) {
            let text = words.join(" ");
            let terms = Tokenizer::WhitespaceSplit.tokenize(&text);
            prop_assert_eq!(terms.join(" "), text.clone());
            let ws = Tokenizer::Whitespace.tokenize(&text);
            prop_assert!(ws.iter().all(|t| !t.is_empty() && !t.contains(' ')));
            prop_assert_eq!(ws.concat(), text.replace(' ', ""));
        }
    }
}
