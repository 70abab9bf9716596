//! The sign-in pages' routes (always on, like meta and admin): thin
//! handlers over web/ that read the form and cookies, call one flow, and
//! answer with a page or a 303. Every answer carries the pages' security
//! headers (`secure`); a handler's error becomes the error page here,
//! with the product name, rather than a JSON envelope.
//!
//! Forms: `application/x-www-form-urlencoded` bodies, each with its `csrf`
//! field (web/session.rs explains the tokens). The sign-in form's token is
//! bound to a pre-session cookie set when the form is shown; the second
//! factor's to its pending cookie; sign-out's to the session itself. A
//! missing or wrong token is a 403 page, before anything else is read.
//!
//! `return_to` (a query parameter, then a hidden field) is followed only
//! when it is a path on this server: it starts with one `/`, has no `\`,
//! and is printable ASCII without spaces (see `safe_return_to`). Anything
//! else goes to /account.
//!
//! One file per group of pages: `signin.rs` (sign-in, second factor,
//! sign-out), `account.rs` (the account page); this file holds what they
//! share: the answers with their headers, the form reader, the error page.

mod account;
pub mod consent;
mod emailed;
mod signin;

use super::openapi::{op, string, Op};
use super::{peer, Params, Route};
use crate::app::Ctx;
use crate::error::Error;
use crate::http::{parse_form, percent_encode, Request, Response};
use crate::web::pages::{Brand, Page, STYLESHEET};
use crate::web::session::{self, BrowserSession};

/// The pages' route table.
pub fn routes() -> Vec<Route> {
    let mut all = signin::routes();
    all.extend(account::routes());
    all.extend(consent::routes());
    all.extend(emailed::routes());
    all.push(Route::new("GET", "/assets/hallpass.css", stylesheet));
    all.push(Route::new("GET", "/assets/logo", logo));
    all
}

/// The CSP of every page: no script at all, styles from our stylesheet
/// only, forms posting only to us, never framed.
/// No `form-action`: Chrome and Safari hold it against every redirect that
/// follows a form post, and the sign-in form's answer goes on through
/// /oauth2/authorize to the app's own origin (review of issue 13).
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                       frame-ancestors 'none'; base-uri 'none'";

/// The session cookie's name here: for the public URL's scheme and
/// `[web] cookie_domain` (web/session.rs says which).
pub fn session_cookie_name(cx: &Ctx) -> &'static str {
    session::cookie_name(&cx.app.public_url, cx.app.config.cookie_domain.as_deref())
}

/// The session cookie's value in `req`, if any.
pub fn session_cookie<'r>(cx: &Ctx, req: &'r Request) -> Option<&'r str> {
    req.cookie(session_cookie_name(cx))
}

/// `resp` setting the session cookie to `value` (`max_age` 0 deletes
/// it), with `Domain=` when a cookie domain is set. Then a host-only
/// cookie of the same name (one set before the domain was configured)
/// is deleted with it: `Request::cookie` reads a name sent twice with two
/// values as no cookie at all (a sibling host could have planted one), so
/// a stale one would keep the browser signed out.
pub fn with_session_cookie(resp: Response, cx: &Ctx, value: &str, max_age: i64) -> Response {
    let public = cx.app.public_url.as_str();
    let domain = cx.app.config.cookie_domain.as_deref();
    // The host-only one first: a client that keys cookies by name alone
    // then still ends with the new one.
    let resp = match domain {
        Some(_) => resp.with_header(
            "Set-Cookie",
            &session::set_cookie(public, session::cookie_name(public, domain), "", 0),
        ),
        None => resp,
    };
    resp.with_header(
        "Set-Cookie",
        &session::set_session_cookie(public, domain, value, max_age),
    )
}

/// The browser session named by the request's cookie, if live.
pub fn browser_session(cx: &Ctx, req: &Request) -> Result<Option<BrowserSession>, Error> {
    match session_cookie(cx, req) {
        Some(v) => session::current_seen(&cx.conn, &cx.app.web_seen, v, cx.now()),
        None => Ok(None),
    }
}

/// The headers every answer of the pages carries.
fn secure(resp: Response) -> Response {
    resp.with_header("Content-Security-Policy", CSP)
        .with_header("X-Frame-Options", "DENY")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("X-Content-Type-Options", "nosniff")
}

/// An HTML page (never cached: it may name the user or carry a token).
fn html(status: u16, body: String) -> Response {
    secure(
        Response::text(status, "text/html; charset=utf-8", body)
            .with_header("Cache-Control", "no-store"),
    )
}

