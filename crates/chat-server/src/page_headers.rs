//! The security headers on the page: a Content-Security-Policy under which only the page's
//! own files run (no inline script, no script from elsewhere, no eval beyond compiling its
//! wasm), it may only call its own origin and its API, and no other site may frame it;
//! plus no MIME sniffing and no Referer. The page is built to run under it (trunk's inline
//! loader is moved into a file, frontend/csp.mjs), so a script injected into it is refused.
use std::path::Path;

use http::{header, HeaderMap, HeaderValue, Uri};

/// Written into dist/ by the build (frontend/csp.mjs) when the page calls an API on another
/// origin (`CHAT_API_URL`): that origin, on one line.
pub const API_ORIGIN_FILE: &str = "api-origin";

/// The headers added to every file of the page, computed once at start.
#[derive(Clone, Debug)]
pub struct PageHeaders {
    csp: HeaderValue,
}

impl PageHeaders {
    /// The policy for the page in `dist`: connect-src also names the API origin the build
    /// recorded there, if any.
    pub fn for_dist(dist: &Path) -> Self {
        let recorded = std::fs::read_to_string(dist.join(API_ORIGIN_FILE)).ok();
        let api = recorded.as_deref().map(str::trim).and_then(|raw| {
            let origin = origin(raw);
            if origin.is_none() {
                tracing::warn!(
                    file = %dist.join(API_ORIGIN_FILE).display(),
                    value = raw,
                    "not an origin (scheme://host[:port]); the page may only call its own origin"
                );
            }
            origin
        });
        Self::new(api.as_deref())
    }

    fn new(api_origin: Option<&str>) -> Self {
        let connect = match api_origin {
            Some(origin) => format!("'self' {origin}"),
            None => "'self'".to_owned(),
        };
        let policy = [
            // Anything not named below (fonts, media, frames) is refused.
            "default-src 'none'".to_owned(),
            // Its own module scripts; 'wasm-unsafe-eval' lets them compile the wasm and
            // allows no eval of JavaScript.
            "script-src 'self' 'wasm-unsafe-eval'".to_owned(),
            "style-src 'self'".to_owned(),
            "img-src 'self'".to_owned(),
            // The web app manifest and the service worker (frontend/sw.js), both the page's.
            "manifest-src 'self'".to_owned(),
            "worker-src 'self'".to_owned(),
            // The wasm download and the grpc-web calls.
            format!("connect-src {connect}"),
            "base-uri 'none'".to_owned(),
            // The page's forms are handled by the app and never submitted.
            "form-action 'none'".to_owned(),
            "frame-ancestors 'none'".to_owned(),
            "object-src 'none'".to_owned(),
        ]
        .join("; ");
        PageHeaders {
            csp: HeaderValue::from_str(&policy).expect("the policy is plain ASCII"),
        }
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        // The page's URL (its room) is nobody else's business, its API's included.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
}

/// `raw` as a CSP source for exactly one origin, or None when it is not an http(s) origin
/// (anything else could smuggle more sources or directives into the policy).
fn origin(raw: &str) -> Option<String> {
    let uri: Uri = raw.parse().ok()?;
    let scheme = uri
        .scheme_str()
        .filter(|s| matches!(*s, "http" | "https"))?;
    let authority = uri.authority()?.as_str();
    let path_ok = matches!(uri.path(), "" | "/") && uri.query().is_none();
    let plain = authority
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    (path_ok && plain).then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csp(api: Option<&str>) -> String {
        let mut headers = HeaderMap::new();
        PageHeaders::new(api).apply(&mut headers);
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn same_origin_policy() {
        let policy = csp(None);
        for directive in [
            "default-src 'none'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "connect-src 'self';",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "manifest-src 'self'",
            "worker-src 'self'",
        ] {
            assert!(policy.contains(directive), "{directive} in {policy}");
        }
        assert!(!policy.contains("unsafe-inline"));
    }

    #[test]
    fn the_api_origin_joins_connect_src_only() {
        let policy = csp(Some("https://api.example.com"));
        assert!(policy.contains("connect-src 'self' https://api.example.com;"));
        assert_eq!(policy.matches("api.example.com").count(), 1);
    }

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            origin("https://api.example.com").as_deref(),
            Some("https://api.example.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            origin("http://[::1]:8080").as_deref(),
            Some("http://[::1]:8080")
        );
        for bad in [
            "",
            "api.example.com",
            "ftp://api.example.com",
            "https://api.example.com/grpc",
            "https://api.example.com?x=1",
            "https://user@api.example.com",
            "https://a.com; script-src *",
            "https://a.com *",
        ] {
            assert_eq!(origin(bad), None, "{bad:?}");
        }
    }
}
