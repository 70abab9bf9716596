//! native: the SourceLoop "Authentication Service v1.0.0" API, hallpass's
//! main dialect. camelCase responses, client credentials in the body,
//! LoopBack error envelopes. Fields: the README's "native" section.

use serde::Serialize;
use serde_json::{json, Value};

use super::openapi::{array, boolean, int, obj, op, opt_string, string, Op};
use super::{bearer, peer, Params, Route};
use crate::accounts::{self, Client, User};
use crate::activity::{self, ActiveQuery, Range};
use crate::app::Ctx;
use crate::auth::{self, Tokens};
use crate::clock::iso8601;
use crate::emailed;
use crate::error::Error;
use crate::factors;
use crate::filter;
use crate::http::{percent_encode, Json, Request, Response};
use crate::jwt::Claims;
use crate::password::MAX_LEN;
use crate::sessions;
use crate::signup;
use crate::totp;

/// The native route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new("POST", "/auth/login", login),
        Route::new("POST", "/auth/login-token", login_token),
        Route::new("POST", "/auth/token", token),
        Route::new("POST", "/auth/token-refresh", token_refresh),
        Route::new("POST", "/auth/switch-token", switch_token),
        Route::new("POST", "/auth/token-switch", switch_token),
        Route::new("GET", "/auth/me", me),
        Route::new("PATCH", "/auth/change-password", change_password),
        Route::new("POST", "/logout", logout),
        Route::new("GET", "/logout/redirect", logout_redirect),
        Route::new("POST", "/auth/verify-otp", verify_otp),
        Route::new("GET", "/auth/check-qr-code", check_qr_code),
        Route::new("POST", "/auth/create-qr-code", create_qr_code),
        Route::new("POST", "/auth/send-otp", send_otp),
        Route::new("POST", "/auth/passwordless/start", passwordless_start),
        Route::new("POST", "/auth/passwordless/verify", passwordless_verify),
        Route::new("POST", "/auth/forget-password", forget_password),
        Route::new("GET", "/auth/verify-reset-password-link", verify_reset_link),
        Route::new("PATCH", "/auth/reset-password", reset_password),
        Route::new("POST", "/auth/signup/create-token", signup_create_token),
        Route::new("POST", "/auth/sign-up/create-token", signup_create_token),
        Route::new("GET", "/auth/signup/verify-token", signup_verify_token),
        Route::new("GET", "/auth/sign-up/verify-token", signup_verify_token),
        Route::new("POST", "/auth/signup/create-user", signup_create_user),
        Route::new("POST", "/auth/sign-up/create-user", signup_create_user),
        Route::new("POST", "/auth/signup/fast", signup_fast),
        Route::new("POST", "/auth/sign-up/fast", signup_fast),
        Route::new("GET", "/auth/verify-email", verify_email),
        Route::new("GET", "/login-activity", login_activity),
        // Before /login-activity/{id}: "count" is this route's, not an id.
        Route::new("GET", "/login-activity/count", login_activity_count),
        Route::new("GET", "/login-activity/{id}", login_activity_one),
        Route::new("GET", "/active-users/{range}", active_users),
        // SAML is in SourceLoop 19.2.2, not in the seed, and not in
        // hallpass: a clear 501 rather than a 404.
        Route::new("GET", "/auth/saml", saml),
        Route::new("POST", "/auth/saml", saml),
        Route::new("GET", "/auth/saml-redirect", saml),
        Route::new("POST", "/auth/saml-redirect", saml),
    ]
}

/// Longest login name accepted (an email address's limit).
pub const MAX_LOGIN: usize = 320;
const MAX_TOKEN: usize = 4096;

/// A field the SourceLoop SDKs spell two ways (`client_id` / `clientId`):
/// the first spelling present.
fn either(body: &Json, a: &str, b: &str) -> Result<Option<String>, Error> {
    match body.opt_str(a, 256)? {
        Some(v) => Ok(Some(v)),
        None => body.opt_str(b, 256),
    }
}

