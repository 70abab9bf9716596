//! lagrello: the service API under /v1/users, called by an app with a
//! tenant API key as bearer. Users are named by the app's own `userId`
//! (the membership's external id in the key's tenant). A missing or wrong
//! key, or one without the needed scope, is 403. Errors as
//! `{"message": "...", "errorType": "NOT_FOUND"}`. Fields: the README's "lagrello" section.

use serde_json::json;

use super::openapi::{boolean, obj, op, string, Op};
use super::{Params, Route};
use crate::accounts::{self, ApiKey, Membership, NewUser};
use crate::app::Ctx;
use crate::auth;
use crate::emailed;
use crate::error::Error;
use crate::factors::{self, Factor};
use crate::http::{Request, Response};
use crate::totp::{self, Confirm, State};

/// The lagrello route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("POST", "/v1/users", create),
        // Before /v1/users/{userId}: "email" is this route's, not a userId.
        Route::new("GET", "/v1/users/email", magic_verify),
        Route::new("GET", "/v1/users/{userId}", show),
        Route::new("PATCH", "/v1/users/{userId}", update),
        Route::new("DELETE", "/v1/users/{userId}", delete),
        Route::new("POST", "/v1/users/{userId}/email", magic_send),
        Route::new("POST", "/v1/users/{userId}/totp", totp_toggle),
        Route::new("GET", "/v1/users/{userId}/totp", totp_verify),
    ]
}

/// The caller's key, which must carry `scope`.
fn key(cx: &mut Ctx, req: &Request, scope: &str) -> Result<ApiKey, Error> {
    let text = req
        .bearer()
        .ok_or_else(|| Error::Forbidden("An API key is required".into()))?;
    let key = accounts::authenticate_api_key(&cx.conn, text).map_err(|e| match e {
        Error::Unauthenticated => Error::Forbidden("The API key is wrong or revoked".into()),
        other => other,
    })?;
    if !key.has_scope(scope) {
        return Err(Error::Forbidden(format!(
            "The API key lacks the {scope} scope"
        )));
    }
    let now = cx.now();
    cx.write(|tx| accounts::touch_api_key(tx, &key.id, now))?;
    Ok(key)
}

fn check_user_id(id: &str) -> Result<(), Error> {
    let n = id.chars().count();
    if n == 0 || n > 128 {
        return Err(Error::invalid(
            "userId",
            "invalid",
            "userId must be 1 to 128 characters",
        ));
    }
    Ok(())
}

fn member(cx: &Ctx, key: &ApiKey, user_id: &str) -> Result<Membership, Error> {
    accounts::member_by_external_id(&cx.conn, &key.tenant_id, user_id)?
        .ok_or_else(|| Error::NotFound("No such user".into()))
}

fn member_user(cx: &Ctx, m: &Membership) -> Result<accounts::User, Error> {
    accounts::get_user(&cx.conn, &m.user_id)?.ok_or_else(|| Error::NotFound("No such user".into()))
}

/// User: `{userId, email?}`.
fn user_body(m: &Membership, user: &accounts::User) -> serde_json::Value {
    let mut v = json!({ "userId": m.external_id });
    if let Some(e) = &user.email {
        v["email"] = json!(e);
    }
    v
}

fn user_json(cx: &Ctx, m: &Membership) -> Result<serde_json::Value, Error> {
    Ok(user_body(m, &member_user(cx, m)?))
}

fn create(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let key = key(cx, req, "users:write")?;
    let body = req.json()?;
    let user_id = body.str("userId", 128)?;
    check_user_id(&user_id)?;
    let email = body.opt_str("email", 254)?;
    let now = cx.now();
    let m = cx.write(|tx| {
        if accounts::member_by_external_id(tx, &key.tenant_id, &user_id)?.is_some() {
            return Err(Error::Conflict("A user with this userId exists".into()));
        }
        let new = NewUser {
            email,
            tenant_id: Some(key.tenant_id.clone()),
            external_id: Some(user_id.clone()),
            ..NewUser::default()
        };
        let user = accounts::create_user(tx, &new, now)?;
        accounts::membership(tx, &user.id, &key.tenant_id)?
            .ok_or_else(|| Error::Internal("membership vanished".into()))
    })?;
    Ok(Response::json(201, &user_json(cx, &m)?))
}

fn show(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let key = key(cx, req, "users:read")?;
    let m = member(cx, &key, p.get("userId"))?;
    Ok(Response::ok(&user_json(cx, &m)?))
}

fn update(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let key = key(cx, req, "users:write")?;
    let body = req.json()?;
    let email = body.opt_str("email", 254)?;
    let m = member(cx, &key, p.get("userId"))?;
    let now = cx.now();
    if let Some(email) = email {
        cx.write(|tx| accounts::set_email(tx, &m.user_id, &email, now))?;
    }
    Ok(Response::ok(&user_json(cx, &m)?))
}

fn delete(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let key = key(cx, req, "users:write")?;
    let m = member(cx, &key, p.get("userId"))?;
    cx.write(|tx| accounts::remove_member(tx, &m))?;
    Ok(Response::empty(204))
}

