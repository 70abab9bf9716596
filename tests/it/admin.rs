//! The admin API (/admin/…) over HTTP against a real temp database: each
//! resource, who may call it, and the audit trail every change writes in
//! its own transaction; and the CLI writing the same trail.

use serde_json::{json, Value};

use crate::support::{TestServer, PASSWORD};

/// An admin's access token (a user made admin in the database).
fn admin_token(s: &TestServer) -> String {
    let u = s.add_user("root@example.com");
    s.conn()
        .execute("UPDATE users SET role = 'admin' WHERE id = ?1", [&u.id])
        .unwrap();
    token_of(s, "root")
}

fn token_of(s: &TestServer, username: &str) -> String {
    let (client, secret) = s.add_client();
    s.login_token(&client, &secret, username)["accessToken"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An API key for `tenant` (name) with these scopes, made by the admin.
fn api_key(s: &TestServer, admin: &str, tenant: &str, scopes: &[&str]) -> String {
    let r = s.send_auth(
        "POST",
        "/admin/api-keys",
        admin,
        &json!({"name": "script", "tenant": tenant, "scopes": scopes}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["api_key"].as_str().unwrap().to_string()
}

fn audit(s: &TestServer, admin: &str, query: &str) -> Value {
    let r = s.get_auth(&format!("/admin/audit{query}"), admin);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn actions(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

fn audit_count(s: &TestServer) -> i64 {
    s.conn()
        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn an_admin_manages_a_user_and_every_change_is_audited() {
    let s = TestServer::start();
    let admin = admin_token(&s);
    let r = s.send_auth(
        "POST",
        "/admin/users",
        &admin,
        &json!({"email": "ann@example.com", "username": "ann", "name": "Ann", "password": PASSWORD}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let ann = r.json();
    let id = ann["id"].as_str().unwrap().to_string();
    assert_eq!(ann["has_password"], true);
    assert_eq!(ann["mfa"], "off");
    assert!(!r.body.contains("pbkdf2"), "never the hash: {}", r.body);
    s.add_user("bob@example.com");

    let r = s.get_auth("/admin/users?search=ANN&limit=10", &admin);
    assert_eq!(r.status, 200);
    let page = r.json();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["email"], "ann@example.com");
    let all = s.get_auth("/admin/users?limit=1&offset=1", &admin).json();
    assert_eq!(all["total"], 3);
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.get_auth("/admin/users/ann", &admin).json()["id"],
        id.as_str()
    );

    let r = s.send_auth(
        "PATCH",
        &format!("/admin/users/{id}"),
        &admin,
        &json!({"name": "Ann B", "email": "ann.b@example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["email"], "ann.b@example.com");

    let r = s.send_auth(
        "POST",
        &format!("/admin/users/{id}/disable"),
        &admin,
        &json!({}),
    );
    assert_eq!(r.json()["status"], "disabled");
    let (client, secret) = s.add_client();
    let login = json!({"client_id": client.client_id, "client_secret": secret,
                       "username": "ann", "password": PASSWORD});
    assert_eq!(s.post("/auth/login-token", &login).status, 403);
    let r = s.send_auth(
        "POST",
        &format!("/admin/users/{id}/enable"),
        &admin,
        &json!({}),
    );
    assert_eq!(r.json()["status"], "active");
    assert_eq!(s.post("/auth/login-token", &login).status, 200);

    let new_pw = "plum-walrus-lantern-42";
    let r = s.send_auth(
        "POST",
        &format!("/admin/users/{id}/password"),
        &admin,
        &json!({"password": new_pw}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(s.post("/auth/login-token", &login).status, 401);
    let mut with_new = login.clone();
    with_new["password"] = json!(new_pw);
    assert_eq!(s.post("/auth/login-token", &with_new).status, 200);
    let r = s.send_auth(
        "POST",
        &format!("/admin/users/{id}/password"),
        &admin,
        &json!({"password": "short"}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["details"][0]["path"], "/password");

    let r = s.send_auth(
        "POST",
        &format!("/admin/users/{id}/reset-mfa"),
        &admin,
        &json!({}),
    );
    assert_eq!(r.json()["mfa_was"], "off");
    let r = s.request(
        "DELETE",
        &format!("/admin/users/{id}"),
        &[("Authorization", &format!("Bearer {admin}"))],
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        s.get_auth(&format!("/admin/users/{id}"), &admin).status,
        404
    );

    let trail = audit(&s, &admin, &format!("?object_id={id}"));
    assert_eq!(
        actions(&trail),
        [
            "user.create",
            "user.update",
            "user.disable",
            "user.enable",
            "user.set_password",
            "user.reset_mfa",
            "user.delete"
        ]
    );
    let update = &trail["items"][5];
    assert_eq!(update["actor_kind"], "user");
    assert_eq!(update["source"], "127.0.0.1");
    assert_eq!(update["details"]["email"]["to"], "ann.b@example.com");
    assert!(
        !trail.to_string().contains(new_pw),
        "no password in the trail"
    );
    assert!(
        !trail.to_string().contains(PASSWORD),
        "no password in the trail"
    );
    let only = audit(&s, &admin, "?action=user.disable&limit=5");
    assert_eq!(only["total"], 1);
    // The filter language of login activity reads the trail too, as a
    // JSON string or a deep object.
    let f = format!(
        r#"{{"where":{{"objectId":"{id}","action":{{"inq":["user.disable","user.enable"]}}}},"order":"at ASC"}}"#
    );
    let both = audit(
        &s,
        &admin,
        &format!("?filter={}", hallpass::http::percent_encode(&f)),
    );
    assert_eq!(both["total"], 2, "{both}");
    assert_eq!(both["items"][0]["action"], "user.disable");
    let deep = audit(
        &s,
        &admin,
        &format!("?filter[where][objectId]={id}&filter[where][action]=user.delete"),
    );
    assert_eq!(deep["total"], 1, "{deep}");
    let bad = s.get_auth("/admin/audit?filter[where][password]=x", &admin);
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("password"), "{}", bad.body);
}

#[test]
fn sessions_are_listed_and_ended_one_or_all() {
    let s = TestServer::start();
    let admin = admin_token(&s);
    let u = s.add_user("cat@example.com");
    let first = token_of(&s, "cat");
    let _second = token_of(&s, "cat");
    let path = format!("/admin/users/{}/sessions", u.id);
    let list = s.get_auth(&path, &admin).json();
    let items = list["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{list}");
    let mut fields: Vec<&String> = items[0].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "amr",
            "client_id",
            "created_at",
            "expires_at",
            "id",
            "last_refreshed_at"
        ],
        "never a token"
    );
    // End the session of the first token: it is refused from then on.
    let sid_of_first = {
        let payload = first.split('.').nth(1).unwrap();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()["sid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let auth = format!("Bearer {admin}");
    let r = s.request(
        "DELETE",
        &format!("{path}/{sid_of_first}"),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.json()["ended"], 1);
    assert_eq!(s.get_auth("/auth/me", &first).status, 401);
    let r = s.request(
        "DELETE",
        &format!("{path}/{sid_of_first}"),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 404, "already ended");
    assert_eq!(
        s.get_auth(&path, &admin).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = s.request("DELETE", &path, &[("Authorization", &auth)], None);
    assert_eq!(r.json()["ended"], 1);
    assert_eq!(s.get_auth(&path, &admin).json()["items"], json!([]));
    let trail = audit(&s, &admin, "?action=user.end_sessions");
    assert_eq!(trail["total"], 2);
}

#[test]
fn access_needs_an_admin_bearer_or_a_key_with_the_scope() {
    let s = TestServer::start();
    let admin = admin_token(&s);
    s.add_user("plain@example.com");
    let plain = token_of(&s, "plain");
    let r = s.get("/admin/users");
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["statusCode"], 401);
    assert_eq!(s.get_auth("/admin/users", "not-a-token").status, 401);
    let r = s.get_auth("/admin/users", &plain);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["name"], "ForbiddenError");
    assert_eq!(s.get_auth("/admin/users", &admin).status, 200);

    let reader = api_key(&s, &admin, "default", &["users:read"]);
    assert_eq!(s.get_auth("/admin/users", &reader).status, 200);
    let r = s.send_auth(
        "POST",
        "/admin/users",
        &reader,
        &json!({"email": "x@example.com"}),
    );
    assert_eq!(r.status, 403, "users:read does not write");
    assert_eq!(s.get_auth("/admin/audit", &reader).status, 403);
    assert_eq!(s.get_auth("/admin/clients", &reader).status, 403);
    let auditor = api_key(&s, &admin, "default", &["audit:read"]);
    assert_eq!(s.get_auth("/admin/audit", &auditor).status, 200);
    assert_eq!(s.get_auth("/admin/users", &auditor).status, 403);
    // A key cannot mint a stronger one.
    let minter = api_key(&s, &admin, "default", &["apikeys:write"]);
    let r = s.send_auth(
        "POST",
        "/admin/api-keys",
        &minter,
        &json!({"name": "x", "scopes": ["admin"]}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s.send_auth(
        "POST",
        "/admin/api-keys",
        &minter,
        &json!({"name": "x", "scopes": ["apikeys:write"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // The audit row names the key by id, never the key.
    let row = &audit(&s, &admin, "?action=apikey.create")["items"][0];
    assert_eq!(row["actor_kind"], "api_key");
    assert!(!row.to_string().contains(&minter));
}

#[test]
fn a_tenant_key_sees_and_changes_only_its_tenants_users() {
    let s = TestServer::start();
    let admin = admin_token(&s);
    let r = s.send_auth("POST", "/admin/tenants", &admin, &json!({"name": "acme"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let acme = r.json()["tenant_id"].as_str().unwrap().to_string();
    let key = api_key(
        &s,
        &admin,
        "acme",
        &["users:read", "users:write", "tenants:write"],
    );
    let outsider = s.add_user("out@example.com");

    let r = s.send_auth(
        "POST",
        "/admin/users",
        &key,
        &json!({"email": "in@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let inside = r.json();
    assert_eq!(inside["default_tenant_id"], acme.as_str());
    let in_id = inside["id"].as_str().unwrap().to_string();
    let list = s.get_auth("/admin/users", &key).json();
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(
        s.get_auth(&format!("/admin/users/{}", outsider.id), &key)
            .status,
        404
    );
    let r = s.send_auth(
        "PATCH",
        &format!("/admin/users/{}", outsider.id),
        &key,
        &json!({"name": "x"}),
    );
    assert_eq!(r.status, 404);
    let r = s.send_auth(
        "POST",
        "/admin/users",
        &key,
        &json!({"email": "boss@example.com", "role": "admin"}),
    );
    assert_eq!(r.status, 403);
    let r = s.send_auth(
        "PATCH",
        &format!("/admin/users/{in_id}"),
        &key,
        &json!({"role": "admin"}),
    );
    assert_eq!(r.status, 403);
    let r = s.send_auth(
        "POST",
        "/admin/users",
        &key,
        &json!({"email": "d@example.com", "tenant": "default"}),
    );
    assert_eq!(r.status, 403);
    let tenants = s.get_auth("/admin/tenants", &key).json();
    assert_eq!(tenants["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.send_auth("POST", "/admin/tenants", &key, &json!({"name": "x"}))
            .status,
        403
    );

    // Once the user is in another tenant too, the key can no longer change them.
    let r = s.send_auth(
        "PUT",
        &format!("/admin/tenants/default/members/{in_id}"),
        &admin,
        &json!({"role": "viewer"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["role"], "viewer");
    let r = s.send_auth(
        "POST",
        &format!("/admin/users/{in_id}/disable"),
        &key,
        &json!({}),
    );
    assert_eq!(r.status, 403);
    let members = s
        .get_auth(&format!("/admin/tenants/{acme}/members"), &key)
        .json();
    assert_eq!(members["items"][0]["user_id"], in_id.as_str());
    let auth = format!("Bearer {admin}");
    let r = s.request(
        "DELETE",
        &format!("/admin/tenants/default/members/{in_id}"),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        s.send_auth(
            "POST",
            &format!("/admin/users/{in_id}/disable"),
            &key,
            &json!({})
        )
        .status,
        200
    );
}

#[test]
fn a_refused_change_writes_no_audit_row() {
    let s = TestServer::start();
    let admin = admin_token(&s);
    s.add_user("dup@example.com");
    let before = audit_count(&s);
    let r = s.send_auth(
        "POST",
        "/admin/users",
        &admin,
        &json!({"email": "dup@example.com"}),
    );
    assert_eq!(r.status, 409);
    let r = s.send_auth(
        "POST",
        "/admin/users",
        &admin,
        &json!({"email": "not-an-address"}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["details"][0]["path"], "/email");
    let r = s.send_auth(
        "PATCH",
        "/admin/users/dup",
        &admin,
        &json!({"role": "root"}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["details"][0]["path"], "/role");
    // Two fields, the second refused: the first change rolls back with it.
    let r = s.send_auth(
        "PATCH",
        "/admin/users/dup",
        &admin,
        &json!({"name": "Changed", "username": "root"}),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        s.get_auth("/admin/users/dup", &admin).json()["name"],
        "Test User"
    );
    let auth = format!("Bearer {admin}");
    let r = s.request(
        "DELETE",
        "/admin/tenants/default/members/dup",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 409, "the only tenant: {}", r.body);
    assert_eq!(s.get_auth("/admin/users?limit=0", &admin).status, 422);
    assert_eq!(s.get_auth("/admin/users/nobody", &admin).status, 404);
    let r = s.request(
        "POST",
        "/admin/users",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(b"{not json"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(audit_count(&s), before, "no row for a refused change");
}

#[test]
fn clients_tenants_keys_signing_keys_and_mail_through_the_api() {
    let s = TestServer::start();
    let admin = admin_token(&s);
    let auth = format!("Bearer {admin}");
    let del = |path: &str| {
        s.request("DELETE", path, &[("Authorization", &auth)], None)
            .status
    };

    // Clients.
    let r = s.send_auth(
        "POST",
        "/admin/clients",
        &admin,
        &json!({"name": "app", "redirect_urls": ["https://app.example/cb"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let c = r.json();
    let cid = c["client_id"].as_str().unwrap().to_string();
    assert!(c["client_secret"].as_str().unwrap().len() > 20);
    let got = s.get_auth(&format!("/admin/clients/{cid}"), &admin);
    assert!(!got.body.contains("secret"), "{}", got.body);
    // Its number, AuthUser's authClientId.
    assert!(c["num"].is_i64(), "{c}");
    assert_eq!(got.json()["num"], c["num"]);
    let r = s.send_auth(
        "POST",
        "/admin/clients",
        &admin,
        &json!({"name": "x", "redirect_urls": ["/relative"]}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["details"][0]["path"], "/redirect_urls");
    assert_eq!(del(&format!("/admin/clients/{cid}")), 204);
    assert_eq!(del(&format!("/admin/clients/{cid}")), 404);

    // Tenants and API keys.
    assert_eq!(
        s.send_auth("POST", "/admin/tenants", &admin, &json!({"name": "t1"}))
            .status,
        201
    );
    assert_eq!(
        s.send_auth("POST", "/admin/tenants", &admin, &json!({"name": "t1"}))
            .status,
        409
    );
    let r = s.send_auth(
        "POST",
        "/admin/api-keys",
        &admin,
        &json!({"name": "k", "tenant": "t1", "scopes": ["nope"]}),
    );
    assert_eq!(r.status, 422);
    let key = api_key(&s, &admin, "t1", &["users:read"]);
    let keys = s.get_auth("/admin/api-keys", &admin);
    assert!(!keys.body.contains(&key), "never the key in a list");
    let key_id = keys.json()["items"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.get_auth("/admin/users", &key).status, 200);
    assert_eq!(del(&format!("/admin/api-keys/{key_id}")), 204);
    assert_eq!(s.get_auth("/admin/users", &key).status, 401);

    // Signing keys: the new one is published at once.
    let before = s.get_auth("/admin/keys", &admin).json();
    assert_eq!(before["items"].as_array().unwrap().len(), 1);
    let r = s.send_auth("POST", "/admin/keys/rotate", &admin, &json!({}));
    assert_eq!(r.status, 201, "{}", r.body);
    let kid = r.json()["kid"].as_str().unwrap().to_string();
    let after = s.get_auth("/admin/keys", &admin).json();
    assert_eq!(after["items"][0]["kid"], kid.as_str());
    assert_eq!(after["items"][0]["current"], true);
    assert!(s.get("/.well-known/jwks.json").body.contains(&kid));
    assert_eq!(
        s.get_auth("/auth/me", &admin).status,
        200,
        "old tokens still verify"
    );

    // Mail: a reset mail, listed (never a body), and a retry.
    s.add_user("mia@example.com");
    let (client, secret) = s.add_client();
    let r = s.post(
        "/auth/forget-password",
        &json!({"username": "mia", "client_id": client.client_id, "client_secret": secret}),
    );
    assert_eq!(r.status, 204);
    s.last_mail("mia@example.com");
    let mail = s.get_auth("/admin/mail?limit=10", &admin).json();
    let row = &mail["items"][0];
    assert_eq!(row["to"], "mia@example.com");
    assert_eq!(row["status"], "sent");
    assert!(row.get("body").is_none());
    let id = row["id"].as_str().unwrap();
    let r = s.send_auth(
        "POST",
        &format!("/admin/mail/{id}/retry"),
        &admin,
        &json!({}),
    );
    assert_eq!(r.status, 409, "a sent mail is not retried");
    let r = s.send_auth("POST", "/admin/mail/nope/retry", &admin, &json!({}));
    assert_eq!(r.status, 404);

    let trail = actions(&audit(&s, &admin, "?limit=100"));
    for a in [
        "client.create",
        "client.delete",
        "tenant.create",
        "apikey.create",
        "apikey.revoke",
        "keys.rotate",
    ] {
        assert!(trail.contains(&a.to_string()), "{a} in {trail:?}");
    }
}

#[test]
fn the_cli_writes_the_audit_trail_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = super::cli::hallpass(d);
        cmd.args(args).env("USER", "ops");
        let (ok, out, err) = super::cli::run_command(cmd, stdin);
        assert!(ok, "{err}");
        out
    };
    run(&["init"], None);
    run(&["tenant", "add", "acme"], None);
    run(
        &[
            "user",
            "add",
            "eve@example.com",
            "--username",
            "eve",
            "--tenant",
            "acme",
            "--password-stdin",
        ],
        Some("correct-horse-battery-9\n"),
    );
    run(&["user", "disable", "eve"], None);
    run(
        &["user", "set-password", "eve", "--password-stdin"],
        Some("another-horse-battery-7\n"),
    );
    let conn = hallpass::db::open(&d.join("h.db")).unwrap();
    let rows: Vec<(String, String, String, String, String)> = conn
        .prepare("SELECT actor_kind, actor_id, source, action, details FROM audit ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let acts: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    assert_eq!(
        acts,
        [
            "tenant.create",
            "user.create",
            "user.disable",
            "user.set_password"
        ]
    );
    for (kind, who, source, _, details) in &rows {
        assert_eq!(kind, "cli");
        assert!(who.starts_with("ops@"), "{who}");
        assert_eq!(source, "cli");
        assert!(!details.contains("horse"), "no password in {details}");
    }
    // The names scripts rely on did not move.
    let out = run(&["user", "list", "--json"], None);
    assert!(out.contains("eve@example.com"));
}

/// Regressions from a security review of the admin API (issue 10).
#[test]
fn review_fixes_hold_confinement_mailed_links_and_the_last_admin() {
    let s = TestServer::start();
    let admin = admin_token(&s);
    let r = s.send_auth("POST", "/admin/tenants", &admin, &json!({"name": "acme"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let key = api_key(
        &s,
        &admin,
        "acme",
        &[
            "users:read",
            "users:write",
            "tenants:write",
            "apikeys:write",
        ],
    );
    let r = s.send_auth(
        "POST",
        "/admin/users",
        &key,
        &json!({"email": "in@example.com", "username": "inny", "password": PASSWORD}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let in_id = r.json()["id"].as_str().unwrap().to_string();

    // A tenant key cannot hand out the admin role (it reaches the token).
    let r = s.send_auth(
        "PUT",
        &format!("/admin/tenants/acme/members/{in_id}"),
        &key,
        &json!({"role": "admin"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s.send_auth(
        "PUT",
        &format!("/admin/tenants/acme/members/{in_id}"),
        &key,
        &json!({"role": "editor"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // A weaker key cannot revoke a stronger one.
    let strong = s
        .send_auth(
            "POST",
            "/admin/api-keys",
            &admin,
            &json!({"name": "root-script", "tenant": "acme", "scopes": ["admin"]}),
        )
        .json();
    let strong_id = strong["key_id"].as_str().unwrap().to_string();
    let r = s.request(
        "DELETE",
        &format!("/admin/api-keys/{strong_id}"),
        &[("Authorization", &format!("Bearer {key}"))],
        None,
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // A password set by an admin ends links mailed before.
    let r = s.post("/auth/magic_link", &json!({"email": "in@example.com"}));
    assert_eq!(r.status, 200);
    let mail = s.outbox_body("in@example.com");
    let start = mail.find("refresh_token=").unwrap() + "refresh_token=".len();
    let token: String = mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let r = s.send_auth(
        "POST",
        &format!("/admin/users/{in_id}/password"),
        &admin,
        &json!({"password": "plum-walrus-lantern-42"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = s.post("/auth/token/refresh", &json!({"refresh_token": token}));
    assert_eq!(r.status, 401, "{}", r.body);

    // Unknown PATCH fields are refused, not ignored.
    let r = s.send_auth(
        "PATCH",
        &format!("/admin/users/{in_id}"),
        &admin,
        &json!({"name": "In", "status": "disabled"}),
    );
    assert_eq!(r.status, 422, "{}", r.body);

    // A client redirect URL never runs script.
    let r = s.send_auth(
        "POST",
        "/admin/clients",
        &admin,
        &json!({"name": "x", "redirect_urls": ["javascript://x%0aalert(1)"]}),
    );
    assert_eq!(r.status, 422, "{}", r.body);

    // The last active admin cannot be taken away over HTTP.
    let root = s.get_auth("/admin/users/root", &admin).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (method, path, body) in [
        ("POST", format!("/admin/users/{root}/disable"), json!({})),
        (
            "PATCH",
            format!("/admin/users/{root}"),
            json!({"role": "user"}),
        ),
    ] {
        let r = s.send_auth(method, &path, &admin, &body);
        assert_eq!(r.status, 409, "{method} {path}: {}", r.body);
    }
    let r = s.request(
        "DELETE",
        &format!("/admin/users/{root}"),
        &[("Authorization", &format!("Bearer {admin}"))],
        None,
    );
    assert_eq!(r.status, 409, "{}", r.body);
}