/// The client named in the body (`client_id` or `clientId`), checked
/// against its secret (`client_secret` or `clientSecret`).
fn client(cx: &Ctx, body: &Json) -> Result<Client, Error> {
    let id = either(body, "client_id", "clientId")?.ok_or_else(|| Error::required("client_id"))?;
    let secret = either(body, "client_secret", "clientSecret")?;
    let client = accounts::authenticate_client(&cx.conn, &id, secret.as_deref())?;
    // A consent client signs people in at the OpenID provider only.
    crate::oidc::consent::provider_only(&client)?;
    Ok(client)
}

fn login(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let username = body.str("username", MAX_LOGIN)?;
    let password = body.str("password", MAX_LEN)?;
    let challenge = body.opt_str("code_challenge", 128)?;
    let method = body.opt_str("code_challenge_method", 16)?;
    if let Some(c) = &challenge {
        sessions::check_challenge(c, method.as_deref())?;
    }
    let client = client(cx, &body)?;
    let user = auth::check_password(cx, &username, &password, &peer(req))?;
    let owed = factors::required(cx, &user)?;
    let grant = auth::grant_for(&user, Some(&client), &["pwd"]);
    let code = auth::issue_code(
        cx,
        &client,
        &grant,
        owed,
        challenge.as_deref(),
        "password",
        &peer(req),
    )?;
    Ok(Response::ok(&json!({ "code": code })))
}

fn login_token(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let username = body.str("username", MAX_LOGIN)?;
    let password = body.str("password", MAX_LEN)?;
    let client = client(cx, &body)?;
    let user = auth::check_password(cx, &username, &password, &peer(req))?;
    if factors::required(cx, &user)? {
        return Err(Error::MfaRequired);
    }
    let grant = auth::grant_for(&user, Some(&client), &["pwd"]);
    let tokens = auth::issue_tokens(cx, Some(&client), &grant, "password", &peer(req))?;
    Ok(token_response(&tokens))
}

fn token(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let code = body.str("code", MAX_TOKEN)?;
    let client_id =
        either(&body, "clientId", "client_id")?.ok_or_else(|| Error::required("clientId"))?;
    let verifier = body.opt_str("code_verifier", 128)?;
    let tokens = auth::exchange_code(cx, &client_id, &code, verifier.as_deref(), &peer(req))?;
    Ok(token_response(&tokens))
}

fn token_refresh(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let refresh_token = body.str("refreshToken", MAX_TOKEN)?;
    let tenant = body.opt_str("tenantId", 256)?;
    let bearer_claims = match req.bearer() {
        Some(t) => Some(cx.app.keys()?.verify_ignoring_expiry(t, &cx.app.issuer)?),
        None => None,
    };
    let tokens = auth::refresh(
        cx,
        &refresh_token,
        tenant.as_deref(),
        bearer_claims.as_ref(),
        false,
        &peer(req),
    )?;
    Ok(token_response(&tokens))
}

fn switch_token(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let (claims, _) = bearer(cx, req)?;
    let body = req.json()?;
    let refresh_token = body.str("refreshToken", MAX_TOKEN)?;
    let tenant = body
        .opt_str("tenantId", 256)?
        .ok_or_else(|| Error::BadRequest("Tenant ID is required".into()))?;
    let tokens = auth::refresh(
        cx,
        &refresh_token,
        Some(&tenant),
        Some(&claims),
        false,
        &peer(req),
    )?;
    Ok(token_response(&tokens))
}

fn me(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let (claims, user) = bearer(cx, req)?;
    // A token signed before clients had numbers lacks the claim: its
    // client's number is read instead. "hallpass" is the audience of
    // sign-ins without a client.
    let client_num = match claims.authClientId {
        Some(n) => Some(n),
        None if claims.aud == "hallpass" => None,
        None => accounts::get_client(&cx.conn, &claims.aud)?.map(|c| c.num),
    };
    Ok(auth_user(&user, &claims, client_num))
}

fn change_password(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let (claims, user) = bearer(cx, req)?;
    let body = req.json()?;
    let new = body.str("password", MAX_LEN)?;
    let old = body.str("oldPassword", MAX_LEN)?;
    auth::change_password(cx, &claims, &user, &old, &new, &peer(req))?;
    Ok(Response::ok(&json!({ "success": true })))
}

fn logout(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let (claims, user) = bearer(cx, req)?;
    let body = req.json()?;
    let refresh_token = body.opt_str("refreshToken", MAX_TOKEN)?;
    auth::logout(cx, &claims, refresh_token.as_deref(), &peer(req))?;
    Ok(Response::ok(&json!({ "success": true, "key": user.id })))
}