/// {enable: true} starts a pending factor (confirmed by the first good
/// verify) and answers its secret and QR code; {enable: false} turns the
/// factor off: the API key is the authority here, as an admin is.
fn totp_toggle(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let key = key(cx, req, "auth:write")?;
    let body = req.json()?;
    let enable = body.bool("enable")?;
    let m = member(cx, &key, p.get("userId"))?;
    let user = member_user(cx, &m)?;
    if enable {
        let e = factors::enroll(cx, &user, false)?;
        return Ok(Response::ok(&json!({
            "secretKey": e.secret,
            "qrImage": totp::qr_png_data_url(&e.uri)?,
        })));
    }
    match factors::remove(cx, &user, "disabled through the service API")? {
        State::Off => Err(Error::Conflict(
            "Two-factor authentication is not enabled".into(),
        )),
        _ => Ok(Response::empty(204)),
    }
}

/// ?payload=CODE: 200 with the user when the code is right (confirming a
/// pending factor), 401 for a wrong or replayed code or no factor.
fn totp_verify(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let key = key(cx, req, "auth:write")?;
    let code = req
        .query("payload")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::required("payload"))?
        .to_string();
    totp::check_code_format("payload", &code)?;
    let m = member(cx, &key, p.get("userId"))?;
    let user = member_user(cx, &m)?;
    if !user.is_active() {
        return Err(Error::UserInactive);
    }
    let peer = super::peer(req);
    factors::check(cx, &user, Factor::Totp(&code), Confirm::Plain, &peer)?;
    auth::record_tenant_sign_in(cx, &user.id, &key.tenant_id, "totp", &["otp"], &peer)?;
    Ok(Response::ok(&user_body(&m, &user)))
}

/// Mails the user a magic link to the tenant's callback URL.
fn magic_send(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let key = key(cx, req, "auth:write")?;
    let m = member(cx, &key, p.get("userId"))?;
    let user = member_user(cx, &m)?;
    emailed::send_tenant_magic_link(cx, &key.tenant_id, &user, &super::peer(req))?;
    Ok(Response::empty(204))
}

/// ?payload=TOKEN: the user the link was mailed to, once (auth:write, as
/// the TOTP verify: this is the sign-in check, not a read).
fn magic_verify(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let key = key(cx, req, "auth:write")?;
    let token = req
        .query("payload")
        .filter(|t| !t.is_empty() && t.len() <= 4096)
        .ok_or_else(|| Error::required("payload"))?;
    let user_id = emailed::redeem_tenant_magic_link(cx, &key.tenant_id, token, &super::peer(req))?;
    let m = accounts::membership(&cx.conn, &user_id, &key.tenant_id)?.ok_or(Error::TokenInvalid)?;
    Ok(Response::ok(&user_json(cx, &m)?))
}

/// lagrello's error envelope.
pub fn render(e: &Error) -> Response {
    let kind = match e.status() {
        400 | 405 | 408 | 413 | 422 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        409 => "CONFLICT",
        429 => "RATE_LIMITED",
        _ => "INTERNAL_ERROR",
    };
    let message = match e {
        // The original's words for a magic link that must not sign in.
        Error::TokenInvalid => "End users token is wrong, DO NOT authenticate user".to_string(),
        other => other.public_message(),
    };
    Response::json(
        e.status(),
        &json!({ "message": message, "errorType": kind }),
    )
}

/// The OpenAPI description of the routes above (api/openapi.rs).
pub fn openapi() -> Vec<Op> {
    const E: &str = "LagrelloError";
    let s = string;
    let user = || obj(&["userId"], json!({ "userId": s(), "email": s() }));
    let key = ["apiKey"];
    vec![
        op("POST", "/v1/users", "Create a user (users:write)")
            .security(&key)
            .body(obj(&["userId"], json!({ "userId": s(), "email": s() })))
            .json(201, "Created", user())
            .errors(E, &[400, 403, 409, 422]),
        op("GET", "/v1/users/email", "Redeem a magic link (auth:write)")
            .security(&key)
            .query("payload", true, s())
            .json(200, "The user the link was mailed to", user())
            .errors(E, &[401, 403, 422, 429]),
        op("GET", "/v1/users/{userId}", "A user (users:read)")
            .security(&key)
            .json(200, "The user", user())
            .errors(E, &[403, 404]),
        op(
            "PATCH",
            "/v1/users/{userId}",
            "Change a user's email (users:write)",
        )
        .security(&key)
        .body(obj(&[], json!({ "email": s() })))
        .json(200, "The user", user())
        .errors(E, &[400, 403, 404, 409, 422]),
        op(
            "DELETE",
            "/v1/users/{userId}",
            "Remove a user (users:write)",
        )
        .security(&key)
        .empty(204, "Removed")
        .errors(E, &[403, 404]),
        op(
            "POST",
            "/v1/users/{userId}/email",
            "Mail a magic link (auth:write)",
        )
        .security(&key)
        .empty(204, "Sent")
        .errors(E, &[400, 403, 404, 429]),
        op(
            "POST",
            "/v1/users/{userId}/totp",
            "Start or remove TOTP (auth:write)",
        )
        .security(&key)
        .body(obj(&["enable"], json!({ "enable": boolean() })))
        .json(
            200,
            "Enabled: the pending factor",
            obj(
                &["secretKey", "qrImage"],
                json!({ "secretKey": s(), "qrImage": s() }),
            ),
        )
        .empty(204, "Removed")
        .errors(E, &[400, 403, 404, 409, 422]),
        op(
            "GET",
            "/v1/users/{userId}/totp",
            "Check a TOTP code (auth:write)",
        )
        .security(&key)
        .query("payload", true, s())
        .json(200, "Good code", user())
        .errors(E, &[401, 403, 404, 422, 429]),
    ]
}
