//! IVF's unfiltered batch path scans each probed list once for all the
//! queries of a group that probe it; these tests pin it to the per-query
//! path: the same ids and bit-identical distances alone, in any batch,
//! with any thread count, and as the in-index filtered path (which scans
//! one query at a time) with a tenant that holds every vector.

mod common;

use common::{DIM, data};
use memarena_ann::{
    IndexConfig, IvfBuildConfig, Metric, SearchParams, TenantFilter, Tenants, build,
};

#[test]
fn grouped_batch_equals_each_query_alone_and_the_filtered_path() {
    // More queries than one group (512) per thread, few lists: most lists
    // are probed by many queries of a group.
    let ds = data(3000, 1100, 11);
    let n = ds.n_base();
    let ids: Vec<u64> = (0..n as u64).map(|i| 5 * i + 2).collect();
    let offsets: Vec<u64> = (0..=n as u64).collect();
    let everyone = vec![0u32; n];
    let tenants = Tenants::new(&offsets, &everyone).unwrap();
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let cfg = IndexConfig::Ivf(IvfBuildConfig {
            nlist: 48,
            seed: 3,
            ..IvfBuildConfig::default()
        });
        let mut idx = build(metric, DIM, &cfg).unwrap();
        idx.train(&ds.base).unwrap();
        idx.add_with_tenants(&ds.base, &ids, Some(tenants)).unwrap();
        // Tombstones are skipped on both paths.
        let gone: Vec<u64> = ids.iter().copied().step_by(7).collect();
        assert_eq!(idx.delete(&gone).unwrap(), gone.len());
        for threads in [1, 2, 3] {
            let sp = SearchParams {
                nprobe: 5,
                threads,
                exact_filter_max: Some(0),
                ..SearchParams::default()
            };
            let batch = idx.search(&ds.queries, 10, &sp, None).unwrap();
            // Deleted: ids 5i + 2 with i % 7 == 0, i.e. id % 35 == 2.
            assert!(batch.ids.iter().all(|&i| i >= 0 && i % 35 != 2));
            let filtered = idx
                .search(&ds.queries, 10, &sp, Some(&TenantFilter::Tenant(0)))
                .unwrap();
            assert_eq!(
                batch, filtered,
                "{metric:?} threads {threads}: filtered path differs"
            );
            if threads != 1 {
                continue;
            }
            for q in (0..ds.n_queries()).step_by(13) {
                let alone = idx
                    .search(&ds.queries[q * DIM..(q + 1) * DIM], 10, &sp, None)
                    .unwrap();
                assert_eq!(alone.ids, batch.row_ids(q), "{metric:?}: query {q}");
                assert_eq!(
                    alone.distances,
                    batch.row_distances(q),
                    "{metric:?}: query {q}"
                );
            }
        }
    }
}
