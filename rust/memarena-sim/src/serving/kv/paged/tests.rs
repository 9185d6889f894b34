//! Unit tests of the paged pool.

use super::cache::DENSE_SALTS;
use super::*;

fn req(prompt: u32, output: u32, n: u32, group: Option<u64>, prefix: u32, salt: u64) -> KvRequest {
    KvRequest {
        prompt_tokens: prompt,
        max_tokens: prompt + output - 1,
        n_parallel: n,
        prefix_group: group,
        prefix_tokens: prefix,
        salt,
    }
}

fn pool(blocks: u32, caching: PrefixCaching) -> PagedKv {
    PagedKv::new(
        blocks,
        1,
        PagedConfig {
            block_size: 16,
            watermark: 0.0,
            prefix_caching: caching,
        },
    )
    .unwrap()
}

#[test]
fn the_free_queue_stays_within_twice_its_length() {
    // Freeing (reserve, then push) and allocating (pop) forever: the
    // popped prefix is dropped instead of the vector growing.
    let mut f = Fifo::default();
    let mut next = 0u64;
    for round in 0..2000u64 {
        let n = 1 + (round * 7919 % 97) as usize;
        f.reserve(n);
        for _ in 0..n {
            f.push_back(next);
            next += 1;
        }
        while f.len() > 100 {
            let first = next - f.len() as u64;
            assert_eq!(f.pop_front(), Some(first), "FIFO order");
        }
        assert!(
            f.buf.capacity() <= 4 * 200,
            "round {round}: capacity {} for {} queued",
            f.buf.capacity(),
            f.len()
        );
    }
}

#[test]
fn one_request_takes_ceil_tokens_over_block_size() {
    let mut p = pool(100, PrefixCaching::Off);
    let r = req(100, 50, 1, None, 0, 0);
    assert!(p.admit(0, &r, 0, 100));
    assert_eq!(p.block_table(0, 0).unwrap().len(), 7); // ceil(100 / 16)
    assert!(p.grow(0, 112, 1));
    assert_eq!(p.num_free(), 93);
    assert!(p.grow(0, 113, 1));
    assert_eq!(p.num_free(), 92);
    let b = p.breakdown(None);
    assert_eq!(b.token_states_bytes, 113);
    assert_eq!(b.internal_frag_bytes, 8 * 16 - 113);
    assert_eq!(b.total(), 1600);
    p.check_invariants().unwrap();
    p.free(0);
    assert_eq!(p.num_free(), 100);
    p.check_invariants().unwrap();
}

#[test]
fn prefix_hits_cover_shared_full_blocks_but_never_the_last_token() {
    for style in [PrefixCaching::V0, PrefixCaching::V1] {
        let mut p = pool(100, style);
        // Two requests share 64 tokens = 4 full blocks of group 7.
        let a = req(100, 10, 1, Some(7), 64, 1);
        assert_eq!(p.lookup(0, &a, 100), 0);
        assert!(p.admit(0, &a, 0, 100));
        let b = req(90, 10, 1, Some(7), 64, 2);
        assert_eq!(p.lookup(1, &b, 90), 64); // min(4, (90 - 1) / 16 = 5) blocks
        assert!(p.admit(1, &b, 64, 90));
        assert_eq!(
            p.block_table(0, 0).unwrap()[..4],
            p.block_table(1, 0).unwrap()[..4]
        );
        assert_eq!(p.ref_count(p.block_table(0, 0).unwrap()[0]), 2);
        p.check_invariants().unwrap();
        // A prompt of exactly the 64 shared tokens hits (64 - 1) / 16 = 3 blocks.
        let c = req(64, 10, 1, Some(7), 64, 3);
        assert_eq!(p.lookup(2, &c, 64), 48);
        assert!(p.admit(2, &c, 48, 64));
        p.check_invariants().unwrap();
        // After everything is freed, the cached blocks still hit.
        p.free(0);
        p.free(1);
        p.free(2);
        p.check_invariants().unwrap();
        assert_eq!(p.num_free(), 100);
        let d = req(200, 10, 1, Some(7), 64, 4);
        assert_eq!(p.lookup(3, &d, 200), 64, "{style:?}");
        assert!(p.admit(3, &d, 64, 200));
        p.check_invariants().unwrap();
    }
}

/// Everything a later operation or report can observe.
fn state(p: &PagedKv) -> String {
    // (A run's live entries are its content; stale ones, and slots
    // past its last entry, are storage.)
    let runs: Vec<(Vec<Option<u64>>, u32)> = (0..p.cached.runs.len() as u32)
        .map(|id| {
            let mut live: Vec<Option<u64>> = (0..p.cached.runs[id as usize].slots.len() as u32)
                .map(|pos| p.live_entry(id, pos))
                .collect();
            while live.last() == Some(&None) {
                live.pop();
            }
            (live, p.cached.live[id as usize])
        })
        .collect();
    // (Its pops come in key order; when it merges the pending keys is
    // its own business.)
    let mut evictor: Vec<&LruKey> = p.evictor.iter().collect();
    evictor.sort();
    let ring: Vec<&u64> = p.ring.iter().collect();
    format!(
        "{:?}",
        (
            (&p.blocks, &p.stack, evictor, &p.last_access),
            (ring, p.ring_base, p.tombs),
            (runs, p.cached.len, &p.cached.ids, &p.cached.own),
            (
                &p.groups,
                p.counters,
                p.num_free,
                p.free_hashed,
                p.used_fill,
                p.extra_bytes
            ),
        )
    )
}

