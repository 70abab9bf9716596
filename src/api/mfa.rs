//! mfa: ShellHub's password sign-in and its MfaApi under /api/user/mfa.
//! Errors as `{"message": "...", "fields": {...}}`. Fields: the README's "mfa" section.
//!
//! Every sign-in answer carries `X-Account-Lockout` (unix seconds at which
//! the soft lock ends for the caller's own source, 0 when there is none;
//! never another source's), and a locked account gets 429
//! with an empty body, as ShellHub's clients expect. A user with MFA on
//! gets 401 with an empty body and `X-MFA-Token` from the password step.

use serde_json::json;

use super::openapi::{array, boolean, obj, op, string, Op};
use super::{bearer, peer, render as render_with_headers, Params, Route};
use crate::accounts::{self, User};
use crate::app::Ctx;
use crate::auth::{self, Tokens};
use crate::error::Error;
use crate::factors;
use crate::http::{Request, Response};
use crate::password::MAX_LEN;
use crate::totp;

/// The mfa route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("POST", "/api/login", login),
        Route::new("POST", "/api/auth/user", login),
        Route::new("POST", "/api/user/mfa/auth", mfa_auth),
        Route::new("GET", "/api/user/mfa/generate", generate),
        Route::new("PUT", "/api/user/mfa/enable", enable),
        Route::new("PUT", "/api/user/mfa/disable", disable),
        Route::new("POST", "/api/user/mfa/recover", recover),
        Route::new("POST", "/api/user/mfa/reset", reset),
        Route::new("PUT", "/api/user/mfa/reset/{user-id}", finish_reset),
        Route::new("PATCH", "/api/users", update_user),
    ]
}

/// What the password step of /api/login leads to.
enum Step {
    Done(Box<Tokens>),
    /// MFA is on: the X-MFA-Token to finish with.
    Owed(String),
}

fn login(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let fields = req
        .json()
        .and_then(|b| Ok((b.str("username", 320)?, b.str("password", MAX_LEN)?)));
    let outcome = fields.clone().and_then(|(username, password)| {
        let user = auth::check_password(cx, &username, &password, &peer(req))?;
        if factors::required(cx, &user)? {
            return factors::start_mfa_token(cx, &user).map(Step::Owed);
        }
        let grant = auth::grant_for(&user, None, &["pwd"]);
        auth::issue_tokens(cx, None, &grant, "password", &peer(req))
            .map(|t| Step::Done(Box::new(t)))
    });
    // Only the caller's own wait (limits.rs): never when another source
    // may try again, which would tell an attacker when to strike.
    let proved = matches!(outcome, Ok(Step::Owed(_)));
    let lockout = match &fields {
        Ok((username, _)) => auth::lock_ends(cx, username, &peer(req), proved)?,
        Err(_) => 0,
    };
    let lockout = lockout.to_string();
    let resp = match outcome {
        Ok(Step::Done(t)) => Response::ok(&user_auth(&t, false)),
        Ok(Step::Owed(token)) => Response::empty(401).with_header("X-MFA-Token", &token),
        Err(e) => render_with_headers(render, &e),
    };
    Ok(resp.with_header("X-Account-Lockout", &lockout))
}

fn mfa_auth(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let token = body.str("token", 4096)?;
    let code = body.str("code", 64)?;
    let tokens = factors::finish_mfa_token(cx, &token, &code, &peer(req))?;
    Ok(Response::ok(&user_auth(&tokens, true)))
}

fn generate(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let (_, user) = bearer(cx, req)?;
    let e = factors::enroll(cx, &user, true)?;
    // qr_code and qr_code_svg are ours: the link drawn, for a UI to show.
    Ok(Response::ok(&json!({
        "link": e.uri,
        "secret": e.secret,
        "recovery_codes": e.recovery_codes,
        "qr_code": totp::qr_png_data_url(&e.uri)?,
        "qr_code_svg": totp::qr_svg(&e.uri)?,
    })))
}