fn logout_redirect(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let client_id = req
        .query("client_id")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::required("client_id"))?;
    let client = accounts::get_client(&cx.conn, client_id)?.ok_or(Error::ClientInvalid)?;
    let url = client
        .logout_redirect_url
        .ok_or_else(|| Error::NotFound("This client has no logout redirect URL".into()))?;
    let location = match req.query("state") {
        Some(state) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}state={}", percent_encode(state))
        }
        None => url,
    };
    Ok(Response::redirect(&location))
}

fn verify_otp(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let key = body.str("key", MAX_LOGIN)?;
    let otp = body.str("otp", 64)?;
    let code = body.opt_str("code", MAX_TOKEN)?;
    let client_id = either(&body, "clientId", "client_id")?;
    let code = emailed::verify_otp(
        cx,
        &key,
        &otp,
        code.as_deref(),
        client_id.as_deref(),
        &peer(req),
    )?;
    Ok(Response::ok(&json!({ "code": code })))
}

/// Mails a sign-in code to the user `key` names, if any (no enumeration).
fn mail_code(cx: &mut Ctx, req: &Request) -> Result<(), Error> {
    let body = req.json()?;
    let key = body.str("key", MAX_LOGIN)?;
    let client = client(cx, &body)?;
    emailed::send_code(cx, &client, &key, &peer(req))
}

/// Always 200 once the client is right: SourceLoop 19.2.2 documents 200
/// with a JSON body and no schema; ours is SuccessResponse.
fn send_otp(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    mail_code(cx, req)?;
    Ok(Response::ok(&json!({ "success": true })))
}

/// The seed's name for send-otp; it answered 204, and still does.
fn passwordless_start(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    mail_code(cx, req)?;
    Ok(Response::empty(204))
}

/// /auth/saml and /auth/saml-redirect, every method.
fn saml(_: &mut Ctx, _: &Request, _: &Params) -> Result<Response, Error> {
    Err(Error::NotImplemented(
        "SAML sign-in is not supported by hallpass".into(),
    ))
}

fn passwordless_verify(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let key = body.str("key", MAX_LOGIN)?;
    let otp = body.str("otp", 64)?;
    let code = emailed::verify_code(cx, &key, &otp, &peer(req))?;
    Ok(Response::ok(&json!({ "code": code })))
}

/// Always 204 once the client is right (no enumeration).
fn forget_password(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let username = body.str("username", MAX_LOGIN)?;
    let client = client(cx, &body)?;
    emailed::forget_password(cx, &client, &username, &peer(req))?;
    Ok(Response::empty(204))
}

/// The `token` query parameter.
fn token_query(req: &Request) -> Result<&str, Error> {
    req.query("token")
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN)
        .ok_or_else(|| Error::required("token"))
}

fn verify_reset_link(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    emailed::check_reset_link(cx, token_query(req)?)?;
    Ok(Response::ok(&json!({ "success": true })))
}

fn reset_password(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let token = body.str("token", MAX_TOKEN)?;
    let password = body.str("password", MAX_LEN)?;
    let client = client(cx, &body)?;
    emailed::reset_password(cx, &client, &token, &password, &peer(req))?;
    Ok(Response::empty(204))
}

/// The client is checked first; who may create tokens is the core's call
/// (`signup` mode and the bearer).
fn signup_create_token(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let email = body.str("email", 254)?;
    // 19.2.2's SignupRequestDto is {email, data}: its clients send no
    // client; one that is sent is checked.
    if either(&body, "client_id", "clientId")?.is_some() {
        client(cx, &body)?;
    }
    let inviter = signup::inviter(cx, req.bearer())?;
    signup::create_signup_token(cx, &inviter, &email, &peer(req))?;
    Ok(Response::empty(204))
}

/// The sign-up token travels as the bearer.
fn signup_token(req: &Request) -> Result<&str, Error> {
    req.bearer()
        .filter(|t| t.len() <= MAX_TOKEN)
        .ok_or(Error::Unauthenticated)
}