proptest::proptest! {
    /// Writes of new blocks in one pass (the default) leave every
    /// structure as allocating and registering one block at a time does,
    /// on small pools where writes evict content they would re-register.
    #[test]
    fn batched_writes_equal_one_block_at_a_time(
        v1 in proptest::bool::ANY,
        blocks in 8u32..64,
        ops in proptest::collection::vec(
            (0u8..8, 0usize..8, 1u32..160, 1u32..48, 1u32..3, proptest::option::of(0u64..2), 0u32..120),
            1..120,
        ),
    ) {
        let caching = if v1 { PrefixCaching::V1 } else { PrefixCaching::V0 };
        let mut fast = pool(blocks, caching);
        let mut slow = pool(blocks, caching);
        slow.batch_writes = false;
        // (rid, request, tokens): running, and freed (preempted).
        let mut live: Vec<(u32, KvRequest, u32)> = Vec::new();
        let mut freed: Vec<(u32, KvRequest, u32)> = Vec::new();
        let (mut next, mut now) = (0u32, 0.0);
        for (op, pick, prompt, grow, n, group, prefix) in ops {
            match op {
                0..=2 => {
                    // A new request, or a preempted one again: by
                    // recompute (looking up its prefix) or by swap-in
                    // (rebuilt without a lookup).
                    let (rid, r, tokens) = match op {
                        1 | 2 if !freed.is_empty() => freed.swap_remove(pick % freed.len()),
                        _ => {
                            next += 1;
                            (next - 1, req(prompt, grow, n, group, prefix.min(prompt), next as u64), prompt)
                        }
                    };
                    let ok = if op == 2 {
                        let ok = fast.swap_in(rid, &r, tokens, r.n_parallel);
                        proptest::prop_assert_eq!(ok, slow.swap_in(rid, &r, tokens, r.n_parallel));
                        ok
                    } else {
                        let hit = fast.lookup(rid, &r, tokens);
                        proptest::prop_assert_eq!(hit, slow.lookup(rid, &r, tokens));
                        let ok = fast.admit(rid, &r, hit, tokens);
                        proptest::prop_assert_eq!(ok, slow.admit(rid, &r, hit, tokens));
                        ok
                    };
                    if ok {
                        live.push((rid, r, tokens));
                    } else {
                        freed.push((rid, r, tokens));
                    }
                }
                3..=5 if !live.is_empty() => {
                    let i = pick % live.len();
                    let (rid, r, tokens) = &mut live[i];
                    let to = (*tokens + grow).min(r.max_tokens.max(*tokens));
                    let ok = fast.grow(*rid, to, r.n_parallel);
                    proptest::prop_assert_eq!(ok, slow.grow(*rid, to, r.n_parallel));
                    if ok {
                        *tokens = to;
                    }
                }
                6 if !live.is_empty() => {
                    let (rid, r, tokens) = live.swap_remove(pick % live.len());
                    fast.free(rid);
                    slow.free(rid);
                    freed.push((rid, r, tokens));
                }
                _ => {
                    now += 1.0;
                    fast.set_time(now);
                    slow.set_time(now);
                }
            }
            fast.check_invariants().unwrap();
            proptest::prop_assert_eq!(state(&fast), state(&slow));
        }
    }
}

#[test]
fn v1_evicts_a_freed_requests_tail_blocks_first() {
    let mut p = pool(4, PrefixCaching::V1);
    let a = req(64, 1, 1, Some(1), 64, 1);
    assert!(p.admit(0, &a, 0, 64));
    let t = p.block_table(0, 0).unwrap().to_vec();
    p.free(0);
    // The free queue now holds the contents of t[3], t[2], t[1], t[0];
    // a 16-token request evicts t[3]'s and the first 3 blocks still
    // hit. (Under v1 a free block's id is anonymous: the new request
    // may get any of them.)
    let b = req(16, 1, 1, None, 0, 2);
    assert!(p.admit(1, &b, 0, 16));
    assert_eq!(p.block_table(1, 0).unwrap().len(), 1);
    assert!(t.contains(&p.block_table(1, 0).unwrap()[0]));
    assert_eq!(p.lookup(2, &a, 64), 48);
    assert_eq!(p.counters().cache_evictions, 1);
    p.check_invariants().unwrap();
}

