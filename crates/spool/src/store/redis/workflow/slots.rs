//! Concurrency slots on Redis: who holds a slot, which holders are stale, and giving slots
//! back. Taking one is `acquire_slot` in `workflow.rs`.

use std::collections::HashMap;

use redis::ScriptInvocation;
use serde::Deserialize;

use super::super::{RedisStore, rows, scripts};
use crate::store::StoreResult;

/// A slot holder's record, as `acquire_slot.lua` writes it.
#[derive(Deserialize)]
struct SlotHolder {
    #[serde(rename = "w")]
    worker: String,
    #[serde(rename = "q")]
    queue: String,
    #[serde(rename = "t")]
    token: String,
}

impl RedisStore {
    /// Frees slots taken under the given tokens.
    pub(super) async fn release_slots(
        &self,
        slots: &[(String, String, String)],
    ) -> StoreResult<()> {
        let calls: Vec<ScriptInvocation<'_>> = slots
            .iter()
            .map(|(key, holder, token)| {
                let mut call = scripts::SLOT_RELEASE.key(self.keys.slot(key));
                call.arg(holder).arg(token);
                call
            })
            .collect();
        self.run_all(&calls).await?;
        Ok(())
    }

    /// Holders of a slot (other than `asking`) that are stale: their job is no longer held
    /// under their token, or their worker's lease expired. Returns (holder, token) pairs.
    pub(super) async fn stale_holders(
        &self,
        asking: &str,
        holders: HashMap<String, String>,
    ) -> StoreResult<Vec<(String, String)>> {
        let mut records = Vec::new();
        let mut stale = Vec::new();
        for (holder, raw) in holders {
            if holder == asking {
                continue;
            }
            match serde_json::from_str::<SlotHolder>(&raw) {
                Ok(record) => records.push((holder, record)),
                // Unreadable: freed (the script frees a malformed record whatever the token).
                Err(_) => stale.push((holder, String::new())),
            }
        }
        if records.is_empty() {
            return Ok(stale);
        }
        let mut live = scripts::LIVE_WORKERS.key(self.keys.global());
        for (_, record) in &records {
            live.arg(&record.worker);
        }
        let fences = records.iter().map(|(holder, record)| {
            let mut fence = redis::cmd("HMGET");
            fence
                .arg(format!("{}:job:{holder}", self.keys.queue(&record.queue)))
                .arg(&["worker", "token"][..]);
            fence
        });
        let (alive, fences): (_, Vec<(Option<String>, Option<String>)>) =
            futures_util::future::try_join(self.run(&live), self.each(fences)).await?;
        let alive = rows::flags(&alive, records.len())?;
        for (((holder, record), alive), (worker, token)) in
            records.into_iter().zip(alive).zip(fences)
        {
            let held = worker.as_deref() == Some(record.worker.as_str())
                && token.as_deref() == Some(record.token.as_str());
            if !alive || !held {
                stale.push((holder, record.token));
            }
        }
        Ok(stale)
    }
}
