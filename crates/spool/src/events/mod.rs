//! Events: what dispatchers and workers do, for app code to observe (S-EVT-1..3).
//!
//! Register listeners on an [`Events`] handle, give clones of it to the [`Spool`](crate::Spool)
//! handle ([`Spool::with_events`](crate::Spool::with_events)) and to workers
//! ([`WorkerConfig::events`](crate::WorkerConfig::events)). Every event is also logged through
//! `tracing` at debug level under the `spool::events` target. The sequences each outcome
//! produces are listed in `docs/events.md`.
//!
//! ```
//! use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
//! use spool::events::{Event, Events};
//!
//! let failures = Arc::new(AtomicU64::new(0));
//! let events = Events::new();
//! let count = failures.clone();
//! events.on(move |event: &Event| {
//!     if let Event::JobFailed { job, error } = event {
//!         count.fetch_add(1, Ordering::Relaxed);
//!         eprintln!("job {} ({}) failed: {error}", job.id, job.name);
//!     }
//! });
//! let config = spool::WorkerConfig { events: events.clone(), ..Default::default() };
//! # let _ = config;
//! ```

mod event;
mod hub;

pub use event::{Event, JobMeta};
pub use hub::{DEFAULT_CHANNEL_CAPACITY, Events};
