//! Forward-auth (always on, like web and oidc): `GET /auth/verify`, which a
//! reverse proxy calls before passing each request to an app. The thin
//! side of forward/: read the original request from the proxy's headers,
//! find who is asking, call `forward::decide`, answer in the proxy's
//! convention.
//!
//! * The original request: nginx `auth_request` asks
//!   `/auth/verify?proxy=nginx` with `X-Original-URL` (and
//!   `X-Original-Method`), as the README's snippet sets them; Traefik and
//!   Caddy ask `/auth/verify` with `X-Forwarded-Method`, `-Proto`, `-Host`
//!   and `-Uri`. The convention is the URL's (the proxy's configuration),
//!   never the headers': those two pass the client's other headers on.
//!   Either is believed only from a peer in `trusted_proxies`: from
//!   anyone else the answer is 403, whatever the headers say.
//! * The style of the answer follows the convention: nginx (which takes
//!   only 2xx, 401 and 403 from an auth request) gets 401 for a request
//!   that must sign in, with the sign-in URL in `Location` (the snippet's
//!   `error_page 401` sends the browser there);
//!   otherwise (Traefik, Caddy, which pass any answer on to the browser)
//!   302 to it. Deny is 403; allow is 200 with `Remote-User`,
//!   `Remote-Email`, `Remote-Name` and `Remote-Groups`; bypass is 200
//!   with those headers empty, so that a proxy copying them overwrites a
//!   client's forged ones.
//! * Who: an `Authorization: Bearer` access token (an API client behind
//!   the proxy), else the browser session's cookie. A bearer token that
//!   is not valid, without a live session beside it, is 401 with
//!   `WWW-Authenticate: Bearer`: an API client cannot sign in on a page.
//! * The sign-in URL carries the original URL as `rd`, and only when a
//!   browser may be sent back there (`forward::safe_rd`: a host inside
//!   `[web] cookie_domain`); a host outside it could never receive the
//!   session cookie, so it gets 403 with the reason rather than a loop.

use super::openapi::{op, string, Op};
use super::{Params, Route};
use crate::app::Ctx;
use crate::error::Error;
use crate::forward::{self, Decision, Target, Who};
use crate::http::{percent_encode, Request, Response};

/// The forward-auth route table.
pub fn routes() -> Vec<Route> {
    vec![Route::new("GET", "/auth/verify", verify)]
}

/// Where a browser goes to sign in, and to add a second factor to its
/// session (a page of the sign-in pages), each with `?rd=`.
pub const SIGN_IN: &str = "/signin";
pub const STEP_UP: &str = "/signin/step-up";

