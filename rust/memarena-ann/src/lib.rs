//! memarena-ann: vector indexes for the retrieval and agent families.
//!
//! Every index implements [`VectorIndex`] (train / add / search / delete /
//! reset / save / load) over flat row-major `f32` data, caller-chosen `u64`
//! ids and optional per-vector tenant sets; searches are batch-first,
//! faiss-shaped (`nq * k` distances and ids, `-1` padding) and run in
//! parallel with `std::thread::scope`.
//!
//! | name | type | idea |
//! |---|---|---|
//! | `flat` | [`Flat`] | exact scan (ground truth) |
//! | `simhash` | [`SimHash`] | random hyperplanes, several tables, multi-probe, Hamming scan, exact re-rank |
//! | `e2lsh` | [`E2Lsh`] | p-stable projections for L2, multi-probe |
//! | `ivf` | [`Ivf`] | k-means inverted lists |
//! | `spann` | [`Ivf`] | balanced clustering with boundary replication (SPANN) |
//! | `hnsw` | [`Hnsw`] | hierarchical navigable small-world graph |
//! | `curator` | [`Curator`] | shared clustering tree with per-tenant shortlists (Curator) |
//!
//! Beside them, [`Bm25`]: Okapi BM25 over an inverted index of texts, with
//! `rank_bm25.BM25Okapi`'s scores bit for bit (the agent family's lexical retriever).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bm25;
pub mod curator;
pub mod dataset;
pub mod e2lsh;
pub mod flat;
#[allow(unsafe_code)] // one `sgemm` call, its shapes asserted
mod gemm;
pub mod hnsw;
pub mod index;
pub mod ivf;
mod kmeans;
pub mod metric;
pub mod persist;
pub mod simhash;
// The one module allowed `unsafe`: calls of detected `#[target_feature]` kernels.
#[allow(unsafe_code)]
mod simd;
mod store;
pub mod tenant;
mod topk;

pub use bm25::{Bm25, Tokenizer};
pub use curator::{Curator, CuratorConfig};
pub use e2lsh::{E2Lsh, E2LshConfig};
pub use flat::Flat;
pub use hnsw::{Hnsw, HnswConfig};
pub use index::{
    INDEX_KINDS, IndexConfig, SearchParams, SearchResult, VectorIndex, build, from_bytes, load,
};
pub use ivf::{Ivf, IvfBuildConfig, IvfConfig, SpannBuildConfig};
pub use metric::Metric;
pub use simhash::{Planes, SimHash, SimHashConfig};
pub use store::MAX_ID;
pub use tenant::{TenantFilter, TenantLists, Tenants};
