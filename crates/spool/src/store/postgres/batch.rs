//! Settlements grouped by kind and encoded as JSON arrays, so the PostgreSQL store settles a whole
//! batch with one statement per kind (`json_to_recordset`).

use serde::Serialize;

use crate::duration::millis;
use crate::store::Settlement;

#[derive(Serialize)]
pub(crate) struct Done<'a> {
    pub(crate) id: &'a str,
    pub(crate) token: i64,
    /// The result to keep, if the handler stored one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct Released<'a> {
    pub(crate) id: &'a str,
    pub(crate) token: i64,
    pub(crate) delay_ms: i64,
    /// 1 when the attempt is handed back (deferral, shutdown).
    pub(crate) refund: i64,
    pub(crate) deferral: i64,
    pub(crate) exception: i64,
    pub(crate) error: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct Failed<'a> {
    pub(crate) id: &'a str,
    pub(crate) token: i64,
    pub(crate) error: &'a str,
    /// The cause chain as a JSON array, stored as text.
    pub(crate) causes: String,
}

/// A batch of settlements split by kind, each kind as a JSON array (`None` when empty).
pub(crate) struct SettlementBatch {
    pub(crate) complete: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) fail: Option<String>,
}

impl SettlementBatch {
    pub(crate) fn new(settlements: &[Settlement]) -> Self {
        let mut done = Vec::new();
        let mut released = Vec::new();
        let mut failed = Vec::new();
        for s in settlements {
            match s {
                Settlement::Complete {
                    id, token, result, ..
                } => done.push(Done {
                    id,
                    token: *token,
                    result: result.as_deref(),
                }),
                Settlement::Release {
                    id,
                    token,
                    delay,
                    kind,
                    error,
                } => {
                    let (refund, deferral, exception) = kind.counter_effects();
                    released.push(Released {
                        id,
                        token: *token,
                        delay_ms: millis(*delay),
                        refund,
                        deferral,
                        exception,
                        error: error.as_deref(),
                    })
                }
                Settlement::Fail {
                    id,
                    token,
                    error,
                    causes,
                    ..
                } => failed.push(Failed {
                    id,
                    token: *token,
                    error,
                    causes: serde_json::to_string(causes).unwrap_or_else(|_| "[]".into()),
                }),
            }
        }
        fn encode<T: Serialize>(items: &[T]) -> Option<String> {
            (!items.is_empty()).then(|| serde_json::to_string(items).expect("plain data encodes"))
        }
        SettlementBatch {
            complete: encode(&done),
            release: encode(&released),
            fail: encode(&failed),
        }
    }
}

/// Maps the ids a store reports as applied back onto the input order.
pub(crate) fn applied_in_order(settlements: &[Settlement], applied: &[String]) -> Vec<bool> {
    let applied: std::collections::HashSet<&str> = applied.iter().map(String::as_str).collect();
    settlements
        .iter()
        .map(|s| applied.contains(s.id()))
        .collect()
}
