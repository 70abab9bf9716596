//! The admin API under /admin: what the CLI does, over HTTP, for scripts
//! and appliance firmware. JSON in snake_case, times in unix seconds, the
//! native (LoopBack) error envelope. Each handler names the scope it
//! needs, builds the `Actor`, and calls one `admin::` function; the rules
//! (who reaches what, the audit row) live there, shared with the CLI.
//!
//! Access: an admin bearer (a user with role `admin`) may do everything;
//! an API key needs one of the route's scopes (or `admin`); a plain user's
//! bearer is 403, no credentials 401. README "Admin API" lists the routes.

use serde_json::{json, Value};

use super::{bearer, Params, Route};
use crate::accounts::{self, Ttls};
use crate::admin::{audit, system, tenants, users, Actor, Listing, Page};
use crate::app::Ctx;
use crate::error::Error;
use crate::filter;
use crate::http::{Request, Response};
use crate::server;

/// The admin route table (always on; see `api::dialects`).
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("GET", "/admin/users", list_users),
        Route::new("POST", "/admin/users", create_user),
        Route::new("GET", "/admin/users/{id}", get_user),
        Route::new("PATCH", "/admin/users/{id}", patch_user),
        Route::new("DELETE", "/admin/users/{id}", delete_user),
        Route::new("POST", "/admin/users/{id}/disable", disable_user),
        Route::new("POST", "/admin/users/{id}/enable", enable_user),
        Route::new("POST", "/admin/users/{id}/password", set_password),
        Route::new("POST", "/admin/users/{id}/reset-mfa", reset_mfa),
        Route::new("GET", "/admin/users/{id}/sessions", list_sessions),
        Route::new("DELETE", "/admin/users/{id}/sessions", end_sessions),
        Route::new("DELETE", "/admin/users/{id}/sessions/{sid}", end_session),
        Route::new("GET", "/admin/clients", list_clients),
        Route::new("POST", "/admin/clients", create_client),
        Route::new("GET", "/admin/clients/{id}", get_client),
        Route::new("DELETE", "/admin/clients/{id}", delete_client),
        Route::new("GET", "/admin/tenants", list_tenants),
        Route::new("POST", "/admin/tenants", create_tenant),
        Route::new("GET", "/admin/tenants/{id}", get_tenant),
        Route::new("GET", "/admin/tenants/{id}/members", list_members),
        Route::new("PUT", "/admin/tenants/{id}/members/{user}", set_member),
        Route::new(
            "DELETE",
            "/admin/tenants/{id}/members/{user}",
            remove_member,
        ),
        Route::new("GET", "/admin/api-keys", list_api_keys),
        Route::new("POST", "/admin/api-keys", create_api_key),
        Route::new("DELETE", "/admin/api-keys/{id}", revoke_api_key),
        Route::new("GET", "/admin/keys", list_keys),
        Route::new("POST", "/admin/keys/rotate", rotate_keys),
        Route::new("GET", "/admin/mail", list_mail),
        Route::new("POST", "/admin/mail/{id}/retry", retry_mail),
        Route::new("GET", "/admin/audit", list_audit),
    ]
}

/// The caller as an `Actor`: an API key carrying one of `scopes` (or
/// `admin`), else an admin's bearer. A key is tried first (a hash
/// look-up); a bearer that is no key is verified as an access token.
fn actor(cx: &mut Ctx, req: &Request, scopes: &[&str]) -> Result<Actor, Error> {
    let token = req.bearer().ok_or(Error::Unauthenticated)?;
    match accounts::authenticate_api_key(&cx.conn, token) {
        Ok(key) => {
            if !key.has_scope("admin") && !scopes.iter().any(|s| key.has_scope(s)) {
                return Err(Error::Forbidden(format!(
                    "The API key lacks the {} scope",
                    scopes.join(" or ")
                )));
            }
            let now = cx.now();
            cx.write(|tx| accounts::touch_api_key(tx, &key.id, now))?;
            return Ok(Actor::api_key(&key, &req.ip));
        }
        Err(Error::Unauthenticated) => {}
        Err(e) => return Err(e),
    }
    let (_, user) = bearer(cx, req)?;
    if !user.is_admin() {
        return Err(Error::Forbidden("The admin role is required".into()));
    }
    Ok(Actor::admin(&user, &req.ip))
}

