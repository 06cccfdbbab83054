//! Access tokens (HS256 JWTs, algorithm pinned, `kid` selects the key so a rotated-out
//! key keeps verifying until its tokens expire) and opaque random tokens (refresh,
//! email links, 2FA challenges), stored as SHA-256.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wp_shared::Config;

use super::AuthError;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    /// Session id (the login this token belongs to).
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    /// `access` (a 2FA challenge never verifies as an access token).
    pub typ: String,
}

/// Signs claims with the current key (HS256, `kid` in the header).
fn sign<T: Serialize>(config: &Config, claims: &T) -> Result<String, AuthError> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(config.jwt_key.id.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(&config.jwt_key.secret),
    )
    .map_err(|e| AuthError::Internal(anyhow::anyhow!("jwt encode: {e}")))
}

/// The key a token names by `kid` (current or a previous one), if it is HS256.
fn key_for(config: &Config, token: &str) -> Option<DecodingKey> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.alg != Algorithm::HS256 {
        return None;
    }
    let kid = header.kid?;
    std::iter::once(&config.jwt_key)
        .chain(config.jwt_previous_keys.iter())
        .find(|k| k.id == kid)
        .map(|k| DecodingKey::from_secret(&k.secret))
}

/// HS256 only, no leeway, `exp`, `sub` and `iat` required.
fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "sub", "iat"]);
    v
}

/// Issues an access token; returns it and its lifetime in seconds.
pub fn issue_access(
    config: &Config,
    user: Uuid,
    session: Uuid,
) -> Result<(String, i64), AuthError> {
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(config.access_token_ttl.as_secs()).unwrap_or(900);
    let claims = Claims {
        sub: user,
        sid: session,
        iat: now,
        exp: now + ttl,
        typ: "access".to_owned(),
    };
    Ok((sign(config, &claims)?, ttl))
}

/// Verifies an access token: HS256 only, a known `kid`, not expired (no leeway).
pub fn verify_access(config: &Config, token: &str) -> Result<Claims, AuthError> {
    let invalid = || AuthError::InvalidToken;
    let key = key_for(config, token).ok_or_else(invalid)?;
    let validation = validation();
    let data =
        jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::TokenExpired,
            _ => invalid(),
        })?;
    if data.claims.typ != "access" {
        return Err(invalid());
    }
    Ok(data.claims)
}

/// Claims of a scoped token: a short-lived capability for one object (a download
/// link), tied to the session that made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScopedClaims {
    pub sub: Uuid,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    /// What it allows, e.g. `download`.
    pub typ: String,
    /// The object it allows it on.
    pub obj: Uuid,
}

/// Issues a scoped token for `obj`, valid `secs` seconds.
pub fn issue_scoped(
    config: &Config,
    user: Uuid,
    session: Uuid,
    typ: &str,
    obj: Uuid,
    secs: i64,
) -> Result<(String, chrono::DateTime<chrono::Utc>), AuthError> {
    let now = chrono::Utc::now();
    let claims = ScopedClaims {
        sub: user,
        sid: session,
        iat: now.timestamp(),
        exp: now.timestamp() + secs,
        typ: typ.to_owned(),
        obj,
    };
    // The expiry as the token has it: whole seconds.
    let expires = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
    Ok((sign(config, &claims)?, expires))
}

/// A scoped token that is the same for every call within one `window` (seconds): issued
/// at the window's start, valid for two windows (so at least one from now). A link built
/// from it stays the same URL for a while, so a browser's cache keeps what it loaded.
pub fn issue_scoped_stable(
    config: &Config,
    user: Uuid,
    session: Uuid,
    typ: &str,
    obj: Uuid,
    window: i64,
) -> Result<String, AuthError> {
    let window = window.max(1);
    let start = chrono::Utc::now().timestamp() / window * window;
    sign(
        config,
        &ScopedClaims {
            sub: user,
            sid: session,
            iat: start,
            exp: start + 2 * window,
            typ: typ.to_owned(),
            obj,
        },
    )
}

/// Verifies a scoped token for `typ` on `obj`.
pub fn verify_scoped(
    config: &Config,
    token: &str,
    typ: &str,
    obj: Uuid,
) -> Result<ScopedClaims, AuthError> {
    let invalid = || AuthError::InvalidLink;
    let key = key_for(config, token).ok_or_else(invalid)?;
    let validation = validation();
    let data =
        jsonwebtoken::decode::<ScopedClaims>(token, &key, &validation).map_err(|_| invalid())?;
    if data.claims.typ != typ || data.claims.obj != obj {
        return Err(invalid());
    }
    Ok(data.claims)
}

/// A new random token (256 bits, base64url).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// How a random token is stored: its SHA-256 (a fast hash is right for 256-bit random
/// tokens; there is nothing to brute-force).
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wp_shared::config::JwtKey;

    fn config() -> Config {
        Config::from_lookup(|k| match k {
            "JWT_SECRET" => Some("current-secret-current-secret-current".into()),
            "JWT_KEY_ID" => Some("k2".into()),
            "JWT_PREVIOUS_KEYS" => Some("k1:previous-secret-previous-secret-prev".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn a_token_round_trips() {
        let c = config();
        let (u, s) = (Uuid::now_v7(), Uuid::now_v7());
        let (t, ttl) = issue_access(&c, u, s).unwrap();
        assert_eq!(ttl, 900);
        let claims = verify_access(&c, &t).unwrap();
        assert_eq!((claims.sub, claims.sid), (u, s));
    }

    #[test]
    fn a_token_signed_with_the_previous_key_still_verifies_after_rotation() {
        let mut old = config();
        old.jwt_key = JwtKey {
            id: "k1".into(),
            secret: b"previous-secret-previous-secret-prev".to_vec(),
        };
        let (t, _) = issue_access(&old, Uuid::now_v7(), Uuid::now_v7()).unwrap();
        assert!(verify_access(&config(), &t).is_ok());
        // Once the old key is dropped from the list, it no longer does.
        let mut newer = config();
        newer.jwt_previous_keys.clear();
        assert!(verify_access(&newer, &t).is_err());
    }

    #[test]
    fn other_algorithms_and_forgeries_are_refused() {
        let c = config();
        // alg "none"
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k2"}"#),
            URL_SAFE_NO_PAD.encode(format!(
                r#"{{"sub":"{}","sid":"{}","iat":1,"exp":99999999999,"typ":"access"}}"#,
                Uuid::nil(),
                Uuid::nil()
            ))
        );
        assert!(verify_access(&c, &none).is_err());
        // signed with another secret
        let mut other = config();
        other.jwt_key.secret = b"some-other-secret-some-other-secret-x".to_vec();
        let (t, _) = issue_access(&other, Uuid::nil(), Uuid::nil()).unwrap();
        assert!(verify_access(&c, &t).is_err());
        assert!(verify_access(&c, "garbage").is_err());
    }

    #[test]
    fn an_expired_token_says_so() {
        let mut c = config();
        let claims = Claims {
            sub: Uuid::nil(),
            sid: Uuid::nil(),
            iat: 1,
            exp: 2,
            typ: "access".into(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k2".into());
        let t = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&c.jwt_key.secret),
        )
        .unwrap();
        match verify_access(&c, &t) {
            Err(AuthError::TokenExpired) => {}
            other => panic!("{other:?}"),
        }
        c.jwt_previous_keys.clear();
    }
}
