//! The emailed pages: a sign-in link (`/signin/email-link`, used at
//! `/signin/link`), a sign-in code (`/signin/email-code`, typed at
//! `/signin/email-code/verify`), forgot/reset password (`/signin/forgot`,
//! `/signin/reset`) and sign-up (`/signup`, finished at `/signup/finish`).
//! The flows are web/emailed.rs's.
//!
//! * Offered only with a mail command, and sign-up per `signup`: a flow
//!   that is not offered answers the 404 page, and the sign-in page does
//!   not link to it.
//! * Every form carries the pre-session CSRF token of the sign-in form
//!   (its cookie set when the form is shown), checked first.
//! * A form that mails someone answers the same page whether or not the
//!   address has an account (the core does the same work either way).
//! * A link in a mail is never used up by a GET: mail scanners and link
//!   previews fetch links. Its page shows a button (a POST with its CSRF
//!   token) that signs in; the reset and sign-up links' pages are forms
//!   anyway. A dead link (used, expired, unknown) answers 410 with the
//!   way to ask for a new one.

use super::*;
use crate::web::emailed as flows;

/// The emailed pages' routes.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("GET", "/signin/email-link", email_link_form),
        Route::new("POST", "/signin/email-link", email_link_post),
        Route::new("GET", "/signin/link", link_page),
        Route::new("POST", "/signin/link", link_post),
        Route::new("GET", "/signin/email-code", email_code_form),
        Route::new("POST", "/signin/email-code", email_code_post),
        Route::new("GET", "/signin/email-code/verify", code_page),
        Route::new("POST", "/signin/email-code/verify", code_post),
        Route::new("GET", "/signin/forgot", forgot_form),
        Route::new("POST", "/signin/forgot", forgot_post),
        Route::new("GET", "/signin/reset", reset_page),
        Route::new("POST", "/signin/reset", reset_post),
        Route::new("GET", "/signup", signup_page),
        Route::new("POST", "/signup", signup_post),
        Route::new("POST", "/signup/finish", signup_finish),
    ]
}

/// What the sign-in page links to below its form (its template's block
/// of other ways in): the emailed flows when mail goes out, sign-up when
/// it is open; `alt_query` carries `return_to` on to them.
pub(super) fn offer(cx: &Ctx, page: Page, return_to: &str) -> Page {
    let config = &cx.app.config;
    page.set("emailed", flows::mail_on(config))
        .set("signup", flows::signup_open(config))
        .set("alt_query", back_query(return_to))
}

// --- shared by these pages ----------------------------------------------------

/// `?return_to=…` for a link onwards, or nothing for the default.
fn back_query(return_to: &str) -> String {
    if return_to == "/account" {
        String::new()
    } else {
        format!("?return_to={}", percent_encode(return_to))
    }
}

fn not_offered() -> Error {
    Error::NotFound("This page is not offered here.".into())
}

/// 404 unless the emailed flows are on.
fn mail_on(cx: &Ctx) -> Result<(), Error> {
    if flows::mail_on(&cx.app.config) {
        Ok(())
    } else {
        Err(not_offered())
    }
}

/// The form, once its CSRF token is checked against the pre-session
/// cookie (before any field is looked at).
fn checked_form(cx: &Ctx, req: &Request) -> Result<Form, Error> {
    let form = Form::read(req)?;
    let cookie = req.cookie(session::csrf_cookie_name(&cx.app.public_url));
    if !session::csrf_ok(&cx.app.master, cookie, form.get("csrf")) {
        return Err(csrf_refused());
    }
    Ok(form)
}

/// A page with a sentence and a link onwards.
fn message(
    cx: &Ctx,
    status: u16,
    title: &str,
    text: String,
    next: &str,
    next_label: &str,
) -> Result<Response, Error> {
    let page = Page::new(product(cx), title)
        .set("message", text)
        .set("next", next)
        .set("next_label", next_label);
    Ok(html(status, page.render("message.html")?))
}

