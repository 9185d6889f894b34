//! One request of a trace as a policy sees it.

/// Object (or page) identifier.
pub type ObjId = u64;

/// Virtual time meaning "never requested again" (`next_vtime`) or "no
/// prediction" (`pred_next_vtime`).
pub const NEVER: u64 = u64::MAX;

/// One request, as handed to a [`crate::Policy`].
///
/// Virtual time is the request's index in the trace. `next_vtime` is filled in
/// by the core from the trace itself (see `trace::next_access`), so an
/// offline policy such as Belady can never run without it. Predictions are
/// optional trace columns (learning-augmented paging); policies that do not
/// use them ignore them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    /// The object requested.
    pub id: ObjId,
    /// Its size in bytes (1 for unit-size pages).
    pub size: u64,
    /// Index of this request in the trace.
    pub vtime: u64,
    /// Index of the next request to the same object, or [`NEVER`].
    pub next_vtime: u64,
    /// Predicted next-arrival virtual time, or [`NEVER`] when absent.
    pub pred_next_vtime: u64,
    /// A one-bit prediction (the succinct predictions of Antoniadis et al.:
    /// a discard bit or a phase bit, depending on the algorithm).
    pub pred_bit: bool,
}

impl Request {
    /// A unit-size request with no future knowledge or prediction.
    pub fn unit(id: ObjId, vtime: u64) -> Self {
        Request {
            id,
            size: 1,
            vtime,
            next_vtime: NEVER,
            pred_next_vtime: NEVER,
            pred_bit: false,
        }
    }
}
