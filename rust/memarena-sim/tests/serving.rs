//! End-to-end serving simulations: hand-checked cases, rejection paths and
//! property tests of the KV invariants on random request mixes.

use memarena_sim::serving::*;
use proptest::prelude::*;

fn small_config(kv: KvManagerConfig) -> ServingConfig {
    // Llama-3-8B on a device with room for exactly `kv_gb` of KV.
    let model = ModelSpec::preset("llama3_8b").unwrap();
    let mut hw = Hardware::h100_sxm();
    hw.hbm_capacity_bytes = model.weight_bytes() + (2u64 << 30);
    let mut c = ServingConfig::new(model, hw);
    c.gpu_memory_utilization = 1.0;
    c.kv = Some(kv);
    c.sample_interval_s = 0.05;
    c.check_invariants = true;
    c
}

fn paged(block_size: u32, caching: PrefixCaching) -> KvManagerConfig {
    KvManagerConfig::Paged(PagedConfig {
        block_size,
        watermark: 0.01,
        prefix_caching: caching,
    })
}

#[test]
fn one_request_decodes_at_the_memory_roof() {
    let c = small_config(paged(16, PrefixCaching::Off));
    let r = simulate(&c, &[RequestSpec::new(0.0, 100, 11)]).unwrap();
    assert_eq!((r.completed, r.output_tokens, r.iterations), (1, 11, 11));
    // 10 decode steps, each reading the weights and ~100 tokens of KV.
    let w = c.model.weight_bytes() as f64;
    let tbt = r.tbt_s.mean;
    let expect = (w + 105.0 * 131072.0) / 3.35e12;
    assert!((tbt - expect).abs() / expect < 0.01, "{tbt} vs {expect}");
    assert!(r.ttft_s.p50 > 0.0 && r.e2e_s.p50 > r.ttft_s.p50);
    // Memory: one request of <= 110 tokens holds ceil(110 / 16) = 7 blocks at most.
    let max_used = r
        .samples
        .iter()
        .map(|s| s.token_states_bytes + s.internal_frag_bytes)
        .max()
        .unwrap();
    assert!(max_used <= 7 * 16 * 131072);
    for s in &r.samples {
        let sum = s.token_states_bytes
            + s.reserved_bytes
            + s.internal_frag_bytes
            + s.external_frag_bytes
            + s.free_bytes;
        assert_eq!(sum, r.kv_pool_bytes);
    }
}

/// A simulated time stretched past `max_samples` (here by a tiny compute
/// efficiency: every iteration lasts ~1e290 s) is an error naming
/// `sample_interval_s` and the keys that stretch the time, not a series
/// grown into all the memory there is.
#[test]
fn a_series_past_max_samples_is_an_error_naming_what_stretched_it() {
    let mut c = small_config(paged(16, PrefixCaching::Off));
    c.cost.compute_efficiency = 1e-300;
    c.check_invariants = false;
    c.max_samples = Some(1000);
    let e = simulate(&c, &[RequestSpec::new(0.0, 100, 11)])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("invalid value for sample_interval_s: "),
        "{e}"
    );
    for key in [
        "1000 samples",
        "cost.compute_efficiency",
        "kv.page_map_latency_s",
    ] {
        assert!(e.contains(key), "{key} missing: {e}");
    }
    // The same run without the stretch fits in the same series.
    c.cost.compute_efficiency = 1.0;
    assert!(simulate(&c, &[RequestSpec::new(0.0, 100, 11)]).is_ok());
}

#[test]
fn too_long_requests_are_rejected_and_counted() {
    let mut c = small_config(paged(16, PrefixCaching::Off));
    c.max_model_len = Some(1000);
    let reqs = [
        RequestSpec::new(0.0, 900, 200),
        RequestSpec::new(0.0, 100, 10),
        RequestSpec::new(0.1, 2_000_000, 1),
    ];
    let r = simulate(&c, &reqs).unwrap();
    assert_eq!(
        (r.completed, r.rejected_too_long, r.rejected_unservable),
        (1, 2, 0)
    );
    assert_eq!(r.requests[0].status, RequestStatus::RejectedTooLong);
    assert!(r.requests[0].ttft_s.is_nan());
    // A request that fits the context but not the KV pool.
    let mut c = small_config(KvManagerConfig::Static(StaticReservation::Oracle.into()));
    c.hardware.hbm_capacity_bytes = c.model.weight_bytes() + (100u64 << 20); // 800 tokens
    let r = simulate(&c, &[RequestSpec::new(0.0, 1000, 10)]).unwrap();
    assert_eq!((r.completed, r.rejected_unservable), (0, 1));
}

