//! The dashboard's session cookie: proof that its holder typed the admin token, without
//! being the token. `tollgate_session=<expiry>.<hmac>`, where the HMAC-SHA256 over the
//! expiry is keyed by the admin token: changing the token ends every session, a stolen
//! cookie is worth nothing after its expiry (or against the JSON API), and the browser
//! never holds the token itself (the cookie is `HttpOnly`, `SameSite=Lax`, and scoped
//! to `/dashboard`).

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE: &str = "tollgate_session";

/// The security scheme the dashboard's operations name beside the bearer token.
pub const SCHEME: &str = "dashboard_session";

/// How long a login lasts.
pub const LIFETIME: TimeDelta = TimeDelta::hours(12);

/// What the MAC covers besides the expiry, so the token keys nothing else by accident.
const CONTEXT: &[u8] = b"tollgate dashboard session v1\0";

fn mac(token: &str, expiry: i64) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).ok()?;
    mac.update(CONTEXT);
    mac.update(&expiry.to_be_bytes());
    Some(mac)
}

/// A cookie value valid until `now + LIFETIME`.
pub fn issue(token: &str, now: DateTime<Utc>) -> Option<String> {
    let expiry = (now + LIFETIME).timestamp();
    let tag = mac(token, expiry)?.finalize().into_bytes();
    Some(format!("{expiry}.{}", hex::encode(tag)))
}

/// Whether `value` was issued with `token` and has not expired (constant-time compare).
pub fn valid(value: &str, token: &str, now: DateTime<Utc>) -> bool {
    let Some((expiry, tag)) = value.split_once('.') else { return false };
    let Ok(expiry) = expiry.parse::<i64>() else { return false };
    let Ok(tag) = hex::decode(tag) else { return false };
    if expiry <= now.timestamp() {
        return false;
    }
    mac(token, expiry).is_some_and(|m| m.verify_slice(&tag).is_ok())
}

/// The session cookie's value among a request's `Cookie` headers.
pub fn from_headers(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// The `Set-Cookie` value that stores a session.
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE}={value}; Path=/dashboard; Max-Age={}; HttpOnly; SameSite=Lax", LIFETIME.num_seconds())
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/dashboard; Max-Age=0; HttpOnly; SameSite=Lax")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_session_holds_only_for_its_token_and_its_lifetime() {
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let cookie = issue("s3cret", now).unwrap();
        assert!(!cookie.contains("s3cret"));
        assert!(valid(&cookie, "s3cret", now));
        assert!(valid(&cookie, "s3cret", now + LIFETIME - TimeDelta::seconds(1)));
        assert!(!valid(&cookie, "s3cret", now + LIFETIME));
        assert!(!valid(&cookie, "other", now), "a new token ends every session");
        // A later expiry with the old tag does not pass.
        let (_, tag) = cookie.split_once('.').unwrap();
        let forged = format!("{}.{tag}", (now + LIFETIME * 100).timestamp());
        assert!(!valid(&forged, "s3cret", now));
        for junk in ["", ".", "x.y", "123", "123.zz", "-1.00"] {
            assert!(!valid(junk, "s3cret", now), "{junk:?}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(http::header::COOKIE, "a=1; tollgate_sessionx=no".parse().unwrap());
        assert_eq!(from_headers(&headers), None);
        headers.append(http::header::COOKIE, "b=2; tollgate_session=123.ab; c=3".parse().unwrap());
        assert_eq!(from_headers(&headers), Some("123.ab"));
    }
}