fn signup_verify_token(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let (email, exp) = signup::check_signup_token(cx, signup_token(req)?)?;
    Ok(Response::ok(&json!({ "email": email, "exp": exp })))
}

fn signup_create_user(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let token = signup_token(req)?;
    let body = req.json()?;
    let email = body.str("email", 254)?;
    let password = body.str("password", MAX_LEN)?;
    let name = body.opt_str("name", 256)?;
    let username = body.opt_str("username", 64)?;
    let form = signup::SignupForm {
        email: &email,
        password: &password,
        name: name.as_deref(),
        username: username.as_deref(),
    };
    let user = signup::create_user(cx, token, &form, &peer(req))?;
    Ok(Response::ok(&json!({
        "email": user.email,
        "user": { "id": user.id, "email": user.email, "username": user.username },
    })))
}

fn signup_fast(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let username = body.str("username", 64)?;
    let password = body.str("password", MAX_LEN)?;
    let email = body.str("email", 254)?;
    let phone = body.opt_str("phone", 32)?;
    let client = client(cx, &body)?;
    let form = signup::FastForm {
        username: &username,
        password: &password,
        email: &email,
        phone: phone.as_deref(),
    };
    let tokens = signup::fast_signup(cx, &client, &form, &peer(req))?;
    Ok(token_response(&tokens))
}

/// The link of a fast sign-up's verification mail (ours).
fn verify_email(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let email = signup::verify_email(cx, token_query(req)?)?;
    Ok(Response::ok(&json!({ "success": true, "email": email })))
}

fn check_qr_code(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let code = req.header("code").ok_or(Error::Unauthenticated)?;
    let client_id = req.header("clientId").ok_or(Error::Unauthenticated)?;
    let user = factors::code_user(cx, code, client_id)?;
    let on = factors::state(cx, &user.id)? == totp::State::On;
    Ok(Response::ok(&json!({ "isGenerated": on })))
}

fn create_qr_code(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let body = req.json()?;
    let code = body.str("code", MAX_TOKEN)?;
    let client_id =
        either(&body, "clientId", "client_id")?.ok_or_else(|| Error::required("clientId"))?;
    let user = factors::code_user(cx, &code, &client_id)?;
    let enrollment = factors::enroll(cx, &user, false)?;
    Ok(Response::ok(
        &json!({ "qrCode": totp::qr_png_data_url(&enrollment.uri)? }),
    ))
}

/// A filter-language parameter: a JSON string (`?filter={…}`) or a deep
/// object (`?filter[where][actor]=…`); Null when absent.
fn query_json(req: &Request, name: &str) -> Result<Value, Error> {
    match req.query(name) {
        Some(text) if !text.trim().is_empty() => filter::parse_json(name, text),
        _ => Ok(filter::from_deep_object(name, &req.query)?.unwrap_or(Value::Null)),
    }
}

/// A query parameter, None when absent or empty.
fn query_opt<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.query(name).filter(|v| !v.is_empty())
}

fn login_activity(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let reader = activity::reader(cx, req.bearer())?;
    let (rows, fields) = activity::search(&cx.conn, &reader, &query_json(req, "filter")?)?;
    let list: Vec<Value> = rows.iter().map(|r| r.to_json(&fields)).collect();
    Ok(Response::ok(&Value::Array(list)))
}

fn login_activity_count(cx: &mut Ctx, req: &Request, _: &Params) -> Result<Response, Error> {
    let reader = activity::reader(cx, req.bearer())?;
    let count = activity::count(&cx.conn, &reader, &query_json(req, "where")?)?;
    Ok(Response::ok(&json!({ "count": count })))
}

fn login_activity_one(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let reader = activity::reader(cx, req.bearer())?;
    let (row, fields) = activity::get(&cx.conn, &reader, p.get("id"), &query_json(req, "filter")?)?;
    Ok(Response::ok(&row.to_json(&fields)))
}

fn active_users(cx: &mut Ctx, req: &Request, p: &Params) -> Result<Response, Error> {
    let reader = activity::reader(cx, req.bearer())?;
    let q = ActiveQuery {
        range: Range::parse(p.get("range"))?,
        start: query_opt(req, "startDate"),
        end: query_opt(req, "endDate"),
        filter: query_json(req, "filter")?,
    };
    let now = cx.now();
    Ok(Response::ok(&activity::active_users(
        &cx.conn, &reader, &q, now,
    )?))
}

