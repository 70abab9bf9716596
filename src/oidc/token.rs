//! The token endpoint (RFC 6749 §3.2, §4.1.3, §4.4, §6; OpenID Connect
//! Core 1.0 §3.1.3, §12): client authentication, the three grants, the
//! id_token and the claims each scope releases.
//!
//! - authorization_code: the code must be a provider code (from
//!   /oauth2/authorize, so it has a scope), of the authenticated client,
//!   for the same redirect URI, answering its PKCE challenge. A replay
//!   revokes the session the code bought (`sessions::redeem_code`).
//! - refresh_token: the session's rotation with reuse detection and grace
//!   window (auth::refresh); only for provider sessions of this client. A
//!   refresh token is issued only when `offline_access` was granted.
//! - client_credentials: confidential clients only; an access token with
//!   the client as subject and no user, no session, not refreshable.
//!
//! Refusals are OAuth errors (`oauth_error`): invalid_grant for anything
//! wrong with a code or refresh token (never which), invalid_client for
//! client authentication (401, rendered with WWW-Authenticate).

use serde_json::{json, Map, Value};

use crate::accounts::{self, Client, User};
use crate::app::Ctx;
use crate::auth::{self, Peer, Tokens};
use crate::crypto::{b64_decode, b64url, sha256, uuid_v4};
use crate::error::Error;
use crate::jwt::Alg;
use crate::limits::Family;
use crate::oidc::{has_scope, oauth_error, split_scope};
use crate::sessions::{self, Pkce, Redemption};
use crate::url::percent_decode;

/// A request's client credentials, from Basic or the body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    pub client_id: Option<String>,
    pub secret: Option<String>,
    /// How they came: "basic", "post" or "none".
    pub method: &'static str,
}

/// Reads client credentials (RFC 6749 §2.3.1): an Authorization: Basic
/// header (form-encoded id and secret) or client_id and client_secret in
/// the body; both at once is refused.
pub fn credentials(
    authorization: Option<&str>,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Credentials, Error> {
    let basic = authorization.and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
    });
    if let Some(b64) = basic {
        if form_secret.is_some() {
            return Err(oauth_error(
                "invalid_request",
                "client credentials in both the header and the body",
            ));
        }
        let bad = || oauth_error("invalid_client", "malformed Basic credentials");
        let text = b64_decode(b64)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        let (id, secret) = text.split_once(':').ok_or_else(bad)?;
        let id = percent_decode(id, true);
        if form_id.is_some_and(|f| f != id) {
            return Err(oauth_error("invalid_request", "two different client_ids"));
        }
        return Ok(Credentials {
            client_id: Some(id),
            secret: Some(percent_decode(secret, true)),
            method: "basic",
        });
    }
    Ok(Credentials {
        client_id: form_id.map(str::to_string),
        secret: form_secret.map(str::to_string),
        method: if form_secret.is_some() {
            "post"
        } else {
            "none"
        },
    })
}

/// Authenticates the client. `none` (a public client's id alone) only when
/// `public_ok`.
pub fn authenticate(cx: &Ctx, c: &Credentials, public_ok: bool) -> Result<Client, Error> {
    let id = c.client_id.as_deref().ok_or(Error::ClientInvalid)?;
    let client = accounts::authenticate_client(&cx.conn, id, c.secret.as_deref())?;
    if client.is_public() && !public_ok {
        return Err(Error::ClientInvalid);
    }
    Ok(client)
}

/// The token request's fields.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

/// Answers a token request with the token response's JSON (§5.1).
pub fn token(
    cx: &mut Ctx,
    creds: &Credentials,
    req: &TokenRequest,
    peer: &Peer,
) -> Result<Value, Error> {
    // The refresh grant is counted by auth::refresh; the others here.
    if req.grant_type.as_deref() != Some("refresh_token") {
        cx.app.limiter.take(Family::Token, &peer.ip, cx.now())?;
    }
    let grant_type = req
        .grant_type
        .as_deref()
        .ok_or_else(|| oauth_error("invalid_request", "grant_type is required"))?;
    match grant_type {
        "authorization_code" => {
            let client = authenticate(cx, creds, true)?;
            exchange(cx, &client, req)
        }
        "refresh_token" => {
            let client = authenticate(cx, creds, true)?;
            refresh(cx, &client, req, peer)
        }
        "client_credentials" => {
            let client = authenticate(cx, creds, false)?;
            client_credentials(cx, &client, req.scope.as_deref())
        }
        _ => Err(oauth_error(
            "unsupported_grant_type",
            "grant_type must be authorization_code, refresh_token or client_credentials",
        )),
    }
}

/// Anything wrong with a code or refresh token is invalid_grant, without
/// saying which (RFC 6749 §5.2).
fn grant_refused(e: Error) -> Error {
    match e {
        Error::CodeExpired
        | Error::TokenInvalid
        | Error::TokenExpired
        | Error::TokenRevoked
        | Error::MfaRequired
        | Error::UserInactive
        | Error::Validation { .. } => oauth_error(
            "invalid_grant",
            match &e {
                Error::Validation { field, message, .. } if field == "code_verifier" => {
                    message.as_str()
                }
                _ => "the grant is unknown, used, expired, revoked or not this client's",
            },
        ),
        other => other,
    }
}

