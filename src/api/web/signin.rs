//! The sign-in, second-factor and sign-out forms.

use super::*;
use crate::web::signin::{self, PasswordStep, PENDING_TTL};

/// The sign-in and sign-out forms' routes.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("GET", "/signin", signin_form),
        Route::new("POST", "/signin", signin_post),
        Route::new("GET", "/signin/second-factor", second_factor_form),
        Route::new("POST", "/signin/second-factor", second_factor_post),
        Route::new("GET", "/signout", signout_form),
        Route::new("POST", "/signout", signout_post),
    ]
}

// --- sign-in ---------------------------------------------------------------

fn signin_form(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let return_to = safe_return_to(req.query("return_to"));
        signin_page(cx, req, 200, SigninView::blank(return_to))
    })
}

/// What the sign-in form shows besides its fields.
struct SigninView<'a> {
    return_to: &'a str,
    login: &'a str,
    login_error: Option<&'a str>,
    password_error: Option<&'a str>,
    notice: Option<String>,
}

impl<'a> SigninView<'a> {
    fn blank(return_to: &'a str) -> SigninView<'a> {
        SigninView {
            return_to,
            login: "",
            login_error: None,
            password_error: None,
            notice: None,
        }
    }
}

/// The sign-in form, with its CSRF cookie: the browser's own when it holds
/// a usable one (so a form re-shown after a mistake keeps working), else a
/// new one.
fn signin_page(cx: &Ctx, req: &Request, status: u16, v: SigninView) -> Result<Response, Error> {
    let name = session::csrf_cookie_name(&cx.app.public_url);
    let (value, fresh) = match session::usable_csrf_value(req.cookie(name)) {
        Some(v) => (v.to_string(), false),
        None => (session::new_csrf_value()?, true),
    };
    let mut page = Page::new(product(cx), "Sign in")
        .set("csrf", session::csrf_token(&cx.app.master, &value))
        .set("return_to", v.return_to)
        .set("login", v.login);
    page = super::emailed::offer(cx, page, v.return_to);
    if let Some(e) = v.login_error {
        page = page.set("login_error", e);
    }
    if let Some(e) = v.password_error {
        page = page.set("password_error", e);
    }
    if let Some(n) = v.notice {
        page = page.set("notice", n);
    }
    let mut resp = html(status, page.render("signin.html")?);
    if fresh {
        resp = resp.with_header(
            "Set-Cookie",
            &session::set_cookie(&cx.app.public_url, name, &value, session::CSRF_COOKIE_SECS),
        );
    }
    Ok(resp)
}

fn signin_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let form = Form::read(req)?;
        let public = cx.app.public_url.clone();
        let csrf = req.cookie(session::csrf_cookie_name(&public));
        if !session::csrf_ok(&cx.app.master, csrf, form.get("csrf")) {
            return Err(csrf_refused());
        }
        let return_to = safe_return_to(Some(form.get("return_to")));
        let login = form.get("login").trim();
        let password = form.get("password");
        let mut view = SigninView::blank(return_to);
        view.login = login;
        if login.is_empty() {
            view.login_error = Some("Enter your email address or username.");
            return signin_page(cx, req, 422, view);
        }
        if login.chars().count() > MAX_LOGIN {
            view.login = "";
            view.login_error = Some("That is longer than any email address or username.");
            return signin_page(cx, req, 422, view);
        }
        if password.is_empty() {
            view.password_error = Some("Enter your password.");
            return signin_page(cx, req, 422, view);
        }
        if password.chars().count() > crate::password::MAX_LEN {
            view.password_error = Some("That is longer than any password here.");
            return signin_page(cx, req, 422, view);
        }
        let old = req.cookie(session::cookie_name(&public));
        match signin::password(cx, login, password, old, &peer(req)) {
            Ok(PasswordStep::Done(id)) => Ok(signed_in(cx, return_to, &id)),
            Ok(PasswordStep::SecondFactor(token)) => {
                let to = format!(
                    "/signin/second-factor?return_to={}",
                    percent_encode(return_to)
                );
                Ok(see_other(&to).with_header(
                    "Set-Cookie",
                    &session::set_cookie(
                        &public,
                        session::pending_cookie_name(&public),
                        &token,
                        PENDING_TTL,
                    ),
                ))
            }
            Err(Error::InvalidCredentials) => {
                // The same words for an unknown name and a wrong password.
                view.password_error = Some("The email, username or password is not right.");
                signin_page(cx, req, 401, view)
            }
            Err(Error::UserInactive) => {
                view.notice = Some("This account is disabled. Ask your administrator.".into());
                signin_page(cx, req, 403, view)
            }
            Err(Error::RateLimited { retry_after }) => {
                view.notice = Some(format!(
                    "Too many attempts. Wait {} and try again.",
                    wait(retry_after)
                ));
                Ok(signin_page(cx, req, 429, view)?
                    .with_header("Retry-After", &retry_after.to_string()))
            }
            Err(e) => Err(e),
        }
    })
}