fn enable(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let (_, user) = bearer(cx, req)?;
    let body = req.json()?;
    let code = body.str("code", 64)?;
    let secret = body.str("secret", 128)?;
    let codes = body.str_list("recovery_codes", totp::RECOVERY_CODES, 64)?;
    factors::enable_pending(cx, &user, &code, &secret, &codes, &peer(req))?;
    Ok(Response::empty(200))
}

fn disable(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let (_, user) = bearer(cx, req)?;
    let body = req.json()?;
    let code = body.opt_str("code", 64)?;
    let recovery = body.opt_str("recovery_code", 64)?;
    factors::disable(cx, &user, code.as_deref(), recovery.as_deref(), &peer(req))?;
    Ok(Response::empty(200))
}

fn recover(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let identifier = body.str("identifier", 320)?;
    let code = body.str("recovery_code", 64)?;
    let (tokens, until) = factors::recover(cx, &identifier, &code, &peer(req))?;
    Ok(Response::ok(&user_auth(&tokens, true)).with_header("X-Expires-At", &until.to_string()))
}

fn reset(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let identifier = body.str("identifier", 320)?;
    factors::request_reset(cx, &identifier, &peer(req))?;
    Ok(Response::empty(200))
}

fn finish_reset(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let main = body.str("main_email_code", 64)?;
    let recovery = body.str("recovery_email_code", 64)?;
    let tokens = factors::finish_reset(cx, p.get("user-id"), &main, &recovery, &peer(req))?;
    Ok(Response::ok(&user_auth(&tokens, false)))
}

fn update_user(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let (_, user) = bearer(cx, req)?;
    let body = req.json()?;
    let name = body.opt_str("name", 256)?;
    let recovery_email = match body.0.get("recovery_email") {
        Some(serde_json::Value::String(s)) if s.is_empty() => {
            return Err(Error::invalid(
                "recovery_email",
                "invalid",
                "recovery_email cannot be cleared once set",
            ))
        }
        _ => body.opt_str("recovery_email", 254)?,
    };
    let now = cx.now();
    cx.write(|tx| {
        accounts::update_profile(tx, &user, name.as_deref(), recovery_email.as_deref(), now)
    })?;
    Ok(Response::empty(200))
}

/// UserAuth.
fn user_auth(t: &Tokens, mfa: bool) -> serde_json::Value {
    let user: &User = &t.user;
    json!({
        "token": t.access_token,
        "id": user.id,
        "origin": "local",
        "user": user.username.clone().or(user.email.clone()).unwrap_or_default(),
        "name": user.name.clone().unwrap_or_default(),
        "email": user.email.clone().unwrap_or_default(),
        "recovery_email": user.recovery_email.clone().unwrap_or_default(),
        "tenant": t.claims.tenantId.as_deref().unwrap_or(""),
        "role": user.role,
        "mfa": mfa,
        "admin": user.is_admin(),
    })
}

/// ShellHub's error envelope; 429 has an empty body.
pub fn render(e: &Error) -> Response {
    match e {
        Error::RateLimited { .. } => Response::empty(429),
        Error::Validation { field, message, .. } => Response::json(
            e.status(),
            &json!({ "message": message, "fields": { field.as_str(): message } }),
        ),
        _ => Response::json(e.status(), &json!({ "message": e.public_message() })),
    }
}