fn exchange(cx: &mut Ctx, client: &Client, req: &TokenRequest) -> Result<Value, Error> {
    let code = req
        .code
        .as_deref()
        .ok_or_else(|| oauth_error("invalid_request", "code is required"))?;
    let now = cx.now();
    let binding = sessions::code_binding(&cx.conn, code)?
        .filter(|b| b.scope.is_some())
        .ok_or_else(|| grant_refused(Error::CodeExpired))?;
    // RFC 6749 §4.1.3: the same redirect URI as the authorize request.
    if binding.redirect_uri.is_some() && binding.redirect_uri != req.redirect_uri {
        return Err(oauth_error(
            "invalid_grant",
            "redirect_uri differs from the authorization request's",
        ));
    }
    let scope = binding.scope.clone().unwrap_or_default();
    let refresh_ttl = client.refresh_ttl;
    let outcome = cx
        .write(|tx| {
            let verifier = req.code_verifier.as_deref();
            let cg = match sessions::redeem_code(
                tx,
                code,
                &client.client_id,
                Pkce::Verify(verifier),
                now,
            )? {
                Redemption::Valid(cg) => cg,
                Redemption::Replayed => return Ok(None),
            };
            let user = accounts::get_user(tx, &cg.grant.user_id)?;
            if !user.is_some_and(|u| u.is_active()) {
                return Err(Error::UserInactive);
            }
            let subject = auth::subject(tx, &cg.grant)?;
            let issued = sessions::start_family(tx, &cg.grant, false, refresh_ttl, now)?;
            sessions::set_family_scope(tx, &issued.family_id, &scope, binding.auth_time)?;
            sessions::bind_code(tx, code, &issued.family_id)?;
            Ok(Some((cg, issued, subject)))
        })
        .map_err(grant_refused)?;
    let (cg, issued, subject) = outcome.ok_or_else(|| grant_refused(Error::CodeExpired))?;
    let tokens = auth::mint(cx, subject, &cg.grant, &issued)?;
    answer(
        cx,
        client,
        &tokens,
        &scope,
        binding.auth_time,
        binding.nonce.as_deref(),
        has_scope(&scope, "offline_access"),
    )
}

fn refresh(cx: &mut Ctx, client: &Client, req: &TokenRequest, peer: &Peer) -> Result<Value, Error> {
    let token = req
        .refresh_token
        .as_deref()
        .ok_or_else(|| oauth_error("invalid_request", "refresh_token is required"))?;
    let now = cx.now();
    let (family, _, _) = sessions::refresh_family(&cx.conn, token, now)?
        .ok_or_else(|| grant_refused(Error::TokenInvalid))?;
    let scope = match (&family.scope, &family.client_id) {
        (Some(s), Some(c)) if *c == client.client_id => s.clone(),
        _ => return Err(grant_refused(Error::TokenInvalid)),
    };
    // RFC 6749 §6: a narrower scope may be asked for, never a wider one.
    if let Some(asked) = &req.scope {
        if split_scope(asked).iter().any(|s| !has_scope(&scope, s)) {
            return Err(oauth_error(
                "invalid_scope",
                "scope may not exceed what was granted",
            ));
        }
    }
    let tokens = auth::refresh(cx, token, None, None, true, peer).map_err(grant_refused)?;
    // The answer (and its id_token) has the narrower scope asked for; the
    // refresh token keeps what was granted (RFC 6749 §6), and so does
    // userinfo, which reads the session.
    let answered = match &req.scope {
        Some(asked) => split_scope(asked).join(" "),
        None => scope.clone(),
    };
    let keep_refresh = has_scope(&scope, "offline_access");
    answer(
        cx,
        client,
        &tokens,
        &answered,
        family.auth_time,
        None,
        keep_refresh,
    )
}

/// The token response for a user's session, with its id_token.
fn answer(
    cx: &Ctx,
    client: &Client,
    tokens: &Tokens,
    scope: &str,
    auth_time: Option<i64>,
    nonce: Option<&str>,
    refresh: bool,
) -> Result<Value, Error> {
    let id_token = id_token(cx, client, tokens, scope, auth_time, nonce)?;
    let mut out = json!({
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "id_token": id_token,
        "scope": scope,
    });
    if refresh {
        out["refresh_token"] = json!(tokens.refresh_token);
    }
    Ok(out)
}

/// The assurance level of a set of methods (`acr`).
pub fn acr(amr: &[String]) -> &'static str {
    if amr.len() > 1 {
        "aal2"
    } else {
        "aal1"
    }
}

