//! What `spool llm status` shows of each provider key, and what `spool llm resume` does.

use serde::Serialize;

use super::{Llm, admission::KeyState, provider::Limits, shared};
use crate::store::{Store, StoreError};

/// One provider key's (or model's) limits and use, as `spool llm status --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// The pacing key: the provider's name, or `provider/model` for a model with limits of
    /// its own.
    pub key: String,
    /// The provider.
    pub provider: String,
    /// The configured requests per minute.
    pub rpm: Option<u64>,
    /// The configured tokens per minute.
    pub tpm: Option<u64>,
    /// The requests per minute in force (lowered by the provider's headers).
    pub effective_rpm: Option<u64>,
    /// The tokens per minute in force.
    pub effective_tpm: Option<u64>,
    /// Until when nothing is sent on the key (ms since the epoch), if that is still ahead.
    pub parked_until_ms: Option<i64>,
    /// Why it is blocked, if it is.
    pub blocked: Option<String>,
    /// The stored state.
    pub state: KeyState,
}

/// The stored state of every provider key that has one, today's figures as of now; no
/// provider configuration needed (what `spool stats` shows of model calls).
pub async fn usage(store: &dyn Store) -> Result<Vec<(String, KeyState)>, StoreError> {
    let now = crate::now_ms();
    let mut stored = shared::all(store).await?;
    for (_, state) in &mut stored {
        state.roll_day(now);
    }
    Ok(stored)
}

impl Llm {
    /// The status of every configured provider key and of every key with a stored state.
    pub async fn status(&self, store: &dyn Store) -> Result<Vec<KeyStatus>, StoreError> {
        let mut stored = usage(store).await?;
        for provider in &self.providers {
            let keys = std::iter::once(provider.name.clone())
                .chain(provider.models.keys().map(|m| provider.pacing_key(m)));
            for key in keys {
                if !stored.iter().any(|(k, _)| *k == key) {
                    stored.push((key, KeyState::default()));
                }
            }
        }
        stored.sort_by(|a, b| a.0.cmp(&b.0));
        let now = crate::now_ms();
        Ok(stored
            .into_iter()
            .map(|(key, state)| {
                let (provider, model) = match key.split_once('/') {
                    Some((p, m)) => (p.to_string(), Some(m)),
                    None => (key.clone(), None),
                };
                let configured = self
                    .provider(Some(&provider))
                    .map(|p| p.limits(model))
                    .unwrap_or_default();
                let effective: Limits = state.effective(configured);
                KeyStatus {
                    key,
                    provider,
                    rpm: configured.rpm,
                    tpm: configured.tpm,
                    effective_rpm: effective.rpm,
                    effective_tpm: effective.tpm,
                    parked_until_ms: (state.parked_until_ms > now).then_some(state.parked_until_ms),
                    blocked: state.blocked.clone(),
                    state,
                }
            })
            .collect())
    }

    /// Clears the block and pause of `provider`'s keys (its own and its models'); returns
    /// the keys that were blocked or parked.
    pub async fn resume(
        &self,
        store: &dyn Store,
        provider: &str,
    ) -> Result<Vec<String>, StoreError> {
        let now = crate::now_ms();
        let mut resumed = Vec::new();
        for (key, _) in shared::all(store).await? {
            if key != provider && !key.starts_with(&format!("{provider}/")) {
                continue;
            }
            let was_held = shared::update(store, &key, |state| {
                let held = state.blocked.is_some() || state.parked_until_ms > now;
                state.resume();
                shared::Step::Write(held)
            })
            .await?;
            if was_held {
                resumed.push(key);
            }
        }
        Ok(resumed)
    }
}
