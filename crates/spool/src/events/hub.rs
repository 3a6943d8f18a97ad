//! The [`Events`] handle: listeners, looping predicates and an optional broadcast channel.

use std::{
    fmt,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::sync::broadcast;

use super::Event;

type Listener = Arc<dyn Fn(&Event) + Send + Sync>;
type Predicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How many events a [`Events::subscribe`] receiver may fall behind before it misses some.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 1024;

/// Where events go. Cheap to clone; clones share listeners, so a listener registered on any
/// clone sees the events of every worker and dispatcher holding one.
///
/// Listeners run inline, on the task that emits the event (a job's task, the worker loop, the
/// dispatching task), so keep them quick and non-blocking: count, set a flag, or send the event
/// to a channel and do heavy work elsewhere. [`Events::subscribe`] is that channel, ready-made.
/// A panicking listener is logged and otherwise ignored.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use spool::events::{Event, Events};
///
/// let events = Events::new();
/// events.on(|event| {
///     if let Some(job) = event.job() {
///         println!("{} {} (attempt {})", event.name(), job.id, job.attempt);
///     }
/// });
/// // Or receive events on a task of your own:
/// let mut rx = events.subscribe();
/// tokio::spawn(async move {
///     while let Ok(event) = rx.recv().await {
///         if let Event::JobFailed { job, error } = event {
///             eprintln!("{} failed: {error}", job.id);
///         }
///     }
/// });
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Events {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    listeners: Mutex<Arc<[Listener]>>,
    looping: Mutex<Arc<[Predicate]>>,
    channel: OnceLock<broadcast::Sender<Event>>,
    /// Whether anything listens; when not, events are not even built.
    active: AtomicBool,
}

impl Events {
    /// A handle with no listeners.
    pub fn new() -> Events {
        Events::default()
    }

    /// Calls `listener` with every event from now on.
    pub fn on(&self, listener: impl Fn(&Event) + Send + Sync + 'static) -> &Events {
        push(&self.shared.listeners, Arc::new(listener));
        self.shared.active.store(true, Ordering::Release);
        self
    }

    /// Adds a predicate workers ask before each round of reserving jobs, with their worker
    /// id. If any predicate returns `false`, the worker takes no job in that round and idles
    /// for its `sleep` (S-EVT-1's looping veto); running jobs carry on.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// let paused = Arc::new(AtomicBool::new(false));
    /// let events = spool::events::Events::new();
    /// let flag = paused.clone();
    /// events.looping(move |_worker| !flag.load(Ordering::Relaxed));
    /// paused.store(true, Ordering::Relaxed); // workers holding `events` stop taking jobs
    /// ```
    pub fn looping(&self, predicate: impl Fn(&str) -> bool + Send + Sync + 'static) -> &Events {
        push(&self.shared.looping, Arc::new(predicate));
        self
    }

    /// A receiver of every event from now on, for listeners that do real work. A receiver
    /// that falls more than [`DEFAULT_CHANNEL_CAPACITY`] events behind skips the oldest
    /// (`RecvError::Lagged`); emitting never waits for receivers.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        let rx = self
            .shared
            .channel
            .get_or_init(|| broadcast::channel(DEFAULT_CHANNEL_CAPACITY).0)
            .subscribe();
        self.shared.active.store(true, Ordering::Release);
        rx
    }

    /// Whether every looping predicate lets worker `worker` take jobs now.
    pub(crate) fn may_loop(&self, worker: &str) -> bool {
        let predicates = lock(&self.shared.looping).clone();
        predicates.iter().all(|p| {
            catch_unwind(AssertUnwindSafe(|| p(worker))).unwrap_or_else(|_| {
                tracing::error!(target: "spool::events", "a looping predicate panicked; taking it as true");
                true
            })
        })
    }

    /// Sends the event `make` builds to the log and every listener. The event is built only
    /// if someone will see it.
    pub(crate) fn emit(&self, make: impl FnOnce() -> Event) {
        let log = tracing::enabled!(target: "spool::events", tracing::Level::DEBUG);
        if !log && !self.shared.active.load(Ordering::Acquire) {
            return;
        }
        let event = make();
        if log {
            log_event(&event);
        }
        // A snapshot, so a listener may register another without deadlocking.
        let listeners = lock(&self.shared.listeners).clone();
        for listener in listeners.iter() {
            if catch_unwind(AssertUnwindSafe(|| listener(&event))).is_err() {
                tracing::error!(target: "spool::events", event = event.name(), "an event listener panicked");
            }
        }
        if let Some(tx) = self.shared.channel.get() {
            // No receivers is fine.
            let _ = tx.send(event);
        }
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("listeners", &lock(&self.shared.listeners).len())
            .field("looping", &lock(&self.shared.looping).len())
            .field("subscribed", &self.shared.channel.get().is_some())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn push<T: ?Sized>(list: &Mutex<Arc<[Arc<T>]>>, item: Arc<T>) {
    let mut guard = lock(list);
    let mut items = guard.to_vec();
    items.push(item);
    *guard = items.into();
}

/// One debug line per event. Error texts are left out: the worker already logs them at
/// info/warn, and they may quote data.
fn log_event(event: &Event) {
    let name = event.name();
    let delay_ms = match event {
        Event::JobReleasedAfterException { delay, .. }
        | Event::JobReleased { delay, .. }
        | Event::JobDeferred { delay, .. } => Some(delay.as_millis() as u64),
        Event::JobTimedOut { after, .. } => Some(after.as_millis() as u64),
        _ => None,
    };
    match event {
        Event::WorkerStarting { worker, .. } | Event::WorkerStopping { worker, .. } => {
            tracing::debug!(target: "spool::events", event = name, worker = %worker);
        }
        // Once per round of the loop: at debug it would drown everything else.
        Event::Looping { worker } => {
            tracing::trace!(target: "spool::events", event = name, worker = %worker);
        }
        Event::JobRetryRequested { id } => {
            tracing::debug!(target: "spool::events", event = name, job_id = %id);
        }
        _ => {
            if let Some(job) = event.job() {
                tracing::debug!(
                    target: "spool::events",
                    event = name,
                    job_id = %job.id,
                    job = %job.name,
                    queue = %job.queue,
                    attempt = job.attempt,
                    delay_ms,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::JobMeta;

    fn attempted() -> Event {
        Event::JobAttempted {
            job: JobMeta::new("1", "j", "q", 1),
        }
    }

    #[test]
    fn listeners_see_events_and_panics_are_contained() {
        let events = Events::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        events.on(|_| panic!("listener bug"));
        events.on(move |e| s.lock().unwrap().push(e.name()));
        let clone = events.clone();
        clone.emit(attempted);
        assert_eq!(*seen.lock().unwrap(), ["job.attempted"]);
    }

    #[test]
    fn nothing_is_built_without_listeners() {
        Events::new().emit(|| unreachable!("no listener, no debug log"));
    }

    #[test]
    fn looping_predicates_all_must_agree() {
        let events = Events::new();
        assert!(events.may_loop("w"));
        events.looping(|_| true).looping(|worker| worker != "w");
        assert!(!events.may_loop("w"));
        assert!(events.may_loop("other"));
    }

    #[tokio::test]
    async fn subscribers_receive_events() {
        let events = Events::new();
        let mut rx = events.subscribe();
        events.emit(attempted);
        assert_eq!(rx.recv().await.unwrap(), attempted());
    }
}