/// An optional integer query parameter; not a number is a 422 naming it.
fn int_query(req: &Request, name: &str) -> Result<Option<i64>, Error> {
    match req.query(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Error::invalid(name, "type", format!("{name} must be an integer"))),
    }
}

fn page(req: &Request) -> Result<Page, Error> {
    Page::new(int_query(req, "limit")?, int_query(req, "offset")?)
}

/// `{items, total, limit, offset}`.
fn listing<T>(l: &Listing<T>, f: impl Fn(&T) -> Value) -> Response {
    Response::ok(&json!({
        "items": l.items.iter().map(f).collect::<Vec<_>>(),
        "total": l.total, "limit": l.page.limit, "offset": l.page.offset,
    }))
}

/// `{items}`, for the short lists that are not paged.
fn items<T>(v: &[T], f: impl Fn(&T) -> Value) -> Response {
    Response::ok(&json!({ "items": v.iter().map(f).collect::<Vec<_>>() }))
}

fn list_users(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:read"])?;
    let l = users::list(cx, &a, req.query("search"), page(req)?)?;
    Ok(listing(&l, accounts::user_json))
}

fn create_user(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:write"])?;
    let b = req.json()?;
    let new = users::NewAccount {
        email: b.opt_str("email", 254)?,
        username: b.opt_str("username", 64)?,
        name: b.opt_str("name", 256)?,
        password: b.opt_str("password", crate::password::MAX_LEN)?,
        role: b.opt_str("role", 16)?,
        tenant: b.opt_str("tenant", 128)?,
    };
    let iterations = cx.app.config.pbkdf2_iterations;
    let u = users::create(cx, &a, new, iterations)?;
    Ok(Response::json(201, &users::detail(cx, &u)?))
}

fn get_user(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:read"])?;
    let u = users::get(cx, &a, p.get("id"))?;
    Ok(Response::ok(&users::detail(cx, &u)?))
}

fn patch_user(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:write"])?;
    let b = req.json()?;
    // A field this route cannot change is refused, not silently ignored
    // (a caller sending `status` must not believe it took).
    if let Some(k) =
        b.0.keys()
            .find(|k| !["name", "username", "email", "role"].contains(&k.as_str()))
    {
        return Err(Error::invalid(
            k,
            "unknown",
            format!("{k} cannot be changed here (name, username, email, role can)"),
        ));
    }
    let patch = users::Patch {
        name: b.opt_str("name", 256)?,
        username: b.opt_str("username", 64)?,
        email: b.opt_str("email", 254)?,
        role: b.opt_str("role", 16)?,
    };
    let u = users::update(cx, &a, p.get("id"), &patch)?;
    Ok(Response::ok(&users::detail(cx, &u)?))
}

fn delete_user(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:write"])?;
    users::delete(cx, &a, p.get("id"))?;
    Ok(Response::empty(204))
}

fn disable_user(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:write"])?;
    let u = users::set_active(cx, &a, p.get("id"), false)?;
    Ok(Response::ok(&users::detail(cx, &u)?))
}

fn enable_user(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:write"])?;
    let u = users::set_active(cx, &a, p.get("id"), true)?;
    Ok(Response::ok(&users::detail(cx, &u)?))
}

fn set_password(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:write"])?;
    let pw = req.json()?.str("password", crate::password::MAX_LEN)?;
    let iterations = cx.app.config.pbkdf2_iterations;
    users::set_password(cx, &a, p.get("id"), &pw, iterations)?;
    Ok(Response::empty(204))
}

