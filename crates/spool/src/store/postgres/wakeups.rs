//! Cross-process wake-ups for PostgreSQL: the shared listener task LISTENs on the schema's
//! channel and bumps the store's wake-up signal on every notification.
//!
//! `LISTEN` needs a session of its own, which a pooler in transaction mode does not give. In
//! pooled mode the listener connects to `listen_url` (past the pooler) if the URL names one;
//! otherwise the task polls the newest job's `seq` through the pooler (one simple-protocol
//! query, nothing prepared) while a worker of this process waits: every [`FAST`] while pushes
//! arrive, backing off to [`SLOW`] after [`HOT_FOR`] without one. Jobs that become ready
//! without a push (releases, recoveries) are found by the workers' own polling.

use std::time::Duration;

use sqlx::{
    AssertSqlSafe, Row,
    postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions},
};
use tokio::time::Instant;

use super::PostgresStore;
use crate::store::{
    WakeupSignal,
    wakeup::{Listener, Source, Subscription},
};

/// Poll interval while pushes are arriving.
const FAST: Duration = Duration::from_millis(5);
/// How long after the last push polling stays at [`FAST`].
const HOT_FOR: Duration = Duration::from_millis(250);
/// The longest poll interval, reached when nothing has been pushed for a while.
const SLOW: Duration = Duration::from_millis(250);

/// Starts the listener task for the store's channel (see [`Listener::start`]), or the poller
/// when nothing can LISTEN.
pub(super) fn start(store: &PostgresStore) -> Option<Listener> {
    let (channel, wakeup) = (store.channel.clone(), store.wakeup.clone());
    match &store.listen {
        Some(options) => {
            let source = Notifications {
                options: options.clone(),
                channel: store.channel.clone(),
                pool: None,
            };
            Listener::start(source, "PostgreSQL", channel, wakeup)
        }
        None => {
            let source = Polling {
                pool: store.pool.clone(),
                statement: store.sql(include_str!("sql/latest_seq.sql")).0,
                wakeup: store.wakeup.clone(),
            };
            Listener::start(source, "PostgreSQL (polled)", channel, wakeup)
        }
    }
}

/// Polls the newest job's `seq` through the store's pool.
struct Polling {
    pool: PgPool,
    statement: String,
    wakeup: WakeupSignal,
}

impl Polling {
    async fn latest_seq(pool: &PgPool, statement: &str) -> Result<i64, sqlx::Error> {
        // The simple protocol: no prepared statement, so any pooler mode passes it.
        let row = sqlx::raw_sql(AssertSqlSafe(statement.to_string()))
            .fetch_one(pool)
            .await?;
        row.try_get(0)
    }
}

impl Source for Polling {
    type Subscription = Polled;

    async fn subscribe(&mut self) -> Result<Polled, String> {
        let last = Self::latest_seq(&self.pool, &self.statement)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Polled {
            pool: self.pool.clone(),
            statement: self.statement.clone(),
            wakeup: self.wakeup.clone(),
            last,
            last_change: Instant::now(),
            interval: FAST,
        })
    }
}

/// A polling "subscription": the last `seq` seen and how fast to look again.
struct Polled {
    pool: PgPool,
    statement: String,
    wakeup: WakeupSignal,
    last: i64,
    last_change: Instant,
    interval: Duration,
}

impl Subscription for Polled {
    async fn next(&mut self) -> bool {
        loop {
            if self.wakeup.waiting() == 0 {
                self.wakeup.someone_waiting().await;
                // Workers were busy until now: jobs are flowing, so look often at first.
                self.last_change = Instant::now();
            }
            tokio::time::sleep(self.interval).await;
            match Polling::latest_seq(&self.pool, &self.statement).await {
                Ok(seq) if seq != self.last => {
                    self.last = seq;
                    self.last_change = Instant::now();
                    self.interval = FAST;
                    return true;
                }
                Ok(_) => self.interval = next_interval(self.interval, self.last_change.elapsed()),
                Err(e) => {
                    tracing::warn!(
                        "cannot poll PostgreSQL for new jobs: {e}; workers poll meanwhile"
                    );
                    return false;
                }
            }
        }
    }
}

/// The poll interval after a poll: [`FAST`] while the last push is recent, then doubling up
/// to [`SLOW`].
fn next_interval(current: Duration, since_change: Duration) -> Duration {
    if since_change < HOT_FOR {
        FAST
    } else {
        (current * 2).clamp(FAST, SLOW)
    }
}

/// LISTEN on one channel, through a pool of one of its own.
struct Notifications {
    options: PgConnectOptions,
    channel: String,
    /// Made by the first subscription (inside the task), then kept: PgListener reconnects
    /// through it.
    pool: Option<PgPool>,
}

impl Source for Notifications {
    type Subscription = Listening;

    async fn subscribe(&mut self) -> Result<Listening, String> {
        // A pool of one of its own, so the long-lived LISTEN connection never takes a slot
        // from the store's queries.
        let options = &self.options;
        let pool = self.pool.get_or_insert_with(|| {
            PgPoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(30))
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_lazy_with(options.clone())
        });
        let listen = async {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen(&self.channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listen.await {
            Ok(listener) => Ok(Listening {
                listener,
                channel: self.channel.clone(),
            }),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A LISTENing connection.
struct Listening {
    listener: PgListener,
    channel: String,
}

impl Subscription for Listening {
    async fn next(&mut self) -> bool {
        let channel = &self.channel;
        match self.listener.try_recv().await {
            Ok(Some(_)) => true,
            // The connection dropped and PgListener has already re-established it and re-run
            // LISTEN; notifications in between were lost.
            Ok(None) => {
                tracing::debug!(channel, "listening connection re-established");
                true
            }
            Err(e) => {
                tracing::warn!(
                    channel,
                    "lost the PostgreSQL notification connection: {e}; workers poll until it is back"
                );
                false
            }
        }
    }
}
