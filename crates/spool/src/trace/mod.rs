//! The job's place in its dispatcher's trace (D-8 keeps the W3C context in the envelope).
//!
//! The worker reads the envelope's `traceparent` and records its trace id and parent span id
//! on the job's span, so plain and JSON logs of the job join the dispatcher's trace. With the
//! `otel` feature the job's OpenTelemetry span also becomes a child of the dispatcher's, and
//! dispatch fills in the context of the current span when the caller gave none.

#[cfg(feature = "otel")]
mod otel;
mod parent;

pub use parent::{TraceParent, TraceParentError};

use crate::envelope::TraceContext;

/// Ties the worker's `job` span to the envelope's trace context, if it has one that parses.
///
/// A malformed context never fails the job: it is ignored, with a debug line.
pub(crate) fn join(span: &tracing::Span, trace: Option<&TraceContext>) {
    let Some(trace) = trace else { return };
    let parent = match TraceParent::parse(&trace.traceparent) {
        Ok(parent) => parent,
        Err(e) => {
            tracing::debug!(traceparent = %trace.traceparent, "trace context ignored: {e}");
            return;
        }
    };
    // The OpenTelemetry parent first: it can only be set before the span starts.
    #[cfg(feature = "otel")]
    otel::set_parent(span, trace);
    span.record("trace_id", tracing::field::display(parent.trace_id()));
    span.record(
        "parent_span_id",
        tracing::field::display(parent.parent_span_id()),
    );
}

/// The trace context to carry in a new envelope when the dispatcher gave none: the current
/// span's, with the `otel` feature; without it, none.
pub(crate) fn current() -> Option<TraceContext> {
    #[cfg(feature = "otel")]
    return otel::current();
    #[cfg(not(feature = "otel"))]
    None
}
