//! hallpass's own routes: health, metrics, and the JWKS.

use serde_json::json;

use super::{Params, Route};
use crate::app::Ctx;
use crate::error::Error;
use crate::http::{Request, Response};

/// The meta route table (always on).
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("GET", "/healthz", healthz),
        Route::new("GET", "/metrics", metrics),
        Route::new("GET", "/.well-known/jwks.json", jwks),
    ]
}

fn healthz(cx: &mut Ctx, _: &Request, _: &Params) -> Result<Response, Error> {
    cx.conn
        .prepare_cached("SELECT 1")?
        .query_row([], |r| r.get::<_, i64>(0))?;
    Ok(Response::ok(&json!({ "status": "ok" })))
}

fn metrics(cx: &mut Ctx, _: &Request, _: &Params) -> Result<Response, Error> {
    Ok(Response::text(
        200,
        "text/plain; version=0.0.4",
        cx.app.metrics.render(),
    ))
}

fn jwks(cx: &mut Ctx, _: &Request, _: &Params) -> Result<Response, Error> {
    Ok(Response::ok(&cx.app.keys()?.jwks()).with_header("Cache-Control", "public, max-age=60"))
}
