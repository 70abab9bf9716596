//! The provider's other endpoints: userinfo (Core §5.3), introspection
//! (RFC 7662), revocation (RFC 7009) and RP-initiated logout 1.0.

use serde_json::{json, Value};

use crate::accounts::{self, Client};
use crate::app::Ctx;
use crate::auth;
use crate::error::Error;
use crate::oidc::browser;
use crate::oidc::oauth_error;
use crate::oidc::token::{acr, user_claims};
use crate::sessions;

/// The claims of the bearer's user its session's scope releases. Only
/// provider sessions (a scope with openid) are served.
pub fn userinfo(cx: &Ctx, access_token: &str) -> Result<Value, Error> {
    let (claims, user) = auth::authenticate_app(cx, access_token)?;
    let scope = sessions::family(&cx.conn, &claims.sid)?
        .and_then(|f| f.scope)
        .filter(|s| crate::oidc::has_scope(s, "openid"))
        .ok_or(Error::TokenInvalid)?;
    let mut out = user_claims(&cx.conn, &user, &scope)?;
    out["sub"] = json!(user.id);
    Ok(out)
}

/// RFC 7662: what a token is, for the client it was issued to. Anything
/// unknown, expired, revoked, or another client's is `{"active": false}`.
pub fn introspect(cx: &Ctx, client: &Client, token: &str) -> Result<Value, Error> {
    let inactive = json!({ "active": false });
    let now = cx.now();
    // A refresh token?
    if let Some((family, usable, expires_at)) = sessions::refresh_family(&cx.conn, token, now)? {
        let ours = family.client_id.as_deref() == Some(&client.client_id);
        if !(usable && family.live && ours) || family.scope.is_none() {
            return Ok(inactive);
        }
        let user = accounts::get_user(&cx.conn, &family.user_id)?;
        if !user.is_some_and(|u| u.is_active()) {
            return Ok(inactive);
        }
        return Ok(json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": client.client_id,
            "sub": family.user_id,
            "scope": family.scope,
            "exp": expires_at,
            "iss": cx.app.issuer,
        }));
    }
    // An access token (a user's, or a client's own).
    let keys = cx.app.keys()?;
    let Ok(payload) = keys.verify_json(token) else {
        return Ok(inactive);
    };
    let exp = payload["exp"].as_i64().unwrap_or(0);
    let iat = payload["iat"].as_i64().unwrap_or(i64::MAX);
    // An access token has a jti; an id_token (auth_time, azp) is no bearer.
    let good = payload["iss"] == json!(cx.app.issuer)
        && payload["jti"].as_str().is_some_and(|j| !j.is_empty())
        && payload.get("auth_time").is_none()
        && payload["aud"] == json!(client.client_id)
        && exp + crate::jwt::LEEWAY >= now
        && iat <= now + crate::jwt::LEEWAY;
    if !good {
        return Ok(inactive);
    }
    let mut out = json!({
        "active": true,
        "token_type": "Bearer",
        "client_id": client.client_id,
        "sub": payload["sub"],
        "aud": payload["aud"],
        "iss": payload["iss"],
        "exp": exp,
        "iat": iat,
        "jti": payload["jti"],
    });
    match payload["sid"].as_str() {
        // A user's: its session must be live and its user active.
        Some(sid) => {
            let family = sessions::family(&cx.conn, sid)?;
            let Some(family) = family.filter(|f| f.live) else {
                return Ok(inactive);
            };
            let user = accounts::get_user(&cx.conn, &family.user_id)?;
            let Some(user) = user.filter(|u| u.is_active()) else {
                return Ok(inactive);
            };
            out["scope"] = json!(family.scope);
            out["username"] = json!(user.username.or(user.email));
            out["acr"] = json!(acr(&family.amr));
        }
        // The client's own (client_credentials).
        None => out["scope"] = payload["scope"].clone(),
    }
    Ok(out)
}

/// RFC 7009: ends the session of a refresh token or user access token
/// issued to this client. Unknown tokens, and other clients' tokens, are
/// left alone with the same answer (§2.2). A client's own access tokens
/// (client_credentials) are not revocable: they live `access_ttl`.
pub fn revoke(cx: &mut Ctx, client: &Client, token: &str) -> Result<(), Error> {
    let now = cx.now();
    let family_id = match sessions::refresh_family(&cx.conn, token, now)? {
        Some((f, _, _)) => Some(f),
        None => cx
            .app
            .keys()?
            .verify_json(token)
            .ok()
            .and_then(|p| p["sid"].as_str().map(str::to_string))
            .map(|sid| sessions::family(&cx.conn, &sid))
            .transpose()?
            .flatten(),
    };
    let Some(family) = family_id.filter(|f| f.client_id.as_deref() == Some(&client.client_id))
    else {
        return Ok(());
    };
    cx.write(|tx| sessions::revoke_family(tx, &family.id, "revoked by the client", now))
}

