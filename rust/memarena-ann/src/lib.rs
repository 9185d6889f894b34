//! memarena-ann: vector indexes (skeleton; see the retrieval issue).
#![forbid(unsafe_code)]
