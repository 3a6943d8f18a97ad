//! The worker's own secrets, in one place: the `shell` job removes them from the child's
//! environment and the `http` job refuses to put them in a header.

/// Environment variables that hold Spool's own secrets: the encryption keys, the store URL
/// (which may carry a password), the dashboard token and provider keys. Besides these, any
/// `SPOOL_` variable whose name ends in `_KEY`, `_KEYS`, `_TOKEN`, `_SECRET`, `_PASSWORD` or
/// `_URL` counts as one, so a secret added later is covered without a change here.
pub const WORKER_SECRETS: &[&str] = &[
    "SPOOL_KEY",
    "SPOOL_PREVIOUS_KEYS",
    "SPOOL_URL",
    "SPOOL_DASHBOARD_TOKEN",
    "SPOOL_PROVIDER_KEYS",
];

const SECRET_SUFFIXES: &[&str] = &["_KEY", "_KEYS", "_TOKEN", "_SECRET", "_PASSWORD", "_URL"];

/// Whether the environment variable `name` holds one of the worker's secrets.
pub fn is_worker_secret(name: &str) -> bool {
    WORKER_SECRETS.contains(&name)
        || (name.starts_with("SPOOL_") && SECRET_SUFFIXES.iter().any(|s| name.ends_with(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_secrets_are_named_and_other_variables_are_not() {
        for name in [
            "SPOOL_KEY",
            "SPOOL_PREVIOUS_KEYS",
            "SPOOL_URL",
            "SPOOL_OPENAI_KEY",
        ] {
            assert!(is_worker_secret(name), "{name}");
        }
        for name in ["PATH", "HOME", "SPOOL_LOG", "SPOOL_BATCH_ID", "API_KEY"] {
            assert!(!is_worker_secret(name), "{name}");
        }
    }
}