/// 303 to `return_to` with the new session's cookie, kept by the browser
/// as long as the session can live at most (the server ends it sooner when
/// idle); the pre-session and pending cookies are done with.
pub(super) fn signed_in(cx: &Ctx, return_to: &str, id: &str) -> Response {
    let public = cx.app.public_url.as_str();
    let max_age = cx.app.config.web_session_max_secs;
    let clear = |name: &str| session::set_cookie(public, name, "", 0);
    see_other(return_to)
        .with_header(
            "Set-Cookie",
            &session::set_cookie(public, session::cookie_name(public), id, max_age),
        )
        .with_header("Set-Cookie", &clear(session::csrf_cookie_name(public)))
        .with_header("Set-Cookie", &clear(session::pending_cookie_name(public)))
}

// --- second factor -----------------------------------------------------------

fn second_factor_form(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let return_to = safe_return_to(req.query("return_to"));
        let pending = req.cookie(session::pending_cookie_name(&cx.app.public_url));
        match pending {
            Some(p) if signin::pending_live(cx, p)? => {
                second_factor_page(cx, 200, p, return_to, None)
            }
            _ => Ok(expired_sign_in(return_to)),
        }
    })
}

/// Back to the start: the half-done sign-in is gone.
fn expired_sign_in(return_to: &str) -> Response {
    see_other(&format!("/signin?return_to={}", percent_encode(return_to)))
}

fn second_factor_page(
    cx: &Ctx,
    status: u16,
    pending: &str,
    return_to: &str,
    code_error: Option<&str>,
) -> Result<Response, Error> {
    let mut page = Page::new(product(cx), "Two-factor authentication")
        .set("csrf", session::csrf_token(&cx.app.master, pending))
        .set("return_to", return_to);
    if let Some(e) = code_error {
        page = page.set("code_error", e);
    }
    Ok(html(status, page.render("second_factor.html")?))
}

fn second_factor_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let form = Form::read(req)?;
        let public = cx.app.public_url.clone();
        let pending = req.cookie(session::pending_cookie_name(&public));
        if !session::csrf_ok(&cx.app.master, pending, form.get("csrf")) {
            return Err(csrf_refused());
        }
        let pending = pending.unwrap_or_default();
        let return_to = safe_return_to(Some(form.get("return_to")));
        let code = form.get("code");
        if code.trim().is_empty() {
            return second_factor_page(cx, 422, pending, return_to, Some("Enter a code."));
        }
        let old = req.cookie(session::cookie_name(&public));
        match signin::second_factor(cx, pending, code, old, &peer(req)) {
            Ok(id) => Ok(signed_in(cx, return_to, &id)),
            Err(Error::OtpInvalid) if signin::pending_live(cx, pending)? => second_factor_page(
                cx,
                401,
                pending,
                return_to,
                Some("That code is not right. Try the current code."),
            ),
            Err(Error::Validation { .. }) => second_factor_page(
                cx,
                422,
                pending,
                return_to,
                Some("Enter the 6-digit code or a recovery code."),
            ),
            // Too many wrong codes, or the five minutes are over.
            Err(Error::OtpInvalid | Error::TokenInvalid) => Ok(expired_sign_in(return_to)),
            Err(e) => Err(e),
        }
    })
}

