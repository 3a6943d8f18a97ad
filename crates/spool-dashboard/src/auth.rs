//! The token: without one every request passes (the dashboard is bound to loopback, see
//! [`crate::check_bind`]); with one, every request needs it as `Authorization: Bearer TOKEN`
//! or as the cookie the login form sets (`HttpOnly`, `SameSite=Strict`). Each request carries
//! a [`Who`] for the action log.

use std::net::SocketAddr;

use axum::{
    Form, Router,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use serde::Deserialize;

use crate::Shared;

const COOKIE: &str = "spool_token";

/// Who made a request, for the action log: the client's address and how it got in.
#[derive(Debug, Clone)]
pub(crate) struct Who(pub(crate) String);

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/login", get(login_page).post(login))
}

/// Lets a request through if it carries the token (or none is set).
pub(crate) async fn require(
    State(dashboard): State<Shared>,
    mut request: Request,
    next: Next,
) -> Response {
    let addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "an unknown address".into());
    let how = match &dashboard.token {
        None => "no token set",
        Some(token) if presented(request.headers()).is_some_and(|t| same(t, token)) => "token",
        Some(_) => {
            let path = request.uri().path();
            if path.ends_with("/metrics") || path.contains("/api/") || path.ends_with("/health") {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "a token is required: send `Authorization: Bearer TOKEN`\n",
                )
                    .into_response();
            }
            return (StatusCode::UNAUTHORIZED, Html(LOGIN)).into_response();
        }
    };
    request
        .extensions_mut()
        .insert(Who(format!("{addr} ({how})")));
    next.run(request).await
}

/// The token a request presents: the bearer header, else the cookie.
fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
    })
}

/// Compares in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn login_page() -> Html<&'static str> {
    Html(LOGIN)
}

async fn login(State(dashboard): State<Shared>, Form(form): Form<Login>) -> Response {
    match &dashboard.token {
        Some(token) if same(form.token.trim(), token) => {
            let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            ([(header::SET_COOKIE, cookie)], Redirect::to("./")).into_response()
        }
        Some(_) => (StatusCode::UNAUTHORIZED, Html(LOGIN)).into_response(),
        None => Redirect::to("./").into_response(),
    }
}

const LOGIN: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Spool — sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:15px system-ui,sans-serif;display:grid;place-items:center;height:90vh;background:#f6f7f9}
form{background:#fff;padding:2em;border-radius:8px;box-shadow:0 1px 4px #0002}
input{font:inherit;padding:.4em;width:18em}button{font:inherit;padding:.4em 1em}</style></head>
<body><form method="post" action="login"><h1>Spool</h1>
<p><label>Dashboard token<br><input name="token" type="password" autofocus></label></p>
<p><button type="submit">Sign in</button></p></form></body></html>"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_bearer_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; spool_token=s3cret".parse().unwrap());
        assert_eq!(presented(&headers), Some("s3cret"));
        headers.insert(header::AUTHORIZATION, "Bearer other".parse().unwrap());
        assert_eq!(presented(&headers), Some("other"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