/// The OpenAPI description of the routes above (api/openapi.rs).
pub fn openapi() -> Vec<Op> {
    const E: &str = "MfaError";
    let s = string;
    let user_auth = || {
        obj(
            &[
                "token",
                "id",
                "origin",
                "user",
                "name",
                "email",
                "recovery_email",
                "tenant",
                "role",
                "mfa",
                "admin",
            ],
            json!({
                "token": s(), "id": s(), "origin": { "const": "local" }, "user": s(),
                "name": s(), "email": s(), "recovery_email": s(), "tenant": s(), "role": s(),
                "mfa": boolean(), "admin": boolean(),
            }),
        )
    };
    let identifier = |more: &[&str]| {
        let mut props = json!({ "identifier": s() });
        let mut req = vec!["identifier"];
        for m in more {
            props[*m] = s();
            req.push(m);
        }
        obj(&req, props)
    };
    let mut ops = Vec::new();
    for path in ["/api/login", "/api/auth/user"] {
        ops.push(
            op("POST", path, "Password sign-in")
                .body(obj(
                    &["username", "password"],
                    json!({ "username": s(), "password": s() }),
                ))
                .json(200, "Signed in", user_auth())
                .resp_header(
                    200,
                    "X-Account-Lockout",
                    "Unix seconds the soft lock ends, 0 if none",
                )
                .errors(E, &[400, 401, 403, 422])
                .resp_header(
                    401,
                    "X-MFA-Token",
                    "Sent, with an empty body, when the second factor is owed",
                )
                .empty(429, "Locked (empty body); see X-Account-Lockout"),
        );
    }
    ops.extend([
        op(
            "POST",
            "/api/user/mfa/auth",
            "Finish a sign-in with the TOTP code",
        )
        .body(obj(
            &["token", "code"],
            json!({ "token": s(), "code": s() }),
        ))
        .json(200, "Signed in", user_auth())
        .errors(E, &[400, 401, 403, 422])
        .empty(429, "Rate limited (empty body)"),
        op("GET", "/api/user/mfa/generate", "Start an enrollment")
            .security(&["bearer"])
            .json(
                200,
                "The pending enrollment",
                obj(
                    &["link", "secret", "recovery_codes", "qr_code", "qr_code_svg"],
                    json!({
                        "link": s(), "secret": s(), "recovery_codes": array(s()),
                        "qr_code": s(), "qr_code_svg": s(),
                    }),
                ),
            )
            .errors(E, &[401, 409]),
        op(
            "PUT",
            "/api/user/mfa/enable",
            "Confirm the pending enrollment",
        )
        .security(&["bearer"])
        .body(obj(
            &["code", "secret", "recovery_codes"],
            json!({ "code": s(), "secret": s(), "recovery_codes": array(s()) }),
        ))
        .empty(200, "Enabled")
        .errors(E, &[400, 401, 409, 422])
        .empty(429, "Rate limited (empty body)"),
        op("PUT", "/api/user/mfa/disable", "Turn MFA off")
            .security(&["bearer"])
            .body(obj(&[], json!({ "code": s(), "recovery_code": s() })))
            .empty(200, "Disabled")
            .errors(E, &[400, 401, 409, 422])
            .empty(429, "Rate limited (empty body)"),
        op(
            "POST",
            "/api/user/mfa/recover",
            "Sign in with a recovery code",
        )
        .body(identifier(&["recovery_code"]))
        .json(200, "Signed in", user_auth())
        .resp_header(
            200,
            "X-Expires-At",
            "Until when the code still disables MFA",
        )
        .errors(E, &[400, 401, 403, 422])
        .empty(429, "Rate limited (empty body)"),
        op(
            "POST",
            "/api/user/mfa/reset",
            "Mail the two MFA reset codes",
        )
        .body(identifier(&[]))
        .empty(200, "Sent, or nothing to send")
        .errors(E, &[400, 422])
        .empty(429, "Rate limited (empty body)"),
        op(
            "PUT",
            "/api/user/mfa/reset/{user-id}",
            "Turn MFA off with both mailed codes",
        )
        .body(obj(
            &["main_email_code", "recovery_email_code"],
            json!({ "main_email_code": s(), "recovery_email_code": s() }),
        ))
        .json(200, "Signed in", user_auth())
        .errors(E, &[400, 401, 403, 422])
        .empty(429, "Rate limited (empty body)"),
        op("PATCH", "/api/users", "Change name or recovery email")
            .security(&["bearer"])
            .body(obj(&[], json!({ "name": s(), "recovery_email": s() })))
            .empty(200, "Changed")
            .errors(E, &[400, 401, 409, 422]),
    ]);
    ops
}
