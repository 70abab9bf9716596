//! yat: the Yat UserAuthenticationApi: password sign-in, refresh and the
//! second factor (a sign-in that owes one gets a limited pair and
//! `requires_2fa`; /auth/2fa completes it). snake_case bodies; errors as `{"error": "...", "fields": {...}}`.
//! Fields: the README's "yat" section.

use serde_json::json;

use super::openapi::{boolean, obj, op, string, Op};
use super::{peer, Params, Route};
use crate::app::Ctx;
use crate::auth::{self, Tokens};
use crate::emailed::{self, Named, SignIn};
use crate::error::Error;
use crate::factors;
use crate::http::{Request, Response};
use crate::password::MAX_LEN;

/// The yat route table. `POST /auth/token` is yat's only for password bodies.
pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: "POST",
            path: "/auth/token",
            when: Some(has_password),
            handler: token,
        },
        Route::new("POST", "/auth/token/refresh", refresh),
        Route::new("POST", "/auth/2fa", two_factor),
        Route::new("POST", "/auth/magic_link", magic_link),
    ]
}

fn has_password(req: &Request) -> bool {
    req.body_has("password")
}

fn token(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let password = body.str("password", MAX_LEN)?;
    let login = match body.opt_str("email", 320)? {
        Some(e) => e,
        None => body
            .str("alternate_id", 320)
            .map_err(|_| Error::required("email"))?,
    };
    let user = auth::check_password(cx, &login, &password, &peer(req))?;
    let grant = auth::grant_for(&user, None, &["pwd"]);
    if factors::required(cx, &user)? {
        let pair = factors::start_limited(cx, &grant)?;
        return Ok(limited_response(&pair));
    }
    let tokens = auth::issue_tokens(cx, None, &grant, "password", &peer(req))?;
    Ok(token_response(&tokens))
}

fn two_factor(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let code = body.str("code", 64)?;
    let refresh_token = body.str("refresh_token", 4096)?;
    let tokens = factors::complete_limited(cx, &refresh_token, &code, &peer(req))?;
    Ok(token_response(&tokens))
}

fn refresh(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let refresh_token = body.str("refresh_token", 4096)?;
    match emailed::refresh_or_magic(cx, &refresh_token, &peer(req))? {
        SignIn::Full(tokens) => Ok(token_response(&tokens)),
        SignIn::Owed(pair) => Ok(limited_response(&pair)),
    }
}

/// Always 200 and `"Active"`, known address or not (README, "yat"; ours).
fn magic_link(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let email = body.opt_str("email", 320)?;
    let user_id = body.opt_str("user_id", 128)?;
    let redirect = body.opt_str("redirect", 2048)?;
    let named = match (&email, &user_id) {
        (Some(e), _) => Named::Email(e),
        (None, Some(id)) => Named::UserId(id),
        (None, None) => return Err(Error::required("email")),
    };
    emailed::send_magic_link(cx, named, redirect.as_deref(), &peer(req))?;
    Ok(Response::ok(&json!({
        "message": "If this account exists, a sign-in link has been sent to its email address",
        "status": "Active",
    })))
}

/// TokenResponse of a sign-in that owes the second factor.
fn limited_response(pair: &factors::LimitedPair) -> Response {
    Response::ok(&json!({
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "has_password": true,
        "requires_2fa": "GoogleAuthenticator",
    }))
}

/// TokenResponse of a full sign-in.
fn token_response(t: &Tokens) -> Response {
    Response::ok(&json!({
        "access_token": t.access_token,
        "refresh_token": t.refresh_token,
        "has_password": t.user.password_hash.is_some(),
        "requires_2fa": null,
    }))
}

/// yat's error envelope.
pub fn render(e: &Error) -> Response {
    let fields = match e {
        Error::Validation {
            field,
            code,
            message,
        } => json!({ field.as_str(): [{ "code": code, "message": message }] }),
        _ => json!({}),
    };
    Response::json(
        e.status(),
        &json!({ "error": e.public_message(), "fields": fields }),
    )
}

/// The OpenAPI description of the routes above (api/openapi.rs).
pub fn openapi() -> Vec<Op> {
    const E: &str = "YatError";
    let s = string;
    let tokens = || {
        obj(
            &[
                "access_token",
                "refresh_token",
                "has_password",
                "requires_2fa",
            ],
            json!({
                "access_token": s(), "refresh_token": s(), "has_password": boolean(),
                "requires_2fa": { "enum": [null, "GoogleAuthenticator"] },
            }),
        )
    };
    vec![
        op(
            "POST",
            "/auth/token",
            "Password sign-in (a body with password)",
        )
        .body(obj(
            &["password"],
            json!({
                "email": s(), "alternate_id": s(), "password": s(),
                "g_recaptcha_response": s(),
            }),
        ))
        .json(200, "Tokens (limited when requires_2fa is set)", tokens())
        .errors(E, &[400, 401, 403, 422, 429]),
        op(
            "POST",
            "/auth/token/refresh",
            "Rotate a refresh token, or redeem a magic link",
        )
        .body(obj(&["refresh_token"], json!({ "refresh_token": s() })))
        .json(200, "Tokens", tokens())
        .errors(E, &[400, 401, 403, 422, 429]),
        op(
            "POST",
            "/auth/2fa",
            "Complete a sign-in that owes the second factor",
        )
        .body(obj(
            &["code", "refresh_token"],
            json!({ "code": s(), "refresh_token": s() }),
        ))
        .json(200, "Full tokens", tokens())
        .errors(E, &[400, 401, 403, 422, 429]),
        op("POST", "/auth/magic_link", "Mail a sign-in link")
            .body(obj(
                &[],
                json!({
                    "email": s(), "user_id": s(), "redirect": s(),
                    "g_recaptcha_response": s(),
                }),
            ))
            .json(
                200,
                "Always, known address or not",
                obj(
                    &["message", "status"],
                    json!({ "message": s(), "status": s() }),
                ),
            )
            .errors(E, &[400, 422, 429]),
    ]
}
