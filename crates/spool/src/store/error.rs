//! Typed store errors: they tell the worker whether to reconnect, drop a result, or give up.

/// Something a store operation could not do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server or file can't be reached right now; retry with backoff (D-3).
    #[error("store unavailable: {0}; check that the server is running and the URL is right")]
    Unavailable(String),
    /// The URL names no store this build knows.
    #[error(
        "unsupported store URL `{0}`: use sqlite://PATH, postgres://USER@HOST/DB, mysql://USER@HOST/DB or redis://HOST"
    )]
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
    /// Whether retrying after a reconnect may help.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
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
            #[cfg(feature = "mysql")]
            E::Database(db)
                if db
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .is_some_and(|e| super::mysql::is_unavailable_error(e.number())) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            E::Database(db) => match db.code().as_deref() {
                // SQLSTATE class 08: connection exceptions (both servers). PostgreSQL 57P: admin
                // shutdown, cannot connect now.
                Some(code) if code.starts_with("08") || code.starts_with("57P") => {
                    StoreError::Unavailable(e.to_string())
                }
                _ => StoreError::Other(e.to_string()),
            },
            _ => StoreError::Other(e.to_string()),
        }
    }
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            // Busy / locked beyond the busy timeout, or the file can't be read or written.
            Some(
                C::DatabaseBusy
                | C::DatabaseLocked
                | C::SystemIoFailure
                | C::CannotOpen
                | C::DiskFull
                | C::FileLockingProtocolFailed,
            ) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Other(e.to_string()),
        }
    }
}

#[cfg(feature = "redis")]
impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        use ::redis::{ErrorKind as K, ServerErrorKind as S};
        let transient = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || matches!(
                e.kind(),
                K::Server(
                    S::BusyLoading | S::TryAgain | S::ClusterDown | S::MasterDown | S::ReadOnly
                ) | K::ClusterConnectionNotFound
            )
            // Out of memory, or a long script still running: retrying later may succeed.
            || matches!(e.code(), Some("OOM" | "BUSY"));
        if transient {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Other(e.to_string())
        }
    }
}