/// The id_token (Core §2, §3.1.3.6): signed with the current key, which
/// must be of the client's algorithm when it names one.
fn id_token(
    cx: &Ctx,
    client: &Client,
    tokens: &Tokens,
    scope: &str,
    auth_time: Option<i64>,
    nonce: Option<&str>,
) -> Result<String, Error> {
    let keys = cx.app.keys()?;
    let alg = match &client.token_alg {
        Some(a) => {
            Alg::from_name(a).ok_or_else(|| Error::Internal(format!("bad token_alg {a}")))?
        }
        None => keys.current_alg(),
    };
    // at_hash: the left half of the SHA-256 of the access token (ES256
    // and RS256 both hash with SHA-256).
    let digest = sha256(tokens.access_token.as_bytes());
    let at_hash = b64url(digest.get(..16).unwrap_or(&digest));
    let c = &tokens.claims;
    let mut claims = json!({
        "iss": cx.app.issuer,
        "sub": c.sub,
        "aud": client.client_id,
        "azp": client.client_id,
        "exp": c.exp,
        "iat": c.iat,
        "auth_time": auth_time.unwrap_or(c.iat),
        "amr": c.amr,
        "acr": acr(&c.amr),
        "at_hash": at_hash,
        "sid": c.sid,
    });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    if let (Value::Object(m), Value::Object(more)) =
        (&mut claims, user_claims(&cx.conn, &tokens.user, scope)?)
    {
        m.extend(more);
    }
    keys.sign_as(&claims, alg)
}

/// The claims `scope` releases about `user` (Core §5.4), besides `sub`:
/// profile (name, preferred_username, given_name, family_name), email
/// (email, email_verified), groups (the names of the user's tenants, and
/// the user's role).
pub fn user_claims(conn: &rusqlite::Connection, user: &User, scope: &str) -> Result<Value, Error> {
    let mut m = Map::new();
    if has_scope(scope, "profile") {
        let username = user.username.clone().or_else(|| user.email.clone());
        m.insert("preferred_username".into(), json!(username));
        if let Some(name) = &user.name {
            m.insert("name".into(), json!(name));
            let mut words = name.split_whitespace();
            if let Some(given) = words.next() {
                m.insert("given_name".into(), json!(given));
            }
            let family: Vec<&str> = words.collect();
            if !family.is_empty() {
                m.insert("family_name".into(), json!(family.join(" ")));
            }
        }
        m.insert("updated_at".into(), json!(user.updated_at));
    }
    if has_scope(scope, "email") {
        if let Some(email) = &user.email {
            m.insert("email".into(), json!(email));
            m.insert(
                "email_verified".into(),
                json!(user.email_verified_at.is_some()),
            );
        }
    }
    if has_scope(scope, "groups") {
        let tenants = accounts::tenant_roles(conn, &user.id)?;
        let names: Vec<&String> = tenants.iter().map(|(n, _)| n).collect();
        m.insert("groups".into(), json!(names));
        let role = if user.is_admin() {
            "admin"
        } else {
            user.role.as_str()
        };
        m.insert("role".into(), json!(role));
    }
    Ok(Value::Object(m))
}

/// client_credentials (§4.4): an access token for the client itself.
fn client_credentials(cx: &Ctx, client: &Client, scope: Option<&str>) -> Result<Value, Error> {
    // The user-facing scopes mean nothing without a user; a client may ask
    // for any of its others (none exist yet, so the scope is empty unless
    // named).
    let asked = split_scope(scope.unwrap_or(""));
    if let Some(s) = asked
        .iter()
        .find(|s| !client.scopes.contains(s) || *s == "openid" || *s == "offline_access")
    {
        return Err(oauth_error(
            "invalid_scope",
            format!("scope {s} cannot be granted to this client"),
        ));
    }
    let now = cx.now();
    let ttl = client.access_ttl;
    let scope = asked.join(" ");
    let claims = json!({
        "iss": cx.app.issuer,
        "sub": client.client_id,
        "aud": client.client_id,
        "client_id": client.client_id,
        "exp": now + ttl,
        "iat": now,
        "jti": uuid_v4()?,
        "scope": scope,
    });
    let token = cx.app.keys()?.sign(&claims)?;
    Ok(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": scope,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded_and_may_not_be_doubled() {
        let h = format!("Basic {}", crate::crypto::b64(b"my%20app:s%3Acret"));
        let c = credentials(Some(&h), None, None).unwrap();
        assert_eq!(c.client_id.as_deref(), Some("my app"));
        assert_eq!(c.secret.as_deref(), Some("s:cret"));
        assert_eq!(c.method, "basic");
        assert!(credentials(Some(&h), None, Some("x")).is_err());
        let p = credentials(None, Some("a"), None).unwrap();
        assert_eq!((p.method, p.secret), ("none", None));
    }

    #[test]
    fn a_wrong_verifier_is_an_invalid_grant_with_its_reason() {
        let e = grant_refused(Error::invalid("code_verifier", "invalid", "does not match"));
        assert!(
            matches!(e, Error::Validation { code: "invalid_grant", ref message, .. } if message == "does not match")
        );
        assert!(matches!(
            grant_refused(Error::CodeExpired),
            Error::Validation {
                code: "invalid_grant",
                ..
            }
        ));
    }
}
