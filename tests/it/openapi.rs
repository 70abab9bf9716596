//! GET /openapi.json against the server's real answers: a representative
//! set of operations of every dialect, admin and login activity, each
//! answer's status looked up in the document and its body validated
//! against the documented schema by an independent validator (jsonschema).
//! A documented field that is not what the server sends fails here; that
//! the document names exactly the routed operations is
//! api::openapi::tests::document_and_tables_agree.

use serde_json::{json, Value};

use crate::support::{Resp, TestServer, PASSWORD};

struct Spec(Value);

impl Spec {
    fn of(s: &TestServer) -> Spec {
        let r = s.get("/openapi.json");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        Spec(r.json())
    }

    /// Panics unless `r`'s status is documented for the operation and its
    /// body matches that status's schema (or is empty when none is).
    fn check(&self, method: &str, path: &str, r: &Resp) {
        let op = &self.0["paths"][path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} is not documented");
        let answer = &op["responses"][r.status.to_string()];
        assert!(
            answer.is_object(),
            "{method} {path}: status {} is not documented: {}",
            r.status,
            r.body
        );
        let Some(content) = answer["content"].as_object() else {
            assert!(
                r.body.is_empty(),
                "{method} {path}: undocumented body {}",
                r.body
            );
            return;
        };
        let Some(media) = content.get("application/json") else {
            return; // text (metrics): no JSON schema to hold it to
        };
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.0["components"],
            "allOf": [media["schema"]],
        });
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{method} {path}: bad schema: {e}"));
        let body = r.json();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {}: {errors:?}\nbody: {}",
            r.status,
            r.body
        );
    }
}