fn reset_mfa(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:write"])?;
    let (u, before) = users::reset_mfa(cx, &a, p.get("id"))?;
    let was = match before {
        crate::totp::State::On => "on",
        crate::totp::State::Pending => "pending",
        crate::totp::State::Off => "off",
    };
    Ok(Response::ok(&json!({ "user_id": u.id, "mfa_was": was })))
}

fn list_sessions(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:read"])?;
    let s = users::sessions(cx, &a, p.get("id"))?;
    Ok(items(&s, |s| json!(s)))
}

fn end_sessions(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:write"])?;
    let n = users::end_sessions(cx, &a, p.get("id"), None)?;
    Ok(Response::ok(&json!({ "ended": n })))
}

fn end_session(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:write"])?;
    let n = users::end_sessions(cx, &a, p.get("id"), Some(p.get("sid")))?;
    Ok(Response::ok(&json!({ "ended": n })))
}

fn list_clients(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    actor(cx, req, &["clients:write"])?;
    Ok(items(&system::list_clients(cx)?, system::client_json))
}

fn create_client(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["clients:write"])?;
    let b = req.json()?;
    let new = system::NewClient {
        name: b.str("name", 128)?,
        redirect_urls: match b.0.get("redirect_urls") {
            None | Some(Value::Null) => Vec::new(),
            Some(_) => b.str_list("redirect_urls", 32, 2048)?,
        },
        logout_redirect_url: b.opt_str("logout_redirect_url", 2048)?,
        public: match b.0.get("public") {
            None | Some(Value::Null) => false,
            Some(_) => b.bool("public")?,
        },
    };
    let c = &cx.app.config;
    let ttls = Ttls {
        access: c.access_ttl,
        refresh: c.refresh_ttl,
        auth_code: c.auth_code_ttl,
    };
    let (client, secret) = system::create_client(cx, &a, &new, ttls)?;
    let mut v = system::client_json(&client);
    if let Some(s) = secret {
        v["client_secret"] = json!(s);
    }
    Ok(Response::json(201, &v))
}

fn get_client(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    actor(cx, req, &["clients:write"])?;
    let c = system::get_client(cx, p.get("id"))?;
    Ok(Response::ok(&system::client_json(&c)))
}

fn delete_client(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["clients:write"])?;
    system::delete_client(cx, &a, p.get("id"))?;
    Ok(Response::empty(204))
}

fn list_tenants(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["tenants:write", "users:read"])?;
    Ok(items(&tenants::list(cx, &a)?, tenants::tenant_json))
}

fn create_tenant(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["tenants:write"])?;
    let b = req.json()?;
    let name = b.str("name", 128)?;
    let callback = b.opt_str("callback_url", 2048)?;
    let t = tenants::create(cx, &a, &name, callback.as_deref())?;
    Ok(Response::json(201, &tenants::tenant_json(&t)))
}

fn get_tenant(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["tenants:write", "users:read"])?;
    let t = tenants::get(cx, &a, p.get("id"))?;
    Ok(Response::ok(&tenants::tenant_json(&t)))
}

fn list_members(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["tenants:write", "users:read"])?;
    let (_, members) = tenants::members(cx, &a, p.get("id"))?;
    Ok(items(&members, |(m, u)| tenants::member_json(m, u)))
}

fn set_member(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["tenants:write"])?;
    let role = req
        .json()?
        .opt_str("role", 64)?
        .unwrap_or_else(|| "user".into());
    let m = tenants::set_member(cx, &a, p.get("id"), p.get("user"), &role)?;
    let u = users::get(cx, &a, &m.user_id)?;
    Ok(Response::ok(&tenants::member_json(&m, &u)))
}

fn remove_member(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["tenants:write"])?;
    tenants::remove_member(cx, &a, p.get("id"), p.get("user"))?;
    Ok(Response::empty(204))
}

fn list_api_keys(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["apikeys:write"])?;
    Ok(items(
        &tenants::list_api_keys(cx, &a)?,
        tenants::api_key_json,
    ))
}

