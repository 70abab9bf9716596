//! The sign-in, second-factor and sign-out forms, and the sign-in page's
//! buttons for the upstream providers: a form per provider posting to
//! `/signin/provider` (the sign-in form's CSRF token, `return_to`), which
//! starts the provider's sign-in (`social::start_pages`); the provider's
//! callback (api/social.rs, the routes registered at the provider) hands
//! its end back here (`upstream_answer`).

use std::collections::BTreeMap;

use super::*;
use crate::config::Provider;
use crate::social::{self, kinds, Answer, PagesEnd};
use crate::web::signin::{self, Step, PENDING_TTL};

/// The sign-in and sign-out forms' routes.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("GET", "/signin", signin_form),
        Route::new("POST", "/signin", signin_post),
        Route::new("POST", "/signin/provider", provider_post),
        Route::new("GET", "/signin/second-factor", second_factor_form),
        Route::new("POST", "/signin/second-factor", second_factor_post),
        Route::new("GET", "/signin/step-up", step_up_form),
        Route::new("POST", "/signin/step-up", step_up_post),
        Route::new("GET", "/signout", signout_form),
        Route::new("POST", "/signout", signout_post),
    ]
}

// --- sign-in ---------------------------------------------------------------

fn signin_form(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let return_to = follow(cx, req.query("return_to").or(req.query("rd")));
        let mut view = SigninView::blank(return_to);
        // Back from a provider that did not sign the person in: a word
        // from a fixed list, never text from the URL.
        if let Some(reason) = req.query("failed") {
            let provider = req.query("provider").and_then(|n| configured(cx, n));
            view.notice = upstream_failure(reason, provider.map(kinds::label));
        }
        signin_page(cx, req, 200, view)
    })
}

/// The configured provider named `name`.
fn configured<'c>(cx: &'c Ctx, name: &str) -> Option<&'c Provider> {
    cx.app.config.providers.iter().find(|p| p.name == name)
}

/// What the sign-in page says when a provider's sign-in ended without a
/// session; `reason` is the activity row's outcome (social/flow.rs).
fn upstream_failure(reason: &str, label: Option<String>) -> Option<String> {
    let with = label.unwrap_or_else(|| "the provider".into());
    Some(match reason {
        "unbound_state" => {
            format!("That sign-in with {with} was started in another browser. Start it again here.")
        }
        "provider_refused" => format!("The sign-in with {with} was cancelled or refused."),
        "provider_unreachable" | "provider_busy" => {
            format!("{with} did not answer in time. Try again in a moment.")
        }
        "signup_closed" => {
            format!("No account here is linked to that {with} account, and sign-up is closed.")
        }
        "link_refused" => "An account with that email address exists already. Sign in to it \
                           another way."
            .into(),
        "user_inactive" => "This account is disabled. Ask your administrator.".into(),
        "provider_error" | "provider_misconfigured" | "bad_id_token" | "bad_userinfo" | "error" => {
            format!("Signing in with {with} failed. Try again, or sign in another way.")
        }
        _ => return None,
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

/// The sign-in form, with its pre-session CSRF cookie.
fn signin_page(cx: &Ctx, req: &Request, status: u16, v: SigninView) -> Result<Response, Error> {
    let mut page = Page::new(product(cx), "Sign in")
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
    let providers: Vec<minijinja::Value> = cx
        .app
        .config
        .providers
        .iter()
        .map(|p| {
            minijinja::Value::from(BTreeMap::from([
                ("name", p.name.clone()),
                ("label", kinds::label(p)),
            ]))
        })
        .collect();
    if !providers.is_empty() {
        page = page.set("providers", providers);
    }
    pre_session_page(cx, req, status, page, "signin.html")
}

fn signin_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let form = Form::read(req)?;
        let public = cx.app.public_url.clone();
        let csrf = req.cookie(session::csrf_cookie_name(&public));
        if !session::csrf_ok(&cx.app.master, csrf, form.get("csrf")) {
            return Err(csrf_refused());
        }
        let return_to = follow(cx, Some(form.get("return_to")));
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
        let old = session_cookie(cx, req);
        match signin::password(cx, login, password, old, &peer(req)) {
            Ok(step) => Ok(after_step(cx, &step, return_to)),
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
                view.notice = Some(too_many(retry_after));
                Ok(signin_page(cx, req, 429, view)?
                    .with_header("Retry-After", &retry_after.to_string()))
            }
            Err(e) => Err(e),
        }
    })
}

