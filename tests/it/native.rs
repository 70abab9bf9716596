//! The native (SourceLoop) sign-in endpoints, happy paths and refusals.

use serde_json::json;

use crate::support::{TestServer, PASSWORD};

fn login_body(client_id: &str, secret: &str, username: &str, password: &str) -> serde_json::Value {
    json!({"client_id": client_id, "client_secret": secret, "username": username, "password": password})
}

#[test]
fn login_gives_a_code_that_buys_tokens_once() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let r = s.post(
        "/auth/login",
        &login_body(&c.client_id, &secret, "ALICE@example.com", PASSWORD),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let code = r.json()["code"].as_str().unwrap().to_string();

    let t = s.post(
        "/auth/token",
        &json!({"clientId": c.client_id, "code": code}),
    );
    assert_eq!(t.status, 200, "{}", t.body);
    let t = t.json();
    assert_eq!(t["expiresIn"], 900);
    assert_eq!(t["expiresAt"].as_i64().unwrap(), (s.now() + 900) * 1000);
    assert_eq!(t["expires"], t["expiresAt"]);
    let me = s.get_auth("/auth/me", t["accessToken"].as_str().unwrap());
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["email"], "alice@example.com");
    assert_eq!(me.json()["username"], "alice");
    assert_eq!(me.json()["authClientId"], c.num);
    assert!(
        me.json().get("phone").is_none(),
        "absent values are omitted"
    );

    let again = s.post(
        "/auth/token",
        &json!({"clientId": c.client_id, "code": code}),
    );
    assert_eq!(again.status, 401);
    assert_eq!(again.json()["error"]["message"], "Code Expired");
}

#[test]
fn a_code_expires_and_is_bound_to_its_client() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    let other = s.add_public_client();
    s.add_user("alice@example.com");
    let code = |s: &TestServer| {
        s.post(
            "/auth/login",
            &login_body(&c.client_id, &secret, "alice", PASSWORD),
        )
        .json()["code"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let c1 = code(&s);
    s.advance(181);
    assert_eq!(
        s.post("/auth/token", &json!({"clientId": c.client_id, "code": c1}))
            .status,
        401
    );
    let c2 = code(&s);
    let r = s.post(
        "/auth/token",
        &json!({"clientId": other.client_id, "code": c2}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        s.post("/auth/token", &json!({"clientId": c.client_id, "code": c2}))
            .status,
        200
    );
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_answer() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let wrong = s.post(
        "/auth/login",
        &login_body(&c.client_id, &secret, "alice", "not-the-password"),
    );
    let unknown = s.post(
        "/auth/login",
        &login_body(&c.client_id, &secret, "nobody", "not-the-password"),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.json()["error"]["message"], "Invalid Credentials");
    assert_eq!(s.activity("FAILED"), 2);
}

#[test]
fn a_disabled_user_is_told_only_with_the_right_password() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    let u = s.add_user("alice@example.com");
    s.conn()
        .execute(
            "UPDATE users SET status = 'disabled' WHERE id = ?1",
            [&u.id],
        )
        .unwrap();
    let right = s.post(
        "/auth/login",
        &login_body(&c.client_id, &secret, "alice", PASSWORD),
    );
    assert_eq!(right.status, 403);
    assert_eq!(right.json()["error"]["message"], "UserInactive");
    let wrong = s.post(
        "/auth/login",
        &login_body(&c.client_id, &secret, "alice", "not-the-password"),
    );
    assert_eq!(wrong.status, 401);
}

#[test]
fn client_credentials_are_checked_first() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    let public = s.add_public_client();
    s.add_user("alice@example.com");
    let bad_secret = s.post(
        "/auth/login",
        &login_body(&c.client_id, "wrong", "alice", PASSWORD),
    );
    assert_eq!(bad_secret.status, 401);
    assert_eq!(bad_secret.json()["error"]["message"], "Client Invalid");
    let no_secret = s.post(
        "/auth/login",
        &json!({"client_id": c.client_id, "username": "alice", "password": PASSWORD}),
    );
    assert_eq!(no_secret.status, 401);
    let unknown = s.post(
        "/auth/login",
        &login_body("nope", &secret, "alice", PASSWORD),
    );
    assert_eq!(unknown.json()["error"]["message"], "Client Invalid");
    // A public client must not present a secret, and needs none.
    let with = s.post(
        "/auth/login",
        &login_body(&public.client_id, "anything", "alice", PASSWORD),
    );
    assert_eq!(with.status, 401);
    let without = s.post(
        "/auth/login",
        &json!({"client_id": public.client_id, "username": "alice", "password": PASSWORD}),
    );
    assert_eq!(without.status, 200, "{}", without.body);
}

