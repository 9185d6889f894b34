//! A KV manager that implements only the semantic methods of
//! [`KvManager`] (leaving out the optional `quiet_decode_tokens`) is
//! simulated exactly like one that also promises quiet decode steps: the
//! same report, bit for bit, with a `grow` call for every decode step.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::serving::scheduler::PreemptionMode;
use crate::serving::workload::{
    ArrivalProcess, LengthDist, MultiTurnWorkload, SharedPrefixWorkload, SyntheticWorkload,
};

/// The semantic methods, forwarded to `self.inner`; `grow` calls counted
/// in `self.grows`.
macro_rules! forward_semantic_methods {
    () => {
        fn name(&self) -> &'static str {
            self.inner.name()
        }
        fn pool_bytes(&self) -> u64 {
            self.inner.pool_bytes()
        }
        fn can_ever_fit(&self, req: &KvRequest) -> bool {
            self.inner.can_ever_fit(req)
        }
        fn set_time(&mut self, now_s: f64) {
            self.inner.set_time(now_s)
        }
        fn lookup(&mut self, rid: u32, req: &KvRequest, num_tokens: u32) -> u32 {
            self.inner.lookup(rid, req, num_tokens)
        }
        fn admit(&mut self, rid: u32, req: &KvRequest, hit_tokens: u32, tokens: u32) -> bool {
            self.inner.admit(rid, req, hit_tokens, tokens)
        }
        fn grow(&mut self, rid: u32, tokens: u32, n_seqs: u32) -> bool {
            self.grows.fetch_add(1, Ordering::Relaxed);
            self.inner.grow(rid, tokens, n_seqs)
        }
        fn free(&mut self, rid: u32) {
            self.inner.free(rid)
        }
        fn resident_bytes(&self, rid: u32) -> u64 {
            self.inner.resident_bytes(rid)
        }
        fn swap_in(&mut self, rid: u32, req: &KvRequest, tokens: u32, n_seqs: u32) -> bool {
            self.inner.swap_in(rid, req, tokens, n_seqs)
        }
        fn breakdown(&self, pending: Option<&KvRequest>) -> KvBreakdown {
            self.inner.breakdown(pending)
        }
        fn take_step_overhead(&mut self) -> (u64, f64) {
            self.inner.take_step_overhead()
        }
        fn counters(&self) -> KvCounters {
            self.inner.counters()
        }
        fn check_invariants(&self) -> Result<()> {
            self.inner.check_invariants()
        }
    };
}

/// A manager as written elsewhere: the semantic methods only.
struct SemanticOnly<K> {
    inner: K,
    grows: Arc<AtomicU64>,
}

impl<K: KvManager> KvManager for SemanticOnly<K> {
    forward_semantic_methods!();
}

/// The same, with the optional speed capability forwarded too.
struct WithQuiet<K> {
    inner: K,
    grows: Arc<AtomicU64>,
}

impl<K: KvManager> KvManager for WithQuiet<K> {
    forward_semantic_methods!();

    fn quiet_decode_tokens(&self, rid: u32, n_seqs: u32) -> u32 {
        self.inner.quiet_decode_tokens(rid, n_seqs)
    }
}

/// `config`'s manager run wrapped: (report digest, `grow` calls).
fn run_wrapped(config: &ServingConfig, reqs: &[RequestSpec], quiet: bool) -> (u64, u64) {
    let grows = Arc::new(AtomicU64::new(0));
    let budget = config.kv_budget_bytes().unwrap();
    macro_rules! go {
        ($kv:expr) => {
            if quiet {
                let kv = WithQuiet {
                    inner: $kv,
                    grows: grows.clone(),
                };
                run(config, reqs, kv)
            } else {
                let kv = SemanticOnly {
                    inner: $kv,
                    grows: grows.clone(),
                };
                run(config, reqs, kv)
            }
        };
    }
    let report = match config.build_kv(budget).unwrap() {
        BuiltKv::Static(kv) => go!(kv),
        BuiltKv::Paged(kv) => go!(kv),
        BuiltKv::Vattn(kv) => go!(kv),
    }
    .unwrap();
    (report.digest(), grows.load(Ordering::Relaxed))
}

