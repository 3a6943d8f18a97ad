//! `spool supervise`: pools of `work` processes, scaled to demand, restarted when they crash,
//! replaced without a gap on a deploy (queue-semantics.md S-HZN-1..6, S-PROC-1..6).
//!
//! The supervisor runs no jobs itself. Each pool has slots (one per queue, or one for the
//! whole list under `balance = "off"`); every cooldown [`scale::step`] moves each slot's
//! process count toward what the ready jobs need, and the supervisor starts or gracefully
//! stops processes to match. Workers stop on their own at a `spool restart` (they compare the
//! store's restart epoch with the one they started under), so on a new epoch the supervisor
//! starts the new generation at once, and the processes it starts read the new epoch: the old
//! ones finish their running jobs while the new ones already take jobs.

mod child;
mod lock;
mod notify;
mod pool;
pub(crate) mod registry;
pub(crate) mod scale;
mod source;
mod spec;

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use spool::Store;

use crate::CliError;
use child::Proc;
pub(crate) use child::{Launcher, SUPERVISOR_PID, WorkerCommand};
use notify::Notifier;
use pool::Pool;
use scale::Demand;
pub(crate) use source::{DashboardSection, File, ScheduleEntry, config_path, load, read_config};
pub(crate) use spec::{PoolSpec, SupervisorSpec};

/// How often the supervisor looks at its processes, signals and the store.
const TICK: Duration = Duration::from_millis(250);
/// How often it reads the queues' counts and the restart epoch.
const POLL: Duration = Duration::from_millis(500);
/// How often it looks for a changed configuration file.
const CONFIG_POLL: Duration = Duration::from_secs(1);
/// How long an old generation keeps serving while the new one registers with the store.
const HANDOVER: Duration = Duration::from_secs(5);
/// How long after the second stop request the supervisor waits for its workers, which hand
/// their jobs back at once (`work` ends itself within 10 s of its second signal).
const FORCED_STOP: Duration = Duration::from_secs(12);
/// Exit code when another supervisor holds the lock for this configuration.
pub(crate) const LOCKED: u8 = 13;

/// Where the supervisor's pools come from, read again on SIGHUP or when the file changes.
pub(crate) struct Source {
    /// The configuration file, watched for changes (its modification time and length).
    pub(crate) path: Option<PathBuf>,
    /// Reads the pools; an error keeps the running ones.
    pub(crate) load: Box<dyn Fn() -> Result<SupervisorSpec, String> + Send>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// The pools of the configuration file at `path`.
    pub(crate) fn file(path: PathBuf) -> Source {
        let read = path.clone();
        Source {
            path: Some(path),
            load: Box::new(move || load(&read)),
        }
    }

    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(self.path.as_ref()?).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }
}