/// The page of a link that no longer works (used, expired or unknown: to
/// its holder the same): 410, and where to ask for a new one.
fn dead_link(cx: &Ctx, what: &str, again: &str) -> Result<Response, Error> {
    message(
        cx,
        410,
        "Link expired",
        format!("This {what} link has expired or was used already. Each link works once."),
        again,
        "Ask for a new link",
    )
}

/// The "email me" form of `action`.
struct EmailForm<'a> {
    action: &'a str,
    title: &'a str,
    intro: &'a str,
    button: &'a str,
    /// Carried on (the sign-in link and code forms), or None.
    return_to: Option<&'a str>,
}

impl EmailForm<'_> {
    fn show(
        &self,
        cx: &Ctx,
        req: &Request,
        status: u16,
        email: &str,
        error: Option<&str>,
    ) -> Result<Response, Error> {
        let rt = self.return_to.unwrap_or("/account");
        let mut page = Page::new(product(cx), self.title)
            .set("action", self.action)
            .set("intro", self.intro)
            .set("button", self.button)
            .set("email", email)
            .set("back_query", back_query(rt));
        if let Some(r) = self.return_to {
            page = page.set("return_to", r);
        }
        if let Some(e) = error {
            page = page.set("email_error", e);
        }
        pre_session_page(cx, req, status, page, "email_form.html")
    }

    /// The typed address, or the form again with the reason next to it.
    fn address<'f>(
        &self,
        cx: &Ctx,
        req: &Request,
        form: &'f Form,
    ) -> Result<Result<&'f str, Response>, Error> {
        let email = form.get("email").trim();
        let error = if email.is_empty() {
            Some("Enter your email address.")
        } else if email.chars().count() > MAX_LOGIN {
            Some("That is longer than any email address.")
        } else if !crate::accounts::is_mailbox(email) {
            Some("Enter an email address, like name@example.com.")
        } else {
            None
        };
        match error {
            Some(e) => {
                let shown = if email.chars().count() > MAX_LOGIN {
                    ""
                } else {
                    email
                };
                Ok(Err(self.show(cx, req, 422, shown, Some(e))?))
            }
            None => Ok(Ok(email)),
        }
    }
}

/// The longest link token looked up (ours are 43 characters).
const MAX_TOKEN: usize = 128;

fn token_of(v: Option<&str>) -> Option<&str> {
    v.filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN)
}

// --- sign-in link ---------------------------------------------------------------

fn link_form(return_to: &str) -> EmailForm<'_> {
    EmailForm {
        action: "/signin/email-link",
        title: "Sign in with a link",
        intro: "We will email you a link that signs you in.",
        button: "Email me a link",
        return_to: Some(return_to),
    }
}

fn email_link_form(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        let return_to = follow(cx, req.query("return_to"));
        link_form(return_to).show(cx, req, 200, "", None)
    })
}

fn email_link_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        let form = checked_form(cx, req)?;
        let return_to = follow(cx, Some(form.get("return_to")));
        let shape = link_form(return_to);
        let email = match shape.address(cx, req, &form)? {
            Ok(e) => e,
            Err(page) => return Ok(page),
        };
        flows::send_link(cx, email, return_to, &peer(req))?;
        message(
            cx,
            200,
            "Check your mail",
            format!(
                "If {email} has an account here, we sent it a sign-in link. It works once, \
                 within 15 minutes."
            ),
            &format!("/signin{}", back_query(return_to)),
            "Back to sign-in",
        )
    })
}

fn link_page(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        let Some(token) = token_of(req.query("token")) else {
            return dead_link(cx, "sign-in", "/signin/email-link");
        };
        if flows::link_live(cx, token).is_err() {
            return dead_link(cx, "sign-in", "/signin/email-link");
        }
        // Shown, not used: only the button's POST uses the link up.
        let page = Page::new(product(cx), "Sign in").set("token", token);
        pre_session_page(cx, req, 200, page, "link_confirm.html")
    })
}

