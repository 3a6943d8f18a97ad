//! The W3C `traceparent` value: `version-traceid-parentid-flags`, checked as the
//! Trace Context recommendation asks of a receiver.

use std::fmt;

/// A `traceparent` that parsed: the dispatcher's trace id, its span id (the job's parent) and
/// the trace flags.
///
/// ```
/// let parent = spool::TraceParent::parse(
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
/// ).unwrap();
/// assert_eq!(parent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(parent.parent_span_id(), "00f067aa0ba902b7");
/// assert!(parent.sampled());
/// assert!(spool::TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    parent_span_id: u64,
    flags: u8,
}

/// Why a `traceparent` was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    /// Not four dash-separated fields of 2, 32, 16 and 2 characters.
    #[error("not of the form version-traceid-parentid-flags")]
    Shape,
    /// A field holds something other than lowercase hexadecimal digits.
    #[error("the {0} is not lowercase hexadecimal")]
    NotHex(&'static str),
    /// Version `ff`, which the recommendation forbids.
    #[error("version ff is invalid")]
    InvalidVersion,
    /// Version `00` with more after the flags.
    #[error("version 00 has exactly four fields")]
    TrailingData,
    /// The trace id is all zeros.
    #[error("the trace id is all zeros")]
    ZeroTraceId,
    /// The parent span id is all zeros.
    #[error("the parent span id is all zeros")]
    ZeroSpanId,
}

impl TraceParent {
    /// Parses a `traceparent` header value. Versions above `00` are read as version `00`
    /// (their first four fields), as the recommendation asks; surrounding spaces are ignored.
    pub fn parse(text: &str) -> Result<TraceParent, TraceParentError> {
        let text = text.trim();
        let (head, rest) = (text.get(..55), text.get(55..));
        let head = head.ok_or(TraceParentError::Shape)?;
        let fields: Vec<&str> = head.split('-').collect();
        let [version, trace_id, span_id, flags] = fields[..] else {
            return Err(TraceParentError::Shape);
        };
        if version.len() != 2 || trace_id.len() != 32 || span_id.len() != 16 || flags.len() != 2 {
            return Err(TraceParentError::Shape);
        }
        let version = hex(version, "version")? as u8;
        if version == 0xff {
            return Err(TraceParentError::InvalidVersion);
        }
        match rest {
            Some("") | None => {}
            Some(_) if version == 0 => return Err(TraceParentError::TrailingData),
            // A later version may add fields, after a dash.
            Some(more) if more.starts_with('-') => {}
            Some(_) => return Err(TraceParentError::Shape),
        }
        let trace_id = hex(trace_id, "trace id")?;
        let parent_span_id = hex(span_id, "parent span id")? as u64;
        let flags = hex(flags, "flags")? as u8;
        if trace_id == 0 {
            return Err(TraceParentError::ZeroTraceId);
        }
        if parent_span_id == 0 {
            return Err(TraceParentError::ZeroSpanId);
        }
        Ok(TraceParent {
            trace_id,
            parent_span_id,
            flags,
        })
    }

    /// The trace id: 32 lowercase hexadecimal digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The dispatcher's span id, the job's parent: 16 lowercase hexadecimal digits.
    pub fn parent_span_id(&self) -> String {
        format!("{:016x}", self.parent_span_id)
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the dispatcher sampled (recorded) its trace.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// The version-00 form: `00-<trace id>-<parent span id>-<flags>`.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_span_id, self.flags
        )
    }
}

/// A field of lowercase hex digits (at most 32) as a number.
fn hex(field: &str, name: &'static str) -> Result<u128, TraceParentError> {
    // `from_str_radix` alone would take uppercase digits and a leading `+`.
    if !field
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(TraceParentError::NotHex(name));
    }
    u128::from_str_radix(field, 16).map_err(|_| TraceParentError::NotHex(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_the_four_fields() {
        let p = TraceParent::parse(GOOD).unwrap();
        assert_eq!(p.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.parent_span_id(), "00f067aa0ba902b7");
        assert_eq!(p.flags(), 1);
        assert!(p.sampled());
        assert_eq!(p.to_string(), GOOD);
        assert_eq!(TraceParent::parse(&format!(" {GOOD} ")).unwrap(), p);
    }

    #[test]
    fn later_versions_keep_their_first_four_fields() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes";
        let p = TraceParent::parse(later).unwrap();
        assert_eq!(p.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!p.sampled());
        let glued = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00x";
        assert_eq!(TraceParent::parse(glued), Err(TraceParentError::Shape));
    }

    #[test]
    fn refuses_what_a_receiver_must_ignore() {
        use TraceParentError::*;
        for (text, why) in [
            ("", Shape),
            ("garbage", Shape),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                Shape,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                Shape,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                NotHex("trace id"),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                NotHex("parent span id"),
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                NotHex("version"),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
                NotHex("flags"),
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                InvalidVersion,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                TrailingData,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                ZeroSpanId,
            ),
        ] {
            assert_eq!(TraceParent::parse(text), Err(why), "{text:?}");
        }
    }
}
