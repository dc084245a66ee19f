//! The built frontend as browsers fetch it: precompressed variants picked by
//! Accept-Encoding, year-long caching only for trunk's content-hashed names, index.html and
//! client-side routes revalidated on every load, and the security headers on everything. The fixture is a fake dist whose .br/.gz
//! files hold marker bytes, so each response shows which file was sent.
mod common;

use std::path::PathBuf;

use bytes::Bytes;
use chat_server::Config;
use common::TestServer;
use http::{header, HeaderMap, StatusCode};
use http_body_util::{BodyExt, Empty};

const WASM: &str = "chat-frontend-3fc34f9d547cc1d8_bg.wasm";
/// Only a gzip copy: a browser that also accepts br gets gzip.
const JS: &str = "chat-frontend-3fc34f9d547cc1d8.js";
const FOREVER: &str = "public, max-age=31536000, immutable";

/// A dist directory removed when the test ends.
struct Dist(PathBuf);

impl Dist {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("chat-dist-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = [
            ("index.html", "<!doctype html><title>chat</title>"),
            ("index.html.br", "br:index"),
            ("index.html.gz", "gz:index"),
            (WASM, "\0asm plain"),
            (&format!("{WASM}.br"), "br:wasm"),
            (&format!("{WASM}.gz"), "gz:wasm"),
            (JS, "export default 1"),
            (&format!("{JS}.gz"), "gz:js"),
        ];
        for (name, body) in files {
            std::fs::write(dir.join(name), body).unwrap();
        }
        Dist(dir)
    }

    fn with(self, name: &str, body: &str) -> Self {
        std::fs::write(self.0.join(name), body).unwrap();
        self
    }

    async fn serve(&self) -> TestServer {
        TestServer::start_with(Config {
            static_dir: Some(self.0.clone()),
            ..Config::for_tests()
        })
        .await
    }
}

impl Drop for Dist {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(&name).map_or("", |v| v.to_str().unwrap())
    }
}

