//! What a request will cost before it is sent, and the name it is recorded under.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::admission::Cost;

/// Completion tokens reserved for a request that sets no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u64 = 256;

/// Tokens a request may use: its messages' text at about four characters a token (plus
/// OpenAI's per-message overhead) and its `max_tokens` (or `max_completion_tokens`).
pub(crate) fn estimate(body: &Value) -> Cost {
    let messages = body["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let chars: usize = messages.iter().map(|m| text_len(&m["content"])).sum();
    let input = (chars as u64).div_ceil(4) + 4 * messages.len() as u64 + 3;
    let output = body["max_tokens"]
        .as_u64()
        .or_else(|| body["max_completion_tokens"].as_u64())
        .unwrap_or(DEFAULT_MAX_TOKENS);
    Cost { input, output }
}

/// The characters of a message's content: a string, or the text parts of a list.
fn text_len(content: &Value) -> usize {
    match content {
        Value::String(text) => text.chars().count(),
        Value::Array(parts) => parts.iter().map(|p| text_len(&p["text"])).sum(),
        _ => 0,
    }
}

/// A stable name for (provider, model, request): SHA-256 of the three, the request's keys
/// sorted, as hex (the first 32 characters).
pub(crate) fn request_hash(provider: &str, model: &str, body: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(provider.as_bytes());
    hasher.update([0]);
    hasher.update(model.as_bytes());
    hasher.update([0]);
    hasher.update(canonical(body).as_bytes());
    hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON text with every object's keys in order, whatever order they were written in.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn estimates_count_text_and_reserve_the_completion() {
        let body =
            json!({"messages": [{"role": "user", "content": "a".repeat(400)}], "max_tokens": 50});
        assert_eq!(
            estimate(&body),
            Cost {
                input: 100 + 4 + 3,
                output: 50
            }
        );
        let parts =
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "abcd"}]}]});
        assert_eq!(
            estimate(&parts),
            Cost {
                input: 1 + 4 + 3,
                output: DEFAULT_MAX_TOKENS
            }
        );
    }

    #[test]
    fn hashes_ignore_key_order_but_not_content() {
        let a = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let b = json!({"messages": [{"content": "hi", "role": "user"}], "model": "m"});
        let c = json!({"model": "m", "messages": [{"role": "user", "content": "ho"}]});
        assert_eq!(request_hash("p", "m", &a), request_hash("p", "m", &b));
        assert_ne!(request_hash("p", "m", &a), request_hash("p", "m", &c));
        assert_ne!(request_hash("p", "m", &a), request_hash("q", "m", &a));
        assert_eq!(request_hash("p", "m", &a).len(), 32);
    }
}
