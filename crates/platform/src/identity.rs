//! Who is calling, proven between processes.
//!
//! Nothing a caller sends is identity. The gateway verifies the user's access token and, on
//! every gRPC call it makes, sends a short-lived internal identity token it signs with
//! `auth.internal_token_secret` (HS256, audience `socialflow-internal`, 60 s). Every
//! service verifies it in [`IdentityLayer`] before any handler runs and hands handlers a
//! typed [`Caller`] in the request's extensions; a call without a valid token is
//! `UNAUTHENTICATED`. A service calling another signs its own token ([`SigningLayer`]) for
//! the caller it attaches to the call ([`Caller::attach`]).

use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::Utc;
use futures::future::BoxFuture;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use telemetry::RequestContext;
use telemetry::grpc::take_ready;
use tower::{Layer, Service};
use uuid::Uuid;

use crate::config::InternalAuthSettings;
use crate::jwt::{self, Expiring};

/// The metadata the internal identity token travels in.
pub const IDENTITY_HEADER: &str = "x-socialflow-identity";
/// How long an internal token is valid: one call's worth, with room for clock skew.
pub const TOKEN_TTL_SECS: i64 = 60;
const AUDIENCE: &str = "socialflow-internal";
/// Calls that need no identity: the standard health service (probes, load balancers).
const UNAUTHENTICATED_PREFIXES: &[&str] = &["/grpc.health.v1.Health/"];

/// Who a call is made for, as the gateway verified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// No user signed in (registration, login, public reads).
    Anonymous,
    /// A signed-in user.
    User(Uuid),
    /// A signed-in user whose access token carries the `admin` role (the gateway checked
    /// it); everything a user may do, and the admin RPCs.
    Admin(Uuid),
}

impl Caller {
    pub fn user_id(self) -> Option<Uuid> {
        match self {
            Self::Anonymous => None,
            Self::User(id) | Self::Admin(id) => Some(id),
        }
    }

    /// The admin making `request`; `UNAUTHENTICATED` for nobody, `PERMISSION_DENIED` for a
    /// user without the role.
    pub fn require_admin<T>(request: &tonic::Request<T>) -> Result<Uuid, tonic::Status> {
        match Self::of(request) {
            Self::Admin(id) => Ok(id),
            Self::User(_) => Err(tonic::Status::permission_denied(
                "this needs the admin role",
            )),
            Self::Anonymous => Err(tonic::Status::unauthenticated("sign in first")),
        }
    }

    /// Whether `request` came from the process `service` (the token's issuer): for RPCs
    /// only another service may call.
    pub fn issued_by<T>(request: &tonic::Request<T>, service: &str) -> bool {
        request
            .extensions()
            .get::<Issuer>()
            .is_some_and(|issuer| issuer.0 == service)
    }

    /// The caller of `request`, as [`IdentityLayer`] verified it.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .extensions()
            .get::<Self>()
            .copied()
            .unwrap_or(Self::Anonymous)
    }

    /// The signed-in user making `request`; `UNAUTHENTICATED` when there is none.
    pub fn require_user<T>(request: &tonic::Request<T>) -> Result<Uuid, tonic::Status> {
        Self::of(request)
            .user_id()
            .ok_or_else(|| tonic::Status::unauthenticated("sign in first"))
    }

    /// A call made on this caller's behalf: [`SigningLayer`] signs the token for them.
    /// A call without a caller is made anonymously.
    pub fn attach<T>(self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.extensions_mut().insert(self);
        request
    }
}

/// The process that signed a verified internal token (`gateway`, `video-service`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(pub String);

#[derive(Debug, Serialize, Deserialize)]
struct InternalClaims {
    /// The process that signed the token.
    iss: String,
    aud: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<Uuid>,
    /// The user has the admin role.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    adm: bool,
    iat: i64,
    exp: i64,
}

impl Expiring for InternalClaims {
    fn expires_at(&self) -> i64 {
        self.exp
    }
}

/// Signs and verifies internal identity tokens.
#[derive(Clone)]
pub struct IdentityKey {
    secret: Arc<[u8]>,
    issuer: &'static str,
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentityKey({}, [REDACTED])", self.issuer)
    }
}

impl IdentityKey {
    /// The key of `auth.internal_token_secret`; tokens it signs name `issuer`.
    pub fn new(settings: &InternalAuthSettings, issuer: &'static str) -> Self {
        Self {
            secret: settings
                .internal_token_secret
                .expose_secret()
                .as_bytes()
                .into(),
            issuer,
        }
    }

    /// A token for `caller`, valid for [`TOKEN_TTL_SECS`].
    pub fn sign(&self, caller: Caller) -> String {
        let now = Utc::now().timestamp();
        jwt::sign(
            &self.secret,
            &InternalClaims {
                iss: self.issuer.to_owned(),
                aud: AUDIENCE.to_owned(),
                sub: caller.user_id(),
                adm: matches!(caller, Caller::Admin(_)),
                iat: now,
                exp: now + TOKEN_TTL_SECS,
            },
        )
    }

