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

use super::openapi::{array, boolean, int, obj, op, opt_int, opt_string, string, Op};
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
        Route::new("GET", "/admin/users/{id}/identities", list_identities),
        Route::new("DELETE", "/admin/users/{id}/identities/{provider}", unlink),
        Route::new("GET", "/admin/clients", list_clients),
        Route::new("POST", "/admin/clients", create_client),
        Route::new("GET", "/admin/clients/{id}", get_client),
        Route::new("PATCH", "/admin/clients/{id}", patch_client),
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

fn list_identities(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:read"])?;
    let list = users::identities(cx, &a, p.get("id"))?;
    Ok(items(&list, |i| json!(i)))
}

fn unlink(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["users:write"])?;
    let gone = users::unlink(cx, &a, p.get("id"), p.get("provider"))?;
    Ok(Response::ok(&json!(gone)))
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
        public: opt_bool(&b, "public")?.unwrap_or(false),
        post_logout_redirect_urls: opt_list(&b, "post_logout_redirect_urls")?.unwrap_or_default(),
        scopes: opt_list(&b, "scopes")?.unwrap_or_default(),
        consent: opt_bool(&b, "consent")?.unwrap_or(false),
        token_alg: b.opt_str("token_alg", 16)?,
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

/// A list of URLs or scopes, absent or null being None.
fn opt_list(b: &crate::http::Json, field: &str) -> Result<Option<Vec<String>>, Error> {
    match b.0.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => b.str_list(field, 32, 2048).map(Some),
    }
}

fn opt_bool(b: &crate::http::Json, field: &str) -> Result<Option<bool>, Error> {
    match b.0.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => b.bool(field).map(Some),
    }
}

/// Absent: unchanged; null or "": removed; a string: set.
fn opt_clearable(
    b: &crate::http::Json,
    field: &str,
    max: usize,
) -> Result<Option<Option<String>>, Error> {
    match b.0.get(field) {
        None => Ok(None),
        Some(_) => b.opt_str(field, max).map(Some),
    }
}

fn patch_client(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let a = actor(cx, req, &["clients:write"])?;
    let b = req.json()?;
    const FIELDS: [&str; 7] = [
        "name",
        "redirect_urls",
        "logout_redirect_url",
        "post_logout_redirect_urls",
        "scopes",
        "consent",
        "token_alg",
    ];
    // As for users: a field this route cannot change (public) is refused.
    if let Some(k) = b.0.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Error::invalid(
            k,
            "unknown",
            format!("{k} cannot be changed here ({} can)", FIELDS.join(", ")),
        ));
    }
    let change = system::ClientUpdate {
        name: b.opt_str("name", 128)?,
        redirect_urls: opt_list(&b, "redirect_urls")?,
        logout_redirect_url: opt_clearable(&b, "logout_redirect_url", 2048)?,
        post_logout_redirect_urls: opt_list(&b, "post_logout_redirect_urls")?,
        scopes: opt_list(&b, "scopes")?,
        consent: opt_bool(&b, "consent")?,
        token_alg: opt_clearable(&b, "token_alg", 16)?,
    };
    let c = system::update_client(cx, &a, p.get("id"), &change)?;
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