/// Where a first step leads: signed in (303 to `return_to` with the
/// session cookie), or the second-factor page with the pending cookie.
pub(super) fn after_step(cx: &Ctx, step: &Step, return_to: &str) -> Response {
    match step {
        Step::Done(id) => signed_in(cx, return_to, id),
        Step::SecondFactor(token) => to_second_factor(cx, return_to, token),
    }
}

/// 303 to the second-factor page, with the pending sign-in's cookie.
fn to_second_factor(cx: &Ctx, return_to: &str, token: &str) -> Response {
    let public = cx.app.public_url.as_str();
    let to = format!(
        "/signin/second-factor?return_to={}",
        percent_encode(return_to)
    );
    see_other(&to).with_header(
        "Set-Cookie",
        &session::set_cookie(
            public,
            session::pending_cookie_name(public),
            token,
            PENDING_TTL,
        ),
    )
}

// --- upstream providers ---------------------------------------------------------

/// A provider's button: starts its sign-in, to come back to `return_to`.
fn provider_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let form = Form::read(req)?;
        let csrf = req.cookie(session::csrf_cookie_name(&cx.app.public_url));
        if !session::csrf_ok(&cx.app.master, csrf, form.get("csrf")) {
            return Err(csrf_refused());
        }
        let return_to = follow(cx, Some(form.get("return_to")));
        let Some(provider) = configured(cx, form.get("provider")).cloned() else {
            let mut view = SigninView::blank(return_to);
            view.notice = Some("That way of signing in is not offered here.".into());
            return signin_page(cx, req, 422, view);
        };
        let path = kinds::redirect_path(&cx.app.config.providers, &provider);
        match social::start_pages(cx, &provider, &path, return_to, &peer(req))? {
            Answer::Redirect(r) => Ok(see_other(&r.location).with_header("Set-Cookie", &r.cookie)),
            Answer::Pages(end) => Ok(upstream_answer(cx, end)),
        }
    })
}

/// How a sign-in started here ends, at the provider's callback or at its
/// start: signed in (303 to `return_to` with the session cookie), the
/// second factor owed (as after a password), or back to the sign-in page
/// with why not. Every answer clears the sign-in's binding cookie.
pub(crate) fn upstream_answer(cx: &Ctx, end: PagesEnd) -> Response {
    let return_to = follow(cx, Some(&end.return_to));
    let resp = match &end.step {
        Ok(step) => after_step(cx, step, return_to),
        Err(reason) => see_other(&format!(
            "/signin?return_to={}&failed={}&provider={}",
            percent_encode(return_to),
            percent_encode(reason),
            percent_encode(&end.provider)
        )),
    };
    if end.cookie.is_empty() {
        resp
    } else {
        resp.with_header("Set-Cookie", &end.cookie)
    }
}

/// 303 to `return_to` with the new session's cookie, kept by the browser
/// as long as the session can live at most (the server ends it sooner when
/// idle); the pre-session and pending cookies are done with.
pub(super) fn signed_in(cx: &Ctx, return_to: &str, id: &str) -> Response {
    let public = cx.app.public_url.as_str();
    let max_age = cx.app.config.web_session_max_secs;
    let clear = |name: &str| session::set_cookie(public, name, "", 0);
    with_session_cookie(see_other(return_to), cx, id, max_age)
        .with_header("Set-Cookie", &clear(session::csrf_cookie_name(public)))
        .with_header("Set-Cookie", &clear(session::pending_cookie_name(public)))
}

// --- second factor -----------------------------------------------------------

