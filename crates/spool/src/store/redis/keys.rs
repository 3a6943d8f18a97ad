//! Where Spool keeps things in Redis: every key name is made here (and, per queue, in the Lua
//! scripts from the base this module gives them).
//!
//! Keys are grouped by hash tag so the store works on Redis Cluster: everything one atomic
//! step touches shares a tag. A queue's keys all start with `{<prefix>:<queue>}`; the global
//! ones (worker registry, leases, queue list, meta) with `{<prefix>}`. The layout is described
//! in `docs/stores.md`.

use crate::store::{StoreError, StoreResult};

/// The key prefix used when the URL names none.
pub const DEFAULT_PREFIX: &str = "spool";

/// Longest prefix accepted (key names stay short).
const MAX_PREFIX_LEN: usize = 64;

/// Key names for one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
    global: String,
}

impl Keys {
    /// Keys under `prefix`: ASCII letters, digits, `_`, `-` and `.`. Braces would break the
    /// hash tags, a colon would make `{a:b:c}` ambiguous, and glob characters would leak into
    /// the cleanup's SCAN pattern, so none of them is allowed.
    pub(super) fn new(prefix: &str) -> StoreResult<Self> {
        validate_prefix(prefix)?;
        Ok(Keys {
            prefix: prefix.to_string(),
            global: format!("{{{prefix}}}"),
        })
    }

    /// The prefix.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The base of the global keys, `{<prefix>}`, passed to the global scripts as `KEYS[1]`.
    pub(super) fn global(&self) -> &str {
        &self.global
    }

    /// The base of a queue's keys, `{<prefix>:<queue>}`, passed to the per-queue scripts as
    /// `KEYS[1]`. Braces and `%` in the queue name are percent-encoded, so any name keeps the
    /// whole base as the hash tag and distinct names never share keys.
    pub(super) fn queue(&self, queue: &str) -> String {
        self.tagged("", queue)
    }

    /// The hash tag `{<prefix>:<kind><name>}`, the name encoded as in [`Keys::queue`].
    fn tagged(&self, kind: &str, name: &str) -> String {
        let mut base = String::with_capacity(self.prefix.len() + kind.len() + name.len() + 3);
        base.push('{');
        base.push_str(&self.prefix);
        base.push(':');
        base.push_str(kind);
        for c in name.chars() {
            match c {
                '%' => base.push_str("%25"),
                '{' => base.push_str("%7B"),
                '}' => base.push_str("%7D"),
                c => base.push(c),
            }
        }
        base.push('}');
        base
    }

    /// A limiter's hit log (a sorted set of hits by server time) and its hit counter, under a
    /// tag of their own: `{<prefix>:limit:<key>}:hits` and `:n`.
    pub(super) fn limit(&self, key: &str) -> [String; 2] {
        let base = self.tagged("limit:", key);
        [format!("{base}:hits"), format!("{base}:n")]
    }

    /// A concurrency slot's holders (job id -> holder record), under a tag of its own:
    /// `{<prefix>:slot:<key>}:holders`.
    pub(super) fn slot(&self, key: &str) -> String {
        format!("{}:holders", self.tagged("slot:", key))
    }

    /// The key-value part's base, `{<prefix>:kv}`, passed to its scripts as `KEYS[1]`: the
    /// index of names (`:i`, a sorted set read by lexical range) and each value's hash
    /// (`:v:<name>`: value, version, expiry) share its slot.
    pub(super) fn kv(&self) -> String {
        format!("{{{}:kv}}", self.prefix)
    }

    /// The hash of batch id -> the queue its record lives under (`{<prefix>}:batches`).
    pub(super) fn batches(&self) -> String {
        format!("{}:batches", self.global)
    }

    /// A queue's outbox (follow-up id -> job bound for another queue), given the queue's base.
    pub(super) fn outbox(base: &str) -> String {
        format!("{base}:outbox")
    }

    /// A kept result, given the queue's base.
    pub(super) fn result(base: &str, id: &str) -> String {
        format!("{base}:result:{id}")
    }

    /// A queue's completed records (id -> short record), given the queue's base; their ids by
    /// completion time are in `:done`.
    pub(super) fn done_records(base: &str) -> String {
        format!("{base}:done:rec")
    }

    /// The set of queue names that have ever had a job.
    pub(super) fn queues(&self) -> String {
        format!("{}:queues", self.global)
    }

    /// The hash of registered workers (id -> JSON).
    pub(super) fn workers(&self) -> String {
        format!("{}:workers", self.global)
    }

    /// The control hash: `paused:<queue>` and `quiet:<worker>` marks, `epoch:<name>` epochs.
    pub(super) fn control(&self) -> String {
        format!("{}:control", self.global)
    }

    /// The records of one kind (name -> `{"value", "info"}` JSON).
    pub(super) fn records(&self, kind: &str) -> String {
        format!("{}:records:{kind}", self.global)
    }

    /// The metrics hash of one resolution (seconds) and period start: field
    /// `["<queue>","<job>","<series>",<bucket>]` (JSON) -> amount.
    pub(super) fn metrics(&self, resolution: i64, at: i64) -> String {
        format!("{}:metrics:{resolution}:{at}", self.global)
    }

    /// The meta hash: layout version and restart epoch.
    pub(super) fn meta(&self) -> String {
        format!("{}:meta", self.global)
    }

    /// A queue's lease view (worker -> expiry), given the queue's base.
    pub(super) fn queue_leases(base: &str) -> String {
        format!("{base}:leases")
    }

    /// The pub/sub channel pushes, releases and recoveries publish on.
    pub(super) fn channel(&self) -> String {
        format!("{}:wakeup", self.global)
    }

    /// SCAN patterns matching every key under the prefix.
    pub(super) fn patterns(&self) -> [String; 2] {
        [
            format!("{{{}}}:*", self.prefix),
            format!("{{{}:*", self.prefix),
        ]
    }
}

fn validate_prefix(prefix: &str) -> StoreResult<()> {
    let plain = !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plain {
        return Err(StoreError::Invalid(format!(
            "invalid Redis key prefix `{prefix}`: use ASCII letters, digits, `_`, `-` and `.`"
        )));
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(StoreError::Invalid(format!(
            "Redis key prefix `{prefix}` is too long: at most {MAX_PREFIX_LEN} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_bases_keep_one_hash_tag() {
        let keys = Keys::new("spool").unwrap();
        assert_eq!(keys.global(), "{spool}");
        assert_eq!(keys.queue("default"), "{spool:default}");
        assert_eq!(keys.queue("a}b{c%"), "{spool:a%7Db%7Bc%25}");
        assert_ne!(keys.queue("a%7D"), keys.queue("a}"));
        assert_eq!(keys.queues(), "{spool}:queues");
        assert_eq!(Keys::queue_leases("{spool:q}"), "{spool:q}:leases");
        assert_eq!(keys.slot("a}"), "{spool:slot:a%7D}:holders");
        assert_eq!(
            keys.limit("api"),
            ["{spool:limit:api}:hits", "{spool:limit:api}:n"]
        );
    }

    #[test]
    fn prefixes_are_plain() {
        for good in ["spool", "spool_test_1_ab", "a.b-c"] {
            assert!(Keys::new(good).is_ok(), "{good}");
        }
        for bad in ["", "a:b", "a{b", "a}b", "a*", "a b", &"x".repeat(65)] {
            assert!(
                matches!(Keys::new(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
