//! Named providers: where an OpenAI-compatible API is, which environment variable holds its
//! key, and the limits its account has.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

/// The provider used when a call names none and none is configured.
pub const DEFAULT_PROVIDER: &str = "openai";

/// The OpenAI API, used when `OPENAI_BASE_URL` is not set.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// One `[[llm.provider]]` entry of `spool.toml`.
///
/// ```
/// let provider: spool::llm::ProviderConfig = toml_like(r#"{
///     "name": "openai", "base_url": "https://api.openai.com/v1",
///     "api_key_env": "OPENAI_API_KEY", "rpm": 500, "tpm": 200000
/// }"#);
/// # fn toml_like(json: &str) -> spool::llm::ProviderConfig { serde_json::from_str(json).unwrap() }
/// assert_eq!(provider.limits(None).rpm, Some(500));
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The name jobs use (`"provider": "openai"`).
    pub name: String,
    /// The API's base URL, up to and without `/chat/completions`.
    pub base_url: String,
    /// The environment variable holding the API key, read by the worker when it calls
    /// (never stored with a job). No key: requests carry no `Authorization` header.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute (prompt and completion together).
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Input (prompt) tokens per minute, for providers that split the limit.
    #[serde(default)]
    pub itpm: Option<u64>,
    /// Output (completion) tokens per minute, for providers that split the limit.
    #[serde(default)]
    pub otpm: Option<u64>,
    /// Limits of particular models, each paced on its own.
    #[serde(default)]
    pub models: BTreeMap<String, Limits>,
    /// Providers to call instead while this one is parked by a 429 or blocked.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Keep answers in a cache shared by every worker for this long (`"1h"`); identical
    /// requests within it are answered from the cache without a call.
    #[serde(default, with = "optional_duration")]
    pub cache_ttl: Option<Duration>,
}

/// A provider's or a model's limits per minute.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute.
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Input tokens per minute.
    #[serde(default)]
    pub itpm: Option<u64>,
    /// Output tokens per minute.
    #[serde(default)]
    pub otpm: Option<u64>,
}