fn second_factor_form(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let return_to = follow(cx, req.query("return_to"));
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
        let return_to = follow(cx, Some(form.get("return_to")));
        let code = form.get("code");
        if code.trim().is_empty() {
            return second_factor_page(cx, 422, pending, return_to, Some("Enter a code."));
        }
        let old = session_cookie(cx, req);
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

// --- step-up -----------------------------------------------------------------

fn step_up_form(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let rd = follow(cx, req.query("rd").or(req.query("return_to")));
        let Some((value, s)) = signed_in_as(cx, req)? else {
            // Not signed in: a full sign-in asks for the factor anyway.
            return Ok(see_other(&format!(
                "/signin?return_to={}",
                percent_encode(rd)
            )));
        };
        if signin::has_second_factor(&s.amr) {
            return Ok(see_other(rd));
        }
        step_up_page(cx, 200, &value, &s, rd, None)
    })
}

/// The step-up page: the code form for a user whose TOTP is on; for one
/// without, what to do (403: the app cannot be reached without it).
fn step_up_page(
    cx: &Ctx,
    status: u16,
    value: &str,
    s: &BrowserSession,
    rd: &str,
    code_error: Option<&str>,
) -> Result<Response, Error> {
    let totp_on = crate::factors::state(cx, &s.user_id)? == crate::totp::State::On;
    let mut page = Page::new(product(cx), "Two-factor authentication")
        .set("csrf", session::csrf_token(&cx.app.master, value))
        .set("return_to", rd)
        .set("totp_on", totp_on);
    if let Some(e) = code_error {
        page = page.set("code_error", e);
    }
    let status = if totp_on { status } else { 403 };
    Ok(html(status, page.render("step_up.html")?))
}

fn step_up_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let form = Form::read(req)?;
        let value = session_cookie(cx, req);
        if !session::csrf_ok(&cx.app.master, value, form.get("csrf")) {
            return Err(csrf_refused());
        }
        let rd = follow(cx, Some(form.get("return_to")));
        let Some((value, s)) = signed_in_as(cx, req)? else {
            return Ok(see_other(&format!(
                "/signin?return_to={}",
                percent_encode(rd)
            )));
        };
        let code = form.get("code");
        if code.trim().is_empty() {
            return step_up_page(cx, 422, &value, &s, rd, Some("Enter a code."));
        }
        let again =
            |cx: &Ctx, status, message| step_up_page(cx, status, &value, &s, rd, Some(message));
        match signin::step_up(cx, &s, &value, code, &peer(req)) {
            Ok(id) => Ok(signed_in(cx, rd, &id)),
            Err(Error::OtpInvalid) => {
                again(cx, 401, "That code is not right. Try the current code.")
            }
            Err(Error::Validation { .. }) => {
                again(cx, 422, "Enter the 6-digit code or a recovery code.")
            }
            Err(Error::RateLimited { retry_after }) => Ok(again(cx, 429, &too_many(retry_after))?
                .with_header("Retry-After", &retry_after.to_string())),
            // Signed out meanwhile, or the account disabled.
            Err(Error::TokenInvalid | Error::UserInactive) => Ok(see_other(&format!(
                "/signin?return_to={}",
                percent_encode(rd)
            ))),
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
        let value = session_cookie(cx, req);
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
        Ok(with_session_cookie(see_other(&to), cx, "", 0))
    })
}

/// The sign-in and sign-out forms' operations.
pub fn openapi() -> Vec<Op> {
    vec![
        page_op("GET", "/signin", "The sign-in page")
            .query("return_to", false, string())
            .query("rd", false, string())
            .query("failed", false, string())
            .query("provider", false, string()),
        form_op(
            "/signin",
            "Signs in with a login name and password (a form)",
        ),
        op(
            "POST",
            "/signin/provider",
            "Starts a sign-in at an upstream provider (a form: csrf, return_to, provider)",
        )
        .empty(303, "To the provider (Location), or back to /signin")
        .json_text(403, "text/html")
        .json_text(422, "text/html")
        .json_text(429, "text/html"),
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
        page_op(
            "GET",
            "/signin/step-up",
            "Asks a signed-in person for a second factor (forward-auth's two_factor rule)",
        )
        .query("rd", false, string())
        .query("return_to", false, string())
        .empty(303, "To rd when the session has one, or to /signin")
        .json_text(403, "text/html"),
        form_op(
            "/signin/step-up",
            "Adds a TOTP or recovery code to the session (a form)",
        )
        .json_text(422, "text/html"),
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