/// TokenResponse: `expiresIn` in seconds, `expiresAt`/`expires` in ms.
fn token_response(t: &Tokens) -> Response {
    Response::ok(&json!({
        "accessToken": t.access_token,
        "refreshToken": t.refresh_token,
        "expiresIn": t.expires_in,
        "expiresAt": t.expires_at * 1000,
        "expires": t.expires_at * 1000,
    }))
}

/// AuthUser: absent values are omitted. `firstName`, `username` and
/// `role` are always sent (SourceLoop 19.2.2 requires them), and the audit
/// dates under both generations' names (the seed's `createdAt`/`updatedAt`,
/// 19.2.2's `createdOn`/`modifiedOn`). A struct rather than a map: it is
/// the /auth/me answer, written on every call.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthUser<'a> {
    id: &'a str,
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    first_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_tenant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_tenant_id: Option<&'a str>,
    role: &'a str,
    permissions: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_client_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_login: Option<String>,
    status: u8,
    created_at: String,
    updated_at: String,
    created_on: String,
    modified_on: String,
}

/// AuthUser's `username`: the user's, or else the email (or else the id),
/// since 19.2.2 requires one.
fn login_name(user: &User) -> &str {
    user.username
        .as_deref()
        .or(user.email.as_deref())
        .unwrap_or(&user.id)
}

/// AuthUser's `firstName` and `lastName`: the name's first word and the
/// rest. Without a name, `firstName` is the username, or else the email's
/// local part (or else the id), and there is no `lastName`.
fn first_last(user: &User) -> (&str, Option<&str>) {
    if let Some(name) = user
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        return match name.split_once(char::is_whitespace) {
            Some((first, rest)) => (first, Some(rest.trim_start())),
            None => (name, None),
        };
    }
    let local = user.email.as_deref().and_then(|e| e.split('@').next());
    let first = user.username.as_deref().or(local).unwrap_or(&user.id);
    (first, None)
}

/// `client_num`: AuthUser's `authClientId`, the number of the token's client.
fn auth_user(user: &User, claims: &Claims, client_num: Option<i64>) -> Response {
    let (first, last) = first_last(user);
    let created = iso8601(user.created_at);
    let updated = iso8601(user.updated_at);
    let body = AuthUser {
        id: &user.id,
        username: login_name(user),
        email: user.email.as_deref(),
        phone: user.phone.as_deref(),
        name: user.name.as_deref(),
        first_name: first,
        last_name: last,
        default_tenant_id: user.default_tenant_id.as_deref(),
        tenant_id: claims.tenantId.as_deref(),
        user_tenant_id: claims.userTenantId.as_deref(),
        role: &claims.role,
        permissions: &claims.permissions,
        auth_client_id: client_num,
        last_login: user.last_login_at.map(iso8601),
        status: if user.is_active() { 1 } else { 2 },
        created_at: created.clone(),
        updated_at: updated.clone(),
        created_on: created,
        modified_on: updated,
    };
    Response::serialize(200, &body)
}

/// The LoopBack error envelope.
pub fn render(e: &Error) -> Response {
    let status = e.status();
    let name = match status {
        400 => "BadRequestError",
        401 => "UnauthorizedError",
        403 => "ForbiddenError",
        404 => "NotFoundError",
        405 => "MethodNotAllowedError",
        408 => "RequestTimeoutError",
        409 => "ConflictError",
        413 => "PayloadTooLargeError",
        422 => "UnprocessableEntityError",
        429 => "TooManyRequestsError",
        501 => "NotImplementedError",
        _ => "InternalServerError",
    };
    let mut error = json!({
        "statusCode": status,
        "name": name,
        "message": e.public_message(),
        "code": e.code(),
    });
    if let Error::Validation {
        field,
        code,
        message,
    } = e
    {
        error["details"] =
            json!([{ "path": format!("/{field}"), "code": code, "message": message }]);
    }
    Response::json(status, &json!({ "error": error }))
}