async fn get(server: &TestServer, path: &str, extra: &[(header::HeaderName, &str)]) -> Got {
    let mut req = http::Request::get(format!("http://{}{path}", server.addr));
    for (name, value) in extra {
        req = req.header(name, *value);
    }
    let res = server
        .web()
        .send(req.body(Empty::<Bytes>::new()).unwrap())
        .await;
    let (parts, body) = res.into_parts();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn accept(encodings: &str) -> [(header::HeaderName, &str); 1] {
    [(header::ACCEPT_ENCODING, encodings)]
}

#[tokio::test]
async fn hashed_assets_come_precompressed_and_cached_for_a_year() {
    let dist = Dist::new("hashed");
    let server = dist.serve().await;
    let wasm = format!("/{WASM}");
    for (accepts, encoding, body) in [
        ("gzip, deflate, br", "br", "br:wasm"),
        ("gzip", "gzip", "gz:wasm"),
        ("", "", "\0asm plain"),
    ] {
        let got = get(&server, &wasm, &accept(accepts)).await;
        assert_eq!(got.status, StatusCode::OK, "{accepts:?}");
        assert_eq!(
            got.header(header::CONTENT_ENCODING),
            encoding,
            "{accepts:?}"
        );
        assert_eq!(got.body, body, "{accepts:?}");
        // Streaming compilation needs the wasm type, whichever file was sent.
        assert_eq!(got.header(header::CONTENT_TYPE), "application/wasm");
        assert_eq!(got.header(header::CACHE_CONTROL), FOREVER);
        assert_eq!(got.header(header::VARY), "accept-encoding");
    }

    let js = get(&server, &format!("/{JS}"), &accept("br, gzip")).await;
    assert_eq!(js.header(header::CONTENT_ENCODING), "gzip", "no .br copy");
    assert_eq!(js.body, "gz:js");
    assert_eq!(js.header(header::CACHE_CONTROL), FOREVER);
    assert!(js.header(header::CONTENT_TYPE).contains("javascript"));
}

#[tokio::test]
async fn index_and_client_routes_are_revalidated_every_load() {
    let dist = Dist::new("index");
    let server = dist.serve().await;
    for path in ["/", "/index.html", "/room/general"] {
        let plain = get(&server, path, &[]).await;
        assert_eq!(plain.status, StatusCode::OK, "{path}");
        assert_eq!(plain.body, "<!doctype html><title>chat</title>", "{path}");
        assert_eq!(plain.header(header::CACHE_CONTROL), "no-cache", "{path}");
        assert!(plain.header(header::CONTENT_TYPE).starts_with("text/html"));

        let br = get(&server, path, &accept("br")).await;
        assert_eq!(br.header(header::CONTENT_ENCODING), "br", "{path}");
        assert_eq!(br.body, "br:index", "{path}");
        assert_eq!(br.header(header::CACHE_CONTROL), "no-cache", "{path}");
        assert_eq!(br.header(header::VARY), "accept-encoding", "{path}");

        // Revalidating costs a 304, not the page.
        let modified = plain.header(header::LAST_MODIFIED).to_owned();
        assert!(!modified.is_empty(), "{path}");
        let again = get(&server, path, &[(header::IF_MODIFIED_SINCE, &modified)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body.is_empty());
    }
}

#[tokio::test]
async fn a_missing_hashed_asset_is_a_404_never_the_page() {
    let dist = Dist::new("missing");
    let server = dist.serve().await;
    // An old page asking for the previous release's script must fail visibly: index.html
    // in its place would be cached for a year under that name.
    let got = get(
        &server,
        "/chat-frontend-0123456789abcdef.js",
        &accept("br, gzip"),
    )
    .await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert_ne!(got.header(header::CACHE_CONTROL), FOREVER);
    assert!(!got.body.starts_with(b"<!doctype"));
}

#[tokio::test]
async fn a_missing_file_is_a_404_and_the_icons_are_served_as_what_they_are() {
    let dist = Dist::new("files");
    let server = dist.serve().await;
    // Without the file, a path with an extension is not a client-side route.
    for path in [
        "/favicon.ico",
        "/sw.js",
        "/manifest.webmanifest",
        "/icon-192.png",
    ] {
        let got = get(&server, path, &accept("br, gzip")).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!got.body.starts_with(b"<!doctype"), "{path}");
    }

    // Kept to the end: dropping it deletes the directory.
    let _dist = dist
        .with("favicon.ico", "\0\0\x01\0ico")
        .with("sw.js", "self.addEventListener('fetch', () => {});")
        .with("manifest.webmanifest", "{}");
    for (path, mime) in [
        ("/favicon.ico", "image/x-icon"),
        ("/sw.js", "javascript"),
        ("/manifest.webmanifest", "application/manifest+json"),
    ] {
        let got = get(&server, path, &[]).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        assert!(
            got.header(header::CONTENT_TYPE).contains(mime),
            "{path}: {}",
            got.header(header::CONTENT_TYPE)
        );
        // Fixed names change with each release: checked on every use, like index.html.
        assert_eq!(got.header(header::CACHE_CONTROL), "no-cache", "{path}");
    }
    // Client-side routes still get the page.
    let route = get(&server, "/room/general", &[]).await;
    assert_eq!(route.status, StatusCode::OK);
    assert!(route.body.starts_with(b"<!doctype"));
}

/// The policy the page runs under (frontend/e2e runs the real page under it).
const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
                   img-src 'self'; manifest-src 'self'; worker-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'; object-src 'none'";

#[tokio::test]
async fn every_file_carries_the_security_headers() {
    let dist = Dist::new("headers");
    let server = dist.serve().await;
    let wasm = format!("/{WASM}");
    for path in [
        "/",
        "/index.html",
        "/room/general",
        &wasm,
        "/missing-0123456789abcdef.js",
    ] {
        let got = get(&server, path, &accept("br, gzip")).await;
        assert_eq!(got.header(header::CONTENT_SECURITY_POLICY), CSP, "{path}");
        assert_eq!(
            got.header(header::X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{path}"
        );
        assert_eq!(got.header(header::REFERRER_POLICY), "no-referrer", "{path}");
    }
}

#[tokio::test]
async fn a_page_built_for_another_api_origin_may_call_it() {
    let dist = Dist::new("api-origin").with("api-origin", "https://api.example.com\n");
    let server = dist.serve().await;
    let got = get(&server, "/", &[]).await;
    let csp = got.header(header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("; connect-src 'self' https://api.example.com; "),
        "{csp}"
    );
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval';"),
        "{csp}"
    );
}

#[tokio::test]
async fn a_recorded_api_origin_that_is_not_one_is_ignored() {
    // Written by hand, say: it must not open the policy up.
    let dist = Dist::new("bad-origin").with("api-origin", "https://a.example; script-src *");
    let server = dist.serve().await;
    let got = get(&server, "/", &[]).await;
    assert_eq!(got.header(header::CONTENT_SECURITY_POLICY), CSP);
}