fn link_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        let form = checked_form(cx, req)?;
        let Some(token) = token_of(Some(form.get("token"))) else {
            return dead_link(cx, "sign-in", "/signin/email-link");
        };
        let old = session_cookie(cx, req);
        match flows::use_link(cx, token, old, &peer(req)) {
            Ok((step, return_to)) => {
                let return_to = follow(cx, return_to.as_deref());
                Ok(super::signin::after_step(cx, &step, return_to))
            }
            Err(Error::TokenExpired | Error::TokenRevoked | Error::TokenInvalid) => {
                dead_link(cx, "sign-in", "/signin/email-link")
            }
            Err(e) => Err(e),
        }
    })
}

// --- sign-in code -----------------------------------------------------------------

fn code_form(return_to: &str) -> EmailForm<'_> {
    EmailForm {
        action: "/signin/email-code",
        title: "Sign in with a code",
        intro: "We will email you a 6-digit code to sign in with.",
        button: "Email me a code",
        return_to: Some(return_to),
    }
}

fn email_code_form(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        let return_to = follow(cx, req.query("return_to"));
        code_form(return_to).show(cx, req, 200, "", None)
    })
}

fn email_code_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        let form = checked_form(cx, req)?;
        let return_to = follow(cx, Some(form.get("return_to")));
        let email = match code_form(return_to).address(cx, req, &form)? {
            Ok(e) => e,
            Err(page) => return Ok(page),
        };
        flows::send_code(cx, email, &peer(req))?;
        let to = format!(
            "/signin/email-code/verify?email={}&return_to={}",
            percent_encode(email),
            percent_encode(return_to)
        );
        Ok(see_other(&to))
    })
}

/// The code form for `email`.
fn code_entry(
    cx: &Ctx,
    req: &Request,
    status: u16,
    email: &str,
    return_to: &str,
    error: Option<&str>,
) -> Result<Response, Error> {
    let mut page = Page::new(product(cx), "Enter your code")
        .set("email", email)
        .set("return_to", return_to)
        .set("back_query", back_query(return_to));
    if let Some(e) = error {
        page = page.set("code_error", e);
    }
    pre_session_page(cx, req, status, page, "email_code.html")
}

fn code_page(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        let return_to = follow(cx, req.query("return_to"));
        let email = req.query("email").unwrap_or("").trim();
        if !crate::accounts::is_mailbox(email) || email.chars().count() > MAX_LOGIN {
            let to = format!("/signin/email-code{}", back_query(return_to));
            return Ok(see_other(&to));
        }
        code_entry(cx, req, 200, email, return_to, None)
    })
}

fn code_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        let form = checked_form(cx, req)?;
        let return_to = follow(cx, Some(form.get("return_to")));
        let email = form.get("email").trim();
        if !crate::accounts::is_mailbox(email) || email.chars().count() > MAX_LOGIN {
            let to = format!("/signin/email-code{}", back_query(return_to));
            return Ok(see_other(&to));
        }
        let code = form.get("code");
        if code.trim().is_empty() {
            return code_entry(cx, req, 422, email, return_to, Some("Enter the code."));
        }
        let old = session_cookie(cx, req);
        match flows::use_code(cx, email, code, old, &peer(req)) {
            Ok(step) => Ok(super::signin::after_step(cx, &step, return_to)),
            Err(Error::Validation { .. }) => code_entry(
                cx,
                req,
                422,
                email,
                return_to,
                Some("Enter the 6 digits from the mail."),
            ),
            Err(Error::OtpInvalid) => code_entry(
                cx,
                req,
                401,
                email,
                return_to,
                Some("That code is not right, or no longer works. Check the newest mail, or send a new code."),
            ),
            Err(Error::UserInactive) => message(
                cx,
                403,
                "Account disabled",
                "This account is disabled. Ask your administrator.".into(),
                "/signin",
                "Back to sign-in",
            ),
            Err(e) => Err(e),
        }
    })
}

