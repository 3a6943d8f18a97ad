//! What a store gives the suite: fresh stores, more handles on them, and raw access to the
//! data underneath, as another program (or another language's client) would write it.

use std::sync::Arc;

use async_trait::async_trait;
use spool::Store;

/// One value written raw: a bind parameter of a SQL statement or an argument of a Redis
/// command. Bytes need not be valid UTF-8, so a check can write what no Spool build would.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL` (not meaningful for Redis).
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Raw bytes: a SQL `BLOB`/`BYTEA`, or a Redis argument that may not be UTF-8.
    Bytes(Vec<u8>),
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_string())
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

/// A write straight into a store's data, past the store's own code.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// A SQL statement, executed as is with positional binds (`?` on SQLite and MySQL, `$1`
    /// on PostgreSQL), with the store's tables reachable by their plain names (on PostgreSQL
    /// the store's schema is first on the search path). A store without SQL refuses it.
    Sql {
        /// The statement's text.
        statement: String,
        /// Its bind parameters, in order.
        binds: Vec<Value>,
    },
    /// One Redis command: its name, then its arguments, sent as given (key names include the
    /// store's prefix; see the store's key layout). A store without Redis refuses it.
    Redis(Vec<Value>),
    /// Records `version` as the store's schema (or key layout) version, the way a newer build
    /// would have left it.
    SchemaVersion(i64),
}

impl Raw {
    /// A SQL statement without binds.
    pub fn sql(statement: impl Into<String>) -> Raw {
        Raw::Sql {
            statement: statement.into(),
            binds: Vec::new(),
        }
    }

    /// A Redis command from text arguments.
    pub fn redis<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Raw {
        Raw::Redis(args.into_iter().map(|a| Value::Text(a.into())).collect())
    }
}

/// One fresh, empty location for a store (a file, a schema, a database, a key prefix) and the
/// ways the suite reaches it. A store crate implements it once and runs the whole suite with
/// [`conformance_tests!`](crate::conformance_tests); each check gets a fixture of its own.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// The store's backend name (as [`QueueStore::backend`](spool::store::QueueStore::backend)
    /// reports it), used in skip messages.
    fn backend(&self) -> &'static str;

    /// Opens a new handle on the location, without migrating it. Every call opens its own
    /// connections, as another process would, so checks can run handles side by side.
    async fn open(&self) -> Arc<dyn Store>;

    /// Opens a handle and migrates it: the fresh, empty store most checks start from.
    async fn store(&self) -> Arc<dyn Store> {
        let store = self.open().await;
        store.migrate().await.expect("migrate a fresh store");
        store
    }

    /// Writes to the store's data directly, as another program would. `Err` says why the
    /// write was refused or failed (e.g. SQL sent to a Redis store).
    async fn raw(&self, write: Raw) -> Result<(), String>;

    /// The key prefix of a Redis location (its queue keys start with `{<prefix>:<queue>}`),
    /// for raw commands; `None` for stores without keys.
    fn key_prefix(&self) -> Option<String> {
        None
    }

    /// The schema (or key layout) version recorded at the location, read directly; 0 when
    /// none is.
    async fn schema_version(&self) -> i64;

    /// The schema version this build of the store migrates to.
    fn current_schema_version(&self) -> i64;

    /// Lays out the location as the store's schema version 1 left it, with one job queued:
    /// id `job_id`, queue `default`, job `noop`, envelope `{}`, available since the epoch.
    /// `Err` with the reason when the store has no earlier layout to upgrade from.
    async fn write_version_1(&self, job_id: &str) -> Result<(), String>;

    /// Removes what the check left at the location (best effort). Called when a check
    /// passes; a failed check leaves its data for inspection.
    async fn cleanup(&self) {}
}
