//! The OpenID provider's routes (issue 13), an always-on table: thin
//! handlers over `crate::oidc`, and the one renderer of OAuth 2.0 errors
//! (`{"error", "error_description"}`, RFC 6749 §5.2).
//!
//! Form bodies (`application/x-www-form-urlencoded`) are read here; a
//! parameter given twice is refused (§3.1). Every answer that may carry a
//! token or a code says `Cache-Control: no-store`.

use serde_json::json;

use super::openapi::{array, boolean, int, obj, op, string, Op};
use super::{peer, Params, Route};
use crate::app::Ctx;
use crate::error::Error;
use crate::http::{parse_form, percent_encode, Request, Response};
use crate::oidc::authorize::{self, Outcome};
use crate::oidc::browser::BrowserSession;
use crate::oidc::endpoints::{self, EndSession};
use crate::oidc::token::{self, TokenRequest};
use crate::oidc::{discovery, oauth_error};

/// The provider's route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("GET", "/.well-known/openid-configuration", configuration),
        Route::new("GET", "/oauth2/authorize", authorize),
        Route::new("POST", "/oauth2/authorize", authorize),
        Route::new("POST", "/oauth2/token", token),
        Route::new("GET", "/oauth2/userinfo", userinfo),
        Route::new("POST", "/oauth2/userinfo", userinfo),
        Route::new("POST", "/oauth2/introspect", introspect),
        Route::new("POST", "/oauth2/revoke", revoke),
        Route::new("GET", "/oauth2/end-session", end_session),
        Route::new("POST", "/oauth2/end-session", end_session),
    ]
}

/// OAuth error codes that render as themselves (`oauth_error`).
const OAUTH_CODES: [&str; 12] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "unsupported_response_type",
    "access_denied",
    "login_required",
    "consent_required",
    "server_error",
    "invalid_token",
];

/// Renders an error as RFC 6749 §5.2 says (RFC 6750 §3.1 for bearer
/// failures; dispatch adds their `WWW-Authenticate: Bearer`).
pub fn render(e: &Error) -> Response {
    let (status, code, description) = match e {
        Error::Validation { code, message, .. } if *code == "invalid_client" => {
            (401, "invalid_client", message.clone())
        }
        Error::Validation { code, message, .. } if OAUTH_CODES.contains(code) => {
            (400, *code, message.clone())
        }
        Error::Validation { message, .. } | Error::BadRequest(message) => {
            (400, "invalid_request", message.clone())
        }
        Error::ClientInvalid => (401, "invalid_client", "client authentication failed".into()),
        Error::CodeExpired => (400, "invalid_grant", e.public_message()),
        Error::Unauthenticated
        | Error::TokenInvalid
        | Error::TokenExpired
        | Error::TokenRevoked
        | Error::UserInactive => (401, "invalid_token", e.public_message()),
        Error::Forbidden(m) => (403, "access_denied", m.clone()),
        Error::RateLimited { .. } => (429, "slow_down", e.public_message()),
        Error::RouteNotFound | Error::MethodNotAllowed(_) | Error::PayloadTooLarge => {
            return super::native::render(e)
        }
        _ => (e.status().max(500), "server_error", e.public_message()),
    };
    let resp = Response::json(
        status,
        &json!({ "error": code, "error_description": description }),
    )
    .with_header("Cache-Control", "no-store")
    .with_header("Pragma", "no-cache");
    if code == "invalid_client" {
        resp.with_header("WWW-Authenticate", "Basic realm=\"hallpass\"")
    } else {
        resp
    }
}

/// A form body's pairs, each name at most once.
struct Form(Vec<(String, String)>);

impl Form {
    fn read(req: &Request) -> Result<Form, Error> {
        let text = std::str::from_utf8(&req.body)
            .map_err(|_| oauth_error("invalid_request", "the body is not UTF-8"))?;
        Ok(Form(parse_form(text)))
    }

    fn get(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(crate::oidc::single(&self.0, name)?.map(str::to_string))
    }
}

fn no_store(resp: Response) -> Response {
    resp.with_header("Cache-Control", "no-store")
        .with_header("Pragma", "no-cache")
}

fn configuration(cx: &mut Ctx, _: &Request, _: &Params) -> Result<Response, Error> {
    let alg = cx.app.keys()?.current_alg().name();
    let doc = discovery::document(&cx.app.issuer, &cx.app.public_url, &[alg]);
    Ok(Response::ok(&doc).with_header("Cache-Control", "public, max-age=60"))
}