// --- sign-out and account ------------------------------------------------------

/// The sign-out page. Sent here by the OpenID provider's end-session
/// (a request without the person's id_token), it may carry `client_id`,
/// `post_logout_redirect_uri` and `state`: kept in the form only when the
/// URI is registered for that client, and checked again on the post.
fn signout_form(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let mut page = Page::new(product(cx), "Sign out");
        let back = post_logout(
            cx,
            req.query("client_id").unwrap_or(""),
            req.query("post_logout_redirect_uri").unwrap_or(""),
            req.query("state"),
        )?;
        if let Some(b) = &back {
            page = page.set("app", b.app.as_str());
        }
        match signed_in_as(cx, req)? {
            Some((value, s)) => {
                page = page
                    .set("csrf", session::csrf_token(&cx.app.master, &value))
                    .set("who", who(cx, &s)?);
                if back.is_some() {
                    page = page
                        .set("logout_client", req.query("client_id").unwrap_or(""))
                        .set(
                            "logout_uri",
                            req.query("post_logout_redirect_uri").unwrap_or(""),
                        );
                    if let Some(st) = req.query("state") {
                        page = page.set("logout_state", st);
                    }
                }
            }
            // No one to sign out: the way back to the app, as a link.
            None => {
                if let Some(b) = &back {
                    page = page.set("back", b.url.as_str());
                }
            }
        }
        Ok(html(200, page.render("signout.html")?))
    })
}

/// The registered post-logout target of a sign-out, if the fields name one
/// (`oidc::endpoints::post_logout`: never an unregistered URI).
fn post_logout(
    cx: &Ctx,
    client_id: &str,
    uri: &str,
    state: Option<&str>,
) -> Result<Option<crate::oidc::endpoints::PostLogout>, Error> {
    if client_id.is_empty() || uri.is_empty() {
        return Ok(None);
    }
    crate::oidc::endpoints::post_logout(&cx.conn, client_id, uri, state)
}

fn signout_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let form = Form::read(req)?;
        let public = cx.app.public_url.clone();
        let name = session::cookie_name(&public);
        let value = req.cookie(name);
        if !session::csrf_ok(&cx.app.master, value, form.get("csrf")) {
            return Err(csrf_refused());
        }
        signin::sign_out(cx, value.unwrap_or_default(), &peer(req))?;
        // Back to the app when the form names a registered post-logout URI
        // (checked again: the hidden fields are the browser's to change);
        // anything else ends at the sign-in page.
        let state = Some(form.get("logout_state")).filter(|s| !s.is_empty());
        let to = match post_logout(cx, form.get("logout_client"), form.get("logout_uri"), state)? {
            Some(b) => b.url,
            None => "/signin".to_string(),
        };
        Ok(see_other(&to).with_header("Set-Cookie", &session::set_cookie(&public, name, "", 0)))
    })
}

/// The sign-in and sign-out forms' operations.
pub fn openapi() -> Vec<Op> {
    vec![
        page_op("GET", "/signin", "The sign-in page").query("return_to", false, string()),
        form_op(
            "/signin",
            "Signs in with a login name and password (a form)",
        ),
        page_op(
            "GET",
            "/signin/second-factor",
            "The second-factor page of a half-done sign-in",
        )
        .query("return_to", false, string()),
        form_op(
            "/signin/second-factor",
            "Finishes a sign-in with a TOTP or recovery code (a form)",
        ),
        page_op("GET", "/signout", "Asks to confirm signing out")
            .query("client_id", false, string())
            .query("post_logout_redirect_uri", false, string())
            .query("state", false, string()),
        op("POST", "/signout", "Ends the browser session (a form)")
            .empty(
                303,
                "To the app's registered post-logout URI with state, or to /signin",
            )
            .json_text(403, "text/html"),
    ]
}