// --- forgot / reset password ---------------------------------------------------------

const FORGOT: EmailForm<'static> = EmailForm {
    action: "/signin/forgot",
    title: "Forgot your password?",
    intro: "We will email you a link to choose a new password.",
    button: "Email me a reset link",
    return_to: None,
};

fn forgot_form(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        FORGOT.show(cx, req, 200, "", None)
    })
}

fn forgot_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        let form = checked_form(cx, req)?;
        let email = match FORGOT.address(cx, req, &form)? {
            Ok(e) => e,
            Err(page) => return Ok(page),
        };
        flows::forgot(cx, email, &peer(req))?;
        message(
            cx,
            200,
            "Check your mail",
            format!(
                "If {email} has an account here, we sent it a link to choose a new password. \
                 It works once, within 30 minutes."
            ),
            "/signin",
            "Back to sign-in",
        )
    })
}

/// What the reset and sign-up forms show besides their fields.
#[derive(Default)]
struct PasswordErrors<'a> {
    name: Option<&'a str>,
    password: Option<String>,
    password_confirm: Option<&'a str>,
}

impl PasswordErrors<'_> {
    fn onto(self, mut page: Page) -> Page {
        if let Some(e) = self.name {
            page = page.set("name_error", e);
        }
        if let Some(e) = self.password {
            page = page.set("password_error", e);
        }
        if let Some(e) = self.password_confirm {
            page = page.set("password_confirm_error", e);
        }
        page.set("min_len", crate::password::MIN_LEN)
    }
}

/// The two password fields' own checks (the core checks the policy).
fn check_new_password<'a>(password: &str, confirm: &str) -> PasswordErrors<'a> {
    let mut e = PasswordErrors::default();
    if password.is_empty() {
        e.password = Some("Enter a new password.".into());
    } else if password.chars().count() > crate::password::MAX_LEN {
        e.password = Some("That is longer than any password here.".into());
    } else if password != confirm {
        e.password_confirm = Some("The two passwords are not the same.");
    }
    e
}

fn has_errors(e: &PasswordErrors) -> bool {
    e.name.is_some() || e.password.is_some() || e.password_confirm.is_some()
}

/// The policy's refusal as words next to the field it names, if it is one.
fn field_error(e: &Error, field: &str) -> Option<String> {
    match e {
        Error::Validation {
            field: f, message, ..
        } if f == field => Some(format!("{message}.")),
        _ => None,
    }
}

fn reset_form(
    cx: &Ctx,
    req: &Request,
    status: u16,
    token: &str,
    errors: PasswordErrors,
) -> Result<Response, Error> {
    let page = errors.onto(Page::new(product(cx), "Choose a new password").set("token", token));
    pre_session_page(cx, req, status, page, "reset.html")
}

fn reset_page(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        match token_of(req.query("token")) {
            Some(t) if flows::reset_live(cx, t).is_ok() => {
                reset_form(cx, req, 200, t, PasswordErrors::default())
            }
            _ => dead_link(cx, "reset", "/signin/forgot"),
        }
    })
}

fn reset_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        mail_on(cx)?;
        let form = checked_form(cx, req)?;
        let Some(token) = token_of(Some(form.get("token"))) else {
            return dead_link(cx, "reset", "/signin/forgot");
        };
        let password = form.get("password");
        let errors = check_new_password(password, form.get("password_confirm"));
        if has_errors(&errors) {
            return reset_form(cx, req, 422, token, errors);
        }
        match flows::reset(cx, token, password, &peer(req)) {
            Ok(()) => {
                // Every session of the account ended, this browser's too.
                message(
                    cx,
                    200,
                    "Password changed",
                    "Your password is changed, and every device signed in with the old one \
                     is signed out. Sign in with the new one."
                        .into(),
                    "/signin",
                    "Sign in",
                )
                .map(|page| with_session_cookie(page, cx, "", 0))
            }
            Err(Error::TokenExpired | Error::TokenRevoked | Error::TokenInvalid) => {
                dead_link(cx, "reset", "/signin/forgot")
            }
            Err(e) => match field_error(&e, "password") {
                Some(m) => {
                    let errors = PasswordErrors {
                        password: Some(m),
                        ..PasswordErrors::default()
                    };
                    reset_form(cx, req, 422, token, errors)
                }
                None => Err(e),
            },
        }
    })
}

