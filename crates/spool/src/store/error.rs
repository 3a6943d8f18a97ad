//! Typed store errors: they tell the worker whether to reconnect, drop a result, or give up.
//!
//! Three kinds of failure are kept apart, because each asks for something different: a store
//! that cannot be reached ([`StoreError::Unavailable`]: retry), one that is busy
//! ([`StoreError::Busy`]: retry, and say it was a lock, not a dead server), and one that is
//! set up wrong ([`StoreError::Misconfigured`]: stop and say why; retrying cannot help).

use crate::redact::redact_url;

/// The store URL forms this build accepts, for error messages.
pub const ACCEPTED_URLS: &str = "sqlite://PATH (or sqlite:PATH), postgres://USER:PASSWORD@HOST:PORT/DB, \
     mysql://USER:PASSWORD@HOST:PORT/DB (or mariadb://), redis://[:PASSWORD@]HOST:PORT/N (or rediss://)";

/// Something a store operation could not do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server can't be reached right now; retry with backoff (D-3).
    #[error("store unavailable: {0}; check that the server is running and the URL is right")]
    Unavailable(String),
    /// The store is locked or busy (SQLite's `database is locked` after the busy timeout, a
    /// long Redis script); retry with backoff, as for [`StoreError::Unavailable`].
    #[error("store busy: {0}; another connection holds a lock, retry when it lets go")]
    Busy(String),
    /// The store refuses to work for a reason retrying will not change: a refused password or
    /// startup parameter, a missing database, a file that cannot be created. Stop and fix it.
    #[error("store misconfigured: {0}")]
    Misconfigured(String),
    /// The location has no Spool tables (or keys): the URL is wrong, or nothing was migrated
    /// there yet. Holds the (redacted) URL.
    #[error("no Spool store at {0} (run `spool migrate` first)")]
    NoStore(String),
    /// The URL is malformed or names no store kind this build knows; the message says what
    /// is wrong with it, with the URL's secrets hidden.
    #[error("bad store URL: {0}; use {ACCEPTED_URLS}")]
    BadUrl(String),
    /// The store kind exists but this build was compiled without it.
    #[error("this build has no {0} store; enable the cargo feature `{0}`")]
    NotCompiled(&'static str),
    /// The schema was written by a newer Spool.
    #[error(
        "the store's schema is version {found}, newer than this build's {supported}; upgrade Spool"
    )]
    SchemaTooNew {
        /// Version found in the store.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The schema is older than this build's, and the command does not migrate.
    #[error(
        "the store's schema is version {found}, older than this build's {supported}; run `spool migrate` to upgrade it"
    )]
    SchemaTooOld {
        /// Version found in the store.
        found: i64,
        /// The version this build needs.
        supported: i64,
    },
    /// The server lacks something Spool needs (e.g. it is too old); the message says what.
    #[error("{0}")]
    ServerUnsupported(String),
    /// A bad argument to a store operation.
    #[error("{0}")]
    Invalid(String),
    /// Any other database error.
    #[error("store error: {0}")]
    Other(String),
}

