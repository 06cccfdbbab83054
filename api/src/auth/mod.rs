//! Authentication and authorization: the `AuthUser` extractor, roles, and the helpers
//! handlers use (`require_role`, `owner_or_staff`).

pub mod password;

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};
use uuid::Uuid;

use crate::{error::AppError, state::AppState};

pub use wp_core::account::{Actor, Role, account_may_act, tokens};

/// The authenticated caller (the extractor around [`Actor`]). Extracting it checks the
/// bearer token, then (one indexed query) that the session is live and the account
/// active, so a revoked session or a suspended account stops working at once, not when
/// the token expires.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Actor);

impl std::ops::Deref for AuthUser {
    type Target = Actor;
    fn deref(&self) -> &Actor {
        &self.0
    }
}

impl AuthUser {
    /// 403 unless the caller has at least `role`.
    pub fn require_role(&self, role: Role) -> Result<(), AppError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "permission_denied",
                "You do not have permission to perform this action.",
            ))
        }
    }

    /// 403 unless the caller owns the object or is staff.
    pub fn owner_or_staff(&self, owner: Uuid) -> Result<(), AppError> {
        if self.id == owner || self.is_staff() {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "permission_denied",
                "You do not have permission to perform this action.",
            ))
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let token = bearer(parts).ok_or_else(|| {
            AppError::unauthenticated(
                "not_authenticated",
                "Authentication credentials were not provided.",
            )
        })?;
        let claims = tokens::verify_access(&state.config, token)?;
        let user = authenticate(state, claims.sub, claims.sid).await?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// Checks that `session` of `user` is live and the account may act.
pub async fn authenticate(
    state: &AppState,
    user: Uuid,
    session: Uuid,
) -> Result<AuthUser, AppError> {
    Ok(AuthUser(
        wp_core::account::authenticate(&state.db, user, session).await?,
    ))
}

/// The caller, when a valid token is present (endpoints that work for anyone but say
/// more to a signed-in user).
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if bearer(parts).is_none() {
            return Ok(Self(None));
        }
        AuthUser::from_request_parts(parts, state)
            .await
            .map(|u| Self(Some(u)))
    }
}

/// The client's IP address: the TCP peer, or, when the peer is one of
/// `TRUSTED_PROXIES`, the address the proxies put in `X-Forwarded-For` (or `Forwarded`):
/// the nearest one that is not itself a trusted proxy. A header from anyone else is
/// ignored (a client cannot choose its own address).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key a per-address limit counts under: the address, or for IPv6 its /64 (one
    /// subscriber's whole prefix, which they can rotate through at will).
    pub fn bucket(&self) -> String {
        match self.0 {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = a.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }

    /// The client behind `peer` as the request's forwarding headers say, trusting only
    /// the hops in `trusted`.
    pub fn resolve(
        peer: IpAddr,
        headers: &axum::http::HeaderMap,
        trusted: &[ipnet::IpNet],
    ) -> IpAddr {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
        if !is_trusted(&peer) {
            return peer;
        }
        // The hops, nearest last: `X-Forwarded-For: client, proxy1, proxy2`.
        let mut hops: Vec<IpAddr> = Vec::new();
        for v in headers.get_all("x-forwarded-for") {
            let Ok(v) = v.to_str() else { continue };
            hops.extend(v.split(',').filter_map(|h| h.trim().parse::<IpAddr>().ok()));
        }
        if hops.is_empty() {
            for v in headers.get_all(axum::http::header::FORWARDED) {
                let Ok(v) = v.to_str() else { continue };
                hops.extend(v.split(',').filter_map(forwarded_for));
            }
        }
        hops.into_iter()
            .rev()
            .find(|h| !is_trusted(h))
            .unwrap_or(peer)
    }
}

/// The `for=` address of one `Forwarded` element (RFC 7239: `for=192.0.2.60`,
/// `for="[2001:db8::1]:4711"`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element
        .split(';')
        .find_map(|p| {
            p.trim()
                .strip_prefix("for=")
                .or_else(|| p.trim().strip_prefix("For="))
        })?
        .trim_matches('"');
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    value
        .parse()
        .ok()
        .or_else(|| value.rsplit_once(':').and_then(|(a, _)| a.parse().ok()))
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(Self(Self::resolve(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

#[cfg(test)]
mod client_ip_tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let lb: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")]);
        // The nearest untrusted hop, not whatever the client wrote first.
        assert_eq!(
            ClientIp::resolve(peer, &xff, &lb),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // From an untrusted peer the header is ignored.
        let outsider: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(ClientIp::resolve(outsider, &xff, &lb), outsider);
        // No proxies configured: the peer, always.
        assert_eq!(ClientIp::resolve(peer, &xff, &[]), peer);
        let fwd = headers(&[(
            "forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.9",
        )]);
        assert_eq!(
            ClientIp::resolve(peer, &fwd, &lb),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        // Nothing usable: the peer.
        assert_eq!(
            ClientIp::resolve(peer, &headers(&[("x-forwarded-for", "junk")]), &lb),
            peer
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a = ClientIp("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientIp("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = ClientIp("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a.bucket(), b.bucket());
        assert_ne!(a.bucket(), c.bucket());
        assert_eq!(ClientIp("192.0.2.1".parse().unwrap()).bucket(), "192.0.2.1");
        assert_eq!(
            ClientIp("::ffff:192.0.2.1".parse().unwrap()).bucket(),
            "192.0.2.1"
        );
    }
}