/// The OpenAPI description of the routes above (api/openapi.rs). Every
/// route takes an admin's access token or an API key with its scope.
pub fn openapi() -> Vec<Op> {
    const E: &str = "NativeError";
    let (s, os, oi) = (string, opt_string, opt_int);
    let who = ["bearer", "apiKey"];
    let page_of = |item: Value| {
        obj(
            &["items", "total", "limit", "offset"],
            json!({ "items": array(item), "total": int(), "limit": int(), "offset": int() }),
        )
    };
    let items_of = |item: Value| obj(&["items"], json!({ "items": array(item) }));
    let user = obj(
        &[
            "id",
            "role",
            "status",
            "created_at",
            "has_password",
            "mfa",
            "tenants",
        ],
        json!({
            "id": s(), "email": os(), "username": os(), "name": os(), "phone": os(),
            "role": s(), "status": s(), "default_tenant_id": os(), "created_at": int(),
            "last_login_at": oi(), "has_password": boolean(),
            "mfa": { "enum": ["on", "pending", "off"] }, "recovery_codes_left": int(),
            "tenants": array(obj(&["tenant_id", "role"], json!({
                "tenant_id": s(), "name": os(), "role": s(),
            }))),
        }),
    );
    let listed_user = obj(
        &["id", "role", "status", "created_at", "has_password"],
        json!({
            "id": s(), "email": os(), "username": os(), "name": os(), "phone": os(),
            "role": s(), "status": s(), "default_tenant_id": os(), "created_at": int(),
            "last_login_at": oi(), "has_password": boolean(),
        }),
    );
    let client = obj(
        &[
            "client_id",
            "num",
            "name",
            "public",
            "redirect_urls",
            "access_ttl",
            "refresh_ttl",
        ],
        json!({
            "client_id": s(), "num": int(), "name": s(), "public": boolean(), "redirect_urls": array(s()),
            "logout_redirect_url": os(), "access_ttl": int(), "refresh_ttl": int(),
            "auth_code_ttl": int(), "client_secret": s(),
            "post_logout_redirect_urls": array(s()), "scopes": array(s()), "consent": boolean(),
            "token_alg": os(),
        }),
    );
    let client_fields = json!({
        "name": s(), "redirect_urls": array(s()), "logout_redirect_url": s(),
        "post_logout_redirect_urls": array(s()), "scopes": array(s()), "consent": boolean(),
        "token_alg": s(),
    });
    let mut client_new = client_fields.clone();
    client_new["public"] = boolean();
    let tenant = obj(
        &["tenant_id", "name", "created_at"],
        json!({ "tenant_id": s(), "name": s(), "callback_url": os(), "created_at": int() }),
    );
    let member = obj(
        &["user_tenant_id", "tenant_id", "user_id", "role"],
        json!({
            "user_tenant_id": s(), "tenant_id": s(), "user_id": s(), "role": s(),
            "external_id": os(), "email": os(), "username": os(), "name": os(),
        }),
    );
    let api_key = obj(
        &[
            "key_id",
            "name",
            "tenant_id",
            "scopes",
            "created_at",
            "revoked",
        ],
        json!({
            "key_id": s(), "name": s(), "tenant_id": s(), "scopes": array(s()),
            "created_at": int(), "last_used_at": oi(), "revoked": boolean(), "api_key": s(),
        }),
    );
    let session = obj(
        &["id", "amr", "created_at", "last_refreshed_at", "expires_at"],
        json!({
            "id": s(), "client_id": os(), "amr": array(s()), "created_at": int(),
            "last_refreshed_at": int(), "expires_at": int(),
        }),
    );
    let ended = || obj(&["ended"], json!({ "ended": int() }));
    let identity = || {
        obj(
            &["provider", "subject", "user_id", "created_at"],
            json!({
                "provider": s(), "subject": s(), "user_id": s(), "email": os(),
                "created_at": int(), "last_used_at": oi(),
            }),
        )
    };
    let signing_key = obj(
        &["kid", "alg", "current"],
        json!({ "kid": s(), "alg": s(), "current": boolean(), "published_until": oi() }),
    );
    let mail = obj(
        &[
            "id",
            "kind",
            "to",
            "subject",
            "status",
            "attempts",
            "created_at",
        ],
        json!({
            "id": s(), "kind": s(), "to": s(), "subject": s(), "status": s(),
            "attempts": int(), "created_at": int(), "next_attempt_at": oi(),
            "sent_at": oi(), "last_error": os(),
        }),
    );
    let audit = obj(
        &[
            "id",
            "at",
            "actor_kind",
            "actor_id",
            "source",
            "action",
            "object_type",
        ],
        json!({
            "id": int(), "at": int(), "actor_kind": s(), "actor_id": s(), "source": s(),
            "action": s(), "object_type": s(), "object_id": os(), "details": {},
        }),
    );
    let paged = |o: Op| o.query("limit", false, int()).query("offset", false, int());
    // Reads: no credentials 401, scope or reach 403, a bad parameter 422.
    let read = |method, path, summary: &str| op(method, path, summary).security(&who);
    let user_patch = obj(
        &[],
        json!({ "name": s(), "username": s(), "email": s(), "role": s() }),
    );
    vec![
        paged(read("GET", "/admin/users", "Users, a page"))
            .query("search", false, s())
            .json(200, "A page", page_of(listed_user))
            .errors(E, &[401, 403, 422]),
        read("POST", "/admin/users", "Create a user")
            .body(obj(
                &[],
                json!({
                    "email": s(), "username": s(), "name": s(), "password": s(),
                    "role": s(), "tenant": s(),
                }),
            ))
            .json(201, "Created", user.clone())
            .errors(E, &[400, 401, 403, 404, 409, 422]),
        read("GET", "/admin/users/{id}", "A user")
            .json(200, "The user", user.clone())
            .errors(E, &[401, 403, 404]),
        read("PATCH", "/admin/users/{id}", "Change a user")
            .body(user_patch)
            .json(200, "The user", user.clone())
            .errors(E, &[400, 401, 403, 404, 409, 422]),
        read("DELETE", "/admin/users/{id}", "Delete a user")
            .empty(204, "Deleted")
            .errors(E, &[401, 403, 404]),
        read("POST", "/admin/users/{id}/disable", "Disable a user")
            .json(200, "The user", user.clone())
            .errors(E, &[401, 403, 404]),
        read("POST", "/admin/users/{id}/enable", "Enable a user")
            .json(200, "The user", user)
            .errors(E, &[401, 403, 404]),
        read(
            "POST",
            "/admin/users/{id}/password",
            "Set a user's password",
        )
        .body(obj(&["password"], json!({ "password": s() })))
        .empty(204, "Set")
        .errors(E, &[400, 401, 403, 404, 422]),
        read(
            "POST",
            "/admin/users/{id}/reset-mfa",
            "Remove a user's second factor",
        )
        .json(
            200,
            "What it was",
            obj(
                &["user_id", "mfa_was"],
                json!({ "user_id": s(), "mfa_was": { "enum": ["on", "pending", "off"] } }),
            ),
        )
        .errors(E, &[401, 403, 404]),
        read(
            "GET",
            "/admin/users/{id}/sessions",
            "A user's live sessions",
        )
        .json(200, "Sessions", items_of(session))
        .errors(E, &[401, 403, 404]),
        read(
            "DELETE",
            "/admin/users/{id}/sessions",
            "End all of a user's sessions",
        )
        .json(200, "How many", ended())
        .errors(E, &[401, 403, 404]),
        read(
            "DELETE",
            "/admin/users/{id}/sessions/{sid}",
            "End one session",
        )
        .json(200, "How many", ended())
        .errors(E, &[401, 403, 404]),
        read(
            "GET",
            "/admin/users/{id}/identities",
            "A user's links to upstream providers",
        )
        .json(200, "Identities", items_of(identity()))
        .errors(E, &[401, 403, 404]),
        read(
            "DELETE",
            "/admin/users/{id}/identities/{provider}",
            "Unlink a user from a provider",
        )
        .json(200, "The removed link", identity())
        .errors(E, &[401, 403, 404]),
        read("GET", "/admin/clients", "Clients")
            .json(200, "Clients", items_of(client.clone()))
            .errors(E, &[401, 403]),
        read("POST", "/admin/clients", "Create a client")
            .body(obj(&["name"], client_new))
            .json(201, "Created, with client_secret once", client.clone())
            .errors(E, &[400, 401, 403, 409, 422]),
        read("GET", "/admin/clients/{id}", "A client")
            .json(200, "The client", client.clone())
            .errors(E, &[401, 403, 404]),
        read("PATCH", "/admin/clients/{id}", "Change a client")
            .body(obj(&[], client_fields))
            .json(200, "The client", client)
            .errors(E, &[400, 401, 403, 404, 422]),
        read("DELETE", "/admin/clients/{id}", "Delete a client")
            .empty(204, "Deleted")
            .errors(E, &[401, 403, 404]),
        read("GET", "/admin/tenants", "Tenants")
            .json(200, "Tenants", items_of(tenant.clone()))
            .errors(E, &[401, 403]),
        read("POST", "/admin/tenants", "Create a tenant")
            .body(obj(&["name"], json!({ "name": s(), "callback_url": s() })))
            .json(201, "Created", tenant.clone())
            .errors(E, &[400, 401, 403, 409, 422]),
        read("GET", "/admin/tenants/{id}", "A tenant")
            .json(200, "The tenant", tenant)
            .errors(E, &[401, 403, 404]),
        read("GET", "/admin/tenants/{id}/members", "A tenant's members")
            .json(200, "Members", items_of(member.clone()))
            .errors(E, &[401, 403, 404]),
        read(
            "PUT",
            "/admin/tenants/{id}/members/{user}",
            "Add a member, or set its role",
        )
        .body(obj(&[], json!({ "role": s() })))
        .json(200, "The membership", member)
        .errors(E, &[400, 401, 403, 404, 409, 422]),
        read(
            "DELETE",
            "/admin/tenants/{id}/members/{user}",
            "Remove a member",
        )
        .empty(204, "Removed")
        .errors(E, &[401, 403, 404, 409]),
        read("GET", "/admin/api-keys", "API keys (never the key)")
            .json(200, "Keys", items_of(api_key.clone()))
            .errors(E, &[401, 403]),
        read("POST", "/admin/api-keys", "Create an API key")
            .body(obj(
                &["name", "scopes"],
                json!({ "name": s(), "tenant": s(), "scopes": array(s()) }),
            ))
            .json(201, "Created, with api_key once", api_key)
            .errors(E, &[400, 401, 403, 404, 409, 422]),
        read("DELETE", "/admin/api-keys/{id}", "Revoke an API key")
            .empty(204, "Revoked")
            .errors(E, &[401, 403, 404]),
        read("GET", "/admin/keys", "Signing keys")
            .json(200, "Keys", items_of(signing_key))
            .errors(E, &[401, 403]),
        read("POST", "/admin/keys/rotate", "Rotate the signing key")
            .json(201, "The new key", obj(&["kid"], json!({ "kid": s() })))
            .errors(E, &[401, 403]),
        read("GET", "/admin/mail", "The mail outbox, newest first")
            .query("limit", false, int())
            .json(200, "Mails (never a body)", items_of(mail))
            .errors(E, &[401, 403, 422]),
        read("POST", "/admin/mail/{id}/retry", "Retry a mail")
            .json(
                200,
                "Queued",
                obj(
                    &["id", "outcome"],
                    json!({ "id": s(), "outcome": { "enum": ["due", "in_delivery"] } }),
                ),
            )
            .errors(E, &[401, 403, 404, 409]),
        paged(read("GET", "/admin/audit", "The audit trail, newest first"))
            .query("actor", false, s())
            .query("action", false, s())
            .query("object_type", false, s())
            .query("object_id", false, s())
            .query("since", false, int())
            .query("until", false, int())
            .query("filter", false, s())
            .json(200, "A page", page_of(audit))
            .errors(E, &[400, 401, 403, 422]),
    ]
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
