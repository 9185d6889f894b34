//! The LLM-serving model: requests arrive (trace replay or synthetic),
//! a continuous-batching scheduler forms iterations under a token budget,
//! a KV manager hands out memory, and a roofline cost model times each
//! iteration on the given hardware.
//!
//! Entry point: [`simulate`]`(&ServingConfig, &[RequestSpec]) ->
//! Result<ServingReport>`; [`simulate_with`] runs a KV manager the caller
//! builds (any [`KvManager`]).

pub mod cost;
pub mod hardware;
pub mod kv;
pub mod metrics;
pub mod model_spec;
pub mod scheduler;
pub mod sim;
pub mod workload;

pub use cost::{BatchWork, CostModel, CostParams};
pub use hardware::Hardware;
pub use kv::{
    KvBreakdown, KvCounters, KvManager, KvRequest, PagedConfig, PagedKv, PrefixCaching,
    StaticAllocator, StaticConfig, StaticKv, StaticReservation, VattnConfig, VattnKv,
};
pub use metrics::{LatencyStats, LogHistogram, Sample};
pub use model_spec::{FfnKind, ModelSpec};
pub use scheduler::{PreemptionMode, SchedulerConfig, ServingEvent, ServingModel, VictimPolicy};
pub use sim::{
    KvManagerConfig, KvPoolBudget, RequestOutcome, RequestStatus, ServingConfig, ServingReport,
    simulate, simulate_with,
};
pub use workload::{
    ArrivalProcess, LengthDist, MultiTurnWorkload, RequestGenerator, RequestSpec,
    SharedPrefixWorkload, SyntheticWorkload, parse_azure_csv, read_azure_csv,
};
