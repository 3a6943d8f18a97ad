//! Token counts and texts the mock answers with, deterministic for a request.

use serde_json::Value;

/// Completion tokens reserved for a request without `max_tokens`.
pub(crate) const DEFAULT_MAX_TOKENS: u64 = 256;

/// Prompt tokens: about four characters a token, four per message, three for the reply.
pub(crate) fn prompt_tokens(body: &Value) -> u64 {
    let messages = body["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let chars: usize = messages.iter().map(|m| text_len(&m["content"])).sum();
    (chars as u64).div_ceil(4) + 4 * messages.len() as u64 + 3
}

fn text_len(content: &Value) -> usize {
    match content {
        Value::String(text) => text.chars().count(),
        Value::Array(parts) => parts.iter().map(|p| text_len(&p["text"])).sum(),
        _ => 0,
    }
}

/// The request's `max_tokens` (or `max_completion_tokens`).
pub(crate) fn max_tokens(body: &Value) -> Option<u64> {
    body["max_tokens"]
        .as_u64()
        .or_else(|| body["max_completion_tokens"].as_u64())
}

/// Completion tokens of the answer: between half and all of `max`, by the request's hash.
pub(crate) fn completion_tokens(hash: u64, max: u64) -> u64 {
    let share = 500 + hash % 501;
    (max * share / 1000).max(1)
}

/// An answer of about `tokens` tokens.
pub(crate) fn answer_text(tokens: u64) -> String {
    const WORDS: [&str; 8] = [
        "queue", "worker", "lease", "retry", "batch", "limit", "job", "store",
    ];
    (0..tokens)
        .map(|i| WORDS[(i % 8) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// FNV-1a 64 of `bytes`: stable across processes and builds, so logs can be compared.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A duration as OpenAI's reset headers write it: `20ms`, `1.5s`, `6m0s`.
pub(crate) fn openai_duration(ms: f64) -> String {
    let ms = ms.max(0.0).ceil() as u64;
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let text = format!("{:.3}", ms as f64 / 1000.0);
        format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
    } else {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn durations_are_written_as_openai_does() {
        assert_eq!(openai_duration(20.0), "20ms");
        assert_eq!(openai_duration(1_500.0), "1.5s");
        assert_eq!(openai_duration(2_000.0), "2s");
        assert_eq!(openai_duration(360_000.0), "6m0s");
    }

    #[test]
    fn counts_are_deterministic() {
        let body =
            json!({"messages": [{"role": "user", "content": "abcdefgh"}], "max_tokens": 100});
        assert_eq!(prompt_tokens(&body), 2 + 4 + 3);
        assert_eq!(max_tokens(&body), Some(100));
        let c = completion_tokens(fnv1a(b"x"), 100);
        assert!((50..=100).contains(&c));
        assert_eq!(c, completion_tokens(fnv1a(b"x"), 100));
        assert_eq!(answer_text(3), "queue worker lease");
    }
}