#[test]
fn refresh_rotates_and_reuse_revokes_the_family() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let t1 = s.login_token(&c, &secret, "alice");
    let r1 = t1["refreshToken"].as_str().unwrap();
    let t2 = s.post("/auth/token-refresh", &json!({"refreshToken": r1}));
    assert_eq!(t2.status, 200, "{}", t2.body);
    let t2 = t2.json();
    assert_ne!(t2["refreshToken"], t1["refreshToken"]);
    let access2 = t2["accessToken"].as_str().unwrap();
    assert_eq!(s.get_auth("/auth/me", access2).status, 200);

    // Past the grace window, the rotated token is a thief's (or a bug):
    // the whole family goes, including the newest tokens.
    s.advance(11);
    let reuse = s.post("/auth/token-refresh", &json!({"refreshToken": r1}));
    assert_eq!(reuse.status, 401);
    assert_eq!(reuse.json()["error"]["message"], "TokenRevoked");
    let newest = s.post(
        "/auth/token-refresh",
        &json!({"refreshToken": t2["refreshToken"]}),
    );
    assert_eq!(newest.status, 401);
    assert_eq!(s.get_auth("/auth/me", access2).status, 401);
    assert!(s
        .get("/metrics")
        .body
        .contains("hallpass_refresh_reuse_total 1"));
}

#[test]
fn two_tabs_refreshing_at_once_are_honoured_once_within_the_grace() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let t1 = s.login_token(&c, &secret, "alice");
    let body = json!({"refreshToken": t1["refreshToken"]});
    let a = s.post("/auth/token-refresh", &body);
    s.advance(3);
    let b = s.post("/auth/token-refresh", &body);
    assert_eq!(a.status, 200);
    assert_eq!(b.status, 200, "second tab within 10 s: {}", b.body);
    assert_ne!(a.json()["refreshToken"], b.json()["refreshToken"]);
    // Both pairs belong to one live family.
    assert_eq!(
        s.post(
            "/auth/token-refresh",
            &json!({"refreshToken": a.json()["refreshToken"]})
        )
        .status,
        200
    );
    // A third presentation is reuse, even inside the window.
    assert_eq!(s.post("/auth/token-refresh", &body).status, 401);
}