// --- sign-up -----------------------------------------------------------------------

const SIGNUP: EmailForm<'static> = EmailForm {
    action: "/signup",
    title: "Create an account",
    intro: "We will email you a link to finish creating your account.",
    button: "Email me a sign-up link",
    return_to: None,
};

/// Where a dead sign-up link sends its holder.
fn signup_again(cx: &Ctx) -> &'static str {
    if flows::signup_open(&cx.app.config) {
        "/signup"
    } else {
        "/signin"
    }
}

fn signup_form(
    cx: &Ctx,
    req: &Request,
    status: u16,
    token: &str,
    email: &str,
    name: &str,
    errors: PasswordErrors,
) -> Result<Response, Error> {
    let page = Page::new(product(cx), "Create your account")
        .set("token", token)
        .set("email", email)
        .set("name", name);
    pre_session_page(cx, req, status, errors.onto(page), "signup.html")
}

/// `/signup` asks for an address (sign-up open); `/signup?token=` is the
/// mailed link's form (unless sign-up is off).
fn signup_page(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        let Some(token) = req.query("token") else {
            if !flows::signup_open(&cx.app.config) {
                return Err(not_offered());
            }
            return SIGNUP.show(cx, req, 200, "", None);
        };
        if !flows::signup_links_taken(&cx.app.config) {
            return Err(not_offered());
        }
        let address = token_of(Some(token)).map(|t| flows::signup_address(cx, t));
        match address {
            Some(Ok(email)) => {
                signup_form(cx, req, 200, token, &email, "", PasswordErrors::default())
            }
            _ => dead_link(cx, "sign-up", signup_again(cx)),
        }
    })
}

fn signup_post(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        if !flows::signup_open(&cx.app.config) {
            return Err(not_offered());
        }
        let form = checked_form(cx, req)?;
        let email = match SIGNUP.address(cx, req, &form)? {
            Ok(e) => e,
            Err(page) => return Ok(page),
        };
        flows::request_signup(cx, email, &peer(req))?;
        message(
            cx,
            200,
            "Check your mail",
            format!(
                "We sent a message to {email}. Open the link in it to finish creating your \
                 account. It works once, within 24 hours."
            ),
            "/signin",
            "Back to sign-in",
        )
    })
}

/// The longest name kept.
const MAX_NAME: usize = 200;

fn signup_finish(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    guard(cx, req, |cx, req| {
        if !flows::signup_links_taken(&cx.app.config) {
            return Err(not_offered());
        }
        let form = checked_form(cx, req)?;
        let again = signup_again(cx);
        let Some(token) = token_of(Some(form.get("token"))) else {
            return dead_link(cx, "sign-up", again);
        };
        let Ok(email) = flows::signup_address(cx, token) else {
            return dead_link(cx, "sign-up", again);
        };
        let name = form.get("name").trim();
        let password = form.get("password");
        let mut errors = check_new_password(password, form.get("password_confirm"));
        if name.chars().count() > MAX_NAME {
            errors.name = Some("That is longer than any name kept here (200 characters).");
        } else if name.chars().any(char::is_control) {
            errors.name = Some("A name cannot contain a line break.");
        }
        if has_errors(&errors) {
            return signup_form(cx, req, 422, token, &email, name, errors);
        }
        let name = (!name.is_empty()).then_some(name);
        let old = session_cookie(cx, req);
        match flows::sign_up(cx, token, name, password, old, &peer(req)) {
            Ok(id) => Ok(super::signin::signed_in(cx, "/account", &id)),
            Err(Error::TokenExpired | Error::TokenRevoked | Error::TokenInvalid) => {
                dead_link(cx, "sign-up", again)
            }
            Err(Error::Conflict(_)) => message(
                cx,
                409,
                "Account exists",
                format!("{email} has an account already. Sign in, or reset its password."),
                "/signin",
                "Sign in",
            ),
            Err(e) => match field_error(&e, "password") {
                Some(m) => {
                    let errors = PasswordErrors {
                        password: Some(m),
                        ..PasswordErrors::default()
                    };
                    signup_form(cx, req, 422, token, &email, name.unwrap_or(""), errors)
                }
                None => Err(e),
            },
        }
    })
}