#[test]
fn weights_that_do_not_fit_give_a_clear_error() {
    let c = ServingConfig::new(
        ModelSpec::preset("llama3_70b").unwrap(),
        Hardware::h100_sxm(),
    );
    let e = simulate(&c, &[RequestSpec::new(0.0, 10, 10)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("llama3_70b") && e.contains("141.1 GB of weights") && e.contains("h100_sxm"),
        "{e}"
    );
}

#[test]
fn invalid_requests_name_the_field_and_row() {
    let c = small_config(paged(16, PrefixCaching::Off));
    let mut reqs = vec![RequestSpec::new(0.0, 10, 10); 20];
    reqs[17].prompt_tokens = 0;
    let e = simulate(&c, &reqs).unwrap_err().to_string();
    assert!(e.contains("requests[17].prompt_tokens"), "{e}");
    reqs[17].prompt_tokens = 5;
    reqs[3].arrival_s = f64::NAN;
    assert!(
        simulate(&c, &reqs)
            .unwrap_err()
            .to_string()
            .contains("requests[3].arrival_s")
    );
    let mut bad = small_config(paged(0, PrefixCaching::Off));
    reqs[3].arrival_s = 0.0;
    assert!(
        simulate(&bad, &reqs)
            .unwrap_err()
            .to_string()
            .contains("block_size")
    );
    bad.kv = Some(KvManagerConfig::Vattention(VattnConfig {
        page_size_bytes: 1000,
        ..VattnConfig::default()
    }));
    assert!(
        simulate(&bad, &reqs)
            .unwrap_err()
            .to_string()
            .contains("page_size_bytes")
    );
}

#[test]
fn prefix_cache_hit_count_for_two_requests() {
    // Two requests share 4 full blocks (64 tokens); the second arrives after
    // the first finished: v1 and v0 both hit min(4, (100 - 1) / 16) = 4 blocks.
    for style in [PrefixCaching::V0, PrefixCaching::V1] {
        let c = small_config(paged(16, style));
        let mk = |t: f64| RequestSpec {
            prefix_group: Some(1),
            prefix_tokens: 64,
            ..RequestSpec::new(t, 100, 5)
        };
        let r = simulate(&c, &[mk(0.0), mk(10.0)]).unwrap();
        assert_eq!(r.prefix_hit_tokens, 64, "{style:?}");
        assert_eq!(r.prefix_query_tokens, 200);
        assert!((r.prefix_hit_rate - 0.32).abs() < 1e-12);
        assert_eq!(r.prompt_tokens_computed, 200 - 64);
    }
}

#[test]
fn memory_pressure_preempts_and_everything_still_completes() {
    for mode in [PreemptionMode::Recompute, PreemptionMode::Swap] {
        for victim in [
            VictimPolicy::LastAdmitted,
            VictimPolicy::MostKv,
            VictimPolicy::LeastProgress,
        ] {
            let mut c = small_config(paged(16, PrefixCaching::V1));
            c.hardware.hbm_capacity_bytes = c.model.weight_bytes() + (256u64 << 20); // 2048 tokens
            c.scheduler.preemption = mode;
            c.scheduler.victim = victim;
            let reqs: Vec<RequestSpec> = (0..12)
                .map(|i| RequestSpec::new(0.0, 300 + 10 * i, 200))
                .collect();
            let r = simulate(&c, &reqs).unwrap();
            assert_eq!(r.completed, 12, "{mode:?} {victim:?}");
            assert!(
                r.preemptions_recompute + r.preemptions_swap > 0,
                "{mode:?} {victim:?}"
            );
            if mode == PreemptionMode::Swap {
                assert!(r.preemptions_swap > 0 && r.swap_out_bytes > 0);
            }
        }
    }
}

#[test]
fn paged_keeps_more_token_states_than_static_max() {
    let reqs: Vec<RequestSpec> = (0..200)
        .map(|i| RequestSpec::new(0.0, 200 + (i * 37) % 600, 50 + (i * 13) % 300))
        .collect();
    let mut shares = Vec::new();
    for kv in [
        KvManagerConfig::Static(StaticReservation::MaxLen.into()),
        KvManagerConfig::Static(StaticReservation::Pow2.into()),
        KvManagerConfig::Static(StaticReservation::Oracle.into()),
        paged(16, PrefixCaching::Off),
        KvManagerConfig::Vattention(VattnConfig {
            page_size_bytes: 64 << 10,
            ..VattnConfig::default()
        }),
    ] {
        let mut c = small_config(kv);
        c.max_model_len = Some(2048);
        c.check_invariants = false;
        let r = simulate(&c, &reqs).unwrap();
        assert_eq!(r.completed, 200);
        shares.push(r.token_state_share_of_used());
    }
    // Max < Pow2 < Oracle < paged, and paged holds > 90% token states.
    assert!(
        shares[0] < shares[1] && shares[1] < shares[2] && shares[2] < shares[3],
        "{shares:?}"
    );
    // vAttention with 64 KiB pages (32 tokens) wastes a little more per
    // request than 16-token blocks, plus pages kept on idle slots.
    assert!(shares[3] > 0.9 && shares[4] > 0.7, "{shares:?}");
}

/// The Azure conv trace, when the data is present (the tests never require it).
fn azure_conv_path() -> Option<std::path::PathBuf> {
    let p = std::env::var_os("MEMARENA_AZURE_CONV_CSV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/data/azure-llm-2023/AzureLLMInferenceTrace_conv.csv")
        });
    p.is_file().then_some(p)
}

