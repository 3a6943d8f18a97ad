//! Working through a connection pooler such as PgBouncer.
//!
//! A pooler in transaction mode hands each transaction to whichever server connection is
//! free, so nothing may outlive a transaction: no session settings, no named prepared
//! statements, no `LISTEN`. PgBouncer also refuses startup parameters it does not know
//! (`options`, `extra_float_digits`) unless its ini lists them in `ignore_startup_parameters`.
//!
//! The store therefore never sends `extra_float_digits` (PostgreSQL 12 and later print floats
//! exactly without it, and Spool reads results in binary anyway). In *pooled* mode (the URL
//! says `pgbouncer=true`, or the pooler refused the hot path's `options` startup parameter)
//! every statement is unnamed and runs inside a transaction of its own, the hot path sets
//! `synchronous_commit` with `SET LOCAL`, and wake-ups come from `listen_url` (a URL that
//! bypasses the pooler) or from polling.

use std::ops::{Deref, DerefMut};

use sqlx::{
    PgConnection, PgPool, Postgres, Transaction,
    pool::PoolConnection,
    postgres::{PgArguments, PgRow},
    query::{Query, QueryAs, QueryScalar},
};

use super::PostgresStore;
use crate::store::{StoreError, StoreResult};

/// The hot path's transactions in pooled mode: one round trip for both statements.
const BEGIN_HOT: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// What the pooler parameters of a store URL ask for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct PoolerParams {
    /// `pgbouncer=true`: pooled mode from the start.
    pub(super) pgbouncer: bool,
    /// `listen_url=URL` (percent-encoded): where `LISTEN` connects, past the pooler.
    pub(super) listen_url: Option<String>,
}

/// Takes `pgbouncer` and `listen_url` off a URL's query string (the driver does not know them).
pub(super) fn split_pooler_params(url: &str) -> StoreResult<(String, PoolerParams)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), PoolerParams::default()));
    };
    let mut params = PoolerParams::default();
    let mut rest = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "pgbouncer" => {
                params.pgbouncer = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(StoreError::BadUrl(format!(
                            "pgbouncer={other} (use pgbouncer=true or pgbouncer=false)"
                        )));
                    }
                }
            }
            "listen_url" => {
                let decoded = percent_decode(value).ok_or_else(|| {
                    StoreError::BadUrl("listen_url=… is not valid percent-encoded UTF-8".into())
                })?;
                params.listen_url = Some(decoded);
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, params))
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result is not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    if value
        .split('%')
        .skip(1)
        .any(|rest| rest.len() < 2 || !rest.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit))
    {
        return None;
    }
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// Whether `e` is a pooler refusing a startup parameter: PgBouncer answers
/// `unsupported startup parameter: NAME` (SQLSTATE 08P01) to any it does not know.
pub(super) fn is_startup_parameter_refusal(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.message().starts_with("unsupported startup parameter"))
}

/// A pooler's refusal, a misconfiguration that retrying cannot cure, as the error that says
/// what to change; `None` for any other error. Checked before the generic classification,
/// which would take PgBouncer's SQLSTATE 08P01 for an unreachable server.
pub(crate) fn pooler_misconfiguration(e: &sqlx::Error) -> Option<StoreError> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let message = db.message();
    let hint = if message.starts_with("unsupported startup parameter") {
        "the connection pooler refused a parameter of the URL: remove it from the URL, or list \
         it in `ignore_startup_parameters` in pgbouncer.ini"
    } else if matches!(db.code().as_deref(), Some("42P05" | "26000"))
        && message.contains("prepared statement")
    {
        "a prepared statement met another server connection: the store is behind a pooler in \
         transaction mode; add `pgbouncer=true` to the URL's query string"
    } else {
        return None;
    };
    Some(StoreError::Other(format!("{message} ({hint})")))
}

/// A connection for one unit of work: a plain pooled connection (autocommit), or in pooled
/// mode a transaction, so that an unnamed statement's parse and execution reach the same
/// server connection. Finish it with [`Unit::done`].
pub(super) enum Unit {
    Plain(PoolConnection<Postgres>),
    Tx(Transaction<'static, Postgres>),
}

impl Unit {
    /// Commits the transaction, if there is one.
    pub(super) async fn done(self) -> StoreResult<()> {
        if let Unit::Tx(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}

impl Deref for Unit {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            Unit::Plain(c) => c,
            Unit::Tx(t) => t,
        }
    }
}

impl DerefMut for Unit {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Unit::Plain(c) => c,
            Unit::Tx(t) => t,
        }
    }
}

impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unit::Plain(_) => "Unit::Plain",
            Unit::Tx(_) => "Unit::Tx",
        })
    }
}

impl PostgresStore {
    /// A statement of `sql/` (see [`PostgresStore::sql`]), prepared unnamed in pooled mode.
    pub(super) fn query(&self, template: &str) -> Query<'static, Postgres, PgArguments> {
        sqlx::query(self.sql(template)).persistent(!self.pooled)
    }

    /// [`PostgresStore::query`] decoding rows into `T`.
    pub(super) fn query_as<T>(&self, template: &str) -> QueryAs<'static, Postgres, T, PgArguments>
    where
        T: for<'r> sqlx::FromRow<'r, PgRow>,
    {
        sqlx::query_as(self.sql(template)).persistent(!self.pooled)
    }

    /// [`PostgresStore::query`] decoding the first column into `T`.
    pub(super) fn query_scalar<T>(
        &self,
        template: &str,
    ) -> QueryScalar<'static, Postgres, T, PgArguments>
    where
        (T,): for<'r> sqlx::FromRow<'r, PgRow>,
    {
        sqlx::query_scalar(self.sql(template)).persistent(!self.pooled)
    }

    /// A connection of `pool` for statements that need no transaction of their own (one in
    /// pooled mode).
    pub(super) async fn unit(&self, pool: &PgPool) -> StoreResult<Unit> {
        Ok(if self.pooled {
            Unit::Tx(pool.begin().await?)
        } else {
            Unit::Plain(pool.acquire().await?)
        })
    }

    /// A unit of work on the hot pool: its commit does not wait for the WAL flush (see
    /// [`PostgresStore::hot`]). Directly connected, the hot pool's sessions carry the setting;
    /// in pooled mode a transaction sets it locally.
    pub(super) async fn hot_unit(&self) -> StoreResult<Unit> {
        Ok(if self.pooled {
            Unit::Tx(self.hot.begin_with(BEGIN_HOT).await?)
        } else {
            Unit::Plain(self.hot.acquire().await?)
        })
    }

    /// A transaction on the hot pool (see [`PostgresStore::hot_unit`]).
    pub(super) async fn begin_hot(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(if self.pooled {
            self.hot.begin_with(BEGIN_HOT).await?
        } else {
            self.hot.begin().await?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooler_parameters_are_split_off() {
        assert_eq!(
            split_pooler_params("postgres://a@h/db").unwrap(),
            ("postgres://a@h/db".into(), PoolerParams::default())
        );
        let (url, params) = split_pooler_params(
            "postgres://a@h:6432/db?sslmode=disable&pgbouncer=true&listen_url=postgres%3A%2F%2Fa%3Ap%40ss%40h%3A5432%2Fdb",
        )
        .unwrap();
        assert_eq!(url, "postgres://a@h:6432/db?sslmode=disable");
        assert!(params.pgbouncer);
        assert_eq!(
            params.listen_url.as_deref(),
            Some("postgres://a:p@ss@h:5432/db")
        );
        assert!(matches!(
            split_pooler_params("postgres://h/db?pgbouncer=yes"),
            Err(StoreError::BadUrl(_))
        ));
    }
}
