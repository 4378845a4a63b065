//! The dashboard's static files, embedded in the binary: `/ui/static/app.css` and
//! `/ui/static/live.js`. No session is needed (the login page uses the stylesheet). Each answer has
//! its exact content type, `nosniff` (from the `/ui` headers), `Cache-Control: no-cache` and a strong
//! `ETag` (a hash of the content): browsers revalidate with `If-None-Match` and get a `304` until the
//! daemon is upgraded, so a new version is never hidden behind a stale cache.

pub mod style_check;
#[cfg(test)]
mod tests;

use crate::state::AppState;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The stylesheet.
pub const APP_CSS: &str = include_str!("static/app.css");
/// The live feed's script.
pub const LIVE_JS: &str = include_str!("static/live.js");

struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: String,
}

fn asset(body: &'static str, content_type: &'static str) -> Asset {
    let h = Sha256::digest(body.as_bytes());
    Asset {
        body,
        content_type,
        etag: format!("\"{}\"", hex::encode(&h[..12])),
    }
}

static CSS: LazyLock<Asset> = LazyLock::new(|| asset(APP_CSS, "text/css; charset=utf-8"));
static JS: LazyLock<Asset> = LazyLock::new(|| asset(LIVE_JS, "text/javascript; charset=utf-8"));

/// The static routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/ui/static/app.css",
            get(|h: HeaderMap| async move { serve(&CSS, &h) }),
        )
        .route(
            "/ui/static/live.js",
            get(|h: HeaderMap| async move { serve(&JS, &h) }),
        )
}

fn serve(a: &Asset, headers: &HeaderMap) -> Response {
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == a.etag
        });
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, a.body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&a.etag) {
        h.insert(header::ETAG, v);
    }
    resp
}
