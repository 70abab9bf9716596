//! The account page: what a signed-in person manages themselves (the
//! flows are in web/account.rs). Every form's `csrf` field is bound to the
//! session cookie and checked before anything else is read; a form whose
//! session has ended goes to the sign-in page. A refused field is shown
//! next to it on the page (401 wrong password or code, 422 refused by a
//! rule, 429 too many attempts); a change that worked is a 303 back to
//! /account, whose `done` parameter picks one of a few fixed sentences
//! (nothing typed anywhere is ever shown from the URL). Pages that show a
//! secret (the TOTP set-up, recovery codes) are answers to the POST
//! itself, never a URL, and like every page are not cached.

use std::collections::BTreeMap;

use minijinja::Value;

use super::*;
use crate::web::account::{self, Overview};

/// The account page's routes.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("GET", "/account", account_get),
        Route::new("POST", "/account/password", password_post),
        Route::new("POST", "/account/totp", totp_post),
        Route::new("POST", "/account/totp/confirm", totp_confirm_post),
        Route::new("POST", "/account/totp/disable", totp_disable_post),
        Route::new("POST", "/account/recovery", recovery_post),
        Route::new(
            "POST",
            "/account/sessions/signout-others",
            signout_others_post,
        ),
        Route::new("POST", "/account/apps/withdraw", withdraw_app_post),
    ]
}

/// Where a browser without a live session goes.
fn to_sign_in() -> Response {
    see_other("/signin?return_to=%2Faccount")
}

/// The sentence a `done` value stands for (a fixed set: the URL never
/// puts words on the page).
fn done_notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "password" => Some("Your password is changed. Your other sessions are signed out."),
        "totp-off" => Some("Two-factor authentication is off."),
        "signed-out-others" => Some("Your other sessions are signed out."),
        "app-withdrawn" => Some("The app no longer has your consent, and is signed out."),
        _ => None,
    }
}

fn account_get(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let Some((value, s)) = signed_in_as(cx, req)? else {
            return Ok(to_sign_in());
        };
        let mut view = View::new(200);
        view.notice = done_notice(req.query("done")).map(str::to_string);
        account_page(cx, &value, &s, view)
    })
}

/// What the account page shows besides the account: a notice, the error
/// of a refused field, the status.
struct View {
    status: u16,
    notice: Option<String>,
    errors: BTreeMap<String, String>,
    retry_after: Option<u64>,
}

impl View {
    fn new(status: u16) -> View {
        View {
            status,
            notice: None,
            errors: BTreeMap::new(),
            retry_after: None,
        }
    }

    /// The view of a refusal shown next to `field` (see `refusal`).
    fn refused(field: &str, (status, message, retry_after): Refusal) -> View {
        let mut v = View::new(status);
        v.errors.insert(field.to_string(), message);
        v.retry_after = retry_after;
        v
    }
}

/// A refused form field: status, words, Retry-After.
type Refusal = (u16, String, Option<u64>);

/// How a flow's refusal reads next to its field; other errors go on to
/// the error page.
fn refusal(e: Error) -> Result<Refusal, Error> {
    Ok(match e {
        Error::IncorrectPassword => (401, "That is not your current password.".into(), None),
        Error::OtpInvalid => (
            401,
            "That code is not right. Try the current code.".into(),
            None,
        ),
        Error::RateLimited { retry_after } => (429, too_many(retry_after), Some(retry_after)),
        Error::Validation { message, .. } => (422, message, None),
        Error::Conflict(message) => (409, message, None),
        Error::Forbidden(message) => (403, message, None),
        other => return Err(other),
    })
}

fn account_page(cx: &Ctx, value: &str, s: &BrowserSession, view: View) -> Result<Response, Error> {
    let o: Overview = account::overview(cx, s)?;
    let methods = if s.amr.iter().any(|a| a == "otp" || a == "recovery") {
        "Password and a second factor"
    } else {
        "Password"
    };
    let recent: Vec<Value> = o
        .recent
        .iter()
        .map(|r| {
            let mut m: BTreeMap<&str, Value> = BTreeMap::new();
            m.insert("time", r.time.clone().into());
            m.insert("event", r.event.clone().into());
            m.insert("failed", r.failed.into());
            m.insert("method", r.method.clone().into());
            m.insert("ip", r.ip.clone().into());
            m.insert("user_agent", r.user_agent.clone().into());
            Value::from(m)
        })
        .collect();
    let apps: Vec<Value> = o
        .apps
        .iter()
        .map(|c| {
            let scopes: Vec<&str> = c
                .scopes
                .iter()
                .map(|sc| crate::oidc::consent::describe(sc))
                .collect();
            let mut m: BTreeMap<&str, Value> = BTreeMap::new();
            m.insert("client_id", c.client_id.clone().into());
            m.insert("name", c.client_name.clone().into());
            m.insert("scopes", scopes.into());
            m.insert("since", crate::clock::iso8601(c.granted_at).into());
            Value::from(m)
        })
        .collect();
    let mut page = Page::new(product(cx), "Your account")
        .set("csrf", session::csrf_token(&cx.app.master, value))
        .set("who", o.user.display_name())
        .set("methods", methods)
        .set("has_password", o.has_password)
        .set("min_len", crate::password::MIN_LEN)
        .set("totp_on", o.totp_on)
        .set("recovery_left", o.recovery_left)
        .set("recent", recent)
        .set("other_browsers", o.other_browsers)
        .set("app_sessions", o.app_sessions)
        .set("apps", apps)
        .set("errors", Value::from(view.errors));
    if let Some(e) = &o.user.email {
        page = page.set("email", e.as_str());
    }
    if let Some(n) = view.notice {
        page = page.set("notice", n);
    }
    let mut resp = html(view.status, page.render("account.html")?);
    if let Some(r) = view.retry_after {
        resp = resp.with_header("Retry-After", &r.to_string());
    }
    Ok(resp)
}