fn text(status: u16, message: &str) -> Response {
    Response::text(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

fn verify(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    if !req.from_trusted_proxy {
        return Ok(text(
            403,
            "forward-auth answers only a proxy in trusted_proxies; add this proxy's address \
             (or range) to trusted_proxies in hallpass's configuration",
        ));
    }
    let nginx = req.query("proxy") == Some("nginx");
    let target = match target(req, nginx) {
        Ok(t) => t,
        Err(why) => return Ok(text(400, &format!("the original request: {why}"))),
    };
    let who = match who(cx, req)? {
        Ok(w) => w,
        Err(()) => {
            return Ok(text(401, "the bearer token is not valid")
                .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\""))
        }
    };
    if let Some(w) = &who {
        let _ = req.user.set(w.user.id.clone());
    }
    let verdict = forward::decide(&cx.conn, &cx.app.config.access, &target, who.as_ref())?;
    Ok(match verdict.decision {
        Decision::Allow(id) => Response::empty(200)
            .with_header("Remote-User", &id.user)
            .with_header("Remote-Email", &id.email)
            .with_header("Remote-Name", &id.name)
            .with_header("Remote-Groups", &id.groups),
        // Empty, not absent: a proxy that copies these headers then
        // replaces whatever the client sent (Caddy 2.6 otherwise sets the
        // literal text of its placeholder; nginx drops an empty header).
        Decision::Bypass => Response::empty(200)
            .with_header("Remote-User", "")
            .with_header("Remote-Email", "")
            .with_header("Remote-Name", "")
            .with_header("Remote-Groups", ""),
        Decision::Deny => text(403, "access to this resource is denied"),
        Decision::NeedSignIn => send_to(cx, SIGN_IN, &target, nginx),
        Decision::NeedSecondFactor => send_to(cx, STEP_UP, &target, nginx),
    })
}

/// The original request. The convention is the one the proxy's own
/// configuration names, never the request's headers: `?proxy=nginx` (the
/// README's snippet) reads only `X-Original-URL`/`-Method`, which nginx's
/// snippet sets itself; anything else reads only `X-Forwarded-*`, which
/// Traefik and Caddy set themselves. Traefik and Caddy pass the client's
/// other headers on, so an `X-Original-URL` a client sends them must not
/// be read (it named a bypass URL in front of a denied one: review 14).
fn target(req: &Request, nginx: bool) -> Result<Target, String> {
    if nginx {
        let url = req
            .header("x-original-url")
            .ok_or("X-Original-URL is not set (see the README's nginx snippet)")?;
        let method = req.header("x-original-method").unwrap_or(&req.method);
        return Target::from_url(method, url);
    }
    let host = req
        .header("x-forwarded-host")
        .ok_or("X-Forwarded-Host is not set (nginx: ask /auth/verify?proxy=nginx)")?;
    Target::from_parts(
        req.header("x-forwarded-method").unwrap_or(&req.method),
        req.header("x-forwarded-proto").unwrap_or("http"),
        host,
        req.header("x-forwarded-uri").unwrap_or("/"),
    )
}

/// Who asks: Ok(None) anonymous; Err(()) a bearer token that is not
/// valid, and no live session beside it.
fn who(cx: &Ctx, req: &Request) -> Result<Result<Option<Who>, ()>, Error> {
    let mut bad_bearer = false;
    if let Some(token) = req.bearer() {
        match crate::auth::authenticate(cx, token) {
            Ok((claims, user)) => return Ok(Ok(Some(Who::new(user, &claims.amr)))),
            Err(Error::Internal(e)) => return Err(Error::Internal(e)),
            Err(_) => bad_bearer = true,
        }
    }
    // A use of the session, as at the pages: it keeps an idle session
    // alive while its person uses the apps behind the proxy.
    if let Some(s) = super::web::browser_session(cx, req)? {
        if let Some(user) = crate::accounts::get_user(&cx.conn, &s.user_id)? {
            return Ok(Ok(Some(Who::new(user, &s.amr))));
        }
    }
    Ok(if bad_bearer { Err(()) } else { Ok(None) })
}

/// To the sign-in (or step-up) page with the original URL as `rd`: 302
/// for Traefik and Caddy, 401 with Location for nginx. A host the session
/// cookie cannot reach gets 403 instead.
fn send_to(cx: &Ctx, page: &str, target: &Target, nginx: bool) -> Response {
    let public = cx.app.public_url.trim_end_matches('/');
    let domain = cx.app.config.cookie_domain.as_deref();
    let Some(rd) = forward::safe_rd(&target.url, domain, public) else {
        return text(
            403,
            &format!(
                "{} is outside [web] cookie_domain: a sign-in would never reach it",
                target.host
            ),
        );
    };
    let location = format!("{public}{page}?rd={}", percent_encode(rd));
    let status = if nginx { 401 } else { 302 };
    text(status, "sign in first").with_header("Location", &location)
}

/// The operation.
pub fn openapi() -> Vec<Op> {
    vec![op(
        "GET",
        "/auth/verify",
        "Forward-auth: may the proxied request pass? (a proxy in trusted_proxies asks)",
    )
    .query("proxy", false, string())
    .header("X-Original-URL", false)
    .header("X-Original-Method", false)
    .header("X-Forwarded-Method", false)
    .header("X-Forwarded-Proto", false)
    .header("X-Forwarded-Host", false)
    .header("X-Forwarded-Uri", false)
    .security(&["", "bearer"])
    .empty(
        200,
        "Pass (with Remote-User, Remote-Email, Remote-Name, Remote-Groups when signed in)",
    )
    .resp_header(200, "Remote-User", "The username, else email")
    .resp_header(200, "Remote-Email", "The email address")
    .resp_header(
        200,
        "Remote-Name",
        "The display name (non-ASCII percent-encoded)",
    )
    .resp_header(
        200,
        "Remote-Groups",
        "The user's tenants and role, comma-separated",
    )
    .empty(
        302,
        "Sign in first (Traefik, Caddy): Location is the sign-in page with rd",
    )
    .resp_header(302, "Location", "The sign-in or step-up page")
    .json_text(400, "text/plain")
    .json_text(401, "text/plain")
    .resp_header(401, "Location", "nginx: the sign-in or step-up page")
    .json_text(403, "text/plain")]
}