#[test]
fn v1_hits_on_free_blocks_leave_tombstones_that_get_compacted() {
    let mut p = pool(100, PrefixCaching::V1);
    let mut compacted = false;
    for k in 0..10 {
        // 50 shared blocks, then one private token.
        let r = req(801, 1, 1, Some(9), 800, k);
        let hit = p.lookup(k as u32, &r, 801);
        assert_eq!(hit, if k == 0 { 0 } else { 800 });
        assert!(p.admit(k as u32, &r, hit, 801));
        compacted |= p.tombs == 0 && k > 0;
        p.check_invariants().unwrap();
        p.free(k as u32);
        p.check_invariants().unwrap();
    }
    assert!(compacted);
    assert_eq!(p.num_free(), 100);
    assert_eq!(p.counters().cache_evictions, 0);
}

#[test]
fn parallel_sampling_shares_the_prompt_and_copies_on_write() {
    let mut p = pool(20, PrefixCaching::Off);
    let r = req(20, 5, 2, None, 0, 0);
    assert!(p.admit(0, &r, 0, 20)); // 1 full + 1 partial (4 tokens)
    assert_eq!(p.num_free(), 18);
    assert!(p.grow(0, 21, 2)); // fork, then one copy-on-write
    assert_eq!(p.counters().cow_copies, 1);
    assert_eq!(p.num_free(), 17);
    let (a, b) = (
        p.block_table(0, 0).unwrap().to_vec(),
        p.block_table(0, 1).unwrap().to_vec(),
    );
    assert_eq!(a[0], b[0]);
    assert_ne!(a[1], b[1]);
    assert_eq!(p.ref_count(a[0]), 2);
    assert_eq!(p.resident_bytes(0), 3 * 16);
    p.check_invariants().unwrap();
    p.free(0);
    assert_eq!(p.num_free(), 20);
    p.check_invariants().unwrap();
}

#[test]
fn watermark_blocks_admission_but_not_growth() {
    let mut p = PagedKv::new(
        100,
        1,
        PagedConfig {
            watermark: 0.1,
            ..PagedConfig::default()
        },
    )
    .unwrap();
    let r = req(16 * 91, 100, 1, None, 0, 0);
    assert!(!p.admit(0, &r, 0, 16 * 91)); // 91 + 10 > 100
    assert!(p.admit(0, &r, 0, 16 * 90));
    assert!(p.grow(0, 16 * 100, 1));
    assert!(!p.grow(0, 16 * 100 + 1, 1));
    p.check_invariants().unwrap();
}

#[test]
fn own_content_hits_by_any_salt() {
    // Salts below DENSE_SALTS keep their run ids in a vector, larger
    // ones (and later samples) in the map: both find their content.
    for caching in [PrefixCaching::V0, PrefixCaching::V1] {
        let mut p = pool(100, caching);
        for (rid, salt) in [(0, 3), (1, DENSE_SALTS + 3), (2, u64::MAX)] {
            let r = req(64, 10, 1, None, 0, salt);
            assert!(p.admit(rid, &r, 0, 64));
            p.free(rid);
            assert_eq!(p.lookup(rid, &r, 64), 48, "{caching:?} salt {salt}");
            assert!(p.admit(rid, &r, 48, 64));
        }
        assert_eq!(p.cached.num_ids(), 3);
        assert_eq!(p.cached.ids.len(), 2);
        p.check_invariants().unwrap();
    }
}

#[test]
fn filling_a_block_is_quiet_only_for_content_no_one_else_can_find() {
    for caching in [PrefixCaching::V0, PrefixCaching::V1] {
        // Own content: the step that fills the block is quiet too.
        let mut p = pool(100, caching);
        let own = req(20, 30, 1, None, 0, 1);
        assert!(p.admit(0, &own, 0, 21));
        assert_eq!(p.quiet_decode_tokens(0, 1), 11, "{caching:?}");
        // Content shared with a group (a conversation's next turn
        // looks its output up): the fill registers it at once.
        let turn = req(20, 30, 1, Some(7), 50, 2);
        assert!(p.admit(1, &turn, 0, 21));
        assert_eq!(p.quiet_decode_tokens(1, 1), 10, "{caching:?}");
        // Own content cached already (the request's earlier blocks,
        // freed and cached, then re-admitted without a lookup): the
        // fill would find it cached, which may change before a
        // deferred grow.
        let mut p = pool(100, caching);
        assert!(p.admit(0, &own, 0, 48));
        p.free(0);
        assert!(p.admit(0, &own, 0, 40));
        assert_eq!(p.quiet_decode_tokens(0, 1), 7, "{caching:?}");
        // Without caching every token of the block's room is quiet.
        let mut p = pool(100, PrefixCaching::Off);
        assert!(p.admit(0, &turn, 0, 21));
        assert_eq!(p.quiet_decode_tokens(0, 1), 11);
        p.check_invariants().unwrap();
    }
}
