//! Social sign-in routes of the native dialect (the README's "Social
//! sign-in"): the eight seed providers' start and callback routes, and
//! `/auth/oidc/NAME[/callback]` for every configured provider. Parameters
//! come from the query (GET) or a form (POST; Apple posts its callback).
//! The flow is `social::start` and `social::callback`. The sign-in page
//! starts its own sign-ins (`api/web/signin.rs`); they come back to these
//! same callbacks (the redirect URI registered at the provider is one),
//! which hand their end to the pages.

use serde_json::{json, Value};

use super::openapi::{obj, op, string, Op};
use super::{bearer, peer, Params, Route};
use crate::app::Ctx;
use crate::auth;
use crate::config::{Provider, ProviderKind};
use crate::error::Error;
use crate::http::{parse_form, Request, Response};
use crate::social::{self, kinds, Answer, Callback, Redirect, Start};

/// The seed kinds, with their start and callback handlers.
macro_rules! seed_routes {
    ($($kind:ident: $start:literal, $callback:literal;)*) => {
        /// The social route table (part of the native dialect).
        pub fn routes() -> Vec<Route> {
            vec![
                $(
                    Route::new("GET", $start, |cx, req, _| start(cx, req, seed(cx, ProviderKind::$kind)?)),
                    Route::new("POST", $start, |cx, req, _| start(cx, req, seed(cx, ProviderKind::$kind)?)),
                    Route::new("GET", $callback, |cx, req, _| callback(cx, req, seed(cx, ProviderKind::$kind)?)),
                    Route::new("POST", $callback, |cx, req, _| callback(cx, req, seed(cx, ProviderKind::$kind)?)),
                )*
                Route::new("POST", "/google/logout", |cx, req, _| logout(cx, req, ProviderKind::Google)),
                Route::new("POST", "/cognito/logout", |cx, req, _| logout(cx, req, ProviderKind::Cognito)),
                Route::new("POST", "/keycloak/logout", |cx, req, _| logout(cx, req, ProviderKind::Keycloak)),
                Route::new("GET", "/auth/oidc/{name}", |cx, req, p| start(cx, req, named(cx, p)?)),
                Route::new("POST", "/auth/oidc/{name}", |cx, req, p| start(cx, req, named(cx, p)?)),
                Route::new("GET", "/auth/oidc/{name}/callback", |cx, req, p| callback(cx, req, named(cx, p)?)),
                Route::new("POST", "/auth/oidc/{name}/callback", |cx, req, p| callback(cx, req, named(cx, p)?)),
            ]
        }

        /// The seed routes' paths, for the OpenAPI document.
        const SEED_PATHS: &[(&str, &str)] = &[$(($start, $callback)),*];
    };
}

seed_routes! {
    Google: "/auth/google", "/auth/google-auth-redirect";
    Azure: "/auth/azure", "/auth/azure-oauth-redirect";
    Keycloak: "/auth/keycloak", "/auth/keycloak-auth-redirect";
    Cognito: "/auth/cognito", "/auth/cognito-auth-redirect";
    Autha: "/auth/autha", "/auth/autha-redirect";
    Auth0: "/auth/auth0", "/auth/auth0-auth-redirect";
    Facebook: "/auth/facebook", "/auth/facebook-auth-redirect";
    Instagram: "/auth/instagram", "/auth/instagram-auth-redirect";
    Apple: "/auth/oauth-apple", "/auth/apple-oauth-redirect";
}

/// The provider answering a seed kind's routes.
fn seed(cx: &Ctx, kind: ProviderKind) -> Result<Provider, Error> {
    kinds::seed_provider(&cx.app.config.providers, kind)
        .cloned()
        .ok_or_else(|| Error::NotFound(format!("no {} provider is configured", kind.name())))
}

/// The provider named in the path.
fn named(cx: &Ctx, p: &Params) -> Result<Provider, Error> {
    let name = p.get("name");
    cx.app
        .config
        .providers
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| Error::NotFound(format!("no provider {name:?} is configured")))
}

/// The request's parameters: the query of a GET, the form (or JSON
/// object) of a POST.
fn fields(req: &Request) -> Result<Vec<(String, String)>, Error> {
    if req.method != "POST" {
        return Ok(req.query.clone());
    }
    if req.body.first() == Some(&b'{') {
        let body = req.json()?;
        return Ok(body
            .0
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect());
    }
    let text = std::str::from_utf8(&req.body)
        .map_err(|_| Error::BadRequest("the form is not UTF-8".into()))?;
    Ok(parse_form(text))
}

