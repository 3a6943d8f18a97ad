//! Job name -> type-erased handler. Payloads are data; only registered names run (S-SEC-2).

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

use crate::{
    job::{Job, JobContext, JobError, JobFailure, JobResult},
    state::StateMap,
};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A handler that takes the payload as JSON text.
pub(crate) trait ErasedJob: Send + Sync {
    fn run(&self, payload: &str, ctx: JobContext) -> BoxFuture<JobResult>;
    fn failed(&self, payload: &str, ctx: JobContext, failure: JobFailure) -> BoxFuture<()>;
    fn encrypted(&self) -> bool;
}

struct Typed<J>(std::marker::PhantomData<fn() -> J>);

impl<J: Job> ErasedJob for Typed<J> {
    fn run(&self, payload: &str, ctx: JobContext) -> BoxFuture<JobResult> {
        match decode::<J>(payload) {
            Ok(job) => Box::pin(crate::middleware::run(job, ctx)),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn failed(&self, payload: &str, ctx: JobContext, failure: JobFailure) -> BoxFuture<()> {
        match decode::<J>(payload) {
            Ok(job) => Box::pin(async move { job.failed(ctx, &failure).await }),
            Err(_) => Box::pin(async {}),
        }
    }

    fn encrypted(&self) -> bool {
        J::ENCRYPTED
    }
}

fn decode<J: Job>(payload: &str) -> Result<J, JobError> {
    serde_json::from_str(payload).map_err(|e| {
        if J::ENCRYPTED {
            // serde quotes the offending value, which may be the secret the encryption protects.
            JobError::fail(format!(
                "payload does not match job `{}` at line {} column {} (details withheld: the payload is encrypted)",
                J::NAME,
                e.line(),
                e.column()
            ))
        } else {
            JobError::fail(format!("payload does not match job `{}`: {e}", J::NAME))
        }
    })
}

/// The job types a worker can run, by name.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Resize { image: u64 }
/// # impl spool::Job for Resize {
/// #     const NAME: &'static str = "resize";
/// #     async fn handle(self, _: spool::JobContext) -> spool::JobResult { Ok(()) }
/// # }
/// let registry = spool::Registry::with_builtins().register::<Resize>();
/// assert!(registry.contains("resize") && registry.contains("noop"));
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn ErasedJob>>,
    privileged: std::collections::HashSet<String>,
    state: Arc<StateMap>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with Spool's built-in jobs (`noop`, `sleep`, `fail`, `flaky`, `panic`,
    /// `shell`, `http`).
    pub fn with_builtins() -> Self {
        crate::builtin::register_all(Self::new())
    }

    /// Registers job type `J` under `J::NAME` (replacing an earlier one of that name).
    pub fn register<J: Job>(mut self) -> Self {
        self.handlers.insert(
            J::NAME.to_string(),
            Arc::new(Typed::<J>(std::marker::PhantomData)),
        );
        self
    }

    /// Registers a job type that only workers started with `--allow NAME` may run (D-9), such
    /// as the built-in `shell` and `http` jobs.
    pub fn register_privileged<J: Job>(mut self) -> Self {
        self.privileged.insert(J::NAME.to_string());
        self.register::<J>()
    }

    /// Registers app state that every job reaches by type with
    /// [`JobContext::state`]: a database pool, an HTTP client, config. Registered once, shared
    /// by all jobs (wrap what needs mutation in a `Mutex` or use a type that is already shared,
    /// like a pool or `reqwest::Client`). A second value of the same type replaces the first.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use spool::{Job, JobContext, JobResult, Registry};
    ///
    /// struct Config { greeting: String }
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Greet { name: String }
    ///
    /// impl Job for Greet {
    ///     const NAME: &'static str = "greet";
    ///     async fn handle(self, ctx: JobContext) -> JobResult {
    ///         // A typed error (retryable through `?`) if `Config` was never registered.
    ///         let config = ctx.state::<Config>()?;
    ///         println!("{}, {}", config.greeting, self.name);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let registry = Registry::with_builtins()
    ///     .register::<Greet>()
    ///     .with_state(Config { greeting: "hello".into() });
    /// assert_eq!(registry.state::<Config>().unwrap().greeting, "hello");
    /// assert!(registry.state::<u64>().is_err());
    /// ```
    pub fn with_state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        Arc::make_mut(&mut self.state).insert(value);
        self
    }

    /// The app state of type `T` registered with [`with_state`](Self::with_state).
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, crate::MissingState> {
        self.state.get::<T>()
    }

    /// All registered state, shared with each job's context.
    pub(crate) fn state_map(&self) -> Arc<StateMap> {
        self.state.clone()
    }

    /// Whether running `name` needs an explicit `--allow`.
    pub fn is_privileged(&self, name: &str) -> bool {
        self.privileged.contains(name)
    }

    /// Whether the job type registered as `name` has encrypted payloads ([`Job::ENCRYPTED`]).
    pub fn is_encrypted(&self, name: &str) -> bool {
        self.handlers.get(name).is_some_and(|h| h.encrypted())
    }

    /// Whether a job name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn ErasedJob>> {
        self.handlers.get(name)
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("jobs", &self.names())
            .field("state", &self.state)
            .finish()
    }
}
