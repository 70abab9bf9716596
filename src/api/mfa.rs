//! mfa: ShellHub's password sign-in (`/api/login`) so far; the MfaApi
//! routes under /api/user/mfa come with the second-factor issue. Errors as
//! `{"message": "...", "fields": {...}}`. Fields: shared/API.md §3.
//!
//! Every sign-in answer carries `X-Account-Lockout` (unix seconds at which
//! the soft lock ends, 0 when there is none), and a locked account gets 429
//! with an empty body, as ShellHub's clients expect.

use serde_json::json;

use super::{peer, render as render_with_headers, Params, Route};
use crate::accounts::User;
use crate::app::Ctx;
use crate::auth;
use crate::error::Error;
use crate::http::{Request, Response};
use crate::password::MAX_LEN;

/// The mfa route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("POST", "/api/login", login),
        Route::new("POST", "/api/auth/user", login),
    ]
}

fn login(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let fields = req
        .json()
        .and_then(|b| Ok((b.str("username", 320)?, b.str("password", MAX_LEN)?)));
    let outcome = fields.clone().and_then(|(username, password)| {
        let user = auth::check_password(cx, &username, &password, &peer(req))?;
        let grant = auth::grant_for(&user, None, &["pwd"]);
        auth::issue_tokens(cx, None, &grant, "password", &peer(req))
            .map(|t| user_auth(&t.user, &t.access_token, t.claims.tenantId.as_deref()))
    });
    let lockout = match &fields {
        Ok((username, _)) => auth::lock_ends(cx, username)?,
        Err(_) => 0,
    };
    let lockout = lockout.to_string();
    let resp = match outcome {
        Ok(body) => Response::ok(&body),
        Err(e) => render_with_headers(render, &e),
    };
    Ok(resp.with_header("X-Account-Lockout", &lockout))
}

/// UserAuth.
fn user_auth(user: &User, token: &str, tenant: Option<&str>) -> serde_json::Value {
    json!({
        "token": token,
        "id": user.id,
        "origin": "local",
        "user": user.username.clone().or(user.email.clone()).unwrap_or_default(),
        "name": user.name.clone().unwrap_or_default(),
        "email": user.email.clone().unwrap_or_default(),
        "recovery_email": user.recovery_email.clone().unwrap_or_default(),
        "tenant": tenant.unwrap_or(""),
        "role": user.role,
        "mfa": false,
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