/// A posted form of the account page: the CSRF token checked against the
/// session cookie first (403 when wrong), then the session itself. None
/// when the session has ended.
fn account_form(cx: &Ctx, req: &Request) -> Result<Option<(String, BrowserSession, Form)>, Error> {
    let form = Form::read(req)?;
    let value = session_cookie(cx, req);
    if !session::csrf_ok(&cx.app.master, value, form.get("csrf")) {
        return Err(csrf_refused());
    }
    Ok(signed_in_as(cx, req)?.map(|(v, s)| (v, s, form)))
}

// --- password ------------------------------------------------------------------

fn password_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let Some((value, s, form)) = account_form(cx, req)? else {
            return Ok(to_sign_in());
        };
        let current = form.get("current_password");
        let new = form.get("new_password");
        let refuse = |field: &str, status: u16, message: &str| {
            View::refused(field, (status, message.to_string(), None))
        };
        let early = if current.is_empty() {
            Some(refuse(
                "current_password",
                422,
                "Enter your current password.",
            ))
        } else if current.chars().count() > crate::password::MAX_LEN {
            Some(refuse(
                "current_password",
                422,
                "That is longer than any password here.",
            ))
        } else if new.is_empty() {
            Some(refuse("new_password", 422, "Enter a new password."))
        } else if new != form.get("confirm_password") {
            Some(refuse(
                "confirm_password",
                422,
                "The two new passwords are not the same.",
            ))
        } else {
            None
        };
        if let Some(view) = early {
            return account_page(cx, &value, &s, view);
        }
        match account::change_password(cx, &s, current, new, &peer(req)) {
            Ok(id) => {
                let max_age = cx.app.config.web_session_max_secs;
                Ok(with_session_cookie(
                    see_other("/account?done=password#password"),
                    cx,
                    &id,
                    max_age,
                ))
            }
            // The session ended while the change was under way: nothing
            // changed, and this browser is signed out.
            Err(Error::TokenRevoked) => Ok(to_sign_in()),
            Err(e) => {
                // The policy's words are about the new password; the rest
                // about the current one.
                let field = match &e {
                    Error::Validation { .. } => "new_password",
                    _ => "current_password",
                };
                account_page(cx, &value, &s, View::refused(field, refusal(e)?))
            }
        }
    })
}

// --- two-factor authentication ------------------------------------------------

fn totp_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let Some((value, s, form)) = account_form(cx, req)? else {
            return Ok(to_sign_in());
        };
        match account::start_totp(cx, &s, form.get("password"), &peer(req)) {
            Ok(e) => totp_page(cx, &value, 200, &e, None),
            Err(e) => {
                // The password's refusals next to it; the others (already
                // on, a sign-in too old) at the head of the section.
                let field = match &e {
                    Error::IncorrectPassword
                    | Error::RateLimited { .. }
                    | Error::Validation { .. } => "totp_password",
                    _ => "totp",
                };
                account_page(cx, &value, &s, View::refused(field, refusal(e)?))
            }
        }
    })
}

/// The set-up page: the QR code, the secret to type, the confirm form.
fn totp_page(
    cx: &Ctx,
    value: &str,
    status: u16,
    e: &crate::totp::Enrollment,
    code_error: Option<String>,
) -> Result<Response, Error> {
    let mut page = Page::new(product(cx), "Set up two-factor authentication")
        .set("csrf", session::csrf_token(&cx.app.master, value))
        .set("qr", crate::totp::qr_png_data_url(&e.uri)?)
        .set("secret", e.secret.as_str());
    if let Some(m) = code_error {
        page = page.set("code_error", m);
    }
    Ok(html(status, page.render("account_totp.html")?))
}

