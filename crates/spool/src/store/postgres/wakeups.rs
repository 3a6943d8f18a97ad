//! Cross-process wake-ups for PostgreSQL: the shared listener task LISTENs on the schema's
//! channel and bumps the store's wake-up signal on every notification.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use super::PostgresStore;
use crate::store::wakeup::{Listener, Source, Subscription};

/// Starts the listener task for the store's channel (see [`Listener::start`]).
pub(super) fn start(store: &PostgresStore) -> Option<Listener> {
    let source = Notifications {
        options: store.options.clone(),
        channel: store.channel.clone(),
        pool: None,
    };
    Listener::start(
        source,
        "PostgreSQL",
        store.channel.clone(),
        store.wakeup.clone(),
    )
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