fn get<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn start(cx: &mut Ctx, req: &Request, provider: Provider) -> Result<Response, Error> {
    let f = fields(req)?;
    let client_id = get(&f, "client_id")
        .or_else(|| get(&f, "clientId"))
        .ok_or_else(|| Error::required("client_id"))?;
    let s = Start {
        client_id,
        client_secret: get(&f, "client_secret").or_else(|| get(&f, "clientSecret")),
        secret_required: req.method == "POST",
        redirect_uri: get(&f, "redirect_uri"),
        app_state: get(&f, "state"),
        code_challenge: get(&f, "code_challenge"),
        code_challenge_method: get(&f, "code_challenge_method"),
    };
    let path = kinds::redirect_path(&cx.app.config.providers, &provider);
    let r = social::start(cx, &provider, &path, &s, &peer(req))?;
    Ok(redirect(r))
}

fn callback(cx: &mut Ctx, req: &Request, provider: Provider) -> Result<Response, Error> {
    let f = fields(req)?;
    let state = get(&f, "state");
    let https = cx.app.public_url.starts_with("https://");
    let binding = state.and_then(|s| req.cookie(&social::cookie_name(s, https)));
    let cb = Callback {
        state,
        code: get(&f, "code"),
        error: get(&f, "error"),
        binding,
        apple_user: get(&f, "user"),
        session: super::web::session_cookie(cx, req),
    };
    let path = kinds::redirect_path(&cx.app.config.providers, &provider);
    match social::callback(cx, &provider, &path, &cb, &peer(req))? {
        Answer::Redirect(r) => Ok(redirect(r)),
        // A sign-in started at the sign-in page ends there.
        Answer::Pages(end) => Ok(super::web::upstream_answer(cx, end)),
    }
}

/// `POST /{google,cognito,keycloak}/logout` (SourceLoop 19.2.2): ends the
/// session as `POST /logout` does, then the provider's own session where
/// hallpass holds a token of the user's last sign-in there.
fn logout(cx: &mut Ctx, req: &Request, kind: ProviderKind) -> Result<Response, Error> {
    let (claims, user) = bearer(cx, req)?;
    let refresh_token = if req.body.is_empty() {
        None
    } else {
        req.json()?.opt_str("refreshToken", 4096)?
    };
    auth::logout(cx, &claims, refresh_token.as_deref(), &peer(req))?;
    social::end_upstream(cx, kind, &user.id)?;
    Ok(Response::ok(&json!({ "success": true, "key": user.id })))
}

/// The 302, its cookie, and headers that keep the code in it out of caches
/// and Referer headers.
fn redirect(r: Redirect) -> Response {
    let mut resp = Response::redirect(&r.location)
        .with_header("Cache-Control", "no-store")
        .with_header("Referrer-Policy", "no-referrer");
    if !r.cookie.is_empty() {
        resp = resp.with_header("Set-Cookie", &r.cookie);
    }
    resp
}

/// The operations of the social routes.
pub fn openapi() -> Vec<Op> {
    const E: &str = "NativeError";
    let start_op = |method: &'static str, path: &'static str| {
        let o = op(method, path, "Starts a sign-in at an upstream provider")
            .empty(302, "To the provider's authorization page")
            .resp_header(302, "Location", "The provider's authorization URL")
            .errors(E, &[400, 401, 404, 422, 429]);
        if method == "GET" {
            o.query("client_id", true, string())
                .query("redirect_uri", false, string())
                .query("state", false, string())
                .query("code_challenge", false, string())
                .query("code_challenge_method", false, string())
        } else {
            o
        }
    };
    let callback_op = |method: &'static str, path: &'static str| {
        let o = op(method, path, "The provider's answer; on to the client")
            .empty(
                302,
                "To the client's redirect URL with ?code= or ?error=&error_description=",
            )
            .resp_header(302, "Location", "The client's redirect URL")
            .empty(
                303,
                "A sign-in started at the sign-in page: on to its return_to signed in, the \
                 second-factor page, or the sign-in page with why not",
            )
            .errors(E, &[400, 404, 429]);
        if method == "GET" {
            o.query("state", true, string())
                .query("code", false, string())
                .query("error", false, string())
        } else {
            o
        }
    };
    let mut ops: Vec<Op> = ["/google/logout", "/cognito/logout", "/keycloak/logout"]
        .into_iter()
        .map(|path| {
            op(
                "POST",
                path,
                "Ends the session, and the provider's where hallpass can",
            )
            .security(&["bearer"])
            .body(obj(&[], json!({ "refreshToken": string() })))
            .json(
                200,
                "Signed out",
                obj(
                    &["success", "key"],
                    json!({ "success": { "const": true }, "key": string() }),
                ),
            )
            .errors(E, &[400, 401, 422])
        })
        .collect();
    let all = SEED_PATHS
        .iter()
        .copied()
        .chain([("/auth/oidc/{name}", "/auth/oidc/{name}/callback")]);
    for (s, c) in all {
        for m in ["GET", "POST"] {
            ops.push(start_op(m, s));
            ops.push(callback_op(m, c));
        }
    }
    ops
}