/// The browser signed in at the pages, if any.
fn browser_session(cx: &Ctx, req: &Request) -> Result<Option<BrowserSession>, Error> {
    super::web::browser_session(cx, req)
}

/// The authorization endpoint answers a person at a browser: a redirect,
/// the consent page, or, when the request cannot go back to the app (an
/// unknown client, a redirect URI missing or not registered), the pages'
/// error page (HTML, 400), never a redirect (RFC 6749 §4.1.2.1).
fn authorize(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let params = match req.method.as_str() {
        "POST" => Form::read(req).map(|f| f.0),
        _ => Ok(req.query.clone()),
    };
    let answer = params.and_then(|params| {
        let session = browser_session(cx, req)?;
        authorize::authorize(cx, &params, session.as_ref(), &peer(req))
    });
    Ok(match answer {
        Ok(Outcome::Redirect(url)) => no_store(Response::redirect(&url)),
        Ok(Outcome::SignIn(back)) => no_store(Response::redirect(&format!(
            "/signin?return_to={}",
            percent_encode(&back)
        ))),
        Ok(Outcome::Consent(ask)) => super::web::consent::page(cx, req, &ask),
        Err(e) => super::web::consent::authorize_error(cx, &e),
    })
}

fn token(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let f = Form::read(req)?;
    let creds = token::credentials(
        req.header("authorization"),
        f.get("client_id")?.as_deref(),
        f.get("client_secret")?.as_deref(),
    )?;
    let t = TokenRequest {
        grant_type: f.get("grant_type")?,
        code: f.get("code")?,
        redirect_uri: f.get("redirect_uri")?,
        code_verifier: f.get("code_verifier")?,
        refresh_token: f.get("refresh_token")?,
        scope: f.get("scope")?,
    };
    let answer = token::token(cx, &creds, &t, &peer(req))?;
    Ok(no_store(Response::ok(&answer)))
}

fn userinfo(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    // RFC 6750 §2.2: a POST may carry the token in the form instead.
    let form_token = if req.method == "POST" && req.bearer().is_none() {
        Form::read(req)?.get("access_token")?
    } else {
        None
    };
    let token = req
        .bearer()
        .map(str::to_string)
        .or(form_token)
        .ok_or(Error::Unauthenticated)?;
    let claims = endpoints::userinfo(cx, &token)?;
    Ok(no_store(Response::ok(&claims)))
}

/// The calling client of introspection and revocation.
fn client_of(
    cx: &Ctx,
    req: &Request,
    f: &Form,
    public_ok: bool,
) -> Result<crate::accounts::Client, Error> {
    let creds = token::credentials(
        req.header("authorization"),
        f.get("client_id")?.as_deref(),
        f.get("client_secret")?.as_deref(),
    )?;
    token::authenticate(cx, &creds, public_ok)
}

fn introspect(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let f = Form::read(req)?;
    let client = client_of(cx, req, &f, false)?;
    let t = f
        .get("token")?
        .ok_or_else(|| oauth_error("invalid_request", "token is required"))?;
    Ok(no_store(Response::ok(&endpoints::introspect(
        cx, &client, &t,
    )?)))
}

fn revoke(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let f = Form::read(req)?;
    let client = client_of(cx, req, &f, true)?;
    let t = f
        .get("token")?
        .ok_or_else(|| oauth_error("invalid_request", "token is required"))?;
    endpoints::revoke(cx, &client, &t)?;
    Ok(no_store(Response::empty(200)))
}

/// The signed-out page: fixed text, nothing from the request in it.
const SIGNED_OUT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Signed out</title></head><body><main><h1>You are signed out</h1>\
<p>You may close this window.</p></main></body></html>";

fn end_session(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let pairs = if req.method == "POST" {
        Form::read(req)?
    } else {
        Form(req.query.clone())
    };
    let ask = EndSession {
        id_token_hint: pairs.get("id_token_hint")?,
        client_id: pairs.get("client_id")?,
        post_logout_redirect_uri: pairs.get("post_logout_redirect_uri")?,
        state: pairs.get("state")?,
    };
    let value = super::web::session_cookie(cx, req).map(str::to_string);
    let target = match endpoints::end_session(cx, &ask, value.as_deref())? {
        endpoints::Ended::Done(target) => target,
        // The sign-out page asks, with its CSRF-protected form.
        // carrying where to go once the person has confirmed (the
        // sign-out form checks it again).
        endpoints::Ended::Confirm(back) => {
            let to = match back {
                None => "/signout".to_string(),
                Some(b) => {
                    let mut q = vec![
                        ("client_id", b.client_id),
                        ("post_logout_redirect_uri", b.post_logout_redirect_uri),
                    ];
                    if let Some(st) = b.state {
                        q.push(("state", st));
                    }
                    let q: Vec<String> = q
                        .iter()
                        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
                        .collect();
                    format!("/signout?{}", q.join("&"))
                }
            };
            return Ok(no_store(Response::redirect(&to)));
        }
    };
    let mut resp = match target {
        Some(url) => Response::redirect(&url),
        None => Response::text(200, "text/html; charset=utf-8", SIGNED_OUT.to_string()),
    };
    if value.is_some() {
        resp = super::web::with_session_cookie(resp, cx, "", 0);
    }
    Ok(no_store(resp))
}