#[test]
fn azure_conv_trace_replays_when_present() {
    let Some(path) = azure_conv_path() else {
        eprintln!("Azure conv trace not found; skipped (set MEMARENA_AZURE_CONV_CSV)");
        return;
    };
    let reqs = read_azure_csv(&path).unwrap();
    assert_eq!(reqs.len(), 19_366);
    let mut c = ServingConfig::new(
        ModelSpec::preset("llama3_8b").unwrap(),
        Hardware::h100_sxm(),
    );
    c.sample_interval_s = 10.0;
    let r = simulate(&c, &reqs).unwrap();
    // One request (prompt + output > 8192) is longer than Llama-3-8B's context.
    assert_eq!(
        (r.completed, r.rejected_too_long),
        (reqs.len() as u64 - 1, 1)
    );
}

fn manager(k: u8, block: u32) -> KvManagerConfig {
    let buddy = |variant| {
        KvManagerConfig::Static(StaticConfig {
            variant,
            allocator: StaticAllocator::Buddy,
        })
    };
    match k % 10 {
        7 => buddy(StaticReservation::MaxLen),
        8 => buddy(StaticReservation::Pow2),
        9 => buddy(StaticReservation::Oracle),
        0 => KvManagerConfig::Static(StaticReservation::MaxLen.into()),
        1 => KvManagerConfig::Static(StaticReservation::Pow2.into()),
        2 => KvManagerConfig::Static(StaticReservation::Oracle.into()),
        3 => paged(block, PrefixCaching::Off),
        4 => paged(block, PrefixCaching::V0),
        5 => paged(block, PrefixCaching::V1),
        _ => KvManagerConfig::Vattention(VattnConfig {
            page_size_bytes: 64 << 10, // 32 tokens per page on Llama-3-8B
            deferred_reclaim: block.is_multiple_of(2),
            page_map_latency_s: 1e-6,
        }),
    }
}