fn create_api_key(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["apikeys:write"])?;
    let b = req.json()?;
    let name = b.str("name", 128)?;
    let tenant = match (b.opt_str("tenant", 128)?, a.tenant()) {
        (Some(t), _) => t,
        (None, Some(own)) => own.to_string(),
        (None, None) => return Err(Error::required("tenant")),
    };
    let scopes = b.str_list("scopes", 16, 32)?;
    let (k, key) = tenants::create_api_key(cx, &a, &name, &tenant, &scopes)?;
    let mut v = tenants::api_key_json(&k);
    v["api_key"] = json!(key);
    Ok(Response::json(201, &v))
}

fn revoke_api_key(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["apikeys:write"])?;
    tenants::revoke_api_key(cx, &a, p.get("id"))?;
    Ok(Response::empty(204))
}

fn list_keys(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    actor(cx, req, &["keys:write"])?;
    let master = cx.app.master.clone();
    Ok(items(&system::list_keys(cx, &master)?, |k| json!(k)))
}

/// Rotates, then loads the new key set into this server at once (other
/// processes pick it up from the database within 5 s).
fn rotate_keys(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["keys:write"])?;
    let app = cx.app.clone();
    let keep = server::key_keep_secs(&cx.conn, app.config.access_ttl)?;
    let source = server::key_source(&app.config)?;
    let kid = system::rotate_keys(cx, &a, &app.master, &source, keep)?;
    app.set_keys(crate::jwt::KeySet::load(&cx.conn, &app.master, cx.now())?);
    Ok(Response::json(201, &json!({ "kid": kid })))
}

fn list_mail(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    actor(cx, req, &["mail:write"])?;
    let limit = int_query(req, "limit")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            "invalid",
            "limit must be 1 to 1000",
        ));
    }
    let rows = system::list_mail(cx, limit as usize)?;
    Ok(items(&rows, |m| json!(m)))
}

fn retry_mail(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["mail:write"])?;
    let r = system::retry_mail(cx, &a, p.get("id"))?;
    // Wake the mail thread rather than wait for its next look.
    cx.app.mail.signal.notify();
    let outcome = match r {
        crate::mail::outbox::Retried::Due => "due",
        crate::mail::outbox::Retried::InDelivery => "in_delivery",
    };
    Ok(Response::ok(
        &json!({ "id": p.get("id"), "outcome": outcome }),
    ))
}

/// Plain parameters (`actor`, `action`, `object_type`, `object_id`,
/// `since`, `until`, `limit`, `offset`), or `filter` in the LoopBack filter
/// language login activity speaks: a JSON string or a deep object.
fn list_audit(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    actor(cx, req, &["audit:read"])?;
    let filter_value = match req.query("filter") {
        Some(text) if !text.trim().is_empty() => Some(filter::parse_json("filter", text)?),
        _ => filter::from_deep_object("filter", &req.query)?,
    };
    if let Some(f) = filter_value {
        let l = audit::search(&cx.conn, &f)?;
        return Ok(listing(&l, |e| json!(e)));
    }
    let text = |name: &str| {
        req.query(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let q = audit::Query {
        actor: text("actor"),
        action: text("action"),
        object_type: text("object_type"),
        object_id: text("object_id"),
        since: int_query(req, "since")?,
        until: int_query(req, "until")?,
        page: page(req)?,
    };
    let l = audit::query(&cx.conn, &q)?;
    Ok(listing(&l, |e| json!(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_integer_names_its_parameter() {
        let req = Request::new("GET", "/admin/users?limit=ten");
        match page(&req) {
            Err(Error::Validation { field, .. }) => assert_eq!(field, "limit"),
            other => panic!("{other:?}"),
        }
        let req = Request::new("GET", "/admin/users?limit=9999");
        assert!(page(&req).is_err());
        let req = Request::new("GET", "/admin/users?offset=5");
        assert_eq!(
            page(&req).unwrap(),
            Page {
                limit: 50,
                offset: 5
            }
        );
    }
}
