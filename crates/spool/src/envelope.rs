//! The wire format: a versioned, language-neutral JSON envelope, immutable after dispatch (D-8).
//!
//! Attempts, recoveries, leases and availability live in the store, never in the envelope.
//! The format is documented for other languages in `docs/envelope.md`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::options::JobOptions;

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// Default largest encoded envelope accepted at dispatch (256 KiB).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The queue a job goes to when none is named.
pub const DEFAULT_QUEUE: &str = "default";

/// One job as stored and sent between processes.
///
/// ```
/// let env = spool::Envelope::new("send_email", "default", serde_json::json!({"to": "a@b.c"}));
/// let json = env.encode().unwrap();
/// let back = spool::Envelope::decode(&json).unwrap();
/// assert_eq!(back.job, "send_email");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version; readers refuse versions they don't know.
    pub v: u32,
    /// The job's id: a UUID (v7) unless the caller chose one.
    pub id: String,
    /// The registered job name that decides which handler runs.
    pub job: String,
    /// The queue the job was dispatched to.
    pub queue: String,
    /// The job's own data, as JSON.
    pub payload: Box<RawValue>,
    /// Options frozen at dispatch.
    #[serde(default)]
    pub options: JobOptions,
    /// Creation time, milliseconds since the Unix epoch (the dispatcher's clock; informational).
    pub created_at: i64,
    /// W3C trace context (`traceparent`, `tracestate`), if the dispatcher had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
    /// The batch this job belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// The rest of the chain this job heads: pushed, one link at a time, when it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Box<ChainRest>>,
}

/// The links of a chain still to run after the current job, and its catch handler.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChainRest {
    /// The next jobs, in order. Each has its id already, so pushing it twice is harmless.
    pub links: Vec<ChainLink>,
    /// Pushed once when a link fails for good; its payload gets `failed_job_id` and `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch: Option<Box<Envelope>>,
}

/// One later job of a chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainLink {
    /// The job, complete (its own `chain` is empty: the rest travels with the head).
    pub envelope: Envelope,
    /// How long after its predecessor completes it becomes available.
    #[serde(
        default,
        rename = "delay_ms",
        with = "crate::options::ms",
        skip_serializing_if = "std::time::Duration::is_zero"
    )]
    pub delay: std::time::Duration,
}

/// W3C trace context carried so a job's span can join the dispatcher's trace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TraceContext {
    /// The `traceparent` header value.
    pub traceparent: String,
    /// The `tracestate` header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// An envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not valid JSON, or a required field is missing or of the wrong type.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Written by a newer Spool.
    #[error(
        "unsupported envelope version {0} (this build reads version {ENVELOPE_VERSION}); upgrade the worker"
    )]
    Version(u32),
}

impl Envelope {
    /// A new envelope with a fresh id and default options.
    pub fn new(job: &str, queue: &str, payload: serde_json::Value) -> Self {
        let payload = RawValue::from_string(payload.to_string()).expect("a Value is valid JSON");
        Envelope::from_raw(job, queue, payload)
    }

    /// A new envelope around an already encoded payload, with a fresh id and default options.
    pub fn from_raw(job: &str, queue: &str, payload: Box<RawValue>) -> Self {
        Envelope {
            v: ENVELOPE_VERSION,
            id: new_id(),
            job: job.to_string(),
            queue: queue.to_string(),
            payload,
            options: JobOptions::default(),
            created_at: now_ms(),
            trace: None,
            batch_id: None,
            chain: None,
        }
    }

    /// Encodes to the JSON stored in the queue.
    pub fn encode(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Decodes and checks the version.
    pub fn decode(json: &str) -> Result<Envelope, EnvelopeError> {
        let env: Envelope = serde_json::from_str(json)?;
        if env.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::Version(env.v));
        }
        Ok(env)
    }
}

/// A new job id: a time-ordered UUID v7.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_payload_bytes() {
        let mut env = Envelope::new("x", "default", serde_json::json!({"a": [1, 2]}));
        env.trace = Some(TraceContext {
            traceparent: "00-abc-def-01".into(),
            tracestate: None,
        });
        let back = Envelope::decode(&env.encode().unwrap()).unwrap();
        assert_eq!(back.payload.get(), r#"{"a":[1,2]}"#);
        assert_eq!(back.trace, env.trace);
        assert_eq!(back.id, env.id);
    }

    #[test]
    fn rejects_bad_input_precisely() {
        let err = Envelope::decode("{not json").unwrap_err();
        assert!(err.to_string().starts_with("malformed envelope"), "{err}");
        let err = Envelope::decode(r#"{"v":1,"id":"a","queue":"q","payload":{},"created_at":0}"#)
            .unwrap_err();
        assert!(err.to_string().contains("missing field `job`"), "{err}");
        let future = r#"{"v":9,"id":"a","job":"j","queue":"q","payload":{},"created_at":0}"#;
        assert!(matches!(
            Envelope::decode(future),
            Err(EnvelopeError::Version(9))
        ));
    }
}
