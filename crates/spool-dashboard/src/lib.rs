//! Spool's web dashboard: pages, a JSON API under `/api/`, live updates by server-sent events,
//! Prometheus `/metrics`, and the `/livez` and `/health` probes, as one axum [`Router`] that
//! `spool dashboard` serves and an app can mount under a prefix of its own.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = spool::connect("sqlite://jobs.db").await?;
//! let dashboard = spool_dashboard::Dashboard::new(store).read_only(true).router();
//! let app = axum::Router::new().nest("/jobs", dashboard);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! Without a token it must only be reachable from this machine: [`check_bind`] refuses any
//! other address. With a token ([`Dashboard::token`]) every request needs it, as a bearer
//! header or the cookie the login form sets. The API is documented in `docs/dashboard.md`.

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, middleware, routing::get};
use spool::Store;

mod actions;
mod api;
mod assets;
mod auth;
mod counts;
mod listing;
mod live;
pub mod probes;
mod prometheus;
mod series;

/// A dashboard over one store; build its [`Router`] with [`Dashboard::router`].
#[derive(Clone)]
pub struct Dashboard {
    store: Arc<dyn Store>,
    read_only: bool,
    token: Option<String>,
    counts: Arc<counts::Counts>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("store", &self.store.backend())
            .field("read_only", &self.read_only)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Dashboard {
    /// A dashboard over `store`: actions allowed, no token.
    pub fn new(store: Arc<dyn Store>) -> Dashboard {
        Dashboard {
            store,
            read_only: false,
            token: None,
            counts: Arc::default(),
        }
    }

    /// Hides and refuses every action (retry, pause, delete, ...).
    pub fn read_only(mut self, read_only: bool) -> Dashboard {
        self.read_only = read_only;
        self
    }

    /// Requires this token on every request (an empty one counts as none).
    pub fn token(mut self, token: Option<String>) -> Dashboard {
        self.token = token.filter(|t| !t.trim().is_empty());
        self
    }

    /// The routes: pages at `/`, the API under `/api/`, `/metrics`, `/livez`, `/health`.
    /// `/livez` answers without the token, so an orchestrator's probe needs no secret.
    pub fn router(self) -> Router {
        let state = Arc::new(self);
        let guarded = Router::new()
            .merge(assets::routes())
            .merge(api::routes())
            .merge(actions::routes())
            .merge(live::routes())
            .route("/metrics", get(prometheus::metrics))
            .route("/health", get(probes::health))
            .route_layer(middleware::from_fn_with_state(state.clone(), auth::require))
            .merge(auth::routes())
            .with_state(state.clone());
        guarded.merge(probes::livez())
    }
}

/// Why the dashboard cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A bind other than loopback without a token.
    #[error(
        "refusing to serve the dashboard on {0} without a token: anyone who can reach it could read payloads and retry or delete jobs. Bind to 127.0.0.1 (the default), or set SPOOL_DASHBOARD_TOKEN or --token-file"
    )]
    Unprotected(SocketAddr),
}

/// Refuses to bind anywhere but loopback when there is no token.
///
/// ```
/// use spool_dashboard::check_bind;
/// assert!(check_bind("127.0.0.1:7070".parse().unwrap(), false).is_ok());
/// assert!(check_bind("0.0.0.0:7070".parse().unwrap(), false).is_err());
/// assert!(check_bind("0.0.0.0:7070".parse().unwrap(), true).is_ok());
/// ```
pub fn check_bind(addr: SocketAddr, has_token: bool) -> Result<(), DashboardError> {
    if has_token || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(DashboardError::Unprotected(addr))
    }
}

/// Shared by the handlers.
type Shared = Arc<Dashboard>;
