//! Rows and keys written past Spool (by another language's client, by hand) that a worker
//! cannot read as Spool writes them. Every store reads them through these functions, so such
//! a job is failed with a precise reason instead of failing the whole reserve or listing,
//! and never blocks the jobs behind it (issue "bad bytes poison a queue").

use serde::Deserialize;

/// An envelope read as raw bytes: the text (invalid UTF-8 replaced by U+FFFD, so listings and
/// failed records stay readable) and, when the bytes were not UTF-8 text, why.
pub(crate) fn envelope_from_bytes(bytes: Vec<u8>, stored_as: &str) -> (String, Option<String>) {
    match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let len = e.as_bytes().len();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            (
                text,
                Some(format!(
                    "unreadable envelope: stored as {stored_as} of {len} bytes that are not \
                     UTF-8 text (invalid byte at offset {at}); write envelopes as UTF-8 JSON \
                     text, then dispatch the job again"
                )),
            )
        }
    }
}

/// Why a reserved job cannot run before its envelope is even decoded: an envelope past the
/// worker's size limit (`limit` bytes), written directly past the dispatcher's check.
pub(crate) fn oversized(envelope: &str, limit: usize) -> Option<String> {
    (envelope.len() > limit).then(|| {
        format!(
            "envelope of {} bytes is over the {limit} byte limit (it was written past the \
             dispatcher's check); dispatch a smaller payload, or raise the worker's max_payload \
             to match a dispatcher configured with a larger one",
            envelope.len(),
        )
    })
}

/// What a listing shows for a stored job: the job name the worker will run, which is the
/// envelope's (the one source of truth; the row's `job` column is only an index copy written
/// at dispatch), and why the job cannot run as stored, if it cannot. `column` is the name
/// shown when the envelope cannot be read at all.
pub(crate) fn listed(
    column: String,
    envelope: &str,
    unreadable: Option<String>,
) -> (String, Option<String>) {
    #[derive(Deserialize)]
    struct Head {
        job: String,
        v: u32,
    }
    if let Some(reason) = unreadable {
        return (column, Some(reason));
    }
    match serde_json::from_str::<Head>(envelope) {
        Ok(head) if head.v == crate::ENVELOPE_VERSION => (head.job, None),
        Ok(head) => (
            head.job,
            Some(format!(
                "envelope version {} is not read by this build",
                head.v
            )),
        ),
        Err(e) => (column, Some(format!("malformed envelope: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_named_with_its_offset() {
        let (text, why) = envelope_from_bytes(b"{\"a\xff".to_vec(), "a BLOB");
        assert_eq!(text, "{\"a\u{fffd}");
        let why = why.unwrap();
        assert!(
            why.contains("a BLOB of 4 bytes") && why.contains("offset 3"),
            "{why}"
        );
        assert_eq!(
            envelope_from_bytes(b"{}".to_vec(), "x"),
            ("{}".into(), None)
        );
    }

    #[test]
    fn listings_take_the_envelope_name() {
        let env = crate::Envelope::new("real", "default", serde_json::json!({}))
            .encode()
            .unwrap();
        assert_eq!(listed("column".into(), &env, None), ("real".into(), None));
        let (name, why) = listed("column".into(), "not json", None);
        assert_eq!(name, "column");
        assert!(why.unwrap().starts_with("malformed envelope"));
        assert!(
            oversized("abc", 2)
                .unwrap()
                .contains("3 bytes is over the 2 byte limit")
        );
        assert_eq!(oversized("ab", 2), None);
    }
}