/// 303 See Other: after a form, the browser GETs `location`.
fn see_other(location: &str) -> Response {
    secure(
        Response::empty(303)
            .with_header("Location", location)
            .with_header("Cache-Control", "no-store"),
    )
}

/// The product's name, and the logo when one is set: what heads a page
/// (`Page::new(product(cx), ...)`).
fn product(cx: &Ctx) -> Brand<'_> {
    Brand {
        product: &cx.app.config.mail_product,
        logo: cx.app.logo.is_some(),
    }
}

/// The error page for `e`, in words for a person; internal detail is
/// logged, never shown.
fn error_page(cx: &Ctx, e: &Error) -> Response {
    if let Error::Internal(detail) = e {
        cx.app.log.line(format!("error: {detail}"));
    }
    let (status, title, message) = match e {
        Error::Forbidden(_) => (
            403,
            "Form expired",
            "This form has expired or did not come from this site. Go back, reload the page \
             and try again."
                .to_string(),
        ),
        Error::RateLimited { retry_after } => (429, "Too many attempts", too_many(*retry_after)),
        Error::BadRequest(_) | Error::Validation { .. } => (
            400,
            "Bad request",
            "The form could not be read. Go back and try again.".to_string(),
        ),
        Error::Internal(_) => (
            500,
            "Something went wrong",
            "Something went wrong on our side. Try again in a moment.".to_string(),
        ),
        other => (other.status(), "Error", other.public_message()),
    };
    let mut resp = match Page::new(product(cx), title)
        .set("message", message)
        .render("error.html")
    {
        Ok(body) => html(status, body),
        Err(_) => html(500, "Internal Server Error".into()),
    };
    if let Error::RateLimited { retry_after } = e {
        resp = resp.with_header("Retry-After", &retry_after.to_string());
    }
    resp
}

/// The renderer `api::dispatch` uses should a handler fail anyway (every
/// handler here renders its own errors through `error_page`).
pub fn render(e: &Error) -> Response {
    let body = Page::new("hallpass", "Error")
        .set("message", e.public_message())
        .render("error.html")
        .unwrap_or_else(|_| "Error".into());
    html(e.status(), body)
}

/// Runs a handler body; an error becomes the error page.
fn guard(
    cx: &mut Ctx,
    req: &Request,
    f: fn(&mut Ctx, &Request) -> Result<Response, Error>,
) -> Result<Response, Error> {
    Ok(f(cx, req).unwrap_or_else(|e| error_page(cx, &e)))
}

/// What a page says to a rate-limited person: wait "N seconds" / "N
/// minutes", rounded up.
fn too_many(secs: u64) -> String {
    let wait = match secs {
        0..=1 => "a second".into(),
        2..=90 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    };
    format!("Too many attempts. Wait {wait} and try again.")
}

/// `return_to` when it is a path on this server, else `/account`: a
/// single leading `/` (not `//`, which a browser reads as another host),
/// no `\` (which browsers read as `/`), and only printable ASCII (no
/// scheme can hide behind a tab or newline a browser would strip).
pub fn safe_return_to(v: Option<&str>) -> &str {
    match v {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 4096
                && p.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            p
        }
        _ => "/account",
    }
}

/// Where a browser goes after a form: `v` when it is a path on this
/// server (`safe_return_to`), or an absolute URL forward-auth sent the
/// person from (`rd`): one on this host, or on a host under `[web]
/// cookie_domain` (`forward::safe_rd`, which refuses userinfo, `\`,
/// encoded hosts and anything a browser would strip). Else /account.
pub fn follow<'a>(cx: &Ctx, v: Option<&'a str>) -> &'a str {
    let domain = cx.app.config.cookie_domain.as_deref();
    match v.and_then(|u| crate::forward::safe_rd(u, domain, &cx.app.public_url)) {
        Some(url) => url,
        None => safe_return_to(v),
    }
}

/// The decoded fields of a form body.
struct Form(Vec<(String, String)>);

