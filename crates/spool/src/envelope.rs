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
// On the wire it is a `Wire` (which carries the serde field rules), so the payload can be
// plain or sealed.
#[serde(try_from = "Wire", into = "Wire")]
pub struct Envelope {
    /// Format version; readers refuse versions they don't know.
    pub v: u32,
    /// The job's id: a UUID (v7) unless the caller chose one.
    pub id: String,
    /// The registered job name that decides which handler runs.
    pub job: String,
    /// The queue the job was dispatched to.
    pub queue: String,
    /// The job's own data: JSON, or sealed for an encrypted job type.
    pub payload: Payload,
    /// Options frozen at dispatch.
    pub options: JobOptions,
    /// Creation time, milliseconds since the Unix epoch (the dispatcher's clock; informational).
    pub created_at: i64,
    /// W3C trace context (`traceparent`, `tracestate`), if the dispatcher had one.
    pub trace: Option<TraceContext>,
    /// The batch this job belongs to (or, for a batch callback, the batch it reports on).
    pub batch_id: Option<String>,
    /// True for a batch's then / catch / finally job: it names its batch but is not counted
    /// in it, and runs even when the batch is cancelled.
    pub batch_callback: bool,
    /// For a job of a batch: the batch's progress callback, pushed (with an id of its own per
    /// job) with this job's completion or final failure.
    pub batch_progress: Option<Box<Envelope>>,
    /// The rest of the chain this job heads: pushed, one link at a time, when it completes.
    pub chain: Option<Box<ChainRest>>,
    /// For a batch callback or a chain's catch job: what it is called about (the batch, the
    /// job that failed and why). Written when the callback is created, never into its payload,
    /// which stays the dispatcher's (D-8).
    pub context: Option<CallbackContext>,
    /// The dispatcher's tags (`PendingDispatch::tags`): labels to find the job by in listings
    /// and the completed history. Stored in the clear, like the job's name: never a secret.
    pub tags: Vec<String>,
}

/// What a batch callback or a chain's catch job is called about: the envelope's `context`.
///
/// Handlers read it with [`JobContext::callback`](crate::JobContext::callback); `shell` jobs
/// get it as `SPOOL_BATCH_ID` and `SPOOL_FAILED_JOB_ID` environment variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallbackContext {
    /// The batch the callback reports on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// For a chain's catch job: the link that failed for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_job_id: Option<String>,
    /// For a chain's catch job: that link's final error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The links of a chain still to run after the current job, and its catch handler.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChainRest {
    /// The next jobs, in order. Each has its id already, so pushing it twice is harmless.
    pub links: Vec<ChainLink>,
    /// Pushed once when a link fails for good, with the failed link's id and error in its
    /// envelope's [`context`](Envelope::context).
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

/// A job's data as the envelope carries it.
///
/// On the wire a plain payload is the `payload` field; an encrypted one is the `payload_enc`
/// field (base64) with `payload` absent, so envelopes written before encryption existed read
/// unchanged.
#[derive(Debug, Clone)]
pub enum Payload {
    /// The job's data as JSON, byte for byte as dispatched.
    Plain(Box<RawValue>),
    /// The job's data sealed with the app's key: base64 of the header, nonce and ciphertext
    /// (see `docs/encryption.md`). Only a worker holding the key can read it.
    Encrypted(String),
}

impl Payload {
    /// The JSON text of a plain payload; `None` if it is encrypted.
    pub fn plain(&self) -> Option<&str> {
        match self {
            Payload::Plain(raw) => Some(raw.get()),
            Payload::Encrypted(_) => None,
        }
    }

    /// Whether the payload is encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Payload::Encrypted(_))
    }
}

/// A field that is present, whatever its JSON (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// The envelope as serialized: `payload` and `payload_enc` are two optional fields, exactly one
/// of which must be present.
#[derive(Serialize, Deserialize)]
struct Wire {
    v: u32,
    id: String,
    job: String,
    queue: String,
    // `null` is a payload (a unit struct's), not an absent one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    payload: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_enc: Option<String>,
    #[serde(default)]
    options: JobOptions,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace: Option<TraceContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    batch_callback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch_progress: Option<Box<Envelope>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chain: Option<Box<ChainRest>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context: Option<CallbackContext>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
}

impl TryFrom<Wire> for Envelope {
    type Error = &'static str;