    /// The caller a token proves, or why it proves nothing.
    pub fn verify(&self, token: &str) -> Result<Caller, &'static str> {
        self.verify_issued(token).map(|(caller, _)| caller)
    }

    /// The caller a token proves and the process that signed it.
    pub fn verify_issued(&self, token: &str) -> Result<(Caller, Issuer), &'static str> {
        let claims: InternalClaims = jwt::verify(&self.secret, token, Utc::now().timestamp())
            .map_err(|e| match e {
                jwt::JwtError::Expired => "the internal identity token has expired",
                _ => "the internal identity token is invalid",
            })?;
        if claims.aud != AUDIENCE {
            return Err("the internal identity token is invalid");
        }
        Ok((
            match (claims.sub, claims.adm) {
                (Some(id), true) => Caller::Admin(id),
                (Some(id), false) => Caller::User(id),
                (None, _) => Caller::Anonymous,
            },
            Issuer(claims.iss),
        ))
    }
}

/// Server side: verifies the internal identity token of every call (health checks aside)
/// and puts the [`Caller`] in the request's extensions; answers `UNAUTHENTICATED` without
/// calling the service when the token is missing or invalid.
#[derive(Debug, Clone)]
pub struct IdentityLayer {
    key: IdentityKey,
}

impl IdentityLayer {
    pub fn new(key: IdentityKey) -> Self {
        Self { key }
    }
}

impl<S> Layer<S> for IdentityLayer {
    type Service = IdentityService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        IdentityService {
            inner,
            key: self.key.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdentityService<S> {
    inner: S,
    key: IdentityKey,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for IdentityService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let mut inner = take_ready(&mut self.inner);
        let path = req.uri().path();
        if UNAUTHENTICATED_PREFIXES.iter().any(|p| path.starts_with(p)) {
            return Box::pin(inner.call(req));
        }
        let verdict = req
            .headers()
            .get(IDENTITY_HEADER)
            .ok_or("this service only answers calls with an internal identity token")
            .and_then(|v| {
                v.to_str()
                    .map_err(|_| "the internal identity token is invalid")
            })
            .and_then(|token| self.key.verify_issued(token));
        let (caller, issuer) = match verdict {
            Ok(verified) => verified,
            Err(why) => {
                // Runs inside the telemetry layer's span: the refusal is measured and logged.
                tracing::warn!(reason = why, "call refused: no valid internal identity");
                let response = tonic::Status::unauthenticated(why).into_http();
                return Box::pin(std::future::ready(Ok(response)));
            }
        };
        req.extensions_mut().insert(caller);
        req.extensions_mut().insert(issuer);
        let fut = inner.call(req);
        Box::pin(async move {
            // Inside the request's context and span (the telemetry layer scopes this future).
            if let Some(id) = caller.user_id() {
                if let Some(ctx) = RequestContext::current() {
                    ctx.set_user_id(id.to_string());
                }
                tracing::Span::current().record("user_id", tracing::field::display(id));
            }
            fut.await
        })
    }
}

/// Client side: signs an internal identity token into every outgoing call, for the
/// [`Caller`] the call was made for ([`Caller::attach`]), anonymous otherwise. Identity is
/// passed as data, never taken from ambient state.
#[derive(Debug, Clone)]
pub struct SigningLayer {
    key: IdentityKey,
}

impl SigningLayer {
    pub fn new(key: IdentityKey) -> Self {
        Self { key }
    }
}

impl<S> Layer<S> for SigningLayer {
    type Service = SigningService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SigningService {
            inner,
            key: self.key.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SigningService<S> {
    inner: S,
    key: IdentityKey,
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for SigningService<S>
where
    S: Service<http::Request<ReqBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let caller = req
            .extensions()
            .get::<Caller>()
            .copied()
            .unwrap_or(Caller::Anonymous);
        let token = self.key.sign(caller);
        if let Ok(value) = http::HeaderValue::from_str(&token) {
            req.headers_mut()
                .insert(http::HeaderName::from_static(IDENTITY_HEADER), value);
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> IdentityKey {
        IdentityKey::new(
            &InternalAuthSettings {
                internal_token_secret: secret.to_owned().into(),
                allow_development_key: false,
            },
            "gateway",
        )
    }

    #[test]
    fn a_token_proves_its_caller_to_holders_of_the_same_key_only() {
        let k = key("an-internal-secret-of-more-than-32-bytes");
        let user = Uuid::new_v4();
        assert_eq!(
            k.verify(&k.sign(Caller::User(user))),
            Ok(Caller::User(user))
        );
        assert_eq!(k.verify(&k.sign(Caller::Anonymous)), Ok(Caller::Anonymous));
        assert_eq!(
            k.verify(&k.sign(Caller::Admin(user))),
            Ok(Caller::Admin(user))
        );
        let other = key("another-internal-secret-of-32-bytes-or-more");
        assert!(other.verify(&k.sign(Caller::User(user))).is_err());
        assert!(k.verify("garbage").is_err());
    }

    #[test]
    fn a_user_access_token_is_not_an_internal_token_even_under_the_same_key() {
        let secret = "a-shared-secret-of-more-than-32-bytes-long";
        let access = jwt::sign(
            secret.as_bytes(),
            &jwt::Claims {
                sub: Uuid::new_v4().to_string(),
                exp: Utc::now().timestamp() + 600,
                iat: Utc::now().timestamp(),
                jti: "j".into(),
                role: None,
            },
        );
        assert!(key(secret).verify(&access).is_err());
    }
}
