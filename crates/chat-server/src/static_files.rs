//! The built frontend (trunk's dist/), served so that a returning visitor downloads nothing
//! it already has and still picks up a new release at once.
//!
//! trunk names every asset after a hash of its content (`chat-frontend-3fc34f9d547cc1d8_bg.wasm`),
//! so a file under such a name never changes: it is cached for a year and never revalidated.
//! index.html keeps its name across releases and is what points at the new hashes, so it (and
//! the SPA fallback, which is index.html too) is revalidated on every load. Only a path
//! without a file extension falls back to index.html: a missing file (`/favicon.ico` on a
//! build without one, an old release's script) is a 404, never the page under its name. The build writes
//! brotli and gzip copies next to each file (frontend/compress.mjs), so nothing is compressed
//! per request; ServeDir picks the best one the browser accepts. Every file goes out with
//! the page's security headers (`page_headers`).
use std::path::Path;

use axum::{
    extract::{Request, State},
    response::{IntoResponse, Response},
    Router,
};
use http::{header, HeaderValue, StatusCode};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::page_headers::PageHeaders;

/// Hashed names: a year, and no revalidation while fresh (`immutable`).
const FOREVER: &str = "public, max-age=31536000, immutable";
/// Everything else may be stored but is checked (Last-Modified) before each use.
const REVALIDATE: &str = "no-cache";

#[derive(Clone)]
struct Dist {
    /// Exactly the files present: a missing hashed asset is a 404, not index.html under
    /// a year-long cache lifetime, and a missing icon is a 404, not HTML.
    assets: ServeDir,
    /// The files present, else index.html, so client-side routes survive a reload.
    pages: ServeDir<ServeFile>,
    headers: PageHeaders,
}

/// Serves `dir`; without a built frontend there, every path explains how to build it.
pub fn router(dir: Option<&Path>) -> Router {
    let Some(dir) = dir.filter(|d| d.join("index.html").is_file()) else {
        if let Some(dir) = dir {
            tracing::warn!(dir = %dir.display(), "no index.html here: the frontend is not built (run trunk build)");
        }
        return Router::new().fallback(|| async {
            (StatusCode::NOT_FOUND, "The frontend is not built: run `trunk build --release` and start the server with --static-dir dist.\n")
                .into_response()
        });
    };
    let assets = ServeDir::new(dir).precompressed_br().precompressed_gzip();
    let index = ServeFile::new(dir.join("index.html"))
        .precompressed_br()
        .precompressed_gzip();
    let pages = assets.clone().fallback(index);
    let headers = PageHeaders::for_dist(dir);
    Router::new().fallback(serve).with_state(Dist {
        assets,
        pages,
        headers,
    })
}

async fn serve(State(dist): State<Dist>, req: Request) -> Response {
    let hashed = is_hashed(req.uri().path());
    let result = if hashed || names_a_file(req.uri().path()) {
        dist.assets.oneshot(req).await
    } else {
        dist.pages.oneshot(req).await
    };
    let mut res = match result {
        Ok(res) => res.map(axum::body::Body::new),
        Err(never) => match never {},
    };
    let ok = res.status().is_success() || res.status() == StatusCode::NOT_MODIFIED;
    let cache = if hashed && ok { FOREVER } else { REVALIDATE };
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // The same URL answers with br, gzip or plain bytes: caches must key on the encoding.
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    dist.headers.apply(headers);
    res
}

/// Whether the last path segment has a file extension (`/favicon.ico`, `/sw.js`): a file
/// the build writes or not, never a client-side route.
fn names_a_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    name.rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && !ext.is_empty())
}

/// Whether the last path segment carries trunk's content hash: `<stem>-<hex>.<ext>`, or
/// `<stem>-<hex>_bg.wasm` for the wasm. trunk writes the 64-bit hash as `{:x}`, without
/// leading zeros, so it is up to 16 digits; fewer than 8 happens once in 16^9 builds, and
/// requiring 8 keeps ordinary names like `logo-dark.svg` out.
fn is_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    let Some((stem, _ext)) = name.rsplit_once('.') else {
        return false;
    };
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    let Some((base, hash)) = stem.rsplit_once('-') else {
        return false;
    };
    !base.is_empty()
        && (8..=16).contains(&hash.len())
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::{is_hashed, names_a_file};

    #[test]
    fn files_and_routes() {
        for path in [
            "/favicon.ico",
            "/sw.js",
            "/index.html",
            "/icons/icon-192.png",
        ] {
            assert!(names_a_file(path), "{path}");
        }
        for path in [
            "/",
            "/room/general",
            "/room/",
            "/.well-known/",
            "/room.",
            "/.hidden",
        ] {
            assert!(!names_a_file(path), "{path}");
        }
    }

    #[test]
    fn trunk_names_are_hashed() {
        for path in [
            "/chat-frontend-3fc34f9d547cc1d8_bg.wasm",
            "/chat-frontend-3fc34f9d547cc1d8.js",
            "/style-be73202754b5eaec.css",
            // No leading zeros in trunk's hash: 15 digits happen one build in 16.
            "/style-e73202754b5eaec.css",
            "/nested/dir/app-0123456789abcdef.js",
        ] {
            assert!(is_hashed(path), "{path}");
        }
    }

    #[test]
    fn other_names_are_not() {
        for path in [
            "/",
            "/index.html",
            "/room/general",
            "/logo-dark.svg",
            "/style.css",
            "/chat-frontend-3FC34F9D547CC1D8.js",
            "/chat-frontend-3fc34f9d547cc1d8",
            "/-3fc34f9d547cc1d8.js",
            "/chat-frontend-3fc34f9d547cc1d80.js",
            "/chat-frontend-3fc34f9d547cc1d8.js/",
        ] {
            assert!(!is_hashed(path), "{path}");
        }
    }
}
