//! The OpenID provider (issue 13): client settings, discovery, authorize,
//! token, id_token, userinfo, introspection, revocation and RP-initiated
//! logout, driven over HTTP against the real server. Browser sessions are
//! inserted into the database directly (the sign-in pages are WEB's).

use serde_json::{json, Value};

use crate::support::TestServer;

fn admin_token(s: &TestServer) -> String {
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
fn clients_carry_the_providers_settings_through_the_admin_api() {
    let s = TestServer::start();
    let admin = admin_token(&s);
    let r = s.send_auth(
        "POST",
        "/admin/clients",
        &admin,
        &json!({"name": "grafana", "redirect_urls": ["https://grafana.example/login/generic_oauth"],
                "post_logout_redirect_urls": ["https://grafana.example/login"],
                "scopes": ["openid", "email"], "consent": true, "token_alg": "RS256"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let c = r.json();
    assert_eq!(c["scopes"], json!(["openid", "email"]));
    assert_eq!(c["consent"], json!(true));
    assert_eq!(c["token_alg"], json!("RS256"));
    assert_eq!(
        c["post_logout_redirect_urls"],
        json!(["https://grafana.example/login"])
    );
    let id = c["client_id"].as_str().unwrap();
    // Defaults: every scope, first-party, the current key's algorithm.
    let d = s
        .send_auth("POST", "/admin/clients", &admin, &json!({"name": "plain"}))
        .json();
    assert_eq!(
        d["scopes"],
        json!(["openid", "profile", "email", "groups", "offline_access"])
    );
    assert_eq!(
        (d["consent"].clone(), d["token_alg"].clone()),
        (json!(false), Value::Null)
    );

    let r = s.send_auth(
        "PATCH",
        &format!("/admin/clients/{id}"),
        &admin,
        &json!({"consent": false, "token_alg": null, "scopes": ["openid", "profile", "groups"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.json();
    assert_eq!(c["consent"], json!(false));
    assert_eq!(c["token_alg"], Value::Null);
    assert_eq!(c["scopes"], json!(["openid", "profile", "groups"]));
    assert_eq!(c["name"], json!("grafana"));
    // Refusals name their field.
    for (body, field) in [
        (json!({"scopes": ["openid", "admin"]}), "scopes"),
        (json!({"token_alg": "HS256"}), "token_alg"),
        (
            json!({"post_logout_redirect_urls": ["javascript:alert(1)"]}),
            "post_logout_redirect_urls",
        ),
        (json!({"public": true}), "public"),
    ] {
        let r = s.send_auth("PATCH", &format!("/admin/clients/{id}"), &admin, &body);
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(r.body.contains(field), "{}", r.body);
    }
}
