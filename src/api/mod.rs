//! Routing: every enabled dialect's route table, tried in order, and the
//! one place an `Error` becomes a response (in the dialect's envelope).
//!
//! Order matters once: yat's `POST /auth/token` only takes bodies with a
//! `password` (its route has a predicate); every other body falls through
//! to the native code exchange on the same path.

use std::sync::Arc;

use crate::accounts::User;
use crate::app::Ctx;
use crate::auth::{self, Peer};
use crate::error::Error;
use crate::http::{Request, Response};
use crate::jwt::Claims;

pub mod admin;
pub mod forward;
pub mod lagrello;
pub mod meta;
pub mod mfa;
pub mod native;
pub mod oidc;
pub mod openapi;
pub mod social;
pub mod web;
pub mod yat;

/// A handler: decode, call the core, encode. Errors are rendered by dispatch.
pub type Handler = fn(&mut Ctx, &Request, &Params) -> Result<Response, Error>;

/// One route.
pub struct Route {
    pub method: &'static str,
    /// A pattern: literal segments and `{name}` parameters.
    pub path: &'static str,
    /// An extra condition on the request (body shape).
    pub when: Option<fn(&Request) -> bool>,
    pub handler: Handler,
}

impl Route {
    /// A route without a predicate.
    pub const fn new(method: &'static str, path: &'static str, handler: Handler) -> Route {
        Route {
            method,
            path,
            when: None,
            handler,
        }
    }
}

/// Path parameters captured by the router.
#[derive(Debug, Default)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// A captured parameter ("" when the pattern has none of that name).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A dialect: its routes and its error envelope.
pub struct Dialect {
    pub name: &'static str,
    pub routes: Vec<Route>,
    pub render: fn(&Error) -> Response,
    /// Its routes' OpenAPI description (openapi.rs), keyed like `routes`.
    pub openapi: fn() -> Vec<openapi::Op>,
}

/// The route tables of the enabled dialects, in routing order.
pub fn dialects(enabled: &dyn Fn(&str) -> bool) -> Vec<Dialect> {
    let all = [
        Dialect {
            name: "meta",
            routes: meta::routes(),
            openapi: meta::openapi,
            render: native::render,
        },
        // hallpass's own, like meta: always on. It answers only admins
        // and scoped API keys, so turning dialects off has no bearing on it.
        Dialect {
            name: "admin",
            routes: admin::routes(),
            openapi: admin::openapi,
            render: native::render,
        },
        // The sign-in pages (HTML), always on: the OpenID Provider sends
        // browsers to them whatever dialects are served.
        Dialect {
            name: "web",
            routes: web::routes(),
            openapi: web::openapi,
            render: web::render,
        },
        // The OpenID provider: always on, like meta.
        Dialect {
            name: "oidc",
            routes: oidc::routes(),
            openapi: oidc::openapi,
            render: oidc::render,
        },
        // Forward-auth for reverse proxies: always on, like oidc.
        Dialect {
            name: "forward",
            routes: forward::routes(),
            openapi: forward::openapi,
            render: native::render,
        },
        Dialect {
            name: "yat",
            routes: yat::routes(),
            openapi: yat::openapi,
            render: yat::render,
        },
        Dialect {
            name: "native",
            routes: native::routes(),
            openapi: native::openapi,
            render: native::render,
        },
        // Social sign-in: native routes, in their own file.
        Dialect {
            name: "social",
            routes: social::routes(),
            openapi: social::openapi,
            render: native::render,
        },
        Dialect {
            name: "mfa",
            routes: mfa::routes(),
            openapi: mfa::openapi,
            render: mfa::render,
        },
        Dialect {
            name: "lagrello",
            routes: lagrello::routes(),
            openapi: lagrello::openapi,
            render: lagrello::render,
        },
    ];
    all.into_iter()
        .filter(|d| match d.name {
            "meta" | "admin" | "web" | "oidc" | "forward" => true,
            "social" => enabled("native"),
            name => enabled(name),
        })
        .collect()
}

fn match_path(pattern: &'static str, path: &str) -> Option<Params> {
    if !pattern.contains('{') {
        return (pattern == path).then(Params::default);
    }
    let mut params = Params::default();
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') && !g.is_empty() => {
                params.0.push((&w[1..w.len() - 1], g.to_string()));
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

/// Routes a request and renders any error. Returns the matched pattern (for
/// metrics) and the response.
pub fn dispatch(cx: &mut Ctx, tables: &[Dialect], req: &Request) -> (&'static str, Response) {
    let mut allowed: Vec<&'static str> = Vec::new();
    for d in tables {
        for r in &d.routes {
            let Some(params) = match_path(r.path, &req.path) else {
                continue;
            };
            let method_ok = r.method == req.method || (req.method == "HEAD" && r.method == "GET");
            if !method_ok {
                if !allowed.contains(&r.method) {
                    allowed.push(r.method);
                }
                continue;
            }
            if r.when.is_some_and(|w| !w(req)) {
                continue;
            }
            let resp = (r.handler)(cx, req, &params).unwrap_or_else(|e| {
                if let Error::Internal(detail) = &e {
                    cx.app.log.line(format!("error: {detail}"));
                }
                render(d.render, &e)
            });
            return (r.path, resp);
        }
    }
    let err = if allowed.is_empty() {
        Error::RouteNotFound
    } else {
        Error::MethodNotAllowed(allowed)
    };
    ("unmatched", render(native::render, &err))
}

/// Renders an error in a dialect's envelope, with the headers every
/// dialect shares (Retry-After, Allow). Internal detail is never sent; the
/// caller logs it (through log.rs, which never blocks a worker).
pub fn render(dialect: fn(&Error) -> Response, e: &Error) -> Response {
    let mut resp = dialect(e);
    match e {
        Error::RateLimited { retry_after } => {
            resp = resp.with_header("Retry-After", &retry_after.to_string())
        }
        Error::MethodNotAllowed(m) => resp = resp.with_header("Allow", &m.join(", ")),
        Error::Unauthenticated
        | Error::TokenInvalid
        | Error::TokenExpired
        | Error::TokenRevoked => resp = resp.with_header("WWW-Authenticate", "Bearer"),
        _ => {}
    }
    resp
}

/// Who is calling.
pub fn peer(req: &Request) -> Peer {
    Peer {
        ip: req.ip.clone(),
        user_agent: req.user_agent().map(str::to_string),
    }
}

/// The bearer's claims and user; 401 without a valid, live token. The
/// user is noted on the request for the access log.
pub fn bearer(cx: &Ctx, req: &Request) -> Result<(Arc<Claims>, User), Error> {
    let token = req.bearer().ok_or(Error::Unauthenticated)?;
    let (claims, user) = auth::authenticate(cx, token)?;
    let _ = req.user.set(user.id.clone());
    Ok((claims, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_capture_parameters_and_need_every_segment() {
        let p = match_path("/v1/users/{userId}/totp", "/v1/users/abc/totp").unwrap();
        assert_eq!(p.get("userId"), "abc");
        assert!(match_path("/v1/users/{userId}", "/v1/users/").is_none());
        assert!(match_path("/v1/users/{userId}", "/v1/users/a/b").is_none());
        assert!(match_path("/auth/me", "/auth/me").is_some());
    }
}
