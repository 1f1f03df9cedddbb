//! The identity of the request being served: request id, correlation id and, once
//! authenticated, the user id. Set by the HTTP and gRPC server adapters for the duration of
//! the request, read by the log formatter and the gRPC client adapter (which forwards it).

use std::future::Future;
use std::sync::{Arc, OnceLock};

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Metadata/header names the context travels in between processes.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";

#[derive(Debug, Clone)]
pub struct RequestContext {
    request_id: String,
    correlation_id: String,
    user_id: Arc<OnceLock<String>>,
}

impl RequestContext {
    pub fn new(request_id: String, correlation_id: String) -> Self {
        Self {
            request_id,
            correlation_id,
            user_id: Arc::default(),
        }
    }

    /// The context of the request the current task is serving, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `fut` with this context as the current one.
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, fut)
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user_id.get().map(String::as_str)
    }

    /// Records who is making the request, for logs and spans; the first value set wins.
    /// Only a verified identity belongs here (the gateway's access token check, a
    /// service's internal token check), and nothing reads it to authorise.
    pub fn set_user_id(&self, user_id: impl Into<String>) {
        // A second, different value would be a bug in the auth layer; keep the first.
        let _ = self.user_id.set(user_id.into());
    }
}

/// A fresh request id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Accepts a client-supplied id only if it is short and made of safe characters, so a
/// header cannot inject anything into logs or downstream metadata.
pub fn sanitize_id(raw: &str) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_safe() {
        assert_eq!(
            sanitize_id("abc-123_x.y:z").as_deref(),
            Some("abc-123_x.y:z")
        );
        assert_eq!(sanitize_id(""), None);
        assert_eq!(sanitize_id("a b"), None);
        assert_eq!(sanitize_id("x\n{\"level\":\"error\"}"), None);
        assert_eq!(sanitize_id(&"a".repeat(129)), None);
    }

    #[tokio::test]
    async fn the_context_is_visible_inside_its_scope_only() {
        assert!(RequestContext::current().is_none());
        let ctx = RequestContext::new("r1".into(), "c1".into());
        ctx.scope(async {
            let inner = RequestContext::current().expect("in scope");
            assert_eq!(inner.request_id(), "r1");
            inner.set_user_id("u1");
            assert_eq!(
                RequestContext::current()
                    .and_then(|c| c.user_id().map(str::to_owned))
                    .as_deref(),
                Some("u1")
            );
        })
        .await;
        assert!(RequestContext::current().is_none());
    }
}
