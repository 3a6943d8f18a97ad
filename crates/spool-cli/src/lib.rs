//! The `spool` command line, as a library so an app can embed it with its own jobs (see
//! `examples/embedded-cli`): `myapp work`, `myapp retry all` just work.
//!
//! Command names, flags and `--json` shapes are a contract, documented in `docs/cli.md`.
//!
//! Four ways in, from the simplest:
//!
//! - [`main`]: the whole command as the app's `fn main` (builds its own tokio runtime);
//! - [`run`]: the same inside the app's own `#[tokio::main]`;
//! - [`App`]: the same with the app's own worker pieces (periodic jobs, event listeners,
//!   retention), or with arguments the app chose ([`App::run_from`]);
//! - [`Cli`]: Spool's commands as a subcommand of the app's own clap command line, run with
//!   [`App::run_with`].
//!
//! ```no_run
//! use spool::Registry;
//!
//! fn main() -> std::process::ExitCode {
//!     // The built-in jobs next to the app's own (`.register::<MyJob>()`).
//!     spool_cli::main(Registry::with_builtins())
//! }
//! ```

use std::process::ExitCode;

use spool::{Registry, store::StoreError};

mod admin;
mod alerts;
mod app;
mod args;
mod batches;
mod bench;
mod command;
mod control;
mod dashboard;
mod demo;
mod dispatch;
mod failed;
mod health;
mod http;
mod inspect;
mod install;
mod jobs;
#[cfg(feature = "llm")]
mod llm;
#[cfg(feature = "llm")]
mod mock_llm;
mod monitor;
mod output;
mod schedule;
mod stats;
mod stuck;
mod supervise;
mod telemetry;
mod work;

pub use app::App;
pub use command::Cli;

/// A command failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A dispatch was refused.
    #[error(transparent)]
    Dispatch(#[from] spool::DispatchError),
    /// The worker could not run.
    #[error(transparent)]
    Worker(#[from] spool::WorkerError),
    /// Bad input.
    #[error("{0}")]
    Usage(String),
    /// Reading input or writing output failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the command line of this process with `registry`'s jobs, on a tokio runtime of its own;
/// returns the exit code. For an app's `fn main`; inside a runtime, use [`run`].
pub fn main(registry: Registry) -> ExitCode {
    App::new(registry).main()
}

/// Runs the command line of this process with `registry`'s jobs on the caller's tokio runtime
/// (a multi-threaded one, as `#[tokio::main]` builds); returns the exit code.
///
/// ```no_run
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     // ... the app's own set-up ...
///     spool_cli::run(spool::Registry::with_builtins()).await
/// }
/// ```
pub async fn run(registry: Registry) -> ExitCode {
    App::new(registry).run().await
}
