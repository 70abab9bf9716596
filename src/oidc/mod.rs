//! hallpass as an OpenID Provider (issue 13): OpenID Connect Core 1.0 and
//! Discovery 1.0 over OAuth 2.0 (RFC 6749, PKCE RFC 7636, revocation RFC
//! 7009, introspection RFC 7662, `iss` in the answer RFC 9207, the
//! security BCP RFC 9700). The protocol lives here, without HTTP types;
//! `api/oidc.rs` holds the routes.
//!
//! - `discovery.rs`: `/.well-known/openid-configuration`.
//! - `authorize.rs`: the authorization request: client, exact redirect
//!   URI, scope, PKCE, prompt and max_age, consent, then a code bound to
//!   all of it; the consent page's answer (`decide`).
//! - `consent.rs`: the grants people give consent clients (the
//!   `consents` table), their listing and withdrawal, and the seal that
//!   carries an authorization request across the consent page.
//! - `token.rs`: client authentication and the three grants
//!   (authorization_code, refresh_token, client_credentials), the
//!   id_token and the claims each scope releases.
//! - `endpoints.rs`: userinfo, introspection, revocation, RP-initiated
//!   logout.
//! - `browser.rs`: the browser session, as far as the provider needs it
//!   (WEB's `web::session`; a stand-in until the two meet).
//!
//! Rules: a redirect goes only to a URI registered for the client, matched
//! exactly; before the redirect URI is known good, errors are answered,
//! never redirected. Codes are single use; a replayed code revokes the
//! session it bought (sessions.rs). Refresh tokens are issued only when
//! `offline_access` was granted, and rotate like every other (families,
//! reuse detection, grace window).

pub mod authorize;
pub mod browser;
pub mod consent;
pub mod discovery;
pub mod endpoints;
pub mod token;

/// The scopes a request names, split on spaces, in order, without
/// repeats.
pub fn split_scope(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// True when the space-separated `scope` holds `one`.
pub fn has_scope(scope: &str, one: &str) -> bool {
    scope.split(' ').any(|s| s == one)
}

/// A request parameter given at most once (RFC 6749 §3.1: parameters
/// must not repeat); empty counts as absent.
pub fn single<'a>(
    pairs: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, crate::error::Error> {
    let mut found = pairs.iter().filter(|(k, _)| k == name);
    let first = found.next();
    if found.next().is_some() {
        return Err(oauth_error(
            "invalid_request",
            format!("{name} is given more than once"),
        ));
    }
    Ok(first.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()))
}

/// An OAuth 2.0 protocol error (RFC 6749 §4.1.2.1, §5.2): its code goes in
/// `error`, the message in `error_description`. Carried as a Validation
/// error whose code is the OAuth code, so it renders in one place
/// (`api::oidc::render`).
pub fn oauth_error(code: &'static str, message: impl Into<String>) -> crate::error::Error {
    crate::error::Error::invalid("oauth", code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_split_on_spaces_without_repeats() {
        assert_eq!(
            split_scope("openid  email openid"),
            vec!["openid".to_string(), "email".to_string()]
        );
        assert!(has_scope("openid offline_access", "offline_access"));
        assert!(!has_scope("openid offline_accessx", "offline_access"));
    }
}