/// The OpenAPI description of the routes above.
pub fn openapi() -> Vec<Op> {
    let s = string;
    let oauth_error = || {
        obj(
            &["error"],
            json!({ "error": s(), "error_description": s() }),
        )
    };
    let errs = |o: Op, statuses: &[u16]| {
        statuses.iter().fold(o, |o, st| {
            o.json(*st, "An OAuth 2.0 error (RFC 6749 §5.2)", oauth_error())
        })
    };
    let authorize_op = |method: &'static str| {
        let o = op(
            method,
            "/oauth2/authorize",
            "OpenID Connect authorization request",
        )
        .empty(
            302,
            "To the client's redirect URI with code, state and iss (or error), or to /signin",
        )
        .resp_header(302, "Location", "Where the browser goes")
        // The consent page; the error page when the request cannot go back
        // to the app (unknown client, redirect URI not registered).
        .json_text(200, "text/html")
        .json_text(400, "text/html");
        if method == "GET" {
            [
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "nonce",
                "code_challenge",
                "code_challenge_method",
                "prompt",
                "max_age",
            ]
            .iter()
            .fold(o, |o, p| o.query(p, *p == "client_id", string()))
        } else {
            o
        }
    };
    let userinfo_op = |method: &'static str| {
        errs(
            op(
                method,
                "/oauth2/userinfo",
                "Claims about the signed-in user",
            )
            .json(
                200,
                "The claims the granted scope releases",
                obj(&["sub"], json!({ "sub": s(), "email": s(), "name": s() })),
            )
            .security(&["bearer"]),
            &[401],
        )
    };
    let end_op = |method: &'static str| {
        let o = op(method, "/oauth2/end-session", "RP-initiated logout")
            .empty(302, "To the registered post_logout_redirect_uri with state")
            .json_text(200, "text/html");
        let o = errs(o, &[400]);
        if method == "GET" {
            [
                "id_token_hint",
                "client_id",
                "post_logout_redirect_uri",
                "state",
            ]
            .iter()
            .fold(o, |o, p| o.query(p, false, string()))
        } else {
            o
        }
    };
    vec![
        op(
            "GET",
            "/.well-known/openid-configuration",
            "OpenID Provider metadata",
        )
        .json(
            200,
            "Discovery 1.0 §3",
            obj(
                &[
                    "issuer",
                    "authorization_endpoint",
                    "token_endpoint",
                    "jwks_uri",
                ],
                json!({
                    "issuer": s(), "authorization_endpoint": s(), "token_endpoint": s(),
                    "jwks_uri": s(), "scopes_supported": array(s()),
                    "code_challenge_methods_supported": array(s()),
                }),
            ),
        ),
        authorize_op("GET"),
        authorize_op("POST"),
        errs(
            op("POST", "/oauth2/token", "Token request (form-encoded)").json(
                200,
                "RFC 6749 §5.1",
                obj(
                    &["access_token", "token_type", "expires_in"],
                    json!({
                        "access_token": s(), "token_type": s(), "expires_in": int(),
                        "id_token": s(), "refresh_token": s(), "scope": s(),
                    }),
                ),
            ),
            &[400, 401, 429],
        ),
        userinfo_op("GET"),
        userinfo_op("POST"),
        errs(
            op(
                "POST",
                "/oauth2/introspect",
                "Token introspection (RFC 7662)",
            )
            .json(
                200,
                "The token's state",
                obj(
                    &["active"],
                    json!({ "active": boolean(), "scope": s(), "sub": s() }),
                ),
            ),
            &[400, 401],
        ),
        errs(
            op("POST", "/oauth2/revoke", "Token revocation (RFC 7009)")
                .empty(200, "Revoked, or unknown"),
            &[400, 401],
        ),
        end_op("GET"),
        end_op("POST"),
    ]
}
