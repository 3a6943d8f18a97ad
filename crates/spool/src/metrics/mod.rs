//! Job metrics measured by workers and kept in the store: per queue and job name, per minute
//! (48 hours), per hour (30 days) and all-time totals, counts of every outcome and
//! histograms of wait and run times. `spool stats`, the monitor, the dashboard and
//! `/metrics` read them through [`crate::store::MetricsStore`].

mod fold;
mod histogram;
mod record;
mod summary;

pub(crate) use fold::{Attempt, Fold};
pub use histogram::{BUCKETS, Histogram, Percentiles};
pub use record::{Counter, Counts, MetricsQuery, MetricsRecord, Resolution};
// Used by the stores; a build without any store has none to use them.
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "redis"
    )),
    allow(unused_imports)
)]
pub(crate) use record::{cells, enqueued, from_cells, queued, rescued};
pub use summary::{Summary, SummaryRow, summarize, window_records};