impl StoreError {
    /// Whether retrying after a reconnect may help: the store is unreachable or busy.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Busy(_))
    }

    /// A [`StoreError::BadUrl`] about `url` (shown redacted): `why` says what is wrong.
    pub fn bad_url(url: &str, why: impl std::fmt::Display) -> StoreError {
        StoreError::BadUrl(format!("`{}`: {why}", redact_url(url)))
    }

    /// A [`StoreError::NoStore`] for `url` (shown redacted).
    pub fn no_store(url: &str) -> StoreError {
        StoreError::NoStore(redact_url(url))
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        // A pooler refusing the connection or a statement is misconfigured: stop with the cause.
        #[cfg(feature = "postgres")]
        if let Some(refusal) = super::postgres::pooler::pooler_misconfiguration(&e) {
            return refusal;
        }
        match &e {
            E::Io(_)
            | E::Tls(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed
            | E::Protocol(_) => StoreError::Unavailable(e.to_string()),
            E::Configuration(_) => StoreError::Misconfigured(e.to_string()),
            #[cfg(feature = "mysql")]
            E::Database(db)
                if let Some(number) = db
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .map(|e| e.number()) =>
            {
                if matches!(number, 1205 | 1213) {
                    // Lock wait timeout, deadlock (after the store's own retries).
                    StoreError::Busy(db.message().to_string())
                } else if super::mysql::is_unavailable_error(number) {
                    StoreError::Unavailable(db.message().to_string())
                } else if super::mysql::is_misconfigured_error(number) {
                    StoreError::Misconfigured(db.message().to_string())
                } else {
                    StoreError::Other(db.message().to_string())
                }
            }
            // The driver's own message, not its `Display`: PostgreSQL's adds "at line N", a
            // line of the server's C source, which only confuses a reader.
            E::Database(db) => classify_sqlstate(db.code().as_deref(), db.message()),
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// Sorts a server error by its SQLSTATE (both SQL servers use the standard classes).
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn classify_sqlstate(code: Option<&str>, message: &str) -> StoreError {
    let message = message.to_string();
    match code {
        // 08P01, protocol violation: what a pooler (PgBouncer) answers to a startup parameter
        // or statement it refuses. Retrying sends the same thing again.
        Some("08P01") => StoreError::Misconfigured(message),
        // Class 08: connection exceptions. 57P: admin shutdown, cannot connect now. 53300: too
        // many connections.
        Some(code) if code.starts_with("08") || code.starts_with("57P") || code == "53300" => {
            StoreError::Unavailable(message)
        }
        // 55P03: lock not available; 40001, 40P01: serialization failure, deadlock.
        Some("55P03" | "40001" | "40P01") => StoreError::Busy(message),
        // Class 28: invalid authorization (bad password, no such role). 3D000: no such
        // database. 42501: insufficient privilege.
        Some(code) if code.starts_with("28") || code == "3D000" || code == "42501" => {
            StoreError::Misconfigured(message)
        }
        _ => StoreError::Other(message),
    }
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            // Another connection held the lock for longer than the busy timeout.
            Some(C::DatabaseBusy | C::DatabaseLocked | C::FileLockingProtocolFailed) => {
                StoreError::Busy(e.to_string())
            }
            // The disk is failing or full: may pass.
            Some(C::SystemIoFailure | C::DiskFull) => StoreError::Unavailable(e.to_string()),
            // Not a database, or a read-only file or directory: fix the setup.
            Some(C::NotADatabase | C::ReadOnly | C::CannotOpen | C::PermissionDenied) => {
                StoreError::Misconfigured(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

#[cfg(feature = "redis")]
impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        use ::redis::{ErrorKind as K, ServerErrorKind as S};
        let unreachable = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || matches!(
                e.kind(),
                K::Server(S::BusyLoading | S::TryAgain | S::ClusterDown | S::MasterDown | S::ReadOnly)
                    | K::ClusterConnectionNotFound
            )
            // Out of memory: retrying later may succeed.
            || e.code() == Some("OOM");
        if unreachable {
            StoreError::Unavailable(e.to_string())
        } else if e.code() == Some("BUSY") {
            // A long script still running.
            StoreError::Busy(e.to_string())
        } else if matches!(e.kind(), K::AuthenticationFailed)
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
        {
            StoreError::Misconfigured(e.to_string())
        } else {
            StoreError::Other(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_url_errors_hide_secrets_and_name_the_accepted_forms() {
        let e = StoreError::bad_url("postgre://admin:pw@db/app?k=v", "unknown scheme `postgre`");
        let shown = e.to_string();
        assert!(!shown.contains("pw@"), "{shown}");
        assert!(
            shown.contains("postgre://admin:***@db/app?k=***"),
            "{shown}"
        );
        assert!(shown.contains("sqlite://PATH"), "{shown}");
        assert!(
            StoreError::no_store("redis://:pw@h")
                .to_string()
                .contains("redis://:***@h")
        );
    }

    #[cfg(any(feature = "postgres", feature = "mysql"))]
    #[test]
    fn sqlstates_are_sorted_into_the_three_kinds() {
        let kind = |code| match classify_sqlstate(Some(code), "m") {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Busy(_) => "busy",
            StoreError::Misconfigured(_) => "misconfigured",
            _ => "other",
        };
        assert_eq!(kind("08006"), "unavailable");
        assert_eq!(kind("57P01"), "unavailable");
        assert_eq!(kind("08P01"), "misconfigured");
        assert_eq!(kind("28P01"), "misconfigured");
        assert_eq!(kind("3D000"), "misconfigured");
        assert_eq!(kind("55P03"), "busy");
        assert_eq!(kind("23505"), "other");
    }
}