/// The emailed pages' operations.
pub fn openapi() -> Vec<Op> {
    let link_page = |method, path, summary: &str| {
        page_op(method, path, summary)
            .json_text(404, "text/html")
            .json_text(410, "text/html")
    };
    vec![
        page_op("GET", "/signin/email-link", "Asks for an address to mail a sign-in link to")
            .query("return_to", false, string())
            .json_text(404, "text/html"),
        page_op(
            "POST",
            "/signin/email-link",
            "Mails a sign-in link (a form); the same page whether or not the address has an account",
        )
        .json_text(403, "text/html")
        .json_text(422, "text/html")
        .json_text(429, "text/html"),
        link_page(
            "GET",
            "/signin/link",
            "A mailed sign-in link's page: a button that uses it (a GET never does)",
        )
        .query("token", true, string()),
        form_op("/signin/link", "Uses a mailed sign-in link up and signs in (a form)")
            .json_text(410, "text/html"),
        page_op("GET", "/signin/email-code", "Asks for an address to mail a sign-in code to")
            .query("return_to", false, string())
            .json_text(404, "text/html"),
        form_op(
            "/signin/email-code",
            "Mails a sign-in code (a form); on to the code page whether or not the address has an account",
        )
        .json_text(422, "text/html"),
        page_op("GET", "/signin/email-code/verify", "The mailed sign-in code's form")
            .query("email", true, string())
            .query("return_to", false, string())
            .empty(303, "To /signin/email-code without an address"),
        form_op("/signin/email-code/verify", "Signs in with a mailed code (a form)")
            .json_text(422, "text/html"),
        page_op("GET", "/signin/forgot", "Asks for an address to mail a reset link to")
            .json_text(404, "text/html"),
        page_op(
            "POST",
            "/signin/forgot",
            "Mails a password-reset link (a form); the same page whether or not the address has an account",
        )
        .json_text(403, "text/html")
        .json_text(422, "text/html")
        .json_text(429, "text/html"),
        link_page("GET", "/signin/reset", "A mailed reset link's form: the new password")
            .query("token", true, string()),
        page_op("POST", "/signin/reset", "Sets the new password of a reset link (a form)")
            .json_text(403, "text/html")
            .json_text(410, "text/html")
            .json_text(422, "text/html")
            .json_text(429, "text/html"),
        link_page(
            "GET",
            "/signup",
            "Sign-up: asks for an address (signup = open), or with token the mailed link's form",
        )
        .query("token", false, string()),
        page_op(
            "POST",
            "/signup",
            "Mails a sign-up link (a form; signup = open); the same page whether or not the address has an account",
        )
        .json_text(403, "text/html")
        .json_text(404, "text/html")
        .json_text(422, "text/html")
        .json_text(429, "text/html"),
        form_op("/signup/finish", "Creates the account of a sign-up link and signs it in (a form)")
            .json_text(404, "text/html")
            .json_text(409, "text/html")
            .json_text(410, "text/html")
            .json_text(422, "text/html"),
    ]
}
