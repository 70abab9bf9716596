//! The other dialects' plain sign-in, each in its own error shape, all on
//! the same core (same limits, same sessions, same activity log).

use serde_json::json;

use crate::support::{TestServer, PASSWORD};

#[test]
fn yat_password_login_and_refresh() {
    let s = TestServer::start();
    s.add_user("alice@example.com");
    let r = s.post(
        "/auth/token",
        &json!({"email": "alice@example.com", "password": PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json();
    assert_eq!(t["has_password"], true);
    assert_eq!(t["requires_2fa"], serde_json::Value::Null);
    assert_eq!(
        s.get_auth("/auth/me", t["access_token"].as_str().unwrap())
            .status,
        200
    );
    let by_username = s.post(
        "/auth/token",
        &json!({"alternate_id": "alice", "password": PASSWORD}),
    );
    assert_eq!(by_username.status, 200);

    let r2 = s.post(
        "/auth/token/refresh",
        &json!({"refresh_token": t["refresh_token"]}),
    );
    assert_eq!(r2.status, 200, "{}", r2.body);
    assert_ne!(r2.json()["refresh_token"], t["refresh_token"]);
    s.advance(11);
    let reuse = s.post(
        "/auth/token/refresh",
        &json!({"refresh_token": t["refresh_token"]}),
    );
    assert_eq!(reuse.status, 401);
    assert_eq!(reuse.json(), json!({"error": "TokenRevoked", "fields": {}}));
}

#[test]
fn yat_errors_have_yats_shape() {
    let s = TestServer::start();
    s.add_user("alice@example.com");
    let bad = s.post(
        "/auth/token",
        &json!({"email": "alice@example.com", "password": "wrong-wrong"}),
    );
    assert_eq!(bad.status, 401);
    assert_eq!(
        bad.json(),
        json!({"error": "Invalid Credentials", "fields": {}})
    );
    let missing = s.post("/auth/token", &json!({"password": "x"}));
    assert_eq!(missing.status, 422);
    assert_eq!(missing.json()["fields"]["email"][0]["code"], "required");
    // A body without a password is the native code exchange on the same path.
    let native = s.post("/auth/token", &json!({"clientId": "x", "code": "y"}));
    assert_eq!(native.status, 401);
    assert_eq!(native.json()["error"]["message"], "Client Invalid");
}

#[test]
fn mfa_login_returns_userauth_and_the_lockout_header() {
    // Two free failures: the first leaves no lock, the second sets one.
    let s = TestServer::start_with(|c| c.limits.free_failures = 2);
    let u = s.add_user("alice@example.com");
    let ok = s.post(
        "/api/login",
        &json!({"username": "alice", "password": PASSWORD}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("x-account-lockout"), Some("0"));
    let body = ok.json();
    assert_eq!(body["id"], u.id.as_str());
    assert_eq!(body["origin"], "local");
    assert_eq!(body["user"], "alice");
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(body["mfa"], false);
    assert_eq!(body["admin"], false);
    assert_eq!(
        body["tenant"],
        u.default_tenant_id.clone().unwrap().as_str()
    );
    assert_eq!(
        s.get_auth("/auth/me", body["token"].as_str().unwrap())
            .status,
        200
    );
    let alias = s.post(
        "/api/auth/user",
        &json!({"username": "alice@example.com", "password": PASSWORD}),
    );
    assert_eq!(alias.status, 200);

    let wrong = s.post(
        "/api/login",
        &json!({"username": "alice", "password": "wrong-wrong"}),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("x-account-lockout"), Some("0"));
    let wrong2 = s.post(
        "/api/login",
        &json!({"username": "alice", "password": "wrong-wrong"}),
    );
    assert_eq!(wrong2.status, 401);
    let until: i64 = wrong2.header("x-account-lockout").unwrap().parse().unwrap();
    assert_eq!(until, s.now() + 1);
    let locked = s.post(
        "/api/login",
        &json!({"username": "alice", "password": PASSWORD}),
    );
    assert_eq!(locked.status, 429);
    assert_eq!(locked.body, "");
    assert_eq!(
        locked.header("x-account-lockout"),
        Some(until.to_string().as_str())
    );
    let missing = s.post("/api/login", &json!({"username": "alice"}));
    assert_eq!(missing.status, 422);
    assert!(missing.json()["message"]
        .as_str()
        .unwrap()
        .contains("password"));
}

pub(crate) fn api_key(s: &TestServer, scopes: &[&str]) -> (String, String) {
    let mut conn = s.conn();
    let scopes: Vec<String> = scopes.iter().map(|x| x.to_string()).collect();
    hallpass::db::immediate(&mut conn, |tx| {
        let t = match hallpass::accounts::find_tenant(tx, "app")? {
            Some(t) => t,
            None => hallpass::accounts::create_tenant(tx, "app", None, 0)?,
        };
        let (_, key) = hallpass::accounts::create_api_key(tx, "k", &t.id, &scopes, 0)?;
        Ok((key, t.id))
    })
    .unwrap()
}

#[test]
fn lagrello_users_can_be_created_read_changed_and_deleted() {
    let s = TestServer::start();
    let (key, _) = api_key(&s, &["users:read", "users:write"]);
    let create = s.send_auth(
        "POST",
        "/v1/users",
        &key,
        &json!({"userId": "u-1", "email": "one@example.com"}),
    );
    assert_eq!(create.status, 201, "{}", create.body);
    assert_eq!(
        create.json(),
        json!({"userId": "u-1", "email": "one@example.com"})
    );
    let dup = s.send_auth("POST", "/v1/users", &key, &json!({"userId": "u-1"}));
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json()["errorType"], "CONFLICT");
    assert_eq!(
        s.get_auth("/v1/users/u-1", &key).json(),
        json!({"userId": "u-1", "email": "one@example.com"})
    );
    let patched = s.send_auth(
        "PATCH",
        "/v1/users/u-1",
        &key,
        &json!({"email": "uno@example.com"}),
    );
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["email"], "uno@example.com");
    let bad_email = s.send_auth(
        "PATCH",
        "/v1/users/u-1",
        &key,
        &json!({"email": "not an email"}),
    );
    assert_eq!(bad_email.status, 422);
    assert_eq!(bad_email.json()["errorType"], "BAD_REQUEST");
    let no_email = s.send_auth("POST", "/v1/users", &key, &json!({"userId": "u-2"}));
    assert_eq!(no_email.json(), json!({"userId": "u-2"}));
    let del = s.request(
        "DELETE",
        "/v1/users/u-1",
        &[("Authorization", &format!("Bearer {key}"))],
        None,
    );
    assert_eq!(del.status, 204);
    let gone = s.get_auth("/v1/users/u-1", &key);
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["errorType"], "NOT_FOUND");
    let users: i64 = s
        .conn()
        .query_row(
            "SELECT count(*) FROM users WHERE email = 'uno@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(users, 0, "the user went with their last membership");
}

#[test]
fn lagrello_refuses_missing_wrong_and_underscoped_keys_with_403() {
    let s = TestServer::start();
    let (read_only, _) = api_key(&s, &["users:read"]);
    let none = s.post("/v1/users", &json!({"userId": "u-1"}));
    assert_eq!(none.status, 403);
    assert_eq!(none.json()["errorType"], "FORBIDDEN");
    let wrong = s.send_auth(
        "POST",
        "/v1/users",
        "hp_not-a-real-key",
        &json!({"userId": "u-1"}),
    );
    assert_eq!(wrong.status, 403);
    let scoped = s.send_auth("POST", "/v1/users", &read_only, &json!({"userId": "u-1"}));
    assert_eq!(scoped.status, 403);
    assert_eq!(s.get_auth("/v1/users/nobody", &read_only).status, 404);
    let (writer, _) = api_key(&s, &["users:write"]);
    let long = s.send_auth(
        "POST",
        "/v1/users",
        &writer,
        &json!({"userId": "x".repeat(129)}),
    );
    assert_eq!(long.status, 422);
    let revoked = {
        let conn = s.conn();
        conn.execute("UPDATE api_keys SET revoked_at = 1", [])
            .unwrap();
        s.send_auth("POST", "/v1/users", &writer, &json!({"userId": "u-9"}))
    };
    assert_eq!(revoked.status, 403);
}

#[test]
fn a_dialect_can_be_switched_off() {
    let s = TestServer::start_with(|c| c.dialects = vec!["native".into()]);
    s.add_user("alice@example.com");
    assert_eq!(
        s.post(
            "/api/login",
            &json!({"username": "alice", "password": PASSWORD})
        )
        .status,
        404
    );
    let yat_body = s.post(
        "/auth/token",
        &json!({"email": "alice@example.com", "password": PASSWORD}),
    );
    assert_eq!(
        yat_body.status, 422,
        "native /auth/token wants a code: {}",
        yat_body.body
    );
}
