//! JWTs (RFC 7519) signed with HMAC-SHA256: the users' access tokens (user-service signs
//! them at login and refresh; the gateway verifies them itself, with no call per request)
//! and the internal identity tokens between processes ([`crate::identity`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Claims that expire.
pub trait Expiring {
    /// Expiry, seconds since the epoch.
    fn expires_at(&self) -> i64;
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The claims we issue and require.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Unique token id.
    pub jti: String,
    /// `admin` for administrators; absent for everyone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Expiring for Claims {
    fn expires_at(&self) -> i64 {
        self.exp
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not HS256")]
    Algorithm,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn mac(secret: &[u8]) -> HmacSha256 {
    #[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    HmacSha256::new_from_slice(secret).expect("HMAC takes any key length")
}

/// Signs `claims` into a compact JWT.
pub fn sign<C: Serialize>(secret: &[u8], claims: &C) -> String {
    let header = URL_SAFE_NO_PAD.encode(HEADER);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut mac = mac(secret);
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Verifies signature, algorithm and expiry (`now` in seconds since the epoch).
pub fn verify<C: DeserializeOwned + Expiring>(
    secret: &[u8],
    token: &str,
    now: i64,
) -> Result<C, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header_part = header;
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(JwtError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(JwtError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    let mut mac = mac(secret);
    mac.update(format!("{header_part}.{payload}").as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::Signature)?;
    let claims: C = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(JwtError::Malformed)?;
    if claims.expires_at() <= now {
        return Err(JwtError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "0190a000-0000-7000-8000-000000000001".into(),
            exp,
            iat: 1_000,
            jti: "j1".into(),
            role: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let token = sign(SECRET, &claims(2_000));
        assert_eq!(verify(SECRET, &token, 1_500), Ok(claims(2_000)));
        assert_eq!(
            verify::<Claims>(SECRET, &token, 2_000),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn tampering_a_wrong_key_and_other_algorithms_are_refused() {
        let token = sign(SECRET, &claims(2_000));
        assert_eq!(
            verify::<Claims>(b"another-secret-another-secret-xx", &token, 1_500),
            Err(JwtError::Signature)
        );
        let (head, rest) = token.split_once('.').expect("three parts");
        let (_, signature) = rest.split_once('.').expect("three parts");
        let forged_payload =
            URL_SAFE_NO_PAD.encode(r#"{"sub":"someone-else","exp":9999999999,"iat":1,"jti":"x"}"#);
        assert_eq!(
            verify::<Claims>(
                SECRET,
                &format!("{head}.{forged_payload}.{signature}"),
                1_500
            ),
            Err(JwtError::Signature)
        );
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            verify::<Claims>(SECRET, &format!("{none_header}.{forged_payload}."), 1_500),
            Err(JwtError::Algorithm)
        );
        assert_eq!(
            verify::<Claims>(SECRET, "not-a-token", 1_500),
            Err(JwtError::Malformed)
        );
    }
}