#[test]
fn a_refresh_with_a_bearer_of_another_session_is_refused() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let a = s.login_token(&c, &secret, "alice");
    let b = s.login_token(&c, &secret, "alice");
    let r = s.send_auth(
        "POST",
        "/auth/token-refresh",
        a["accessToken"].as_str().unwrap(),
        &json!({"refreshToken": b["refreshToken"]}),
    );
    assert_eq!(r.status, 401);
    let ok = s.send_auth(
        "POST",
        "/auth/token-refresh",
        a["accessToken"].as_str().unwrap(),
        &json!({"refreshToken": a["refreshToken"]}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn an_expired_refresh_token_is_refused() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let t = s.login_token(&c, &secret, "alice");
    s.advance(30 * 86_400 + 1);
    let r = s.post(
        "/auth/token-refresh",
        &json!({"refreshToken": t["refreshToken"]}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["message"], "Token Expired");
}

#[test]
fn switching_tenant_needs_membership() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    let u = s.add_user("alice@example.com");
    let mut conn = s.conn();
    let (mine, foreign) = hallpass::db::immediate(&mut conn, |tx| {
        let mine = hallpass::accounts::create_tenant(tx, "acme", None, 0)?;
        let foreign = hallpass::accounts::create_tenant(tx, "globex", None, 0)?;
        hallpass::accounts::add_to_tenant(tx, &u.id, &mine.id, "owner", None, 0)?;
        Ok((mine, foreign))
    })
    .unwrap();
    let t = s.login_token(&c, &secret, "alice");
    let access = t["accessToken"].as_str().unwrap();

    let missing = s.send_auth(
        "POST",
        "/auth/switch-token",
        access,
        &json!({"refreshToken": t["refreshToken"]}),
    );
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["error"]["message"], "Tenant ID is required");
    let denied = s.send_auth(
        "POST",
        "/auth/switch-token",
        access,
        &json!({"refreshToken": t["refreshToken"], "tenantId": foreign.id}),
    );
    assert_eq!(denied.status, 403);
    let ok = s.send_auth(
        "POST",
        "/auth/token-switch",
        access,
        &json!({"refreshToken": t["refreshToken"], "tenantId": mine.id}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let me = s
        .get_auth("/auth/me", ok.json()["accessToken"].as_str().unwrap())
        .json();
    assert_eq!(me["tenantId"], mine.id.as_str());
    assert_eq!(me["role"], "owner");
    let unauth = s.post(
        "/auth/switch-token",
        &json!({"refreshToken": t["refreshToken"], "tenantId": mine.id}),
    );
    assert_eq!(unauth.status, 401);
}

#[test]
fn logout_ends_the_session_for_refresh_and_for_the_access_token() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    let u = s.add_user("alice@example.com");
    let t = s.login_token(&c, &secret, "alice");
    let access = t["accessToken"].as_str().unwrap();
    let r = s.send_auth(
        "POST",
        "/logout",
        access,
        &json!({"refreshToken": t["refreshToken"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"success": true, "key": u.id}));
    assert_eq!(s.get_auth("/auth/me", access).status, 401);
    assert_eq!(
        s.post(
            "/auth/token-refresh",
            &json!({"refreshToken": t["refreshToken"]})
        )
        .status,
        401
    );
    assert_eq!(s.activity("LOGOUT"), 1);
}

#[test]
fn logout_redirect_goes_only_to_the_clients_url() {
    let s = TestServer::start();
    let (c, _) = s.add_client();
    let r = s.get(&format!(
        "/logout/redirect?client_id={}&state=a%20b",
        c.client_id
    ));
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://app.example/bye?state=a%20b")
    );
    let unknown = s.get("/logout/redirect?client_id=nope&state=x");
    assert_eq!(unknown.status, 401);
    assert!(unknown.header("location").is_none());
    let public = s.add_public_client();
    assert_eq!(
        s.get(&format!("/logout/redirect?client_id={}", public.client_id))
            .status,
        404
    );
}

#[test]
fn change_password_checks_the_old_one_and_ends_other_sessions() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let here = s.login_token(&c, &secret, "alice");
    let elsewhere = s.login_token(&c, &secret, "alice");
    let access = here["accessToken"].as_str().unwrap();
    let wrong = s.send_auth(
        "PATCH",
        "/auth/change-password",
        access,
        &json!({"oldPassword": "nope-nope-nope", "password": "brand-new-passphrase-7"}),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"]["message"], "Incorrect Password");
    let same = s.send_auth(
        "PATCH",
        "/auth/change-password",
        access,
        &json!({"oldPassword": PASSWORD, "password": PASSWORD}),
    );
    assert_eq!(same.status, 422);
    let common = s.send_auth(
        "PATCH",
        "/auth/change-password",
        access,
        &json!({"oldPassword": PASSWORD, "password": "password123"}),
    );
    assert_eq!(common.status, 422);
    assert_eq!(common.json()["error"]["details"][0]["path"], "/password");
    let ok = s.send_auth(
        "PATCH",
        "/auth/change-password",
        access,
        &json!({"oldPassword": PASSWORD, "password": "brand-new-passphrase-7"}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json(), json!({"success": true}));
    assert_eq!(
        s.get_auth("/auth/me", access).status,
        200,
        "this session stays"
    );
    assert_eq!(
        s.get_auth("/auth/me", elsewhere["accessToken"].as_str().unwrap())
            .status,
        401
    );
    let old = s.post(
        "/auth/login",
        &login_body(&c.client_id, &secret, "alice", PASSWORD),
    );
    assert_eq!(old.status, 401);
    let new = s.post(
        "/auth/login",
        &login_body(&c.client_id, &secret, "alice", "brand-new-passphrase-7"),
    );
    assert_eq!(new.status, 200);
}

#[test]
fn every_sign_in_is_logged_with_its_type() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    let u = s.add_user("alice@example.com");
    s.login_token(&c, &secret, "alice");
    s.login_token(&c, &secret, "alice");
    assert_eq!(s.activity("ACCESS"), 1);
    assert_eq!(s.activity("RELOGIN"), 1);
    let (actor, ip, payload): (String, String, String) = s
        .conn()
        .query_row(
            "SELECT actor, ip_address, token_payload FROM login_activity LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(actor, u.id);
    assert_eq!(ip, "127.0.0.1");
    assert_eq!(payload, r#"{"amr":["pwd"],"method":"password"}"#);
}

#[test]
fn bad_input_gets_a_json_error_that_names_the_problem() {
    let s = TestServer::start();
    let (c, _) = s.add_client();
    let malformed = s.request(
        "POST",
        "/auth/login",
        &[("Content-Type", "application/json")],
        Some(b"{\"username\": "),
    );
    assert_eq!(malformed.status, 400);
    assert!(malformed.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Malformed JSON"));
    let missing = s.post(
        "/auth/login",
        &json!({"client_id": c.client_id, "username": "alice"}),
    );
    assert_eq!(missing.status, 422);
    assert_eq!(missing.json()["error"]["code"], "VALIDATION_FAILED");
    assert_eq!(missing.json()["error"]["details"][0]["path"], "/password");
    let wrong_type = s.post(
        "/auth/login",
        &json!({"client_id": c.client_id, "username": 7, "password": "x"}),
    );
    assert_eq!(wrong_type.status, 422);
    assert_eq!(wrong_type.json()["error"]["details"][0]["code"], "type");
    let not_object = s.post("/auth/login", &json!([1, 2]));
    assert_eq!(not_object.status, 400);
    let big = vec![b'x'; 64 * 1024 + 1];
    let oversized = s.request(
        "POST",
        "/auth/login",
        &[("Content-Type", "application/json")],
        Some(&big),
    );
    assert_eq!(oversized.status, 413);
    let nowhere = s.get("/no/such/thing");
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.json()["error"]["statusCode"], 404);
    let method = s.request("DELETE", "/auth/login", &[], None);
    assert_eq!(method.status, 405);
    assert_eq!(method.header("allow"), Some("POST"));
    let no_bearer = s.get("/auth/me");
    assert_eq!(no_bearer.status, 401);
    assert_eq!(no_bearer.header("www-authenticate"), Some("Bearer"));
    let garbage = s.get_auth("/auth/me", "not.a.jwt");
    assert_eq!(garbage.status, 401);
}

#[test]
fn health_metrics_and_jwks_are_served() {
    let s = TestServer::start();
    assert_eq!(s.get("/healthz").json(), json!({"status": "ok"}));
    assert_eq!(
        s.get("/healthz/").status,
        200,
        "a trailing slash is not significant"
    );
    let jwks = s.get("/.well-known/jwks.json").json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["alg"], "ES256");
    assert!(key.get("d").is_none(), "never the private part");
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    s.login_token(&c, &secret, "alice");
    let m = s.get("/metrics").body;
    assert!(
        m.contains("hallpass_requests_total{route=\"/auth/login-token\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("hallpass_logins_total{outcome=\"success\"} 1"),
        "{m}"
    );
}

/// Security review: a token presented twice inside the grace window must
/// not leave two live chains (a thief's and the owner's).
#[test]
fn only_one_chain_survives_the_grace_window() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let t = s.login_token(&c, &secret, "alice");
    let body = json!({"refreshToken": t["refreshToken"]});
    let owner = s.post("/auth/token-refresh", &body).json();
    let thief = s.post("/auth/token-refresh", &body).json();
    s.advance(11);
    let r = s.post(
        "/auth/token-refresh",
        &json!({"refreshToken": owner["refreshToken"]}),
    );
    assert_eq!(r.status, 401, "the superseded branch is reuse");
    let r = s.post(
        "/auth/token-refresh",
        &json!({"refreshToken": thief["refreshToken"]}),
    );
    assert_eq!(r.status, 401, "and the whole family is gone");
}

#[test]
fn a_replayed_code_revokes_the_session_it_bought() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let code = s
        .post(
            "/auth/login",
            &login_body(&c.client_id, &secret, "alice", PASSWORD),
        )
        .json()["code"]
        .clone();
    let t = s
        .post(
            "/auth/token",
            &json!({"clientId": c.client_id, "code": code}),
        )
        .json();
    let access = t["accessToken"].as_str().unwrap();
    assert_eq!(s.get_auth("/auth/me", access).status, 200);
    assert_eq!(
        s.post(
            "/auth/token",
            &json!({"clientId": c.client_id, "code": code})
        )
        .status,
        401
    );
    assert_eq!(s.get_auth("/auth/me", access).status, 401);
    assert_eq!(
        s.post(
            "/auth/token-refresh",
            &json!({"refreshToken": t["refreshToken"]})
        )
        .status,
        401
    );
}

#[test]
fn codes_do_not_outlive_a_disable_or_a_password_change() {
    let s = TestServer::start();
    let (c, secret) = s.add_client();
    let u = s.add_user("alice@example.com");
    let code = |s: &TestServer, pw: &str| {
        s.post(
            "/auth/login",
            &login_body(&c.client_id, &secret, "alice", pw),
        )
        .json()["code"]
            .clone()
    };
    let pending = code(&s, PASSWORD);
    let t = s.login_token(&c, &secret, "alice");
    let changed = s.send_auth(
        "PATCH",
        "/auth/change-password",
        t["accessToken"].as_str().unwrap(),
        &json!({"oldPassword": PASSWORD, "password": "brand-new-passphrase-7"}),
    );
    assert_eq!(changed.status, 200);
    assert_eq!(
        s.post(
            "/auth/token",
            &json!({"clientId": c.client_id, "code": pending})
        )
        .status,
        401
    );
    let pending = code(&s, "brand-new-passphrase-7");
    s.conn()
        .execute(
            "UPDATE users SET status = 'disabled' WHERE id = ?1",
            [&u.id],
        )
        .unwrap();
    assert_eq!(
        s.post(
            "/auth/token",
            &json!({"clientId": c.client_id, "code": pending})
        )
        .status,
        403
    );
}

/// RFC 7636 appendix B: this verifier's S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

#[test]
fn a_code_with_a_pkce_challenge_needs_its_verifier() {
    let s = TestServer::start();
    let spa = s.add_public_client();
    s.add_user("alice@example.com");
    let login = |extra: serde_json::Value| {
        let mut body =
            json!({"client_id": spa.client_id, "username": "alice", "password": PASSWORD});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        s.post("/auth/login", &body)
    };
    let plain = login(json!({"code_challenge": CHALLENGE, "code_challenge_method": "plain"}));
    assert_eq!(plain.status, 422, "only S256");
    let unnamed = login(json!({"code_challenge": CHALLENGE}));
    assert_eq!(unnamed.status, 422, "a missing method means plain: refused");
    assert_eq!(
        unnamed.json()["error"]["details"][0]["path"],
        "/code_challenge_method"
    );
    let short = login(json!({"code_challenge": "abc", "code_challenge_method": "S256"}));
    assert_eq!(short.status, 422);
    assert_eq!(
        short.json()["error"]["details"][0]["path"],
        "/code_challenge"
    );

    let r = login(json!({"code_challenge": CHALLENGE, "code_challenge_method": "S256"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let code = r.json()["code"].as_str().unwrap().to_string();
    let exchange = |verifier: Option<&str>| {
        let mut body = json!({"clientId": spa.client_id, "code": code});
        if let Some(v) = verifier {
            body["code_verifier"] = json!(v);
        }
        s.post("/auth/token", &body)
    };
    assert_eq!(exchange(None).status, 422, "the verifier is required");
    let wrong = exchange(Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl"));
    assert_eq!(wrong.status, 422);
    assert_eq!(
        wrong.json()["error"]["details"][0]["path"],
        "/code_verifier"
    );
    let ok = exchange(Some(VERIFIER));
    assert_eq!(
        ok.status, 200,
        "a refused verifier does not use the code up: {}",
        ok.body
    );
    // Someone holding the stolen code but not the verifier cannot end the
    // session it bought by replaying it.
    let stolen = exchange(Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl"));
    assert_eq!(stolen.status, 422);
    let rt = ok.json()["refreshToken"].as_str().unwrap().to_string();
    let still = s.post("/auth/token-refresh", &json!({"refreshToken": rt}));
    assert_eq!(still.status, 200, "{}", still.body);
    // The verifier's holder replaying it is a replay: single use.
    assert_eq!(exchange(Some(VERIFIER)).status, 401, "single use");

    // Without a challenge, a verifier is not needed (PKCE is the client's
    // choice), and one that is sent anyway is refused (RFC 9700 §2.1.1).
    let r = login(json!({}));
    let code = r.json()["code"].as_str().unwrap().to_string();
    let injected = s.post(
        "/auth/token",
        &json!({"clientId": spa.client_id, "code": code, "code_verifier": VERIFIER}),
    );
    assert_eq!(injected.status, 422);
    let t = s.post(
        "/auth/token",
        &json!({"clientId": spa.client_id, "code": code}),
    );
    assert_eq!(t.status, 200);
}

#[test]
fn concurrent_refreshes_each_rotate_their_own_session() {
    // Refreshes arriving together are committed in shared transactions:
    // each must still get its own new pair, and each chain must stay intact.
    let s = std::sync::Arc::new(TestServer::start_with(|c| {
        c.limits.token_burst = 1e9;
        c.limits.token_per_minute = 1e9;
    }));
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    let starts: Vec<String> = (0..6)
        .map(|_| {
            s.login_token(&c, &secret, "alice")["refreshToken"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let handles: Vec<_> = starts
        .iter()
        .cloned()
        .map(|first| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut rt = first;
                let mut seen = vec![rt.clone()];
                for _ in 0..15 {
                    let r = s.post("/auth/token-refresh", &json!({"refreshToken": rt}));
                    assert_eq!(r.status, 200, "{}", r.body);
                    rt = r.json()["refreshToken"].as_str().unwrap().to_string();
                    seen.push(rt.clone());
                }
                seen
            })
        })
        .collect();
    let chains: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut all: Vec<&String> = chains.iter().flatten().collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "every token issued once");
    // Past the grace window, an old link of any chain is reuse; the newest
    // link of every other chain still works.
    s.advance(11);
    let reuse = s.post(
        "/auth/token-refresh",
        &json!({"refreshToken": chains[0][3]}),
    );
    assert_eq!(reuse.status, 401);
    for chain in &chains[1..] {
        let r = s.post(
            "/auth/token-refresh",
            &json!({"refreshToken": chain.last().unwrap()}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
}
