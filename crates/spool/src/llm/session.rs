//! One job's call of a model: replay what the job already paid for, else wait for the
//! provider key's turn, send, learn from the answer, and record it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Llm,
    admission::{Admission, Cost, KeyState},
    call::{self, Outcome},
    estimate::{estimate, request_hash},
    headers::Signals,
    provider::{Limits, ProviderConfig},
    shared::{self, Step},
};
use crate::{JobContext, JobError, job::RECORDING_PREFIX, store::KvExpect};

/// How long a job's recorded answers are kept at most (its retries and `spool retry` reuse
/// them; the worker deletes them once the job's completion is written).
const RECORDING_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatAnswer {
    /// The provider that answered.
    pub provider: String,
    /// The model named in the request.
    pub model: String,
    /// `choices[0].message.content` ("" when there is none).
    pub content: String,
    /// Tokens the answer used (`usage`; the estimate where it says nothing).
    pub usage: Cost,
    /// The whole response body.
    pub response: Value,
    /// Whether it was replayed from this job's recording or the shared cache, not paid for
    /// now.
    #[serde(default)]
    pub replayed: bool,
}

/// A call being set up: [`JobContext::llm`] starts one, [`LlmCall::chat`] sends it.
#[derive(Debug)]
pub struct LlmCall<'a> {
    ctx: &'a JobContext,
    llm: &'a Llm,
    provider: Option<String>,
    fresh: bool,
}

impl JobContext {
    /// A call of a language model under the shared provider limits (see [`crate::llm`]).
    /// The client is the [`Llm`] registered as app state, else one from `OPENAI_BASE_URL`
    /// and `OPENAI_API_KEY`.
    pub fn llm(&self) -> LlmCall<'_> {
        LlmCall {
            ctx: self,
            llm: self.state::<Llm>().unwrap_or_else(|_| Llm::fallback()),
            provider: None,
            fresh: false,
        }
    }
}

