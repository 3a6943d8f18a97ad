//! The `otel` feature: the hop as OpenTelemetry sees it, through tracing-opentelemetry and the
//! W3C propagator.

use std::collections::HashMap;

use opentelemetry::{propagation::TextMapPropagator, trace::TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::envelope::TraceContext;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Makes the dispatcher's span the OpenTelemetry parent of the job's `span`.
pub(super) fn set_parent(span: &tracing::Span, trace: &TraceContext) {
    let mut carrier = HashMap::from([(TRACEPARENT.to_string(), trace.traceparent.clone())]);
    if let Some(state) = &trace.tracestate {
        carrier.insert(TRACESTATE.to_string(), state.clone());
    }
    let parent = TraceContextPropagator::new().extract(&carrier);
    // Fails only without an OpenTelemetry layer (the app does not export spans) or with the
    // span filtered out: the fields recorded by the caller still join the logs.
    if let Err(e) = span.set_parent(parent) {
        tracing::trace!("no OpenTelemetry parent for the job's span: {e}");
    }
}

/// The current span's OpenTelemetry context as W3C headers, if it has a valid one: the
/// `tracing` span's (tracing-opentelemetry), else the OpenTelemetry API's current context.
pub(super) fn current() -> Option<TraceContext> {
    let mut cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        cx = opentelemetry::Context::current();
    }
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    Some(TraceContext {
        traceparent: carrier.remove(TRACEPARENT)?,
        tracestate: carrier.remove(TRACESTATE).filter(|s| !s.is_empty()),
    })
}