    fn try_from(w: Wire) -> Result<Self, Self::Error> {
        let payload = match (w.payload, w.payload_enc) {
            (Some(raw), None) => Payload::Plain(raw),
            (None, Some(sealed)) => Payload::Encrypted(sealed),
            (None, None) => return Err("missing field `payload`"),
            (Some(_), Some(_)) => return Err("both `payload` and `payload_enc` are present"),
        };
        Ok(Envelope {
            v: w.v,
            id: w.id,
            job: w.job,
            queue: w.queue,
            payload,
            options: w.options,
            created_at: w.created_at,
            trace: w.trace,
            batch_id: w.batch_id,
            batch_callback: w.batch_callback,
            batch_progress: w.batch_progress,
            chain: w.chain,
            context: w.context,
            tags: w.tags,
        })
    }
}

impl From<Envelope> for Wire {
    fn from(e: Envelope) -> Self {
        let (payload, payload_enc) = match e.payload {
            Payload::Plain(raw) => (Some(raw), None),
            Payload::Encrypted(sealed) => (None, Some(sealed)),
        };
        Wire {
            v: e.v,
            id: e.id,
            job: e.job,
            queue: e.queue,
            payload,
            payload_enc,
            options: e.options,
            created_at: e.created_at,
            trace: e.trace,
            batch_id: e.batch_id,
            batch_callback: e.batch_callback,
            batch_progress: e.batch_progress,
            chain: e.chain,
            context: e.context,
            tags: e.tags,
        }
    }
}

/// W3C trace context carried so a job's span can join the dispatcher's trace.
///
/// The worker parses `traceparent` ([`TraceParent`](crate::TraceParent)) and records
/// `trace_id` and `parent_span_id` on the job's span; a malformed value is ignored.
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
        Envelope::with_payload(job, queue, Payload::Plain(payload))
    }

    /// A new envelope around a plain or sealed payload, with a fresh id and default options.
    pub fn with_payload(job: &str, queue: &str, payload: Payload) -> Self {
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
            batch_callback: false,
            batch_progress: None,
            chain: None,
            context: None,
            tags: Vec::new(),
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

/// Milliseconds since the Unix epoch by this machine's clock (0 before 1970).
pub fn now_ms() -> i64 {
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
        assert_eq!(back.payload.plain(), Some(r#"{"a":[1,2]}"#));
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
        let unit = r#"{"v":1,"id":"a","job":"j","queue":"q","payload":null,"created_at":0}"#;
        let unit = Envelope::decode(unit).expect("a unit struct's payload is null");
        assert_eq!(unit.payload.plain(), Some("null"));
        assert_eq!(
            Envelope::decode(&unit.encode().unwrap())
                .unwrap()
                .payload
                .plain(),
            Some("null")
        );
        let neither = r#"{"v":1,"id":"a","job":"j","queue":"q","created_at":0}"#;
        let err = Envelope::decode(neither).unwrap_err();
        assert!(err.to_string().contains("missing field `payload`"), "{err}");
        let both = r#"{"v":1,"id":"a","job":"j","queue":"q","payload":{},"payload_enc":"AA==","created_at":0}"#;
        let err = Envelope::decode(both).unwrap_err();
        assert!(
            err.to_string().contains("both `payload` and `payload_enc`"),
            "{err}"
        );
    }

    #[test]
    fn encrypted_payload_replaces_the_plain_field() {
        let mut env = Envelope::new("x", "default", serde_json::json!({}));
        env.payload = Payload::Encrypted("AQID".into());
        let json = env.encode().unwrap();
        assert!(json.contains(r#""payload_enc":"AQID""#), "{json}");
        assert!(!json.contains(r#""payload":"#), "{json}");
        let back = Envelope::decode(&json).unwrap();
        assert!(back.payload.is_encrypted());
        assert_eq!(back.payload.plain(), None);
    }

    #[test]
    fn envelopes_written_before_encryption_read_unchanged() {
        let old = r#"{"v":1,"id":"report-2026-11","job":"sleep","queue":"reports","payload":{"ms": 200},"options":{"tries":5},"created_at":1795398657849}"#;
        let env = Envelope::decode(old).unwrap();
        assert_eq!(env.payload.plain(), Some(r#"{"ms": 200}"#));
        assert_eq!(env.encode().unwrap(), old);
    }
}
