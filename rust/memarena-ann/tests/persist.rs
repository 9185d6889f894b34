//! The file format: truncation and corruption always give an error naming a
//! byte offset, never a panic or a silently different index; and even a
//! corrupted payload with a recomputed (matching) checksum never panics the
//! loader or a search on what it returns.

mod common;

use common::{DIM, data, kinds, make};
use memarena_ann::persist::crc32;
use memarena_ann::{Metric, SearchParams, TenantFilter, TenantLists, VectorIndex, from_bytes};
use memarena_core::rng::Rng;

fn small_indexes() -> Vec<(Box<dyn VectorIndex>, SearchParams)> {
    let ds = data(240, 4, 17);
    let n = ds.n_base();
    let ids: Vec<u64> = (0..n as u64).map(|i| i + 10).collect();
    let rows: Vec<Vec<u32>> = (0..n).map(|i| vec![(i % 3) as u32, 7]).collect();
    let csr = TenantLists::from_lists(&rows);
    kinds()
        .into_iter()
        .map(|(_, bp, sp)| {
            let mut idx = make(&bp, Metric::L2, &ds.base);
            idx.add_with_tenants(&ds.base, &ids, Some(csr.as_tenants()))
                .unwrap();
            idx.delete(&[10, 11, 50]).unwrap();
            (idx, sp)
        })
        .collect()
}

#[test]
fn truncation_at_any_offset_is_an_error() {
    for (idx, _) in small_indexes() {
        let bytes = idx.to_bytes();
        let n = bytes.len();
        let offsets = (0..n.min(300))
            .chain((300..n).step_by(61))
            .chain(n.saturating_sub(300)..n);
        for cut in offsets {
            let e = from_bytes(&bytes[..cut]).expect_err("truncated file loaded");
            let msg = e.to_string();
            assert!(msg.contains("byte"), "{}: cut {cut}: {msg}", idx.kind());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(from_bytes(&longer).is_err());
    }
}

#[test]
fn any_flipped_byte_is_an_error() {
    let mut rng = Rng::seed_from_u64(3);
    for (idx, _) in small_indexes() {
        let bytes = idx.to_bytes();
        for _ in 0..300 {
            let mut b = bytes.clone();
            let at = rng.below(b.len() as u64) as usize;
            b[at] ^= 1 + rng.below(255) as u8;
            let e = from_bytes(&b).expect_err("corrupt file loaded");
            assert!(e.to_string().contains("byte"), "{e}");
        }
    }
}

#[test]
fn corrupt_payload_with_matching_checksum_never_panics() {
    let mut rng = Rng::seed_from_u64(4);
    let ds = data(10, 6, 99);
    let filter = TenantFilter::Tenant(1);
    for (idx, sp) in small_indexes() {
        let bytes = idx.to_bytes();
        let body = bytes.len() - 4;
        for round in 0..400 {
            let mut b = bytes[..body].to_vec();
            let header = 8 + 4 + 1 + idx.kind().len() + 8;
            for _ in 0..1 + round % 3 {
                let at = header + rng.below((body - header) as u64) as usize;
                b[at] ^= 1 << rng.below(8);
            }
            let crc = crc32(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            if let Ok(loaded) = from_bytes(&b) {
                let _ = loaded.search(&ds.queries, 5, &sp, None);
                let _ = loaded.search(&ds.queries, 5, &sp, Some(&filter));
            }
        }
    }
}

#[test]
fn wrong_magic_and_version_are_named() {
    let (idx, _) = small_indexes().remove(0);
    let mut b = idx.to_bytes();
    b[0] = b'X';
    assert!(from_bytes(&b).unwrap_err().to_string().contains("magic"));
    let mut b = idx.to_bytes();
    b[8] = 99;
    assert!(from_bytes(&b).unwrap_err().to_string().contains("version"));
    let e = memarena_ann::load(std::path::Path::new("/nonexistent/x.idx")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/x.idx"));
    let _ = DIM;
}

/// Files written before the build configs crossed with serde (the build of
/// commit c9b6cbe, the same format version: 300 vectors of dim 8, ids 5..305,
/// vector `i` readable by tenants `i % 3` and 9, ids 5, 6 and 100 deleted)
/// still load, answer filtered searches, and re-serialize to the same bytes.
#[test]
fn files_written_by_the_earlier_build_load_unchanged() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/before-serde");
    let ds = memarena_ann::dataset::gaussian_mixture(300, 1, 8, 6, 0.5, 3).unwrap();
    for kind in memarena_ann::INDEX_KINDS {
        let path = dir.join(format!("{kind}.idx"));
        let bytes = std::fs::read(&path).unwrap();
        let idx = memarena_ann::load(&path).unwrap();
        assert_eq!((idx.kind(), idx.dim(), idx.len()), (kind, 8, 297));
        assert!(
            !idx.contains(5) && !idx.contains(100) && idx.contains(7),
            "{kind}"
        );
        assert_eq!(idx.tenant_len(9), 297, "{kind}");
        assert_eq!(
            idx.to_bytes(),
            bytes,
            "{kind}: a loaded file re-serializes to other bytes"
        );
        let sp = SearchParams {
            nprobe: 8,
            ef_search: 64,
            n_probes: 4,
            ..SearchParams::default()
        };
        let r = idx
            .search(&ds.queries, 5, &sp, Some(&TenantFilter::Tenant(1)))
            .unwrap();
        assert!(r.ids.iter().any(|&i| i >= 0), "{kind}: nothing found");
        assert!(
            r.ids.iter().all(|&i| i == -1 || (i - 5) % 3 == 1),
            "{kind}: {:?}",
            r.ids
        );
    }
}