fn totp_confirm_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let Some((value, s, form)) = account_form(cx, req)? else {
            return Ok(to_sign_in());
        };
        let code = form.get("code");
        let outcome = if code.trim().is_empty() {
            Err(Error::invalid(
                "code",
                "required",
                "Enter the 6-digit code from your app.",
            ))
        } else {
            account::confirm_totp(cx, &s, code, &peer(req))
        };
        let e = match outcome {
            Ok(codes) => return codes_page(cx, &codes, true),
            Err(e) => e,
        };
        let (status, message, retry_after) = refusal(e)?;
        // Shown again while it can still be confirmed; else the account
        // page says why (expired, already on).
        match account::pending_totp(cx, &s)? {
            Some(pending) if status != 409 => {
                let mut resp = totp_page(cx, &value, status, &pending, Some(message))?;
                if let Some(r) = retry_after {
                    resp = resp.with_header("Retry-After", &r.to_string());
                }
                Ok(resp)
            }
            _ => account_page(
                cx,
                &value,
                &s,
                View::refused("totp", (status, message, retry_after)),
            ),
        }
    })
}

fn totp_disable_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let Some((value, s, form)) = account_form(cx, req)? else {
            return Ok(to_sign_in());
        };
        let code = form.get("code");
        let outcome = if code.trim().is_empty() {
            Err(Error::invalid(
                "code",
                "required",
                "Enter a code from your app or a recovery code.",
            ))
        } else {
            account::disable_totp(cx, &s, code, &peer(req))
        };
        match outcome {
            Ok(()) => Ok(see_other("/account?done=totp-off#two-factor")),
            Err(e) => account_page(cx, &value, &s, View::refused("code", refusal(e)?)),
        }
    })
}

// --- recovery codes ------------------------------------------------------------

fn recovery_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let Some((value, s, form)) = account_form(cx, req)? else {
            return Ok(to_sign_in());
        };
        let password = form.get("password");
        let outcome = if password.is_empty() {
            Err(Error::invalid(
                "password",
                "required",
                "Enter your current password.",
            ))
        } else if password.chars().count() > crate::password::MAX_LEN {
            Err(Error::IncorrectPassword)
        } else {
            account::regenerate_recovery(cx, &s, password, &peer(req))
        };
        match outcome {
            Ok(codes) => codes_page(cx, &codes, false),
            Err(e) => account_page(cx, &value, &s, View::refused("password", refusal(e)?)),
        }
    })
}

/// The recovery codes, shown this once.
fn codes_page(cx: &Ctx, codes: &[String], totp_on: bool) -> Result<Response, Error> {
    let title = if totp_on {
        "Two-factor authentication is on"
    } else {
        "New recovery codes"
    };
    let page = Page::new(product(cx), title)
        .set("codes", codes.to_vec())
        .set("totp_on", totp_on);
    Ok(html(200, page.render("account_codes.html")?))
}

// --- sessions ------------------------------------------------------------------

fn signout_others_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let Some((_, s, _)) = account_form(cx, req)? else {
            return Ok(to_sign_in());
        };
        account::sign_out_others(cx, &s, &peer(req))?;
        Ok(see_other("/account?done=signed-out-others#sessions"))
    })
}

// --- apps ----------------------------------------------------------------------

fn withdraw_app_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let Some((_, s, form)) = account_form(cx, req)? else {
            return Ok(to_sign_in());
        };
        // Withdrawing what was not given changes nothing: the same answer.
        account::withdraw_app(cx, &s, form.get("client_id"))?;
        Ok(see_other("/account?done=app-withdrawn#apps"))
    })
}

/// The account page's operations.
pub fn openapi() -> Vec<Op> {
    let form = |path, summary| {
        form_op(path, summary)
            .json_text(409, "text/html")
            .json_text(422, "text/html")
    };
    vec![
        page_op("GET", "/account", "The signed-in user's account page")
            .query("done", false, string())
            .empty(303, "To /signin when not signed in"),
        form("/account/password", "Changes the password (a form)"),
        form(
            "/account/totp",
            "Starts turning two-factor authentication on, after the current password: the QR code page (a form)",
        )
        .json_text(200, "text/html"),
        form(
            "/account/totp/confirm",
            "Turns two-factor authentication on with a code: the recovery codes page (a form)",
        )
        .json_text(200, "text/html"),
        form(
            "/account/totp/disable",
            "Turns two-factor authentication off with a code (a form)",
        ),
        form(
            "/account/recovery",
            "Replaces the recovery codes: the new codes page (a form)",
        )
        .json_text(200, "text/html"),
        form(
            "/account/sessions/signout-others",
            "Signs out every other session of the user (a form)",
        ),
        form(
            "/account/apps/withdraw",
            "Withdraws the consent given to an app, signing it out (a form)",
        ),
    ]
}