fn admin(s: &TestServer) -> String {
    let u = s.add_user("root@example.com");
    s.conn()
        .execute("UPDATE users SET role = 'admin' WHERE id = ?1", [&u.id])
        .unwrap();
    let (client, secret) = s.add_client();
    s.login_token(&client, &secret, "root")["accessToken"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn only_enabled_dialects_are_described() {
    let s = TestServer::start_with(|c| c.dialects = vec!["native".into()]);
    let doc = Spec::of(&s).0;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = &doc["paths"];
    for on in ["/auth/login", "/admin/users", "/healthz", "/openapi.json"] {
        assert!(paths[on].is_object(), "{on}");
    }
    for off in [
        "/api/login",
        "/v1/users",
        "/auth/2fa",
        "/auth/token/refresh",
    ] {
        assert!(paths[off].is_null(), "{off}");
    }
    // yat is off: /auth/token is the code exchange alone.
    let body = &paths["/auth/token"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(body["schema"]["required"], json!(["code", "clientId"]));
}

#[test]
fn meta_native_and_yat_answers_match_the_document() {
    let s = TestServer::start();
    let spec = Spec::of(&s);
    for p in [
        "/healthz",
        "/.well-known/jwks.json",
        "/openapi.json",
        "/metrics",
    ] {
        spec.check("GET", p, &s.get(p));
    }
    s.add_user("ann@example.com");
    let (client, secret) = s.add_client();
    let cid = client.client_id.as_str();
    let login = |pw: &str| {
        s.post(
            "/auth/login-token",
            &json!({"client_id": cid, "client_secret": secret, "username": "ann", "password": pw}),
        )
    };
    let ok = login(PASSWORD);
    spec.check("POST", "/auth/login-token", &ok);
    spec.check("POST", "/auth/login-token", &login("wrong-password-1"));
    let access = ok.json()["accessToken"].as_str().unwrap().to_string();
    let refresh = ok.json()["refreshToken"].as_str().unwrap().to_string();
    spec.check("GET", "/auth/me", &s.get_auth("/auth/me", &access));
    spec.check("GET", "/auth/me", &s.get("/auth/me"));
    spec.check(
        "POST",
        "/auth/login",
        &s.post("/auth/login", &json!({"client_id": cid, "username": "ann"})),
    );
    let code = s.post(
        "/auth/login",
        &json!({"client_id": cid, "client_secret": secret, "username": "ann", "password": PASSWORD}),
    );
    spec.check("POST", "/auth/login", &code);
    let c = code.json()["code"].as_str().unwrap().to_string();
    let exchanged = s.post("/auth/token", &json!({"clientId": cid, "code": c}));
    spec.check("POST", "/auth/token", &exchanged);
    spec.check(
        "POST",
        "/auth/token",
        &s.post("/auth/token", &json!({"clientId": cid, "code": c})),
    );
    spec.check(
        "POST",
        "/auth/token-refresh",
        &s.post("/auth/token-refresh", &json!({"refreshToken": refresh})),
    );
    spec.check(
        "GET",
        "/logout/redirect",
        &s.get(&format!("/logout/redirect?client_id={cid}&state=x")),
    );
    spec.check(
        "POST",
        "/auth/send-otp",
        &s.post(
            "/auth/send-otp",
            &json!({"client_id": cid, "client_secret": secret, "key": "ann"}),
        ),
    );
    spec.check("POST", "/auth/saml", &s.post("/auth/saml", &json!({})));

    // yat: password sign-in on the shared path, refresh, magic link, errors.
    let yat = s.post(
        "/auth/token",
        &json!({"email": "ann@example.com", "password": PASSWORD}),
    );
    spec.check("POST", "/auth/token", &yat);
    spec.check(
        "POST",
        "/auth/token",
        &s.post(
            "/auth/token",
            &json!({"email": "ann@example.com", "password": "nope-nope-1"}),
        ),
    );
    let yat_refresh = yat.json()["refresh_token"].as_str().unwrap().to_string();
    spec.check(
        "POST",
        "/auth/token/refresh",
        &s.post(
            "/auth/token/refresh",
            &json!({"refresh_token": yat_refresh}),
        ),
    );
    spec.check(
        "POST",
        "/auth/token/refresh",
        &s.post("/auth/token/refresh", &json!({})),
    );
    spec.check(
        "POST",
        "/auth/magic_link",
        &s.post("/auth/magic_link", &json!({"email": "who@example.com"})),
    );
}

#[test]
fn mfa_and_lagrello_answers_match_the_document() {
    let s = TestServer::start();
    let spec = Spec::of(&s);
    s.add_user("bo@example.com");
    let login = s.post(
        "/api/login",
        &json!({"username": "bo", "password": PASSWORD}),
    );
    spec.check("POST", "/api/login", &login);
    spec.check(
        "POST",
        "/api/login",
        &s.post(
            "/api/login",
            &json!({"username": "bo", "password": "wrong-pass-1"}),
        ),
    );
    spec.check("POST", "/api/login", &s.post("/api/login", &json!({})));
    let token = login.json()["token"].as_str().unwrap().to_string();
    spec.check(
        "GET",
        "/api/user/mfa/generate",
        &s.get_auth("/api/user/mfa/generate", &token),
    );
    spec.check(
        "PATCH",
        "/api/users",
        &s.send_auth("PATCH", "/api/users", &token, &json!({"name": "Bo"})),
    );
    spec.check(
        "PUT",
        "/api/user/mfa/enable",
        &s.send_auth("PUT", "/api/user/mfa/enable", &token, &json!({"code": "1"})),
    );

    let (key, _) = crate::dialects::api_key(&s, &["users:read", "users:write", "auth:write"]);
    let send = |m: &str, p: &str, b: &Value| s.send_auth(m, p, &key, b);
    spec.check(
        "POST",
        "/v1/users",
        &send(
            "POST",
            "/v1/users",
            &json!({"userId": "u1", "email": "u1@example.com"}),
        ),
    );
    spec.check(
        "POST",
        "/v1/users",
        &send("POST", "/v1/users", &json!({"userId": "u1"})),
    );
    spec.check(
        "GET",
        "/v1/users/{userId}",
        &s.get_auth("/v1/users/u1", &key),
    );
    spec.check(
        "GET",
        "/v1/users/{userId}",
        &s.get_auth("/v1/users/nobody", &key),
    );
    spec.check("GET", "/v1/users/{userId}", &s.get("/v1/users/u1"));
    spec.check(
        "POST",
        "/v1/users/{userId}/totp",
        &send("POST", "/v1/users/u1/totp", &json!({"enable": true})),
    );
    spec.check(
        "GET",
        "/v1/users/{userId}/totp",
        &s.get_auth("/v1/users/u1/totp?payload=000000", &key),
    );
    spec.check(
        "DELETE",
        "/v1/users/{userId}",
        &send("DELETE", "/v1/users/u1", &json!({})),
    );
}

#[test]
fn admin_and_activity_answers_match_the_document() {
    let s = TestServer::start();
    let spec = Spec::of(&s);
    let root = admin(&s);
    let get = |p: &str| s.get_auth(p, &root);
    spec.check("GET", "/admin/users", &get("/admin/users"));
    spec.check("GET", "/admin/users", &get("/admin/users?limit=ten"));
    spec.check("GET", "/admin/users", &s.get("/admin/users"));
    spec.check("GET", "/admin/users/{id}", &get("/admin/users/root"));
    spec.check("GET", "/admin/users/{id}", &get("/admin/users/nobody"));
    spec.check(
        "GET",
        "/admin/users/{id}/sessions",
        &get("/admin/users/root/sessions"),
    );
    let created = s.send_auth(
        "POST",
        "/admin/users",
        &root,
        &json!({"email": "cy@example.com", "password": PASSWORD}),
    );
    spec.check("POST", "/admin/users", &created);
    spec.check(
        "POST",
        "/admin/users/{id}/disable",
        &s.send_auth("POST", "/admin/users/cy/disable", &root, &json!({})),
    );
    spec.check(
        "POST",
        "/admin/users/{id}/reset-mfa",
        &s.send_auth("POST", "/admin/users/cy/reset-mfa", &root, &json!({})),
    );
    spec.check(
        "POST",
        "/admin/clients",
        &s.send_auth("POST", "/admin/clients", &root, &json!({"name": "app"})),
    );
    spec.check("GET", "/admin/clients", &get("/admin/clients"));
    spec.check("GET", "/admin/tenants", &get("/admin/tenants"));
    spec.check(
        "GET",
        "/admin/tenants/{id}/members",
        &get("/admin/tenants/default/members"),
    );
    spec.check(
        "POST",
        "/admin/api-keys",
        &s.send_auth(
            "POST",
            "/admin/api-keys",
            &root,
            &json!({"name": "k", "tenant": "default", "scopes": ["activity:read"]}),
        ),
    );
    spec.check("GET", "/admin/api-keys", &get("/admin/api-keys"));
    spec.check("GET", "/admin/keys", &get("/admin/keys"));
    spec.check("GET", "/admin/mail", &get("/admin/mail"));
    spec.check("GET", "/admin/audit", &get("/admin/audit"));
    spec.check(
        "GET",
        "/admin/audit",
        &get("/admin/audit?filter=%7B%22where%22%3A1%7D"),
    );

    spec.check("GET", "/login-activity", &get("/login-activity"));
    spec.check("GET", "/login-activity", &s.get("/login-activity"));
    spec.check(
        "GET",
        "/login-activity/count",
        &get("/login-activity/count"),
    );
    let rows = get("/login-activity").json();
    let id = rows[0]["id"].as_str().unwrap().to_string();
    spec.check(
        "GET",
        "/login-activity/{id}",
        &get(&format!("/login-activity/{id}")),
    );
    spec.check("GET", "/login-activity/{id}", &get("/login-activity/nope"));
    spec.check(
        "GET",
        "/active-users/{range}",
        &get("/active-users/monthly"),
    );
    spec.check("GET", "/active-users/{range}", &get("/active-users/yearly"));
}