impl LlmCall<'_> {
    /// Call this provider (default: the request's `"provider"`, else the first configured).
    pub fn provider(mut self, name: impl Into<String>) -> Self {
        self.provider = Some(name.into());
        self
    }

    /// Pay for a new answer even if this job recorded one for the same request (when the
    /// recorded one was bad); the new answer replaces it.
    pub fn fresh(mut self) -> Self {
        self.fresh = true;
        self
    }

    /// Sends `request` (the body of `/chat/completions`: `model`, `messages`, `max_tokens`,
    /// ...; a `"provider"` key picks the provider and is not sent).
    ///
    /// Errors are the job's retry decision: a 429 defers it without using a try, a spent
    /// quota or a configuration error fails it at once, anything else retries.
    pub async fn chat(self, mut request: Value) -> Result<ChatAnswer, JobError> {
        let named = match request.as_object_mut() {
            Some(object) => object.remove("provider"),
            None => return Err(JobError::fail("an llm request is a JSON object")),
        };
        let name = self
            .provider
            .clone()
            .or_else(|| named.and_then(|v| v.as_str().map(str::to_string)));
        let provider = self.llm.provider(name.as_deref()).map_err(JobError::fail)?;
        let model = request["model"]
            .as_str()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| JobError::fail("the llm request names no \"model\""))?
            .to_string();
        if !request["messages"].is_array() {
            return Err(JobError::fail("the llm request has no \"messages\" list"));
        }
        let hash = request_hash(&provider.name, &model, &request);
        let recording = self.recording_name(&hash);
        if !self.fresh
            && let Some(answer) = self.replay(recording.as_deref(), provider, &hash).await?
        {
            return Ok(answer);
        }
        // The provider, then its fallbacks while it is paused or blocked.
        let fallbacks = provider
            .fallback
            .iter()
            .filter_map(|name| self.llm.provider(Some(name)).ok());
        let mut held = None;
        for candidate in std::iter::once(provider).chain(fallbacks) {
            let keep = Keep {
                recording: recording.as_deref(),
                provider,
                hash: &hash,
            };
            match self.send(candidate, &model, &request, keep).await {
                Ok(answer) => return Ok(answer),
                Err(Failure::Held(e)) => {
                    held.get_or_insert(e);
                }
                Err(Failure::Other(e)) => return Err(e),
            }
        }
        Err(held.unwrap_or_else(|| JobError::retry("no provider could take the call")))
    }

    /// The name this job records the answer to `hash` under: the n-th identical request of
    /// an attempt gets the n-th recording.
    fn recording_name(&self, hash: &str) -> Option<String> {
        let link = self.ctx.link.as_ref()?;
        let mut calls = link.calls.lock().unwrap_or_else(|p| p.into_inner());
        let n = calls.entry(hash.to_string()).or_insert(0);
        *n += 1;
        Some(format!("{RECORDING_PREFIX}{}:{hash}:{n}", self.ctx.id))
    }

    /// A recorded or cached answer, if there is one.
    async fn replay(
        &self,
        recording: Option<&str>,
        provider: &ProviderConfig,
        hash: &str,
    ) -> Result<Option<ChatAnswer>, JobError> {
        let Some(store) = self.ctx.store() else {
            return Ok(None);
        };
        let mut names: Vec<String> = recording.into_iter().map(str::to_string).collect();
        let cached = provider.cache_ttl.is_some() && !self.ctx.seals();
        if cached {
            names.push(cache_name(&provider.name, hash));
        }
        for (i, name) in names.iter().enumerate() {
            let Some(entry) = store.kv_get(name).await.map_err(retry)? else {
                continue;
            };
            let from_cache = cached && i == names.len() - 1;
            let plain = if from_cache {
                Some(entry.value.clone())
            } else {
                self.ctx.open_kept(&entry.value)
            };
            let Some(Ok(mut answer)) = plain.map(|p| serde_json::from_str::<ChatAnswer>(&p)) else {
                continue;
            };
            answer.replayed = true;
            self.ctx.note_kept();
            if from_cache {
                let key = provider.name.clone();
                shared::update(&**store, &key, |s| {
                    s.cache_hits += 1;
                    Step::Write(())
                })
                .await
                .map_err(retry)?;
                if let Some(recording) = recording {
                    let kept = self.ctx.seal_kept(&entry.value);
                    let _ = store
                        .kv_put(recording, &kept, KvExpect::Any, Some(RECORDING_TTL))
                        .await;
                }
            }
            return Ok(Some(answer));
        }
        Ok(None)
    }

    /// Records a paid answer with the job (and in the shared cache). A recording already
    /// there (outside a [`fresh`](Self::fresh) call) means an answer the job had was paid for
    /// again: it is counted on the provider key as `paid_again`.
    async fn keep(
        &self,
        recording: Option<&str>,
        provider: &ProviderConfig,
        pacing: &str,
        hash: &str,
        answer: &ChatAnswer,
    ) {
        let Some(store) = self.ctx.store() else {
            return;
        };
        let Ok(text) = serde_json::to_string(answer) else {
            return;
        };
        if let Some(recording) = recording {
            self.ctx.note_kept();
            let value = self.ctx.seal_kept(&text);
            let expect = if self.fresh {
                KvExpect::Any
            } else {
                KvExpect::Absent
            };
            let put = |expect| store.kv_put(recording, &value, expect, Some(RECORDING_TTL));
            let written = match put(expect).await {
                Ok(None) => {
                    tracing::warn!(recording, "a recorded llm answer was paid for again");
                    let _ = shared::update(&**store, pacing, |s| {
                        s.paid_again += 1;
                        Step::Write(())
                    })
                    .await;
                    put(KvExpect::Any).await
                }
                other => other,
            };
            if let Err(e) = written {
                tracing::warn!("recording a paid llm answer failed (a retry would pay again): {e}");
            }
        }
        if let Some(ttl) = provider.cache_ttl.filter(|_| !self.ctx.seals()) {
            let _ = store
                .kv_put(
                    &cache_name(&provider.name, hash),
                    &text,
                    KvExpect::Any,
                    Some(ttl),
                )
                .await;
        }
    }

    /// Waits for the key's turn, sends, and records a paid answer (before anything else, so
    /// a worker killed right after leaves the answer recorded).
    async fn send(
        &self,
        provider: &ProviderConfig,
        model: &str,
        request: &Value,
        keep: Keep<'_>,
    ) -> Result<ChatAnswer, Failure> {
        let key = provider.api_key().map_err(JobError::fail)?;
        let cost = estimate(request);
        let limits = provider.limits(Some(model));
        let pacing = provider.pacing_key(model);
        let store = self.ctx.store().cloned();
        let max_wait = self.llm.max_inline_wait.as_millis() as i64;
        if let Some(store) = &store {
            loop {
                let now = crate::now_ms();
                let admission = shared::update(&**store, &pacing, |state| {
                    let before = state.clone();
                    match state.admit(now, cost, limits) {
                        Admission::At(at) if at - now <= max_wait => Step::Write(Ok(at)),
                        Admission::At(at) => {
                            let reason = before.park_reason.clone();
                            *state = before;
                            Step::Keep(Err((at, reason)))
                        }
                        Admission::Blocked(why) => Step::Keep(Err((i64::MAX, Some(why)))),
                    }
                })
                .await
                .map_err(retry)?;
                let at = match admission {
                    Ok(at) => at,
                    Err((i64::MAX, why)) => return Err(Failure::Held(blocked(provider, why))),
                    Err((at, reason)) => {
                        return Err(Failure::Held(wait_for(provider, at - now, reason)));
                    }
                };
                if at <= crate::now_ms() {
                    // Admitted for now: the admission itself saw the key's latest state.
                    break;
                }
                sleep_until(at).await;
                // A 429 another process saw while this call waited for its turn parks the
                // key: read it again right before sending, so nothing goes out once a pause
                // is recorded.
                let state = shared::read(&**store, &pacing).await.map_err(retry)?;
                if state.blocked.is_some() {
                    return Err(Failure::Held(blocked(provider, state.blocked)));
                }
                if state.parked_until_ms <= crate::now_ms() {
                    break;
                }
            }
        }
        let (outcome, signals) =
            call::send(&self.llm.http, provider, key.as_deref(), request, cost).await;
        let now = crate::now_ms();
        let shared = store.as_deref();
        match outcome {
            Outcome::Answer(reply) => {
                let answer = ChatAnswer {
                    provider: provider.name.clone(),
                    model: model.to_string(),
                    content: reply.body["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    usage: reply.used,
                    response: reply.body,
                    replayed: false,
                };
                self.keep(keep.recording, keep.provider, &pacing, keep.hash, &answer)
                    .await;
                if let Some(store) = store {
                    let used = reply.used;
                    self.llm.background.spawn(async move {
                        // After the job's own writes (its recording, its completion), and
                        // spread, so answers that arrive together do not queue on the key.
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..120))).await;
                        let settle = |state: &mut KeyState| state.settle(now, cost, used, limits);
                        if let Err(e) =
                            learn(Some(&*store), &pacing, now, &signals, limits, &settle).await
                        {
                            tracing::warn!(key = pacing, "writing an llm call's usage: {e:?}");
                        }
                    });
                }
                Ok(answer)
            }
            Outcome::Pause { wait_ms, reason } => {
                let until = now + wait_ms as i64;
                learn(shared, &pacing, now, &signals, limits, &|state| {
                    state.refund(cost, Cost::default(), limits);
                    state.park(until, &reason);
                })
                .await?;
                Err(Failure::Held(wait_for(
                    provider,
                    wait_ms as i64,
                    Some(reason),
                )))
            }
            Outcome::Quota(reason) => {
                learn(shared, &pacing, now, &signals, limits, &|state| {
                    state.block(&reason)
                })
                .await?;
                Err(Failure::Held(blocked(provider, Some(reason))))
            }
            Outcome::Config(reason) => {
                learn(shared, &pacing, now, &signals, limits, &|state| {
                    state.refund(cost, Cost::default(), limits)
                })
                .await?;
                Err(JobError::fail(reason).into())
            }
            Outcome::Transient(reason) => {
                learn(shared, &pacing, now, &signals, limits, &|state| {
                    state.refund(cost, Cost::default(), limits)
                })
                .await?;
                Err(JobError::retry(reason).into())
            }
        }
    }
}