/// The OpenAPI description of every route above (api/openapi.rs).
pub fn openapi() -> Vec<Op> {
    const E: &str = "NativeError";
    let s = string;
    // What every client-credential body carries (snake_case, or the
    // camelCase the SDKs also send).
    let client = |required: &[&str], props: Value| {
        let mut req: Vec<&str> = required.to_vec();
        req.push("client_id");
        let mut p = props;
        p["client_id"] = s();
        p["client_secret"] = s();
        obj(&req, p)
    };
    let tokens = || {
        obj(
            &[
                "accessToken",
                "refreshToken",
                "expiresIn",
                "expiresAt",
                "expires",
            ],
            json!({
                "accessToken": s(), "refreshToken": s(),
                "expiresIn": int(), "expiresAt": int(), "expires": int(),
            }),
        )
    };
    let code = || obj(&["code"], json!({ "code": s() }));
    let success = || obj(&["success"], json!({ "success": { "const": true } }));
    let activity = || {
        json!({ "type": "object", "properties": {
            "id": s(), "actor": s(), "tenantId": s(), "clientId": s(), "loginTime": s(),
            "loginType": s(), "outcome": s(), "deviceInfo": s(), "ipAddress": s(),
            "tokenPayload": s(),
        } })
    };
    let reader = ["bearer", "apiKey"];
    // authClientId is absent only for a sign-in without a client.
    let auth_user = obj(
        &[
            "id",
            "username",
            "firstName",
            "role",
            "permissions",
            "status",
            "createdAt",
            "updatedAt",
            "createdOn",
            "modifiedOn",
        ],
        json!({
            "id": s(), "username": s(), "email": s(), "phone": s(), "name": s(),
            "firstName": s(), "lastName": s(), "defaultTenantId": s(), "tenantId": s(),
            "userTenantId": s(), "role": s(), "permissions": array(s()),
            "authClientId": int(), "lastLogin": s(), "status": int(),
            "createdAt": s(), "updatedAt": s(), "createdOn": s(), "modifiedOn": s(),
        }),
    );
    let login_body = client(
        &["username", "password"],
        json!({
            "username": s(), "password": s(),
            "code_challenge": s(), "code_challenge_method": s(),
        }),
    );
    let switch = obj(
        &["refreshToken"],
        json!({ "refreshToken": s(), "tenantId": s() }),
    );
    // The client is optional here (19.2.2's SignupRequestDto is {email, data}).
    let create_token = obj(
        &["email"],
        json!({ "email": s(), "data": { "type": "object" },
                "client_id": s(), "client_secret": s() }),
    );
    let create_user = obj(
        &["email", "password"],
        json!({ "email": s(), "password": s(), "name": s(), "username": s() }),
    );
    let created_user = obj(
        &["email", "user"],
        json!({ "email": opt_string(), "user": obj(&["id"], json!({
            "id": s(), "email": opt_string(), "username": opt_string(),
        })) }),
    );
    let fast = client(
        &["username", "password", "email"],
        json!({ "username": s(), "password": s(), "email": s(), "phone": s() }),
    );
    let otp_start = client(&["key"], json!({ "key": s() }));
    let mut ops = vec![
        op("POST", "/auth/login", "Password sign-in: an auth code")
            .body(login_body.clone())
            .json(200, "The code for /auth/token", code())
            .errors(E, &[400, 401, 403, 422, 429]),
        op(
            "POST",
            "/auth/login-token",
            "Password sign-in: tokens at once",
        )
        .body(login_body)
        .json(200, "Tokens", tokens())
        .errors(E, &[400, 401, 403, 422, 429]),
        op("POST", "/auth/token", "Exchange an auth code")
            .body(obj(
                &["code", "clientId"],
                json!({ "code": s(), "clientId": s(), "code_verifier": s() }),
            ))
            .json(200, "Tokens", tokens())
            .errors(E, &[400, 401, 403, 422, 429]),
        op("POST", "/auth/token-refresh", "Rotate a refresh token")
            .security(&["bearer", ""])
            .body(switch.clone())
            .json(200, "Tokens", tokens())
            .errors(E, &[400, 401, 403, 422, 429]),
        op("GET", "/auth/me", "The signed-in user")
            .security(&["bearer"])
            .json(200, "AuthUser", auth_user)
            .errors(E, &[401]),
        op("PATCH", "/auth/change-password", "Change the password")
            .security(&["bearer"])
            .body(obj(
                &["password", "oldPassword"],
                json!({ "password": s(), "oldPassword": s(), "refreshToken": s() }),
            ))
            .json(200, "Changed", success())
            .errors(E, &[400, 401, 422, 429]),
        op("POST", "/logout", "End this session")
            .security(&["bearer"])
            .body(obj(&[], json!({ "refreshToken": s() })))
            .json(
                200,
                "Ended",
                obj(
                    &["success", "key"],
                    json!({ "success": { "const": true }, "key": s() }),
                ),
            )
            .errors(E, &[400, 401, 422]),
        op(
            "GET",
            "/logout/redirect",
            "To the client's logout redirect URL",
        )
        .query("client_id", true, s())
        .query("state", false, s())
        .empty(302, "To the logout redirect URL")
        .resp_header(
            302,
            "Location",
            "The client's logout_redirect_url, state appended",
        )
        .errors(E, &[401, 404, 422]),
        op("POST", "/auth/verify-otp", "Check an emailed or TOTP code")
            .body(obj(
                &["key", "otp"],
                json!({ "key": s(), "otp": s(), "code": s(), "clientId": s() }),
            ))
            .json(200, "A fresh code", code())
            .errors(E, &[400, 401, 403, 422, 429]),
        op(
            "GET",
            "/auth/check-qr-code",
            "Whether the user has a TOTP factor",
        )
        .header("code", true)
        .header("clientId", true)
        .json(
            200,
            "State",
            obj(&["isGenerated"], json!({ "isGenerated": boolean() })),
        )
        .errors(E, &[401, 403]),
        op("POST", "/auth/create-qr-code", "Start a TOTP factor")
            .body(obj(
                &["code", "clientId"],
                json!({ "code": s(), "clientId": s() }),
            ))
            .json(
                200,
                "A PNG data URL",
                obj(&["qrCode"], json!({ "qrCode": s() })),
            )
            .errors(E, &[400, 401, 403, 409, 422]),
        op("POST", "/auth/send-otp", "Mail a sign-in code")
            .body(otp_start.clone())
            .json(200, "Sent, or nothing to send", success())
            .errors(E, &[400, 401, 422, 429]),
        op("POST", "/auth/passwordless/start", "Mail a sign-in code")
            .body(otp_start)
            .empty(204, "Sent, or nothing to send")
            .errors(E, &[400, 401, 422, 429]),
        op("POST", "/auth/passwordless/verify", "Check a mailed code")
            .body(obj(&["key", "otp"], json!({ "key": s(), "otp": s() })))
            .json(200, "A code for /auth/token", code())
            .errors(E, &[400, 401, 403, 422, 429]),
        op(
            "POST",
            "/auth/forget-password",
            "Mail a password reset link",
        )
        .body(client(&["username"], json!({ "username": s() })))
        .empty(204, "Sent, or nothing to send")
        .errors(E, &[400, 401, 422, 429]),
        op(
            "GET",
            "/auth/verify-reset-password-link",
            "Check a reset token",
        )
        .query("token", true, s())
        .json(200, "Good", success())
        .errors(E, &[401, 422, 429]),
        op(
            "PATCH",
            "/auth/reset-password",
            "Set a password with a reset token",
        )
        .body(client(
            &["token", "password"],
            json!({ "token": s(), "password": s() }),
        ))
        .empty(204, "Set")
        .errors(E, &[400, 401, 422, 429]),
        op(
            "GET",
            "/auth/verify-email",
            "Confirm an email address (fast sign-up)",
        )
        .query("token", true, s())
        .json(
            200,
            "Verified",
            obj(
                &["success", "email"],
                json!({ "success": { "const": true }, "email": s() }),
            ),
        )
        .errors(E, &[401, 422, 429]),
        op("GET", "/login-activity", "Sign-ins, filtered")
            .security(&reader)
            .query("filter", false, s())
            .json(200, "Rows", array(activity()))
            .errors(E, &[400, 401, 403, 422]),
        op("GET", "/login-activity/count", "How many sign-ins match")
            .security(&reader)
            .query("where", false, s())
            .json(200, "Count", obj(&["count"], json!({ "count": int() })))
            .errors(E, &[400, 401, 403, 422]),
        op("GET", "/login-activity/{id}", "One sign-in")
            .security(&reader)
            .query("filter", false, s())
            .json(200, "The row", activity())
            .errors(E, &[400, 401, 403, 404, 422]),
        op(
            "GET",
            "/active-users/{range}",
            "Active users per day or month",
        )
        .security(&reader)
        .query("startDate", false, s())
        .query("endDate", false, s())
        .query("filter", false, s())
        .json(
            200,
            "dateKey → loginType → rows",
            json!({ "type": "object", "additionalProperties": {
                    "type": "object", "additionalProperties": array(activity()),
                } }),
        )
        // 404: a range other than daily or monthly.
        .errors(E, &[400, 401, 403, 404, 422]),
    ];
    for method in ["GET", "POST"] {
        for path in ["/auth/saml", "/auth/saml-redirect"] {
            ops.push(op(method, path, "SAML sign-in: not supported by hallpass").errors(E, &[501]));
        }
    }
    for path in ["/auth/switch-token", "/auth/token-switch"] {
        ops.push(
            op("POST", path, "Tokens for another of the user's tenants")
                .security(&["bearer"])
                .body(switch.clone())
                .json(200, "Tokens", tokens())
                .errors(E, &[400, 401, 403, 422, 429]),
        );
    }
    for (create, verify, user, fast_path) in [
        (
            "/auth/signup/create-token",
            "/auth/signup/verify-token",
            "/auth/signup/create-user",
            "/auth/signup/fast",
        ),
        (
            "/auth/sign-up/create-token",
            "/auth/sign-up/verify-token",
            "/auth/sign-up/create-user",
            "/auth/sign-up/fast",
        ),
    ] {
        ops.push(
            op("POST", create, "Mail a sign-up link")
                .security(&["bearer", "apiKey", ""])
                .body(create_token.clone())
                .empty(204, "Sent")
                .errors(E, &[400, 401, 403, 409, 422, 429]),
        );
        ops.push(
            op("GET", verify, "Check a sign-up token (sent as the bearer)")
                .security(&["bearer"])
                .json(
                    200,
                    "Its email",
                    obj(&["email", "exp"], json!({ "email": s(), "exp": int() })),
                )
                .errors(E, &[401, 429]),
        );
        ops.push(
            op(
                "POST",
                user,
                "Create the user of a sign-up token (sent as the bearer)",
            )
            .security(&["bearer"])
            .body(create_user.clone())
            .json(200, "Created", created_user.clone())
            .errors(E, &[400, 401, 403, 409, 422, 429]),
        );
        ops.push(
            op("POST", fast_path, "Open sign-up: a user and tokens at once")
                .body(fast.clone())
                .json(200, "Tokens", tokens())
                .errors(E, &[400, 401, 403, 409, 422, 429]),
        );
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: Option<&str>, username: Option<&str>, email: Option<&str>) -> User {
        User {
            id: "u1".into(),
            email: email.map(Into::into),
            username: username.map(Into::into),
            phone: None,
            name: name.map(Into::into),
            password_hash: None,
            email_verified_at: None,
            role: "user".into(),
            permissions: vec![],
            status: "active".into(),
            default_tenant_id: None,
            recovery_email: None,
            created_at: 0,
            updated_at: 0,
            last_login_at: None,
        }
    }

    #[test]
    fn first_name_is_the_names_first_word_else_the_username_else_the_mailbox() {
        let ada = Some("ada@example.com");
        let cases = [
            (
                user(Some(" Ada  King Lovelace "), None, ada),
                ("Ada", Some("King Lovelace")),
            ),
            (user(Some("Ada"), Some("al"), ada), ("Ada", None)),
            (user(Some("  "), Some("al"), ada), ("al", None)),
            (user(None, None, ada), ("ada", None)),
            (user(None, None, None), ("u1", None)),
        ];
        for (u, want) in cases {
            assert_eq!(first_last(&u), want, "{:?}", u.name);
        }
    }

    #[test]
    fn username_is_the_users_else_the_email() {
        let ada = Some("ada@example.com");
        assert_eq!(login_name(&user(None, Some("al"), ada)), "al");
        assert_eq!(login_name(&user(None, None, ada)), "ada@example.com");
        assert_eq!(login_name(&user(None, None, None)), "u1");
    }
}