#[test]
fn a_manager_without_quiet_decode_tokens_gives_the_same_reports() {
    let shared = |n_parallel| {
        SharedPrefixWorkload {
            base: SyntheticWorkload {
                num_requests: 250,
                arrivals: ArrivalProcess::Poisson { rate: 60.0 },
                prompt_tokens: LengthDist::LogNormal {
                    median: 300.0,
                    sigma: 1.0,
                },
                output_tokens: LengthDist::Exponential { mean: 150.0 },
                n_parallel,
                seed: 7,
            },
            num_groups: 20,
            prefix_tokens: 700,
            zipf_alpha: 1.1,
        }
        .generate()
        .unwrap()
    };
    let multi_turn = MultiTurnWorkload {
        num_conversations: 50,
        conversation_rate: 4.0,
        turns: LengthDist::Uniform { min: 1, max: 6 },
        user_tokens: LengthDist::LogNormal {
            median: 120.0,
            sigma: 0.8,
        },
        output_tokens: LengthDist::Exponential { mean: 200.0 },
        mean_think_s: 5.0,
        seed: 3,
    }
    .generate()
    .unwrap();
    let workloads = [
        ("shared_n1", shared(1)),
        ("shared_n2", shared(2)),
        ("multi_turn", multi_turn),
    ];
    // Per preset, `grow` calls without and with the speed capability.
    let mut grows = std::collections::BTreeMap::new();
    for (wname, reqs) in &workloads {
        for (kname, kv) in KvManagerConfig::presets() {
            for preemption in [PreemptionMode::Recompute, PreemptionMode::Swap] {
                let mut c = ServingConfig::new(
                    ModelSpec::preset("llama3_8b").unwrap(),
                    Hardware::h100_sxm(),
                );
                c.kv = Some(kv.clone());
                // A small pool: evictions, preemptions, a queue, a cohort.
                c.hardware.hbm_capacity_bytes = c.model.weight_bytes() + (1u64 << 30);
                c.gpu_memory_utilization = 1.0;
                c.sample_interval_s = 0.25;
                c.check_invariants = true;
                c.scheduler.preemption = preemption;
                c.scheduler.cohort_min_running = 0;
                let at = format!("{wname} {kname} {preemption:?}");
                let plain = simulate(&c, reqs).unwrap().digest();
                let (with_quiet, quiet_grows) = run_wrapped(&c, reqs, true);
                let (semantic, all_grows) = run_wrapped(&c, reqs, false);
                assert_eq!(with_quiet, plain, "{at}: the wrapper changed the report");
                assert_eq!(
                    semantic, plain,
                    "{at}: without quiet_decode_tokens the report differs"
                );
                assert!(all_grows >= quiet_grows, "{at}");
                let g = grows.entry(kname).or_insert((0, 0));
                (g.0, g.1) = (g.0 + all_grows, g.1 + quiet_grows);
            }
        }
    }
    // Every decode step reached the semantic-only manager; the speed
    // capability skipped some (every preset promises quiet steps).
    for (kname, (all, quiet)) in grows {
        assert!(
            all > quiet,
            "{kname}: {all} grows without the capability, {quiet} with it"
        );
    }
}

/// External fragmentation is counted only while a request is blocked on
/// memory (the KV manager refused it), not while it waits for compute.
/// Hand-computed: a 1000-slot Orca-Oracle pool; A holds 600 slots, B needs
/// 600 and the one hole left has 400. With room for two sequences B is
/// refused by the KV manager: the 400 slots are external fragmentation.
/// With `max_num_seqs = 1` B waits for the sequence cap: they are free.
#[test]
fn external_fragmentation_only_while_a_request_is_blocked_on_memory() {
    let run_with = |max_num_seqs: u32| {
        let mut c = ServingConfig::new(
            ModelSpec::preset("llama3_8b").unwrap(),
            Hardware::h100_sxm(),
        );
        c.kv = Some(KvManagerConfig::Static(StaticReservation::Oracle.into()));
        c.max_model_len = Some(1000);
        c.scheduler.max_num_seqs = max_num_seqs;
        c.sample_interval_s = 0.005;
        let bpt = c.effective_kv_bytes_per_token();
        c.activation_reserve_bytes = c.kv_budget_bytes().unwrap() - 1000 * bpt;
        let reqs = [
            RequestSpec::new(0.0, 500, 101),
            RequestSpec::new(0.001, 500, 101),
        ];
        let r = simulate(&c, &reqs).unwrap();
        assert_eq!((r.completed, r.kv_pool_bytes), (2, 1000 * bpt));
        let both: Vec<&Sample> = r
            .samples
            .iter()
            .filter(|s| s.running_requests == 1 && s.waiting_requests == 1)
            .collect();
        assert!(
            both.len() > 10,
            "{} samples with A running and B waiting",
            both.len()
        );
        (bpt, both.into_iter().copied().collect::<Vec<Sample>>())
    };
    let (bpt, blocked) = run_with(2);
    // Every sample but one taken before B's first admission try.
    let ext: Vec<u64> = blocked.iter().map(|s| s.external_frag_bytes).collect();
    assert!(ext.iter().all(|&e| e == 0 || e == 400 * bpt), "{ext:?}");
    assert!(ext.iter().filter(|&&e| e == 400 * bpt).count() >= ext.len() - 1);
    for s in blocked.iter().filter(|s| s.external_frag_bytes > 0) {
        assert_eq!(s.free_bytes, 0);
    }
    let (_, waiting_for_compute) = run_with(1);
    for s in &waiting_for_compute {
        assert_eq!((s.external_frag_bytes, s.free_bytes), (0, 400 * bpt));
    }
}

proptest::proptest! {
    /// Huge per-token KV sizes or activation reserves are refused with an
    /// error, never a wrapped size (a block of 2^64 bytes wrapped to 0 was a
    /// division by zero; a reserve near 2^64 wrapped to a small need).
    #[test]
    fn huge_kv_sizes_never_wrap(
        bpt in proptest::prop_oneof![1u64..1 << 20, (1u64 << 40)..=u64::MAX],
        reserve in proptest::prop_oneof![0u64..1 << 30, (1u64 << 62)..=u64::MAX],
    ) {
        for (_, kv) in KvManagerConfig::presets() {
            let mut c = ServingConfig::new(ModelSpec::preset("llama3_8b").unwrap(), Hardware::h100_sxm());
            c.kv = Some(kv.clone());
            c.kv_bytes_per_token = Some(bpt);
            c.activation_reserve_bytes = reserve;
            let Ok(budget) = c.kv_budget_bytes() else {
                proptest::prop_assert!(reserve >= 1 << 62);
                continue;
            };
            proptest::prop_assert!(budget <= c.hardware.hbm_capacity_bytes);
            if let Ok(BuiltKv::Paged(kv)) = c.build_kv(budget) {
                proptest::prop_assert!(kv.pool_bytes() <= budget);
            }
        }
    }
}