/// The scheduler of the random-workload tests, from the drawn knobs
/// (`victim`: 0, 1, 2 for last admitted, most KV, least progress).
fn mix_scheduler(
    budget: u32,
    max_seqs: u32,
    chunked: bool,
    swap: bool,
    victim: u8,
    cohort_min: u32,
) -> SchedulerConfig {
    SchedulerConfig {
        max_num_batched_tokens: budget,
        max_num_seqs: max_seqs,
        chunked_prefill: chunked,
        preemption: if swap {
            PreemptionMode::Swap
        } else {
            PreemptionMode::Recompute
        },
        victim: [
            VictimPolicy::LastAdmitted,
            VictimPolicy::MostKv,
            VictimPolicy::LeastProgress,
        ][victim as usize],
        fast_decode_runs: true,
        cohort_min_running: cohort_min,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// With invariant checks at every iteration (no block owned twice, ref
    /// counts equal table entries and never negative, free + used = total,
    /// breakdown sums to the pool), every request completes or is rejected.
    #[test]
    fn random_mixes_keep_every_invariant(
        k in 0u8..10,
        block in prop::sample::select(vec![1u32, 8, 16, 32]),
        swap in any::<bool>(),
        victim in 0u8..3,
        cohort_min in prop::sample::select(vec![0u32, 0, 3, 16]),
        chunked in any::<bool>(),
        budget in 64u32..2048,
        max_seqs in 2u32..16,
        pool_tokens in 600u64..4000,
        reqs in prop::collection::vec(
            (0.0f64..2.0, 1u32..700, 1u32..120, 1u32..4, prop::option::of(0u64..3), 0u32..400),
            1..40,
        ),
    ) {
        let mut c = small_config(manager(k, block));
        c.hardware.hbm_capacity_bytes = c.model.weight_bytes() + pool_tokens * 131072 + (4u64 << 20);
        c.max_model_len = Some(1024);
        c.scheduler = mix_scheduler(budget, max_seqs, chunked, swap, victim, cohort_min);
        c.swap_space_bytes = Some(300 * 131072);
        let specs: Vec<RequestSpec> = reqs
            .iter()
            .map(|&(t, p, o, n, g, pre)| RequestSpec {
                arrival_s: t,
                prompt_tokens: p,
                output_tokens: o,
                n_parallel: n,
                prefix_group: g,
                prefix_tokens: if g.is_some() { pre.min(p + o) } else { 0 },
            })
            .collect();
        let r = simulate(&c, &specs).unwrap();
        // Decode runs skip the event queue and quiet KV calls, the cohort
        // skips visiting its members, and neither changes anything: the
        // step-by-step path gives the same report, bit for bit.
        c.scheduler.fast_decode_runs = false;
        prop_assert_eq!(r.digest(), simulate(&c, &specs).unwrap().digest(), "decode runs changed the result");
        prop_assert_eq!(r.completed + r.rejected_too_long + r.rejected_unservable, specs.len() as u64);
        for s in &r.samples {
            let sum = s.token_states_bytes + s.reserved_bytes + s.internal_frag_bytes + s.external_frag_bytes + s.idle_mapped_bytes + s.free_bytes;
            prop_assert_eq!(sum, r.kv_pool_bytes);
        }
        let done: u64 = specs
            .iter()
            .zip(&r.requests)
            .filter(|(_, o)| o.status == RequestStatus::Completed)
            .map(|(s, _)| s.output_tokens as u64 * s.n_parallel as u64)
            .sum();
        prop_assert_eq!(r.output_tokens, done);
        // At the end everything is free again (cached blocks count as free).
        if let Some(last) = r.samples.last() {
            prop_assert!(last.time_s >= 0.0);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Under load (a burst of requests, most of them queued) the batch is
    /// mostly a cohort of decoding requests that the scheduler does not
    /// visit. Long prompts and small budgets (below the decodes of a full
    /// batch) make the token budget bind (the cohort dissolves), a small
    /// pool preempts members, and frequent samples catch members up
    /// mid-iteration. Some prefix groups share whole conversations (the
    /// output too, as multi-turn turns do), so decode steps fill blocks
    /// that other requests look up. The report is the step-by-step path's,
    /// bit for bit.
    #[test]
    fn saturated_batches_equal_the_step_by_step_path(
        k in 0u8..10,
        block in prop::sample::select(vec![8u32, 16, 32]),
        swap in any::<bool>(),
        victim in 0u8..3,
        cohort_min in prop::sample::select(vec![0u32, 1, 4]),
        chunked in any::<bool>(),
        budget in prop::sample::select(vec![32u32, 96, 512, 3072]),
        max_seqs in 8u32..64,
        pool_tokens in 3000u64..12000,
        sample_interval_s in prop::sample::select(vec![0.0, 0.02, 0.3]),
        reqs in prop::collection::vec(
            (
                0.0f64..2.0,
                1u32..300,
                any::<bool>(),
                2u32..150,
                1u32..4,
                prop::option::of(0u64..3),
                any::<bool>(),
            ),
            40..160,
        ),
    ) {
        let mut c = small_config(manager(k, block));
        c.check_invariants = false;
        c.hardware.hbm_capacity_bytes = c.model.weight_bytes() + pool_tokens * 131072 + (4u64 << 20);
        c.max_model_len = Some(4096);
        c.sample_interval_s = sample_interval_s;
        c.scheduler = mix_scheduler(budget, max_seqs, chunked, swap, victim, cohort_min);
        c.swap_space_bytes = Some(2000 * 131072);
        let specs: Vec<RequestSpec> = reqs
            .iter()
            .map(|&(t, p, long, o, n, g, whole)| {
                // Some prompts longer than the budget (chunked) or the pool.
                let prompt = if long { p * 10 } else { p };
                RequestSpec {
                    arrival_s: t,
                    prompt_tokens: prompt,
                    output_tokens: o,
                    n_parallel: n,
                    prefix_group: g,
                    prefix_tokens: match (g, whole) {
                        (None, _) => 0,
                        (Some(_), true) => prompt + o,
                        (Some(_), false) => prompt.min(200),
                    },
                }
            })
            .collect();
        let fast = simulate(&c, &specs).unwrap();
        c.scheduler.fast_decode_runs = false;
        let reference = simulate(&c, &specs).unwrap();
        prop_assert_eq!(fast.digest(), reference.digest(), "the cohort changed the result");
    }
}

#[test]
fn vattention_request_alone_grows_into_its_slots_surplus_pages() {
    // Regression (the property test's shrunk case, once intermittent): 19
    // page groups of 32 tokens, 3 slots. The 2-sample request leaves 9 pages
    // mapped on each of slots 0 and 1; the 3-sample request reuses them and
    // its third slot must take pages from its own slots' surplus to reach 2
    // pages. Growth used to spare the request's own slots entirely, so it
    // preempted itself forever (recompute) or could never swap back in
    // ("no progress ... 1 swapped").
    for preemption in [PreemptionMode::Swap, PreemptionMode::Recompute] {
        let mut c = small_config(KvManagerConfig::Vattention(VattnConfig {
            page_size_bytes: 64 << 10,
            deferred_reclaim: true,
            page_map_latency_s: 1e-6,
        }));
        c.hardware.hbm_capacity_bytes = c.model.weight_bytes() + 600 * 131072 + (4u64 << 20);
        c.max_model_len = Some(1024);
        c.scheduler = SchedulerConfig {
            max_num_batched_tokens: 553,
            max_num_seqs: 3,
            chunked_prefill: false,
            preemption,
            victim: VictimPolicy::LastAdmitted,
            ..SchedulerConfig::default()
        };
        c.swap_space_bytes = Some(300 * 131072);
        let reqs = [
            RequestSpec {
                n_parallel: 2,
                ..RequestSpec::new(0.0, 245, 13)
            },
            RequestSpec {
                n_parallel: 3,
                ..RequestSpec::new(0.0, 1, 34)
            },
        ];
        let r = simulate(&c, &reqs).unwrap();
        assert_eq!(r.completed, 2, "{preemption:?}");
        assert_eq!((r.preemptions_recompute, r.preemptions_swap), (0, 0));
    }
}