/// What end-session asks.
#[derive(Debug, Clone, Default)]
pub struct EndSession {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// What end-session comes to.
#[derive(Debug, PartialEq)]
pub enum Ended {
    /// Signed out (or no one was): on to this registered post-logout URI
    /// with `state`, or None (a signed-out page).
    Done(Option<String>),
    /// Someone is signed in and no id_token of theirs came with the
    /// request: a plain link must not sign a browser out (logout CSRF), so
    /// the person confirms at the sign-out page, which then sends them on
    /// to the app's registered post-logout URI when the request named one
    /// (checked again there: `post_logout`).
    Confirm(Option<LogoutReturn>),
}

/// Where a confirmed sign-out goes back to: the request's client, its
/// registered post-logout URI and `state`, as the sign-out form carries
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct LogoutReturn {
    pub client_id: String,
    pub post_logout_redirect_uri: String,
    pub state: Option<String>,
}

/// Where a sign-out may send the browser back to.
#[derive(Debug, Clone, PartialEq)]
pub struct PostLogout {
    /// The app's name.
    pub app: String,
    /// The registered URI with `state` added.
    pub url: String,
}

/// The post-logout target of `uri` for `client_id`, when `uri` is one of
/// the client's registered post-logout URIs (exact match); None for an
/// unknown client or any other URI, so nothing can make this an open
/// redirect.
pub fn post_logout(
    conn: &rusqlite::Connection,
    client_id: &str,
    uri: &str,
    state: Option<&str>,
) -> Result<Option<PostLogout>, Error> {
    let Some(client) = accounts::get_client(conn, client_id)? else {
        return Ok(None);
    };
    if !client.post_logout_redirect_urls.iter().any(|u| u == uri) {
        return Ok(None);
    }
    let mut url = uri.to_string();
    if let Some(state) = state {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("state=");
        url.push_str(&crate::url::percent_encode(state));
    }
    Ok(Some(PostLogout {
        app: client.name,
        url,
    }))
}

/// RP-initiated logout 1.0: checks the hint (our signature, our issuer;
/// expired is fine, `alg: none` never is), ends the browser session named
/// by `cookie` when the hint was issued for that very session (its person
/// and its sign-in time, §2: the hint is "about the End-User's current or
/// past authenticated session with the Client"; an id_token from an
/// earlier session of the same person must not end a later one without
/// asking), and says what comes next (`Ended`).
pub fn end_session(cx: &mut Ctx, req: &EndSession, cookie: Option<&str>) -> Result<Ended, Error> {
    // The hint's subject and auth_time: the browser session it was issued
    // from is the one signed in at that time.
    let mut hinted: Option<(String, i64)> = None;
    let hinted_client = match &req.id_token_hint {
        Some(hint) => {
            let payload = cx.app.keys()?.verify_json(hint).map_err(|_| {
                oauth_error(
                    "invalid_request",
                    "id_token_hint is not an id_token of ours",
                )
            })?;
            // An id_token: auth_time and azp, and no jti (an access token
            // or a client's own token is no hint).
            let id_token_shaped = payload.get("auth_time").is_some()
                && payload.get("azp").is_some()
                && payload.get("jti").is_none();
            if payload["iss"] != json!(cx.app.issuer) || !id_token_shaped {
                return Err(oauth_error(
                    "invalid_request",
                    "id_token_hint is not an id_token of ours",
                ));
            }
            hinted = payload["sub"]
                .as_str()
                .zip(payload["auth_time"].as_i64())
                .map(|(sub, at)| (sub.to_string(), at));
            payload["aud"].as_str().map(str::to_string)
        }
        None => None,
    };
    let client_id = match (hinted_client, &req.client_id) {
        (Some(h), Some(c)) if h != *c => {
            return Err(oauth_error(
                "invalid_request",
                "client_id differs from the id_token_hint's audience",
            ))
        }
        (Some(h), _) => Some(h),
        (None, c) => c.clone(),
    };
    let back = match (&req.post_logout_redirect_uri, &client_id) {
        (None, _) => None,
        (Some(uri), Some(c)) => post_logout(&cx.conn, c, uri, req.state.as_deref())?.map(|t| {
            (
                t,
                LogoutReturn {
                    client_id: c.clone(),
                    post_logout_redirect_uri: uri.clone(),
                    state: req.state.clone(),
                },
            )
        }),
        (Some(_), None) => None,
    };
    if req.post_logout_redirect_uri.is_some() && back.is_none() {
        return Err(oauth_error(
            "invalid_request",
            "post_logout_redirect_uri is not registered for this client",
        ));
    }
    if let Some(value) = cookie {
        let now = cx.now();
        match browser::current(&cx.conn, value, now)? {
            Some(s) if hinted == Some((s.user_id.clone(), s.auth_time)) => {
                cx.write(|tx| browser::end(tx, value, now))?;
            }
            Some(_) => return Ok(Ended::Confirm(back.map(|(_, r)| r))),
            None => {}
        }
    }
    Ok(Ended::Done(back.map(|(t, _)| t.url)))
}
