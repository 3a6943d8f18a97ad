//! # Spool
//!
//! Background jobs for Rust: typed jobs, named queues in priority order, retries with backoff,
//! timeouts, leases with heartbeats so a long job never runs twice, and a failed store.
//! SQLite is embedded by default; PostgreSQL, MySQL / MariaDB and Redis scale to many machines.
//! The `spool` command line is the `spool-cli` crate, which an app can embed with its own jobs.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use spool::{Job, JobContext, JobResult, Registry, Spool, Worker, WorkerConfig};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Greet { name: String }
//!
//! impl Job for Greet {
//!     const NAME: &'static str = "greet";
//!     async fn handle(self, _ctx: JobContext) -> JobResult {
//!         println!("hello, {}", self.name);
//!         Ok(())
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let spool = Spool::connect("sqlite://jobs.db").await?;
//! spool.dispatch(Greet { name: "Ada".into() }).await?;
//!
//! let registry = Registry::new().register::<Greet>();
//! let config = WorkerConfig { stop_when_empty: true, ..WorkerConfig::default() };
//! Worker::new(spool.store().unwrap(), registry, config).run().await?;
//! # Ok(()) }
//! ```
//!
//! The guarantees and every default are listed in the README and `docs/`.

// A build with no store at all (`default-features = false`) keeps the store-facing helpers
// without a caller, and `connect` can only refuse every URL.
#![cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "redis"
    )),
    allow(dead_code, unreachable_code, unused_variables)
)]

mod after_commit;
mod background;
mod batch;
pub mod builtin;
mod chain;
mod dispatch;
mod duration;
#[cfg(feature = "encryption")]
pub mod encryption;
mod envelope;
pub mod events;
pub mod health;
mod job;
pub mod limits;
#[cfg(feature = "llm")]
pub mod llm;
pub mod metrics;
pub mod middleware;
mod options;
pub mod redact;
mod registry;
mod retry;
#[cfg(feature = "schedule")]
mod schedule;
mod schedule_record;
mod state;
pub mod store;
pub mod testing;
mod trace;
pub mod worker;

pub use after_commit::AfterCommit;
pub use batch::{Batch, BatchDispatch};
pub use chain::Chain;
pub use dispatch::{DispatchError, DispatchOutcome, DispatchStatus, PendingDispatch, Spool};
pub use duration::{DurationError, format_duration, parse_duration, parse_duration_list};
pub use envelope::{
    CallbackContext, ChainLink, ChainRest, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_QUEUE,
    ENVELOPE_VERSION, Envelope, EnvelopeError, Payload, TraceContext, new_id, now_ms,
};
pub use job::{Job, JobContext, JobError, JobFailure, JobResult, cause_chain};
pub use options::{Backoff, JobOptions, Unique, UniqueUntil};
pub use registry::Registry;
#[cfg(feature = "schedule")]
pub use schedule::{Periodic, ScheduleError};
pub use schedule_record::{ScheduleRecord, published_schedules};
pub use state::MissingState;
pub use store::{Store, StoreError, connect};
pub use trace::{TraceParent, TraceParentError};
pub use worker::{Worker, WorkerConfig, WorkerError, WorkerExit};

/// `docs/workflows.md`, compiled as doc-tests so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/workflows.md")]
pub struct WorkflowsDoctests;

/// `docs/middleware.md`, compiled as doc-tests so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/middleware.md")]
pub struct MiddlewareDoctests;

/// The README's Rust examples, compiled as doc-tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// `docs/tracing.md`'s examples, compiled as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/tracing.md")]
pub struct TracingDoctests;

/// `docs/events.md`'s examples, compiled as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/events.md")]
pub struct EventsDoctests;

/// `docs/encryption.md`'s examples, compiled as doc-tests.
#[cfg(all(doctest, feature = "encryption"))]
#[doc = include_str!("../../../docs/encryption.md")]
pub struct EncryptionDoctests;
