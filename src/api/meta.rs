//! hallpass's own routes: health, metrics, the JWKS and the OpenAPI document;
//! and the metrics listener's table (`[metrics] listen`), health and metrics
//! only.

use serde_json::json;

use super::openapi::{array, obj, op, string, Op};
use super::{Params, Route};
use crate::app::Ctx;
use crate::error::Error;
use crate::http::{Request, Response};
use crate::metrics::Metrics;

/// The meta route table (always on).
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("GET", "/healthz", healthz),
        Route::new("GET", "/metrics", metrics),
        Route::new("GET", "/.well-known/jwks.json", jwks),
        Route::new("GET", "/openapi.json", openapi_document),
    ]
}

/// The table of the metrics listener (`[metrics] listen`): nothing but
/// health and metrics, so that the port a scraper reaches serves no sign-in.
pub fn metrics_listener_routes() -> Vec<Route> {
    vec![
        Route::new("GET", "/healthz", healthz),
        Route::new("GET", "/metrics", scrape),
    ]
}

fn healthz(cx: &mut Ctx, _: &Request, _: &Params) -> Result<Response, Error> {
    cx.conn
        .prepare_cached("SELECT 1")?
        .query_row([], |r| r.get::<_, i64>(0))?;
    Ok(Response::ok(&json!({ "status": "ok" })))
}

/// On the main listener: 404, as for any unknown path, when the metrics
/// have a listener of their own.
fn metrics(cx: &mut Ctx, req: &Request, params: &Params) -> Result<Response, Error> {
    if cx.app.config.metrics.listen.is_some() {
        return Err(Error::RouteNotFound);
    }
    scrape(cx, req, params)
}

/// 401 without the configured `[metrics] token` as the bearer.
fn scrape(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    if !Metrics::may_scrape(cx.app.config.metrics.token.as_deref(), req.bearer()) {
        return Err(Error::Unauthenticated);
    }
    Ok(Response::text(
        200,
        "text/plain; version=0.0.4",
        cx.app.metrics.render(),
    ))
}

fn jwks(cx: &mut Ctx, _: &Request, _: &Params) -> Result<Response, Error> {
    Ok(Response::ok(&cx.app.keys()?.jwks()).with_header("Cache-Control", "public, max-age=60"))
}

/// Built once, on the first request, for the enabled dialects.
fn openapi_document(cx: &mut Ctx, _: &Request, _: &Params) -> Result<Response, Error> {
    let app = cx.app.clone();
    let document = app.openapi.get_or_init(|| {
        let tables = super::dialects(&|d| app.config.dialect_on(d));
        super::openapi::document_bytes(&tables)
    });
    Ok(Response::text(200, "application/json", document.clone()))
}

/// The OpenAPI description of the routes above (api/openapi.rs).
pub fn openapi() -> Vec<Op> {
    let s = string;
    vec![
        op("GET", "/healthz", "Liveness: the database answers")
            .json(
                200,
                "Up",
                obj(&["status"], json!({ "status": { "const": "ok" } })),
            )
            .errors("NativeError", &[500]),
        op("GET", "/metrics", "Prometheus metrics")
            .json_text(200, "text/plain")
            // 401: `[metrics] token` is set and was not sent as the bearer.
            .errors("NativeError", &[401]),
        op("GET", "/.well-known/jwks.json", "The public signing keys").json(
            200,
            "A JWK set",
            obj(
                &["keys"],
                json!({ "keys": array(obj(&["kty", "kid", "alg", "use"], json!({
                        "kty": s(), "kid": s(), "alg": s(), "use": s(),
                    }))) }),
            ),
        ),
        op("GET", "/openapi.json", "This document").json(
            200,
            "OpenAPI 3.1",
            obj(&["openapi", "info", "paths"], json!({ "openapi": s() })),
        ),
    ]
}
