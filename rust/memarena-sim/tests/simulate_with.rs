//! `simulate_with`: a caller-built KV manager runs through the same
//! scheduler and report as the built-in ones.

use memarena_core::error::Result;
use memarena_sim::serving::*;

fn config(kv: KvManagerConfig, preemption: PreemptionMode) -> ServingConfig {
    // Llama-3-8B with room for 1 GiB of KV: enough pressure to preempt.
    let model = ModelSpec::preset("llama3_8b").unwrap();
    let mut hw = Hardware::h100_sxm();
    hw.hbm_capacity_bytes = model.weight_bytes() + (1u64 << 30);
    let mut c = ServingConfig::new(model, hw);
    c.gpu_memory_utilization = 1.0;
    c.kv = Some(kv);
    c.scheduler.preemption = preemption;
    c.sample_interval_s = 0.05;
    c
}

fn requests(n_parallel: u32) -> Vec<RequestSpec> {
    SyntheticWorkload {
        num_requests: 150,
        arrivals: ArrivalProcess::Poisson { rate: 40.0 },
        prompt_tokens: LengthDist::Uniform { min: 20, max: 900 },
        output_tokens: LengthDist::Uniform { min: 1, max: 400 },
        n_parallel,
        seed: 7,
    }
    .generate()
    .unwrap()
}

/// The paged pool `simulate` builds for `cfg` under `budget`.
fn paged_pool(b: &KvPoolBudget, cfg: &PagedConfig) -> Result<PagedKv> {
    let blocks = b.budget_bytes / (cfg.block_size as u64 * b.bytes_per_token);
    PagedKv::new(blocks as u32, b.bytes_per_token, cfg.clone())
}

/// Forwards every call to `inner` but promises no quiet decode steps (the
/// trait's default), as the Python callback adapter does.
struct NoPromise<K>(K);

impl<K: KvManager> KvManager for NoPromise<K> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn pool_bytes(&self) -> u64 {
        self.0.pool_bytes()
    }
    fn can_ever_fit(&self, req: &KvRequest) -> bool {
        self.0.can_ever_fit(req)
    }
    fn set_time(&mut self, now_s: f64) {
        self.0.set_time(now_s)
    }
    fn lookup(&mut self, rid: u32, req: &KvRequest, num_tokens: u32) -> u32 {
        self.0.lookup(rid, req, num_tokens)
    }
    fn admit(&mut self, rid: u32, req: &KvRequest, hit_tokens: u32, tokens: u32) -> bool {
        self.0.admit(rid, req, hit_tokens, tokens)
    }
    fn grow(&mut self, rid: u32, tokens: u32, n_seqs: u32) -> bool {
        self.0.grow(rid, tokens, n_seqs)
    }
    fn free(&mut self, rid: u32) {
        self.0.free(rid)
    }
    fn resident_bytes(&self, rid: u32) -> u64 {
        self.0.resident_bytes(rid)
    }
    fn swap_in(&mut self, rid: u32, req: &KvRequest, tokens: u32, n_seqs: u32) -> bool {
        self.0.swap_in(rid, req, tokens, n_seqs)
    }
    fn breakdown(&self, pending: Option<&KvRequest>) -> KvBreakdown {
        self.0.breakdown(pending)
    }
    fn take_step_overhead(&mut self) -> (u64, f64) {
        self.0.take_step_overhead()
    }
    fn counters(&self) -> KvCounters {
        self.0.counters()
    }
    fn check_invariants(&self) -> Result<()> {
        self.0.check_invariants()
    }
}

#[test]
fn a_caller_built_pool_reports_exactly_what_simulate_does() {
    for (caching, preemption, n) in [
        (PrefixCaching::Off, PreemptionMode::Recompute, 1),
        (PrefixCaching::Off, PreemptionMode::Recompute, 3),
        (PrefixCaching::Off, PreemptionMode::Swap, 2),
        (PrefixCaching::V1, PreemptionMode::Recompute, 2),
    ] {
        let cfg = PagedConfig {
            prefix_caching: caching,
            ..PagedConfig::default()
        };
        let c = config(KvManagerConfig::Paged(cfg.clone()), preemption);
        let reqs = requests(n);
        let native = simulate(&c, &reqs).unwrap();
        assert!(
            native.preemptions_recompute + native.preemptions_swap > 0,
            "{caching:?} {preemption:?} n={n}: the case should preempt"
        );
        let with = simulate_with(&c, &reqs, |b| paged_pool(b, &cfg)).unwrap();
        assert_eq!(with, native, "{caching:?} {preemption:?} n={n}");
        // Without the quiet-decode promise (the trait's default): the same.
        let slow = simulate_with(&c, &reqs, |b| paged_pool(b, &cfg).map(NoPromise)).unwrap();
        assert_eq!(slow, native, "{caching:?} {preemption:?} n={n}, no promise");
    }
}

#[test]
fn the_budget_handed_to_the_builder_is_the_one_simulate_uses() {
    let c = config(
        KvManagerConfig::Paged(PagedConfig::default()),
        PreemptionMode::Recompute,
    );
    let mut seen = None;
    simulate_with(&c, &requests(1)[..5], |b| {
        seen = Some(*b);
        paged_pool(b, &PagedConfig::default())
    })
    .unwrap();
    let b = seen.unwrap();
    assert_eq!(b.budget_bytes, c.kv_budget_bytes().unwrap());
    assert_eq!(b.bytes_per_token, c.effective_kv_bytes_per_token());
    assert_eq!(b.max_model_len, c.model.max_context);
    assert_eq!(b.max_num_seqs, c.scheduler.max_num_seqs);
    assert_eq!(b.num_layers, c.model.num_layers);
}

#[test]
fn a_pool_over_the_budget_and_a_failing_builder_are_errors() {
    let c = config(
        KvManagerConfig::Paged(PagedConfig::default()),
        PreemptionMode::Recompute,
    );
    let reqs = requests(1);
    let err = simulate_with(&c, &reqs, |b| {
        PagedKv::new(
            (b.budget_bytes / (16 * b.bytes_per_token) + 1) as u32,
            b.bytes_per_token,
            PagedConfig::default(),
        )
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("kv") && err.contains("paged"), "{err}");
    let err = simulate_with(&c, &reqs, |_| PagedKv::new(0, 1, PagedConfig::default()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("kv.num_blocks"), "{err}");
    // Invalid requests are refused before the builder runs.
    let mut bad = reqs.clone();
    bad[3].prompt_tokens = 0;
    let err = simulate_with(&c, &bad, |_| -> Result<PagedKv> {
        panic!("the builder must not run")
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("requests[3]"), "{err}");
}