impl ProviderConfig {
    /// The provider `OPENAI_BASE_URL` and `OPENAI_API_KEY` describe, as in the OpenAI SDKs.
    pub fn from_env() -> ProviderConfig {
        ProviderConfig {
            name: DEFAULT_PROVIDER.to_string(),
            base_url: std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| OPENAI_BASE_URL.into()),
            api_key_env: Some("OPENAI_API_KEY".into()),
            rpm: None,
            tpm: None,
            itpm: None,
            otpm: None,
            models: BTreeMap::new(),
            fallback: Vec::new(),
            cache_ttl: None,
        }
    }

    /// The limits that pace calls of `model` (its own entry, else the provider's).
    pub fn limits(&self, model: Option<&str>) -> Limits {
        model
            .and_then(|m| self.models.get(m))
            .copied()
            .unwrap_or(Limits {
                rpm: self.rpm,
                tpm: self.tpm,
                itpm: self.itpm,
                otpm: self.otpm,
            })
    }

    /// The name of the shared admission state pacing `model`: the model's own when it has
    /// limits of its own, else the provider's.
    pub fn pacing_key(&self, model: &str) -> String {
        if self.models.contains_key(model) {
            format!("{}/{model}", self.name)
        } else {
            self.name.clone()
        }
    }

    /// The API key from the worker's environment, if the provider names a variable and it
    /// is set.
    pub(crate) fn api_key(&self) -> Result<Option<String>, String> {
        let Some(var) = &self.api_key_env else {
            return Ok(None);
        };
        match std::env::var(var) {
            Ok(key) if !key.is_empty() => Ok(Some(key)),
            _ => Err(format!(
                "provider `{}`: the API key variable {var} is not set in the worker's environment",
                self.name
            )),
        }
    }

    /// Checks the entry: a name, an http(s) base URL, limits above zero.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.name;
        if name.trim().is_empty() || name.contains('/') {
            return Err(format!(
                "provider name `{name}` must be non-empty, without `/`"
            ));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(format!(
                "provider `{name}`: base_url `{}` must start with http:// or https://",
                self.base_url
            ));
        }
        let all = std::iter::once(("", self.limits(None))).chain(
            self.models
                .iter()
                .map(|(model, limits)| (model.as_str(), *limits)),
        );
        for (model, limits) in all {
            for (key, value) in [
                ("rpm", limits.rpm),
                ("tpm", limits.tpm),
                ("itpm", limits.itpm),
                ("otpm", limits.otpm),
            ] {
                if value == Some(0) {
                    let place = if model.is_empty() {
                        String::new()
                    } else {
                        format!(" (model `{model}`)")
                    };
                    return Err(format!(
                        "provider `{name}`{place}: {key} must be above 0; leave it out for no limit"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Checks a list of providers together: each one, unique names, fallbacks that exist.
pub fn check_providers(providers: &[ProviderConfig]) -> Result<(), String> {
    for (i, provider) in providers.iter().enumerate() {
        provider.check()?;
        if providers[..i].iter().any(|p| p.name == provider.name) {
            return Err(format!("provider `{}` is configured twice", provider.name));
        }
    }
    for provider in providers {
        for fallback in &provider.fallback {
            if fallback == &provider.name || !providers.iter().any(|p| &p.name == fallback) {
                return Err(format!(
                    "provider `{}`: fallback `{fallback}` is not another configured provider",
                    provider.name
                ));
            }
        }
    }
    Ok(())
}

/// `"1h"`-style durations in configuration.
mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, de::Error};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        de: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(de)?
            .map(|text| humantime::parse_duration(&text).map_err(D::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(json: serde_json::Value) -> Result<ProviderConfig, String> {
        let p: ProviderConfig = serde_json::from_value(json).map_err(|e| e.to_string())?;
        p.check().map(|()| p)
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        let ok = serde_json::json!({"name": "a", "base_url": "http://x/v1", "rpm": 60});
        assert!(provider(ok).is_ok());
        for (json, why) in [
            (
                serde_json::json!({"name": "a", "base_url": "ftp://x"}),
                "must start with http",
            ),
            (
                serde_json::json!({"name": "", "base_url": "http://x"}),
                "non-empty",
            ),
            (
                serde_json::json!({"name": "a", "base_url": "http://x", "rpm": 0}),
                "rpm must be above 0",
            ),
            (
                serde_json::json!({"name": "a", "base_url": "http://x", "rmp": 5}),
                "unknown field `rmp`",
            ),
            (
                serde_json::json!({"name": "a", "base_url": "http://x", "cache_ttl": "soon"}),
                "cache_ttl",
            ),
        ] {
            let err = provider(json).unwrap_err();
            assert!(err.contains(why) || why == "cache_ttl", "{err}");
        }
        let a =
            provider(serde_json::json!({"name": "a", "base_url": "http://x", "fallback": ["b"]}))
                .unwrap();
        assert!(
            check_providers(std::slice::from_ref(&a))
                .unwrap_err()
                .contains("fallback `b`")
        );
        assert!(
            check_providers(&[a.clone(), a])
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn models_with_limits_are_paced_apart() {
        let p = provider(serde_json::json!({
            "name": "openai", "base_url": "http://x", "rpm": 500,
            "models": {"gpt-4o": {"rpm": 100, "tpm": 30000}}
        }))
        .unwrap();
        assert_eq!(p.limits(Some("gpt-4o")).rpm, Some(100));
        assert_eq!(p.limits(Some("gpt-4o-mini")).rpm, Some(500));
        assert_eq!(p.pacing_key("gpt-4o"), "openai/gpt-4o");
        assert_eq!(p.pacing_key("gpt-4o-mini"), "openai");
    }
}
