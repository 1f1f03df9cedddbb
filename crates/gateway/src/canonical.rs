//! One spelling per path, before anything looks at it.
//!
//! actix-web's router matches the percent-decoded path, while `match_pattern()` (which the
//! rate limiter and the metrics use to name the route) looks at the raw one: `/auth/%6Cogin`
//! was served by the login route yet limited and measured as no route at all. Rewriting the
//! request's path into its one canonical spelling first — escapes of ordinary characters
//! decoded, the remaining escapes in upper case, repeated slashes merged, a trailing slash
//! dropped — makes every later decision see what the router serves.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse, Url};
use actix_web::http::Uri;
use actix_web::http::uri::PathAndQuery;
use actix_web::middleware::Next;

/// A byte a path may carry as it is (RFC 3986 pchar and `/`, without `%`).
fn plain(b: u8) -> bool {
    matches!(b,
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
        | b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+'
        | b',' | b';' | b'=' | b':' | b'@' | b'/')
}

/// Whether `raw` is already its canonical spelling: plain bytes only, no empty segment, no
/// trailing slash. What nearly every request is, checked without allocating.
fn is_canonical(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    raw == "/"
        || (bytes.first() == Some(&b'/')
            && bytes.last() != Some(&b'/')
            && bytes.iter().all(|&b| plain(b))
            && !bytes.windows(2).any(|w| w == b"//"))
}

/// The canonical spelling of `raw` (a request path), as the router would read it.
pub fn canonical_path(raw: &str) -> String {
    // What the router matches: escapes decoded, except `%`, `/` and `+` (kept escaped).
    let decoded = match raw.parse::<Uri>() {
        Ok(uri) => Url::new(uri).path().to_owned(),
        Err(_) => raw.to_owned(),
    };
    let bytes = decoded.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                out.push('%');
                out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
                i += 3;
                continue;
            }
            b'/' if out.ends_with('/') => {}
            b if plain(b) => out.push(char::from(b)),
            // Anything else (a decoded space, a non-ASCII byte, a lone `%`) escaped again.
            _ => out.push_str(&format!("%{b:02X}")),
        }
        i += 1;
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The middleware: outermost, so telemetry, the rate limiter and the router all see the
/// canonical path.
pub async fn canonicalize(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let original = req.head().uri.path();
    if is_canonical(original) {
        return next.call(req).await;
    }
    let canonical = canonical_path(original);
    if canonical != original {
        let mut parts = req.head().uri.clone().into_parts();
        let path_and_query = match parts.path_and_query.as_ref().and_then(PathAndQuery::query) {
            Some(query) => format!("{canonical}?{query}"),
            None => canonical,
        };
        if let Ok(pq) = path_and_query.parse::<PathAndQuery>() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                req.match_info_mut().get_mut().update(&uri);
                req.head_mut().uri = uri;
            }
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_path_has_one_canonical_form() {
        for spelling in [
            "/api/v1/auth/login",
            "/api/v1/auth/%6Cogin",
            "/api/v1/auth/%6cogin",
            "/api/v1/auth/lo%67%69n",
            "/api/v1/%61uth/login",
            "/api/v1//auth/login",
            "//api/v1/auth/login",
            "/api/v1/auth/login/",
            "/api/v1/auth/login//",
            "/%61%70%69/v1/auth/login",
        ] {
            assert_eq!(canonical_path(spelling), "/api/v1/auth/login", "{spelling}");
        }
    }

    #[test]
    fn escapes_the_router_keeps_stay_escaped_in_upper_case() {
        assert_eq!(
            canonical_path("/api/v1/auth%2flogin"),
            "/api/v1/auth%2Flogin"
        );
        assert_eq!(canonical_path("/a%25b"), "/a%25b");
        assert_eq!(canonical_path("/a%20b"), "/a%20b");
        assert_eq!(canonical_path("/"), "/");
        assert_eq!(canonical_path("///"), "/");
    }

    #[test]
    fn the_fast_check_agrees_with_the_rewrite() {
        for path in [
            "/",
            "/health",
            "/api/v1/videos/0b7c",
            "/api/v1//videos",
            "/api/v1/videos/",
            "//",
            "/a%20b",
            "/a%2fb",
            "/a b",
            "/é",
            "",
            "a",
            "/a/./b",
            "/~user",
            "/x;y=1",
        ] {
            if is_canonical(path) {
                assert_eq!(canonical_path(path), path, "{path:?} is called canonical");
            }
        }
        assert!(is_canonical("/api/v1/videos/0b7c"));
        assert!(!is_canonical("/api/v1/videos/"));
        assert!(!is_canonical("/a%41"));
    }
}
