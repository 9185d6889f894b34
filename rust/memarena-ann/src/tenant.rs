//! Tenants: which callers may read a vector, and which tenant a query is for.
//!
//! Each added vector carries a (possibly empty) set of tenant ids, passed in
//! CSR form ([`Tenants`]) so a Python caller hands over two numpy arrays
//! without copying. A filtered query names one tenant and only ever sees
//! vectors whose set contains it; a vector with an empty set is visible to
//! unfiltered queries only.

use memarena_core::{Error, Result};

/// Borrowed CSR tenant sets for a batch of `n` rows: row `i`'s tenants are
/// `tenants[offsets[i]..offsets[i + 1]]`.
///
/// Invariant (checked by [`Tenants::new`]): `offsets.len() == n + 1`,
/// `offsets[0] == 0`, non-decreasing, `offsets[n] == tenants.len()`.
#[derive(Clone, Copy, Debug)]
pub struct Tenants<'a> {
    offsets: &'a [u64],
    tenants: &'a [u32],
}

impl<'a> Tenants<'a> {
    /// Validates and wraps CSR arrays.
    pub fn new(offsets: &'a [u64], tenants: &'a [u32]) -> Result<Self> {
        if offsets.first() != Some(&0) {
            return Err(Error::invalid("tenant_offsets", "must start with 0"));
        }
        if let Some(i) = offsets.windows(2).position(|w| w[0] > w[1]) {
            return Err(Error::invalid(
                "tenant_offsets",
                format!(
                    "must be non-decreasing; offsets[{}] > offsets[{}]",
                    i,
                    i + 1
                ),
            ));
        }
        if *offsets.last().unwrap_or(&0) != tenants.len() as u64 {
            return Err(Error::invalid(
                "tenant_offsets",
                format!(
                    "last offset {} must equal the number of tenant ids {}",
                    offsets.last().unwrap_or(&0),
                    tenants.len()
                ),
            ));
        }
        Ok(Tenants { offsets, tenants })
    }

    /// Number of rows described.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// True when no rows are described.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tenants of row `i`.
    pub fn row(&self, i: usize) -> &'a [u32] {
        &self.tenants[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

/// Owned CSR tenant sets, for Rust callers that hold per-row lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantLists {
    /// `n + 1` offsets into `tenants`.
    pub offsets: Vec<u64>,
    /// Concatenated tenant ids.
    pub tenants: Vec<u32>,
}

impl TenantLists {
    /// Builds CSR arrays from one list per row.
    pub fn from_lists<L: AsRef<[u32]>>(rows: &[L]) -> Self {
        let mut offsets = Vec::with_capacity(rows.len() + 1);
        let mut tenants = Vec::new();
        offsets.push(0);
        for r in rows {
            tenants.extend_from_slice(r.as_ref());
            offsets.push(tenants.len() as u64);
        }
        TenantLists { offsets, tenants }
    }

    /// Borrowed view.
    pub fn as_tenants(&self) -> Tenants<'_> {
        Tenants {
            offsets: &self.offsets,
            tenants: &self.tenants,
        }
    }
}

/// Which tenant each query of a batch searches for.
#[derive(Clone, Copy, Debug)]
pub enum TenantFilter<'a> {
    /// Every query of the batch is for this tenant.
    Tenant(u32),
    /// Query `i` is for tenant `tenants[i]`; the length must equal the number
    /// of queries.
    PerQuery(&'a [u32]),
}

impl TenantFilter<'_> {
    /// The tenant of query `i`.
    #[inline]
    pub fn tenant_for(&self, i: usize) -> u32 {
        match self {
            TenantFilter::Tenant(t) => *t,
            TenantFilter::PerQuery(ts) => ts[i],
        }
    }
}