impl Form {
    fn read(req: &Request) -> Result<Form, Error> {
        let text = std::str::from_utf8(&req.body)
            .map_err(|_| Error::BadRequest("the form is not UTF-8".into()))?;
        Ok(Form(parse_form(text)))
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// The longest login name looked up (an email address's RFC 5321 limit).
const MAX_LOGIN: usize = 320;

fn csrf_refused() -> Error {
    Error::Forbidden("csrf".into())
}

// --- shared by the pages ------------------------------------------------------

/// The session cookie's value and its live session.
fn signed_in_as(cx: &Ctx, req: &Request) -> Result<Option<(String, BrowserSession)>, Error> {
    let Some(value) = session_cookie(cx, req) else {
        return Ok(None);
    };
    Ok(
        session::current_seen(&cx.conn, &cx.app.web_seen, value, cx.now())?
            .map(|s| (value.to_string(), s)),
    )
}

/// Renders template `name` with the pre-session CSRF token (the forms
/// shown before a sign-in), setting its cookie when the browser holds no
/// usable one (so a form re-shown after a mistake keeps working).
pub(super) fn pre_session_page(
    cx: &Ctx,
    req: &Request,
    status: u16,
    page: Page,
    name: &str,
) -> Result<Response, Error> {
    let public = cx.app.public_url.as_str();
    let cookie = session::csrf_cookie_name(public);
    let (value, fresh) = match session::usable_csrf_value(req.cookie(cookie)) {
        Some(v) => (v.to_string(), false),
        None => (session::new_csrf_value()?, true),
    };
    let page = page.set("csrf", session::csrf_token(&cx.app.master, &value));
    let mut resp = html(status, page.render(name)?);
    if fresh {
        resp = resp.with_header(
            "Set-Cookie",
            &session::set_cookie(public, cookie, &value, session::CSRF_COOKIE_SECS),
        );
    }
    Ok(resp)
}

/// How the page names the signed-in user.
fn who(cx: &Ctx, s: &BrowserSession) -> Result<String, Error> {
    let user = crate::accounts::get_user(&cx.conn, &s.user_id)?
        .ok_or_else(|| Error::Internal("session of a missing user".into()))?;
    Ok(user.display_name().to_string())
}

/// The end of a provider's sign-in started at the sign-in page, for the
/// provider's callback route (api/social.rs).
pub(crate) use signin::upstream_answer;

fn stylesheet(_: &mut Ctx, _: &Request, _: &Params) -> Result<Response, Error> {
    Ok(secure(
        Response::text(200, "text/css; charset=utf-8", STYLESHEET.to_string())
            .with_header("Cache-Control", "public, max-age=3600"),
    ))
}

/// `[web] logo`, as read at start, under the pages' headers: their CSP
/// (`default-src 'none'`, so an SVG's script or external loads do
/// nothing, even opened on its own) and nosniff.
fn logo(cx: &mut Ctx, _: &Request, _: &Params) -> Result<Response, Error> {
    let Some(logo) = &cx.app.logo else {
        return Ok(secure(Response::text(
            404,
            "text/plain; charset=utf-8",
            "no logo is configured".into(),
        )));
    };
    Ok(secure(
        Response {
            status: 200,
            headers: vec![("Content-Type".into(), logo.content_type.into())],
            body: logo.bytes.clone(),
        }
        .with_header("Cache-Control", "public, max-age=3600"),
    ))
}

/// The pages' operations (HTML, not JSON; listed so that the document
/// names every route served), each group's from its file.
pub fn openapi() -> Vec<Op> {
    let mut all = signin::openapi();
    all.extend(account::openapi());
    all.extend(consent::openapi());
    all.extend(emailed::openapi());
    all.push(op("GET", "/assets/hallpass.css", "The pages' stylesheet").json_text(200, "text/css"));
    all.push(
        op("GET", "/assets/logo", "The configured logo ([web] logo)")
            .json_text(200, "image/*")
            .json_text(404, "text/plain"),
    );
    all
}

/// An HTML page's operation.
fn page_op(method: &'static str, path: &'static str, summary: &str) -> Op {
    op(method, path, summary).json_text(200, "text/html")
}

/// A form's operation: 303 onwards, or the form again with its error.
fn form_op(path: &'static str, summary: &str) -> Op {
    op("POST", path, summary)
        .empty(303, "On to the next page (Location)")
        .json_text(401, "text/html")
        .json_text(403, "text/html")
        .json_text(429, "text/html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_followed_only_to_paths_on_this_server() {
        for ok in ["/account", "/oauth2/authorize?client_id=a&state=x%2Fy", "/"] {
            assert_eq!(safe_return_to(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "\\\\evil",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/a b",
            "",
            "evil",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/account", "{bad:?}");
        }
        assert_eq!(safe_return_to(None), "/account");
    }
}