/// Where a paid answer is recorded: the job's recording and the cache of the provider the
/// call named (whichever provider answered).
#[derive(Clone, Copy)]
struct Keep<'a> {
    recording: Option<&'a str>,
    provider: &'a ProviderConfig,
    hash: &'a str,
}

/// Why a provider did not answer a call.
enum Failure {
    /// Its key is paused past the inline wait, or blocked: a fallback provider may answer.
    Held(JobError),
    /// Anything else: the job's decision as is.
    Other(JobError),
}

impl From<JobError> for Failure {
    fn from(e: JobError) -> Failure {
        Failure::Other(e)
    }
}

/// Writes what an answer taught about the key, and `change`, to its shared state.
async fn learn(
    store: Option<&dyn crate::Store>,
    pacing: &str,
    now: i64,
    signals: &Signals,
    limits: Limits,
    change: &(dyn Fn(&mut KeyState) + Sync),
) -> Result<(), JobError> {
    if let Some(store) = store {
        shared::update(store, pacing, |state| {
            state.calibrate(now, signals, limits);
            change(state);
            Step::Write(())
        })
        .await
        .map_err(retry)?;
    }
    Ok(())
}

/// The shared cache's name for an answer.
fn cache_name(provider: &str, hash: &str) -> String {
    format!("llm:cache:{provider}:{hash}")
}

/// The job waits `wait_ms` for the key, off its worker (a deferral uses no try).
fn wait_for(provider: &ProviderConfig, wait_ms: i64, reason: Option<String>) -> JobError {
    // Spread the jobs that wake together over up to a tenth of the wait (at most a second).
    let spread = (wait_ms / 10).clamp(1, 1_000) as u64;
    let wait = Duration::from_millis(wait_ms.max(1) as u64 + fastrand::u64(0..spread));
    let why = match reason {
        Some(last) => format!("provider `{}` is paused after: {last}", provider.name),
        None => format!("waiting for provider `{}`'s capacity", provider.name),
    };
    JobError::defer(wait, why)
}

/// The job fails: the key is blocked until an operator resumes it.
fn blocked(provider: &ProviderConfig, why: Option<String>) -> JobError {
    JobError::fail(format!(
        "provider `{0}` is blocked ({1}); once resolved, run `spool llm resume {0}`",
        provider.name,
        why.unwrap_or_else(|| "no reason recorded".into())
    ))
}

/// A store error during a call: worth a retry.
fn retry(e: crate::StoreError) -> JobError {
    JobError::retry(format!("the llm call's shared state: {e}"))
}

/// Sleeps until the instant `at` (ms since the epoch).
async fn sleep_until(at: i64) {
    let wait = at - crate::now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}