/// Runs the supervisor until SIGTERM/SIGINT (or `spool terminate`); exits 0 after a graceful
/// stop, 13 when another supervisor runs for the same configuration and store.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    url: &str,
    source: Source,
    launcher: Launcher,
) -> Result<ExitCode, CliError> {
    let mut spec = (source.load)().map_err(CliError::Usage)?;
    if spec.pools.is_empty() {
        return Err(CliError::Usage(
            "no [[pool]] in the configuration: nothing to supervise".into(),
        ));
    }
    let _lock = match lock::acquire(source.path.as_deref(), url) {
        Ok(lock) => lock,
        Err(lock::LockError::Held(path)) => {
            eprintln!(
                "error: another `spool supervise` runs for this configuration and store (lock {})",
                path.display()
            );
            return Ok(ExitCode::from(LOCKED));
        }
        Err(lock::LockError::Io(path, e)) => {
            return Err(CliError::Usage(format!(
                "cannot open the lock file {}: {e}",
                path.display()
            )));
        }
    };
    let mut signals = Signals::install()?;
    let notifier = Notifier::from_env();
    let watchdog = Notifier::watchdog_interval();
    let now = Instant::now();
    let mut pools: Vec<Pool> = spec
        .pools
        .iter()
        .cloned()
        .map(|p| Pool::new(p, now))
        .collect();
    let mut old = Generation::default();
    let mut epoch = store.restart_epoch().await?;
    // `spool terminate` after this start stops the supervisor as SIGTERM does.
    let mut control = store.control().await?;
    let terminate_base = control.terminate_epoch;
    let id = registry::new_id();
    let mut renewed: Option<Instant> = None;
    // Each queue's measured mean run time, as workers record it (read with each renewal).
    let mut run_times: HashMap<String, Duration> = HashMap::new();
    let mut stamp = source.stamp();
    let mut stats: Option<spool::store::Stats> = None;
    let (mut polled, mut config_polled, mut pinged) = (None::<Instant>, now, now);
    for pool in &mut pools {
        pool.fill(&launcher, now);
    }
    notifier.send("READY=1");
    tracing::info!(pools = pools.len(), "supervisor started");
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut reload = false;
        tokio::select! {
            _ = tick.tick() => {}
            event = signals.next() => match event {
                Event::Stop => break,
                Event::Reload => reload = true,
            },
        }
        let now = Instant::now();
        if polled.is_none_or(|p| now.duration_since(p) >= POLL) {
            polled = Some(now);
            match store.restart_epoch().await {
                Ok(e) if e != epoch => {
                    tracing::info!(epoch = e, "restart signalled: starting a new generation");
                    epoch = e;
                    old.take(&mut pools, now);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the restart epoch"),
            }
            match store.control().await {
                Ok(c) if c.terminate_epoch > terminate_base => {
                    tracing::info!("terminate signalled: stopping");
                    break;
                }
                Ok(c) => control = c,
                Err(e) => tracing::warn!(error = %e, "cannot read the control state"),
            }
            match store.stats().await {
                // A paused queue asks for no processes.
                Ok(s) => {
                    let mut s = s.with_control(&control);
                    for q in s.queues.iter_mut().filter(|q| q.paused) {
                        (q.pending, q.delayed) = (0, 0);
                    }
                    stats = Some(s);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the queues' counts"),
            }
        }
        if now.duration_since(config_polled) >= CONFIG_POLL {
            config_polled = now;
            let current = source.stamp();
            if current != stamp {
                stamp = current;
                tracing::info!("configuration file changed");
                reload = true;
            }
        }
        if reload {
            match (source.load)() {
                Ok(new) if !new.pools.is_empty() => {
                    tracing::info!("configuration reloaded: starting a new generation");
                    old.take(&mut pools, now);
                    spec = new;
                    pools = spec
                        .pools
                        .iter()
                        .cloned()
                        .map(|p| Pool::new(p, now))
                        .collect();
                }
                Ok(_) => tracing::error!(
                    "the new configuration has no [[pool]]; keeping the running pools"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "cannot reload the configuration; keeping the running pools")
                }
            }
        }
        for pool in &mut pools {
            pool.reap(now);
            if let Some(stats) = &stats {
                let demand = demand(&pool.spec, stats, &run_times);
                pool.scale(&demand, spec.cooldown, spec.max_shift, now);
            }
            pool.fill(&launcher, now);
        }
        let registered: HashSet<u32> = stats
            .as_ref()
            .map(|s| s.workers.iter().map(|w| w.pid).collect())
            .unwrap_or_default();
        old.hand_over(&pools, &registered, now);
        if renewed.is_none_or(|r| now.duration_since(r) >= registry::RENEW_EVERY) {
            renewed = Some(now);
            registry::register(store.as_ref(), &id, &pools, &control).await;
            match store.records(spool::store::RecordKind::RunTime).await {
                Ok(records) => {
                    run_times = records
                        .into_iter()
                        .map(|r| (r.name, Duration::from_micros(r.value.max(0) as u64)))
                        .collect();
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the queues' run times"),
            }
        }
        if let Some(every) = watchdog
            && now.duration_since(pinged) >= every
        {
            pinged = now;
            notifier.send("WATCHDOG=1");
        }
    }
    notifier.send("STOPPING=1");
    stop(&mut pools, &mut old, &mut signals, spec.largest_grace()).await;
    registry::deregister(store.as_ref(), &id).await;
    tracing::info!("supervisor stopped");
    Ok(ExitCode::SUCCESS)
}

/// Each queue's demand for `pool`, from the store's counts and the measured run times.
fn demand(
    pool: &PoolSpec,
    stats: &spool::store::Stats,
    run_times: &HashMap<String, Duration>,
) -> Vec<Demand> {
    pool.queues
        .iter()
        .map(|q| Demand {
            ready: stats
                .queues
                .iter()
                .find(|s| &s.name == q)
                .map_or(0, |s| s.pending),
            mean_run: run_times.get(q).copied(),
        })
        .collect()
}

/// The processes of earlier generations: they serve until the new generation has registered
/// with the store (or [`HANDOVER`] has passed), then get a graceful stop.
#[derive(Debug, Default)]
struct Generation {
    procs: Vec<(Proc, Instant)>,
}

impl Generation {
    /// Moves every pool's processes here; the pools start their replacements at once.
    fn take(&mut self, pools: &mut [Pool], now: Instant) {
        for pool in pools {
            self.procs
                .extend(pool.retire_all().into_iter().map(|p| (p, now)));
        }
    }

    fn hand_over(&mut self, pools: &[Pool], registered: &HashSet<u32>, now: Instant) {
        self.procs.retain_mut(|(p, _)| p.exited().is_none());
        let ready = pools.iter().all(|p| p.registered(registered));
        for (proc, since) in &mut self.procs {
            if proc.terms == 0 && (ready || now.duration_since(*since) >= HANDOVER) {
                proc.terminate();
            }
        }
    }

    fn terminate_all(&mut self) {
        for (proc, _) in &mut self.procs {
            proc.terminate();
        }
    }

    fn is_empty(&mut self) -> bool {
        self.procs.retain_mut(|(p, _)| p.exited().is_none());
        self.procs.is_empty()
    }
}

/// Stops every process gracefully and waits up to `grace` (plus a little for the stores'
/// hand-back); a second stop request or the end of the wait sends a second SIGTERM, after
/// which `work` hands back its running jobs at once.
async fn stop(pools: &mut [Pool], old: &mut Generation, signals: &mut Signals, grace: Duration) {
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "stopping: workers finish their running jobs"
    );
    for pool in pools.iter_mut() {
        pool.terminate_all();
    }
    old.terminate_all();
    let mut deadline = Instant::now() + grace + Duration::from_secs(5);
    let mut forced = false;
    loop {
        for pool in pools.iter_mut() {
            pool.forget_exited();
        }
        if old.is_empty() && pools.iter().all(|p| p.processes() == 0) {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            if forced {
                tracing::warn!("workers still running after the second stop; exiting");
                return;
            }
            forced = true;
            tracing::warn!("handing running jobs back now");
            for pool in pools.iter_mut() {
                pool.terminate_all();
            }
            old.terminate_all();
            deadline = now + FORCED_STOP;
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            Event::Stop = signals.next(), if !forced => {
                deadline = Instant::now();
            }
        }
    }
}

/// What a signal asks of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP: a new generation with the configuration read again.
    Reload,
}

/// The supervisor's signal streams.
struct Signals {
    #[cfg(unix)]
    streams: [tokio::signal::unix::Signal; 3],
}

impl Signals {
    fn install() -> Result<Signals, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                streams: [
                    signal(SignalKind::terminate())?,
                    signal(SignalKind::interrupt())?,
                    signal(SignalKind::hangup())?,
                ],
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) -> Event {
        #[cfg(unix)]
        {
            let [term, int, hup] = &mut self.streams;
            tokio::select! {
                _ = term.recv() => Event::Stop,
                _ = int.recv() => Event::Stop,
                _ = hup.recv() => Event::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Event::Stop
        }
    }
}

/// `spool supervise`'s flags: the pools come from the configuration file (the global
/// `--config`, else `spool.toml` in the working directory).
#[derive(Debug, clap::Args)]
pub(crate) struct SuperviseArgs {
    /// Serve `GET /livez` and `GET /health` on this address (e.g. 127.0.0.1:7071) for
    /// orchestrators' probes.
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<std::net::SocketAddr>,
}
