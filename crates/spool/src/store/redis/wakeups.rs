//! Cross-process wake-ups for Redis: the shared listener task subscribes to the prefix's
//! channel on a connection of its own and bumps the store's wake-up signal on every message.
//!
//! On a cluster, a message published on any node reaches subscribers on every node, so the
//! listener subscribes on one seed node, moving to the next when it cannot connect.
//!
//! The subscription pings now and then, so a connection that died silently is noticed;
//! otherwise it sleeps until a message arrives.

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};

use super::RedisStore;
use crate::store::wakeup::{Listener, Source, Subscription};

/// How often an idle subscription checks that its connection is alive.
const PING_EVERY: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the listener task for the store's channel (see [`Listener::start`]).
pub(super) fn start(store: &RedisStore) -> Option<Listener> {
    let source = Messages {
        seeds: store.seeds.clone(),
        next: 0,
        channel: store.channel.clone(),
    };
    Listener::start(source, "Redis", store.channel.clone(), store.wakeup.clone())
}

/// SUBSCRIBE to one channel, on the seed nodes in turn.
struct Messages {
    seeds: Vec<redis::Client>,
    /// The seed to try next.
    next: usize,
    channel: String,
}

impl Source for Messages {
    type Subscription = Subscribed;

    async fn subscribe(&mut self) -> Result<Subscribed, String> {
        let seed = &self.seeds[self.next % self.seeds.len()];
        self.next += 1;
        let mut pubsub = seed
            .get_async_pubsub()
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        pubsub
            .subscribe(&self.channel)
            .await
            .map_err(|e| format!("cannot subscribe: {e}"))?;
        let (sink, messages) = pubsub.split();
        Ok(Subscribed {
            sink,
            messages,
            channel: self.channel.clone(),
        })
    }
}

/// A subscribed connection, split into its command and message halves.
struct Subscribed {
    sink: PubSubSink,
    messages: PubSubStream,
    channel: String,
}

impl Subscription for Subscribed {
    async fn next(&mut self) -> bool {
        let channel = &self.channel;
        loop {
            match tokio::time::timeout(PING_EVERY, self.messages.next()).await {
                Ok(Some(_)) => return true,
                Ok(None) => {
                    tracing::warn!(
                        channel,
                        "lost the Redis wake-up connection; workers poll until it is back"
                    );
                    return false;
                }
                Err(_idle) => {
                    let ping =
                        tokio::time::timeout(PING_TIMEOUT, self.sink.ping::<redis::Value>()).await;
                    if !matches!(ping, Ok(Ok(_))) {
                        tracing::warn!(
                            channel,
                            "the Redis wake-up connection stopped answering; reconnecting"
                        );
                        return false;
                    }
                }
            }
        }
    }
}
