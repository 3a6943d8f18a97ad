//! Fresh PostgreSQL schemas reached through PgBouncer (see `bouncer`): Spool's stores connect
//! through it; the fixture's raw writes and clean-up go straight to PostgreSQL.

use super::{Fresh, Location, postgres, with_param};
use crate::support::bouncer::{PoolMode, bouncer_url};

/// A fresh schema reached through PgBouncer in `mode`. The URL is the one a user would write:
/// `?pgbouncer=true` in transaction mode; none in session mode, where the store finds out by
/// itself.
pub(crate) async fn pgbouncer(mode: PoolMode) -> Option<Fresh> {
    let direct = postgres().await?;
    let pooled = bouncer_url(mode).await?;
    let Location::Schema { base, name } = direct.location else {
        unreachable!("a PostgreSQL location is a schema")
    };
    let flagged = match mode {
        PoolMode::Session | PoolMode::SessionIgnoringFloatDigits | PoolMode::TransactionHidden => {
            pooled.clone()
        }
        PoolMode::Transaction => with_param(&pooled, "pgbouncer=true"),
    };
    Some(Fresh {
        url: with_param(&flagged, &format!("spool_schema={name}")),
        backend: "postgres",
        location: Location::Pooled {
            pooled: flagged,
            direct: base,
            name,
        },
    })
}
