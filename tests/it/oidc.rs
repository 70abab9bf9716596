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

// ---- helpers -------------------------------------------------------------

const CB: &str = "https://app.example/cb";

/// A signed-in browser: a row in `web_sessions` as the sign-in pages write
/// it (a 7-day idle and 30-day absolute lifetime), with a chosen auth_time
/// and amr (the pages' own sign-in is tests/it/web.rs's). Returns the
/// cookie header.
fn browser(s: &TestServer, user_id: &str, amr: &[&str], auth_time: i64) -> String {
    let conn = s.conn();
    let id = hallpass::crypto::random_token().unwrap();
    let now = s.now();
    conn.execute(
        "INSERT INTO web_sessions (id_hash, user_id, amr, auth_time, created_at, last_seen_at,
                                   idle_secs, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, 604800, ?5 + 2592000)",
        rusqlite::params![
            hallpass::crypto::token_hash(&id),
            user_id,
            serde_json::to_string(amr).unwrap(),
            auth_time,
            now
        ],
    )
    .unwrap();
    format!("hallpass={id}")
}

fn public_client(s: &TestServer) -> hallpass::accounts::Client {
    let mut conn = s.conn();
    hallpass::db::immediate(&mut conn, |tx| {
        hallpass::accounts::create_client(
            tx,
            "spa",
            &[CB.to_string(), "https://app.example/other".to_string()],
            None,
            true,
            hallpass::accounts::Ttls::default(),
            s.now(),
        )
    })
    .unwrap()
    .0
}

fn enc(v: &str) -> String {
    hallpass::url::percent_encode(v)
}

fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn authorize(s: &TestServer, cookie: Option<&str>, pairs: &[(&str, &str)]) -> crate::support::Resp {
    let path = format!("/oauth2/authorize?{}", query(pairs));
    match cookie {
        Some(c) => s.request("GET", &path, &[("Cookie", c)], None),
        None => s.get(&path),
    }
}

/// The query parameters of a redirect's Location.
fn location_params(r: &crate::support::Resp) -> Vec<(String, String)> {
    let loc = r
        .header("location")
        .unwrap_or_else(|| panic!("no Location: {} {}", r.status, r.body));
    let q = loc.split_once('?').map(|(_, q)| q).unwrap_or("");
    hallpass::http::parse_form(q)
}

fn param(r: &crate::support::Resp, name: &str) -> Option<String> {
    location_params(r)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn post_form(
    s: &TestServer,
    path: &str,
    pairs: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> crate::support::Resp {
    let body = query(pairs);
    let auth = basic.map(|(id, secret)| {
        format!(
            "Basic {}",
            hallpass::crypto::b64(format!("{}:{}", enc(id), enc(secret)).as_bytes())
        )
    });
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    s.request("POST", path, &headers, Some(body.as_bytes()))
}

struct Flow {
    s: TestServer,
    user: hallpass::accounts::User,
    client: hallpass::accounts::Client,
    secret: String,
    cookie: String,
}

fn flow() -> Flow {
    let s = TestServer::start();
    let user = s.add_user("ada@example.com");
    let (client, secret) = s.add_client();
    let cookie = browser(&s, &user.id, &["pwd", "otp"], s.now() - 30);
    Flow {
        s,
        user,
        client,
        secret,
        cookie,
    }
}

impl Flow {
    fn code(&self, scope: &str, extra: &[(&str, &str)]) -> String {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", self.client.client_id.as_str()),
            ("redirect_uri", CB),
            ("scope", scope),
            ("state", "st4te"),
            ("nonce", "n0nce"),
        ];
        pairs.extend_from_slice(extra);
        let r = authorize(&self.s, Some(&self.cookie), &pairs);
        assert_eq!(r.status, 302, "{}", r.body);
        assert!(
            r.header("location").unwrap().starts_with(CB),
            "{:?}",
            r.header("location")
        );
        assert_eq!(param(&r, "state").as_deref(), Some("st4te"));
        assert_eq!(param(&r, "iss"), Some(self.s.config_issuer()));
        param(&r, "code").unwrap_or_else(|| panic!("no code: {:?}", r.header("location")))
    }

    fn exchange(&self, code: &str) -> crate::support::Resp {
        post_form(
            &self.s,
            "/oauth2/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", CB),
            ],
            Some((&self.client.client_id, &self.secret)),
        )
    }
}

trait Issuer {
    fn config_issuer(&self) -> String;
}

impl Issuer for TestServer {
    fn config_issuer(&self) -> String {
        self.get("/.well-known/openid-configuration").json()["issuer"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

// ---- discovery -----------------------------------------------------------

#[test]
fn discovery_names_every_endpoint_and_what_is_supported() {
    let s = TestServer::start();
    let r = s.get("/.well-known/openid-configuration");
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.json();
    let issuer = d["issuer"].as_str().unwrap();
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");
    for (field, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        ("userinfo_endpoint", "/oauth2/userinfo"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("introspection_endpoint", "/oauth2/introspect"),
        ("revocation_endpoint", "/oauth2/revoke"),
        ("end_session_endpoint", "/oauth2/end-session"),
    ] {
        assert_eq!(d[field], json!(format!("{}{path}", s.base)), "{field}");
    }
    assert_eq!(
        d["scopes_supported"],
        json!(["openid", "profile", "email", "groups", "offline_access"])
    );
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        d["grant_types_supported"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["ES256"]));
    for c in [
        "sub",
        "email",
        "email_verified",
        "groups",
        "at_hash",
        "nonce",
        "preferred_username",
    ] {
        assert!(
            d["claims_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(c)),
            "{c}"
        );
    }
    assert_eq!(
        d["authorization_response_iss_parameter_supported"],
        json!(true)
    );
}

// ---- authorize -----------------------------------------------------------

#[test]
fn an_unregistered_or_ambiguous_redirect_uri_is_answered_never_redirected() {
    let f = flow();
    let spa = public_client(&f.s);
    for (client, uri) in [
        (f.client.client_id.as_str(), Some("https://evil.example/cb")),
        (
            f.client.client_id.as_str(),
            Some("https://app.example/cb/more"),
        ),
        (f.client.client_id.as_str(), Some("https://app.example/CB")),
        // Two registered and none named.
        (spa.client_id.as_str(), None),
    ] {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client),
            ("scope", "openid"),
            ("state", "x"),
        ];
        if let Some(u) = uri {
            pairs.push(("redirect_uri", u));
        }
        let r = authorize(&f.s, Some(&f.cookie), &pairs);
        assert_misconfigured(&r);
    }
    // An unknown client: no redirect either.
    let r = authorize(
        &f.s,
        Some(&f.cookie),
        &[
            ("response_type", "code"),
            ("client_id", "nope"),
            ("redirect_uri", CB),
            ("scope", "openid"),
        ],
    );
    assert_misconfigured(&r);
    // With the one registered URI left out, the code goes to it.
    let r = authorize(
        &f.s,
        Some(&f.cookie),
        &[
            ("response_type", "code"),
            ("client_id", &f.client.client_id),
            ("scope", "openid"),
        ],
    );
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(r.header("location").unwrap().starts_with(CB));
}

#[test]
fn errors_after_the_redirect_uri_is_known_go_back_to_it_with_state_and_iss() {
    let f = flow();
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut p = vec![
            ("response_type", "code"),
            ("client_id", f.client.client_id.as_str()),
            ("redirect_uri", CB),
            ("state", "s1"),
        ];
        p.extend_from_slice(extra);
        p
    };
    for (extra, error) in [
        (vec![("scope", "email")], "invalid_scope"),
        (vec![("scope", "openid admin")], "invalid_scope"),
        (
            vec![
                ("scope", "openid"),
                ("code_challenge", "abc"),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            vec![("scope", "openid"), ("prompt", "none login")],
            "invalid_request",
        ),
    ] {
        let r = authorize(&f.s, Some(&f.cookie), &base(&extra));
        assert_eq!(r.status, 302, "{extra:?}: {}", r.body);
        assert!(r.header("location").unwrap().starts_with(CB));
        assert_eq!(param(&r, "error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(param(&r, "state").as_deref(), Some("s1"));
        assert!(param(&r, "iss").is_some());
        assert!(param(&r, "code").is_none());
    }
    let mut p = base(&[("scope", "openid")]);
    p[0] = ("response_type", "token");
    let r = authorize(&f.s, Some(&f.cookie), &p);
    assert_eq!(
        param(&r, "error").as_deref(),
        Some("unsupported_response_type")
    );
}

#[test]
fn without_a_session_the_browser_goes_to_sign_in_and_prompt_none_is_login_required() {
    let f = flow();
    let pairs = [
        ("response_type", "code"),
        ("client_id", f.client.client_id.as_str()),
        ("redirect_uri", CB),
        ("scope", "openid email"),
        ("state", "a&b"),
    ];
    let r = authorize(&f.s, None, &pairs);
    assert_eq!(r.status, 302, "{}", r.body);
    let loc = r.header("location").unwrap();
    let want = format!("/oauth2/authorize?{}", query(&pairs));
    assert_eq!(loc, format!("/signin?return_to={}", enc(&want)));
    let mut none = pairs.to_vec();
    none.push(("prompt", "none"));
    let r = authorize(&f.s, None, &none);
    assert_eq!(param(&r, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&r, "state").as_deref(), Some("a&b"));
    // prompt=login with a session: to sign-in, without prompt, with the
    // time after which the sign-in must be.
    let mut login = pairs.to_vec();
    login.push(("prompt", "login"));
    let r = authorize(&f.s, Some(&f.cookie), &login);
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with("/signin?return_to="), "{loc}");
    let back = hallpass::url::percent_decode(loc.trim_start_matches("/signin?return_to="), false);
    assert!(!back.contains("prompt"), "{back}");
    assert!(back.contains("hallpass_auth_after="), "{back}");
    // The old session does not satisfy it.
    let r = f.s.request("GET", &back, &[("Cookie", &f.cookie)], None);
    assert!(r.header("location").unwrap().starts_with("/signin"));
    // max_age exceeded: sign in again.
    let mut aged = pairs.to_vec();
    aged.push(("max_age", "10"));
    let r = authorize(&f.s, Some(&f.cookie), &aged);
    assert!(r.header("location").unwrap().starts_with("/signin"));
}

/// The pages' error page of an authorization request that cannot go back
/// to the app: 400, HTML with the pages' headers, never a redirect.
pub fn assert_misconfigured(r: &crate::support::Resp) {
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.header("location").is_none(), "redirected: {r:?}");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body.contains("This app is misconfigured"), "{}", r.body);
    crate::browser::assert_page_headers(r);
}

#[test]
fn a_consent_client_with_prompt_none_and_no_grant_gets_consent_required() {
    let f = flow();
    f.s.conn()
        .execute("UPDATE clients SET consent = 1", [])
        .unwrap();
    let r = authorize(
        &f.s,
        Some(&f.cookie),
        &[
            ("response_type", "code"),
            ("client_id", &f.client.client_id),
            ("redirect_uri", CB),
            ("scope", "openid"),
            ("state", "s9"),
            ("prompt", "none"),
        ],
    );
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(r.header("location").unwrap().starts_with(CB));
    assert_eq!(param(&r, "error").as_deref(), Some("consent_required"));
    assert_eq!(param(&r, "state").as_deref(), Some("s9"));
    // Without prompt=none, the person is asked: the consent page.
    let r = authorize(
        &f.s,
        Some(&f.cookie),
        &[
            ("response_type", "code"),
            ("client_id", &f.client.client_id),
            ("redirect_uri", CB),
            ("scope", "openid"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("name=\"decision\" value=\"allow\""));
}

// ---- token and id_token --------------------------------------------------

fn jwks_key(s: &TestServer, kid: &str) -> jsonwebtoken::DecodingKey {
    let jwks = s.get("/.well-known/jwks.json").json();
    let k = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == json!(kid))
        .unwrap()
        .clone();
    jsonwebtoken::DecodingKey::from_ec_components(
        k["x"].as_str().unwrap(),
        k["y"].as_str().unwrap(),
    )
    .unwrap()
}

fn verify_id_token(s: &TestServer, token: &str, aud: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let key = jwks_key(s, header.kid.as_deref().unwrap());
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[aud]);
    v.set_issuer(&[s.config_issuer()]);
    // The server's clock is a manual one; check exp ourselves.
    v.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

#[test]
fn the_code_flow_gives_an_id_token_that_verifies_against_the_jwks() {
    let f = flow();
    f.s.conn()
        .execute(
            "UPDATE users SET email_verified_at = 1, name = 'Ada King Lovelace' WHERE id = ?1",
            [&f.user.id],
        )
        .unwrap();
    let code = f.code("openid profile email groups", &[]);
    let r = f.exchange(&code);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let t = r.json();
    assert_eq!(t["token_type"], json!("Bearer"));
    assert!(
        t.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    let access = t["access_token"].as_str().unwrap();
    let c = verify_id_token(&f.s, t["id_token"].as_str().unwrap(), &f.client.client_id);
    assert_eq!(c["sub"], json!(f.user.id));
    assert_eq!(c["azp"], json!(f.client.client_id));
    assert_eq!(c["nonce"], json!("n0nce"));
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
    assert_eq!(c["acr"], json!("aal2"));
    assert_eq!(c["auth_time"], json!(f.s.now() - 30));
    assert!(c["exp"].as_i64().unwrap() > c["iat"].as_i64().unwrap());
    let digest = ring::digest::digest(&ring::digest::SHA256, access.as_bytes());
    assert_eq!(
        c["at_hash"],
        json!(hallpass::crypto::b64url(&digest.as_ref()[..16]))
    );
    assert_eq!(c["email"], json!("ada@example.com"));
    assert_eq!(c["email_verified"], json!(true));
    assert_eq!(c["name"], json!("Ada King Lovelace"));
    assert_eq!(c["given_name"], json!("Ada"));
    assert_eq!(c["family_name"], json!("King Lovelace"));
    assert_eq!(c["preferred_username"], json!("ada"));
    // The test user is a member of the "default" tenant.
    assert_eq!(c["groups"], json!(["default"]));
    assert_eq!(c["role"], json!("user"));
    // userinfo, GET and POST.
    let u = f.s.get_auth("/oauth2/userinfo", access);
    assert_eq!(u.status, 200, "{}", u.body);
    assert_eq!(u.json()["sub"], json!(f.user.id));
    assert_eq!(u.json()["email"], json!("ada@example.com"));
    let u = f.s.request(
        "POST",
        "/oauth2/userinfo",
        &[("Authorization", &format!("Bearer {access}"))],
        None,
    );
    assert_eq!(u.json()["name"], json!("Ada King Lovelace"));
    assert_eq!(f.s.get_auth("/oauth2/userinfo", "garbage").status, 401);
    assert_eq!(f.s.get("/oauth2/userinfo").status, 401);
}

#[test]
fn claims_follow_the_scope() {
    let f = flow();
    let code = f.code("openid", &[]);
    let t = f.exchange(&code).json();
    let c = verify_id_token(&f.s, t["id_token"].as_str().unwrap(), &f.client.client_id);
    assert!(c.get("email").is_none() && c.get("name").is_none() && c.get("groups").is_none());
    let u =
        f.s.get_auth("/oauth2/userinfo", t["access_token"].as_str().unwrap())
            .json();
    assert_eq!(u, json!({"sub": f.user.id}));
}

#[test]
fn offline_access_gives_a_refresh_token_that_rotates_with_reuse_detection() {
    let f = flow();
    let code = f.code("openid offline_access", &[]);
    let t = f.exchange(&code).json();
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let basic = Some((f.client.client_id.as_str(), f.secret.as_str()));
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        basic,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t2 = r.json();
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt, rt2);
    let c = verify_id_token(&f.s, t2["id_token"].as_str().unwrap(), &f.client.client_id);
    assert_eq!(c["auth_time"], json!(f.s.now() - 30));
    // After the grace window, the old one again is reuse: the family ends.
    f.s.advance(60);
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        basic,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], json!("invalid_grant"));
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
        basic,
    );
    assert_eq!(r.json()["error"], json!("invalid_grant"));
    // A wider scope than granted is refused.
    let code = f.code("openid offline_access", &[]);
    let rt = f.exchange(&code).json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "openid email"),
        ],
        basic,
    );
    assert_eq!(r.json()["error"], json!("invalid_scope"));
}

#[test]
fn a_replayed_code_is_refused_and_revokes_what_it_bought() {
    let f = flow();
    let code = f.code("openid offline_access", &[]);
    let t = f.exchange(&code).json();
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(f.s.get_auth("/oauth2/userinfo", access).status, 200);
    let r = f.exchange(&code);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], json!("invalid_grant"));
    assert_eq!(f.s.get_auth("/oauth2/userinfo", access).status, 401);
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
        Some((&f.client.client_id, &f.secret)),
    );
    assert_eq!(r.json()["error"], json!("invalid_grant"));
}

#[test]
fn a_code_is_bound_to_its_client_and_redirect_uri() {
    let f = flow();
    let (other, other_secret) = f.s.add_client();
    let code = f.code("openid", &[]);
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
        ],
        Some((&other.client_id, &other_secret)),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], json!("invalid_grant"));
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example/other"),
        ],
        Some((&f.client.client_id, &f.secret)),
    );
    assert_eq!(r.json()["error"], json!("invalid_grant"));
    // Neither refusal used it up; client_secret_post works too.
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("client_id", &f.client.client_id),
            ("client_secret", &f.secret),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_provider_code_is_not_good_at_the_native_exchange_nor_a_native_code_here() {
    let f = flow();
    let code = f.code("openid", &[]);
    let r = f.s.post(
        "/auth/token",
        &json!({"clientId": f.client.client_id, "code": code}),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    // Still good where it belongs.
    assert_eq!(f.exchange(&code).status, 200);
    let r = f.s.post(
        "/auth/login",
        &json!({"client_id": f.client.client_id, "client_secret": f.secret, "username": "ada",
                "password": crate::support::PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let native = r.json()["code"].as_str().unwrap().to_string();
    let r = f.exchange(&native);
    assert_eq!(r.json()["error"], json!("invalid_grant"));
}

#[test]
fn bad_client_authentication_is_a_401_with_www_authenticate() {
    let f = flow();
    let code = f.code("openid", &[]);
    for basic in [Some((f.client.client_id.as_str(), "wrong")), None] {
        let r = post_form(
            &f.s,
            "/oauth2/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CB),
            ],
            basic,
        );
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.json()["error"], json!("invalid_client"));
        assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    }
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[("grant_type", "password")],
        Some((&f.client.client_id, &f.secret)),
    );
    assert_eq!(r.json()["error"], json!("unsupported_grant_type"));
}

#[test]
fn public_clients_must_use_pkce_and_the_right_verifier() {
    let f = flow();
    let spa = public_client(&f.s);
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let base = [
        ("response_type", "code"),
        ("client_id", spa.client_id.as_str()),
        ("redirect_uri", CB),
        ("scope", "openid"),
    ];
    let r = authorize(&f.s, Some(&f.cookie), &base);
    assert_eq!(param(&r, "error").as_deref(), Some("invalid_request"));
    let mut with = base.to_vec();
    with.extend([
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]);
    let r = authorize(&f.s, Some(&f.cookie), &with);
    let code = param(&r, "code").unwrap();
    let exchange = |v: Option<&str>| {
        let mut p = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CB),
            ("client_id", spa.client_id.as_str()),
        ];
        if let Some(v) = v {
            p.push(("code_verifier", v));
        }
        post_form(&f.s, "/oauth2/token", &p, None)
    };
    for wrong in [None, Some("x".repeat(43).as_str())] {
        let r = exchange(wrong);
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["error"], json!("invalid_grant"));
    }
    let r = exchange(Some(verifier));
    assert_eq!(r.status, 200, "{}", r.body);
    // A public client gets no client_credentials.
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &spa.client_id),
        ],
        None,
    );
    assert_eq!(r.status, 401);
}

// ---- client_credentials, introspection, revocation ------------------------

#[test]
fn client_credentials_gives_an_access_token_without_a_user() {
    let f = flow();
    let basic = Some((f.client.client_id.as_str(), f.secret.as_str()));
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[("grant_type", "client_credentials")],
        basic,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json();
    assert!(t.get("refresh_token").is_none() && t.get("id_token").is_none());
    let token = t["access_token"].as_str().unwrap();
    // Not a user's token anywhere.
    assert_eq!(f.s.get_auth("/oauth2/userinfo", token).status, 401);
    assert_eq!(f.s.get_auth("/auth/me", token).status, 401);
    let i = post_form(&f.s, "/oauth2/introspect", &[("token", token)], basic).json();
    assert_eq!(i["active"], json!(true));
    assert_eq!(i["sub"], json!(f.client.client_id));
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[("grant_type", "client_credentials"), ("scope", "openid")],
        basic,
    );
    assert_eq!(r.json()["error"], json!("invalid_scope"));
}

#[test]
fn introspection_and_revocation_follow_the_session() {
    let f = flow();
    let basic = Some((f.client.client_id.as_str(), f.secret.as_str()));
    let code = f.code("openid offline_access", &[]);
    let t = f.exchange(&code).json();
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    let i = post_form(&f.s, "/oauth2/introspect", &[("token", access)], basic).json();
    assert_eq!(i["active"], json!(true), "{i}");
    assert_eq!(i["sub"], json!(f.user.id));
    assert_eq!(i["scope"], json!("openid offline_access"));
    assert_eq!(i["client_id"], json!(f.client.client_id));
    let i = post_form(&f.s, "/oauth2/introspect", &[("token", refresh)], basic).json();
    assert_eq!(
        (i["active"].clone(), i["token_type"].clone()),
        (json!(true), json!("refresh_token"))
    );
    for junk in ["nope", "a.b.c"] {
        let i = post_form(&f.s, "/oauth2/introspect", &[("token", junk)], basic).json();
        assert_eq!(i, json!({"active": false}));
    }
    // Another client learns nothing.
    let (other, other_secret) = f.s.add_client();
    let i = post_form(
        &f.s,
        "/oauth2/introspect",
        &[("token", access)],
        Some((&other.client_id, &other_secret)),
    )
    .json();
    assert_eq!(i, json!({"active": false}));
    // Introspection needs client authentication.
    assert_eq!(
        post_form(&f.s, "/oauth2/introspect", &[("token", access)], None).status,
        401
    );
    // Revocation: 200 for anything, and the session ends.
    assert_eq!(
        post_form(&f.s, "/oauth2/revoke", &[("token", "unknown")], basic).status,
        200
    );
    let r = post_form(
        &f.s,
        "/oauth2/revoke",
        &[("token", refresh), ("token_type_hint", "refresh_token")],
        basic,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let i = post_form(&f.s, "/oauth2/introspect", &[("token", access)], basic).json();
    assert_eq!(i, json!({"active": false}));
    assert_eq!(f.s.get_auth("/oauth2/userinfo", access).status, 401);
    // Expiry makes a token inactive.
    let code = f.code("openid", &[]);
    let access = f.exchange(&code).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    f.s.advance(3600);
    let i = post_form(&f.s, "/oauth2/introspect", &[("token", &access)], basic).json();
    assert_eq!(i, json!({"active": false}));
}

// ---- end-session ----------------------------------------------------------

#[test]
fn end_session_checks_the_hint_and_the_registered_uri_and_ends_the_browser_session() {
    let f = flow();
    f.s.conn()
        .execute(
            "UPDATE clients SET post_logout_redirect_urls = '[\"https://app.example/bye\"]'",
            [],
        )
        .unwrap();
    let code = f.code("openid", &[]);
    let id_token = f.exchange(&code).json()["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    // alg none, with our kid and the same claims: refused, no redirect.
    let parts: Vec<&str> = id_token.split('.').collect();
    let header: Value =
        serde_json::from_slice(&hallpass::crypto::b64url_decode(parts[0]).unwrap()).unwrap();
    let none = hallpass::crypto::b64url(
        json!({"alg": "none", "typ": "JWT", "kid": header["kid"]})
            .to_string()
            .as_bytes(),
    );
    let forged = format!("{none}.{}.", parts[1]);
    let q = query(&[
        ("id_token_hint", &forged),
        ("post_logout_redirect_uri", "https://app.example/bye"),
    ]);
    let r = f.s.request(
        "GET",
        &format!("/oauth2/end-session?{q}"),
        &[("Cookie", &f.cookie)],
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.header("location").is_none());
    // The session is still there.
    let again = authorize(
        &f.s,
        Some(&f.cookie),
        &[
            ("response_type", "code"),
            ("client_id", &f.client.client_id),
            ("redirect_uri", CB),
            ("scope", "openid"),
        ],
    );
    assert!(param(&again, "code").is_some());
    // An unregistered post-logout URI: refused.
    let q = query(&[
        ("id_token_hint", &id_token),
        ("post_logout_redirect_uri", "https://evil.example/"),
    ]);
    let r = f.s.get(&format!("/oauth2/end-session?{q}"));
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
    // The real hint and a registered URI: back there with state, the
    // browser session ended and its cookie cleared.
    let q = query(&[
        ("id_token_hint", &id_token),
        ("post_logout_redirect_uri", "https://app.example/bye"),
        ("state", "bye1"),
    ]);
    let r = f.s.request(
        "GET",
        &format!("/oauth2/end-session?{q}"),
        &[("Cookie", &f.cookie)],
        None,
    );
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some("https://app.example/bye?state=bye1")
    );
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = authorize(
        &f.s,
        Some(&f.cookie),
        &[
            ("response_type", "code"),
            ("client_id", &f.client.client_id),
            ("redirect_uri", CB),
            ("scope", "openid"),
        ],
    );
    assert!(after.header("location").unwrap().starts_with("/signin"));
    // No hint, no URI: a signed-out page.
    let r = f.s.get("/oauth2/end-session");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("signed out"));
}

// ---- the CLI ---------------------------------------------------------------

#[test]
fn client_add_and_update_set_the_providers_settings() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = crate::cli::hallpass(dir.path());
        c.args(args);
        let (ok, out, err) = crate::cli::run_command(c, None);
        assert!(ok, "{args:?}: {err}");
        out
    };
    run(&["init"]);
    let out = run(&[
        "client",
        "add",
        "grafana",
        "--redirect-url",
        "https://grafana.example/login/generic_oauth",
        "--public",
        "--scope",
        "openid",
        "--scope",
        "email",
        "--post-logout-redirect-url",
        "https://grafana.example/login",
        "--consent",
        "--alg",
        "ES256",
    ]);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("client_id: "))
        .unwrap()
        .to_string();
    let list: Value = serde_json::from_str(run(&["client", "list", "--json"]).trim()).unwrap();
    let c = &list[0];
    assert_eq!(c["public"], json!(true));
    assert_eq!(c["scopes"], json!(["openid", "email"]));
    assert_eq!(c["consent"], json!(true));
    assert_eq!(c["token_alg"], json!("ES256"));
    assert_eq!(
        c["post_logout_redirect_urls"],
        json!(["https://grafana.example/login"])
    );
    let out = run(&[
        "client",
        "update",
        &id,
        "--first-party",
        "--alg",
        "default",
        "--scope",
        "openid",
        "--scope",
        "groups",
    ]);
    let c: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(c["consent"], json!(false));
    assert_eq!(c["token_alg"], Value::Null);
    assert_eq!(c["scopes"], json!(["openid", "groups"]));
    assert_eq!(c["name"], json!("grafana"));
    // Contradicting flags and unknown scopes are refused.
    let mut c = crate::cli::hallpass(dir.path());
    c.args(["client", "update", &id, "--first-party", "--consent"]);
    assert!(!crate::cli::run_command(c, None).0);
    let mut c = crate::cli::hallpass(dir.path());
    c.args(["client", "update", &id, "--scope", "admin"]);
    assert!(!crate::cli::run_command(c, None).0);
}

// ---- per-client algorithm ---------------------------------------------------

#[test]
fn an_rs256_client_gets_rs256_id_tokens_when_the_server_key_is_rsa() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/rsa-2048.pem");
    let s = TestServer::start_with(|c| {
        c.algorithm = hallpass::jwt::Alg::Rs256;
        c.rsa_key_file = Some(fixture.clone());
    });
    let user = s.add_user("ada@example.com");
    let (client, secret) = s.add_client();
    let cookie = browser(&s, &user.id, &["pwd"], s.now());
    let d = s.get("/.well-known/openid-configuration").json();
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    s.conn()
        .execute("UPDATE clients SET token_alg = 'RS256'", [])
        .unwrap();
    let pairs = [
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", CB),
        ("scope", "openid email"),
    ];
    let r = authorize(&s, Some(&cookie), &pairs);
    let code = param(&r, "code").unwrap_or_else(|| panic!("{:?}", r.header("location")));
    let r = post_form(
        &s,
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
        ],
        Some((&client.client_id, &secret)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id_token = r.json()["id_token"].as_str().unwrap().to_string();
    let header = jsonwebtoken::decode_header(&id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let jwks = s.get("/.well-known/jwks.json").json();
    let k = &jwks["keys"][0];
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        k["n"].as_str().unwrap(),
        k["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[&client.client_id]);
    v.validate_exp = false;
    let c = jsonwebtoken::decode::<Value>(&id_token, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(c["email"], json!("ada@example.com"));
    // A client that wants ES256 from an RSA server is told, at authorize.
    s.conn()
        .execute("UPDATE clients SET token_alg = 'ES256'", [])
        .unwrap();
    let r = authorize(&s, Some(&cookie), &pairs);
    assert_eq!(param(&r, "error").as_deref(), Some("server_error"));
}

#[test]
fn an_apps_tokens_are_good_only_at_the_provider_never_at_hallpasss_own_apis() {
    // An admin signs into an app: the app's access token must not carry
    // the admin's power over hallpass, nor its refresh token skip the
    // app's own authentication (review of issue 13).
    let f = flow();
    f.s.conn()
        .execute(
            "UPDATE users SET role = 'admin' WHERE id = ?1",
            [&f.user.id],
        )
        .unwrap();
    let code = f.code("openid email offline_access", &[]);
    let t = f.exchange(&code).json();
    let at = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    let ui = f.s.get_auth("/oauth2/userinfo", at);
    assert_eq!(ui.status, 200, "{}", ui.body);
    for path in ["/auth/me", "/admin/clients", "/api/user/mfa/generate"] {
        let r = f.s.get_auth(path, at);
        assert_eq!(r.status, 401, "{path}: {} {}", r.status, r.body);
    }
    let made = f.s.send_auth(
        "POST",
        "/admin/clients",
        at,
        &json!({"name": "backdoor", "redirect_urls": ["https://evil.example/cb"]}),
    );
    assert_eq!(made.status, 401, "{}", made.body);
    let native =
        f.s.post("/auth/token-refresh", &json!({ "refreshToken": rt }));
    assert_eq!(native.status, 401, "{}", native.body);
    // ... and it still works where the app authenticates.
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        Some((&f.client.client_id, &f.secret)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn max_age_zero_asks_for_one_fresh_sign_in_and_then_answers() {
    let f = flow();
    let pairs = [
        ("response_type", "code"),
        ("client_id", f.client.client_id.as_str()),
        ("redirect_uri", CB),
        ("scope", "openid"),
        ("max_age", "0"),
    ];
    let r = authorize(&f.s, Some(&f.cookie), &pairs);
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap().to_string();
    assert!(loc.starts_with("/signin?return_to="), "{loc}");
    // Back from a sign-in a second later (a fresh session), the same
    // request answers with a code instead of looping.
    f.s.advance(1);
    let fresh = browser(&f.s, &f.user.id, &["pwd"], f.s.now());
    f.s.advance(1);
    let back = hallpass::url::percent_decode(loc.trim_start_matches("/signin?return_to="), false);
    let r = f.s.request("GET", &back, &[("Cookie", &fresh)], None);
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(param(&r, "code").is_some(), "{:?}", r.header("location"));
}

#[test]
fn an_id_token_is_no_bearer_and_an_access_token_is_no_logout_hint() {
    let f = flow();
    let code = f.code("openid", &[]);
    let t = f.exchange(&code).json();
    let basic = Some((f.client.client_id.as_str(), f.secret.as_str()));
    let id_token = t["id_token"].as_str().unwrap();
    let r = post_form(&f.s, "/oauth2/introspect", &[("token", id_token)], basic);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["active"], json!(false), "{}", r.body);
    let at = t["access_token"].as_str().unwrap();
    let r = post_form(&f.s, "/oauth2/introspect", &[("token", at)], basic);
    assert_eq!(r.json()["active"], json!(true), "{}", r.body);
    let path = format!("/oauth2/end-session?{}", query(&[("id_token_hint", at)]));
    let r = f.s.request("GET", &path, &[("Cookie", &f.cookie)], None);
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn a_refresh_may_ask_for_a_narrower_scope_and_keeps_its_refresh_token() {
    let f = flow();
    let code = f.code("openid email offline_access", &[]);
    let rt = f.exchange(&code).json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post_form(
        &f.s,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "openid"),
        ],
        Some((&f.client.client_id, &f.secret)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json();
    assert_eq!(t["scope"], json!("openid"));
    assert!(
        t["refresh_token"].is_string(),
        "the refresh token stays: {t}"
    );
    let c = verify_id_token(&f.s, t["id_token"].as_str().unwrap(), &f.client.client_id);
    assert!(c.get("email").is_none(), "{c}");
}

#[test]
fn a_plain_link_to_end_session_asks_before_signing_anyone_out() {
    // Logout CSRF: without an id_token of the signed-in person, the
    // browser goes to the sign-out page's confirm form and stays signed in.
    let f = flow();
    let r =
        f.s.request("GET", "/oauth2/end-session", &[("Cookie", &f.cookie)], None);
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(r.header("location"), Some("/signout"));
    assert!(
        !r.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.contains("Max-Age=0")),
        "the session cookie is kept"
    );
    // Still signed in: a silent authorize gets a code.
    let code = f.code("openid", &[("prompt", "none")]);
    assert!(!code.is_empty());
    // Another person's id_token (this browser is ada's) with a registered
    // post-logout URI: the confirm page again, carrying the way back,
    // which its form checks once more (tests/it/web_consent.rs).
    f.s.conn()
        .execute(
            "UPDATE clients SET post_logout_redirect_urls = '[\"https://app.example/bye\"]'",
            [],
        )
        .unwrap();
    let bob = f.s.add_user("bob@example.com");
    let bobs = browser(&f.s, &bob.id, &["pwd"], f.s.now() - 5);
    let r = authorize(
        &f.s,
        Some(&bobs),
        &[
            ("response_type", "code"),
            ("client_id", &f.client.client_id),
            ("redirect_uri", CB),
            ("scope", "openid"),
        ],
    );
    let code = param(&r, "code").unwrap();
    let id_token = f.exchange(&code).json()["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    let q = query(&[
        ("id_token_hint", &id_token),
        ("post_logout_redirect_uri", "https://app.example/bye"),
        ("state", "s&2"),
    ]);
    let r = f.s.request(
        "GET",
        &format!("/oauth2/end-session?{q}"),
        &[("Cookie", &f.cookie)],
        None,
    );
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(
        r.header("location").unwrap(),
        format!(
            "/signout?client_id={}&post_logout_redirect_uri={}&state={}",
            f.client.client_id,
            enc("https://app.example/bye"),
            enc("s&2")
        )
    );
}

// ---- consent clients outside the provider (review 13) ---------------------

/// Makes `client_id` a consent client.
fn make_consent(s: &TestServer, client_id: &str) {
    s.conn()
        .execute(
            "UPDATE clients SET consent = 1 WHERE client_id = ?1",
            [client_id],
        )
        .unwrap();
}

/// A consent client's refusal outside the provider: 400 JSON, no redirect,
/// saying where the app must sign people in.
fn refused_outside_the_provider(r: &crate::support::Resp) {
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.header("location").is_none(), "{:?}", r.headers);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("/oauth2/authorize"), "{message}");
}

/// Review 13: a plain link to the native social start with a consent
/// client's id signed a person in to that app (code, /auth/token,
/// /auth/me) with no consent asked. The start now refuses it.
#[test]
fn a_consent_client_cannot_sign_anyone_in_through_the_native_social_start() {
    use crate::social::{google_idp, world, GOOGLE};
    let idp = google_idp();
    let w = world(&idp, "open", GOOGLE);
    make_consent(&w.s, &w.client.client_id);
    let r = w.s.get(&format!(
        "/auth/google?client_id={}",
        enc(&w.client.client_id)
    ));
    refused_outside_the_provider(&r);
    // With its secret too: the app is the one that must not skip consent.
    let r = w.s.get(&format!(
        "/auth/google?client_id={}&client_secret={}",
        enc(&w.client.client_id),
        enc(&w.secret)
    ));
    refused_outside_the_provider(&r);
    assert!(idp.authorizations().is_empty());
    let states: i64 =
        w.s.conn()
            .query_row("SELECT count(*) FROM oauth_states", [], |r| r.get(0))
            .unwrap();
    assert_eq!(states, 0);
}

/// A client made a consent client between the start and the callback gets
/// `access_denied` at its redirect URI, and no code is issued.
#[test]
fn a_client_made_consent_during_a_social_sign_in_gets_access_denied() {
    use crate::social::{authorize, callback, google_idp, query_of, started, world, GOOGLE};
    let idp = google_idp();
    let w = world(&idp, "open", GOOGLE);
    let r = w.s.get(&format!(
        "/auth/google?client_id={}&state=app1",
        enc(&w.client.client_id)
    ));
    let st = started(&r, &idp);
    make_consent(&w.s, &w.client.client_id);
    let back = authorize(&idp, &st);
    let r = callback(&w.s, &back, Some(&st.cookie));
    assert_eq!(r.status, 302, "{}", r.body);
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with(CB), "{loc}");
    let q = query_of(loc);
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(q.get("state").map(String::as_str), Some("app1"));
    assert!(!q.contains_key("code"));
    let codes: i64 =
        w.s.conn()
            .query_row("SELECT count(*) FROM auth_codes", [], |r| r.get(0))
            .unwrap();
    assert_eq!(codes, 0);
}

/// The other native sign-ins that name a client without a consent step
/// refuse a consent client the same way: emailed sign-in codes and fast
/// sign-up.
#[test]
fn emailed_codes_and_fast_sign_up_refuse_a_consent_client() {
    let s = TestServer::start_with(|c| c.signup = hallpass::config::Signup::Open);
    s.add_user("ada@example.com");
    let (client, secret) = s.add_client();
    make_consent(&s, &client.client_id);
    let with = |extra: Value| {
        let mut b = json!({"client_id": client.client_id, "client_secret": secret});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for path in ["/auth/send-otp", "/auth/passwordless/start"] {
        let r = s.post(path, &with(json!({"key": "ada@example.com"})));
        refused_outside_the_provider(&r);
    }
    let mailed: i64 = s
        .conn()
        .query_row("SELECT count(*) FROM mail_outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mailed, 0);
    let r = s.post(
        "/auth/signup/fast",
        &with(
            json!({"username": "eve", "password": crate::support::PASSWORD,
                     "email": "eve@example.com"}),
        ),
    );
    refused_outside_the_provider(&r);
    let users: i64 = s
        .conn()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 1);
}

// ---- hallpass_auth_after (review 13) --------------------------------------

/// The return_to of a 302 to the sign-in page, decoded.
fn sign_in_return(r: &crate::support::Resp) -> String {
    let loc = r.header("location").unwrap_or("");
    assert!(loc.starts_with("/signin?return_to="), "{} {loc}", r.status);
    hallpass::url::percent_decode(loc.trim_start_matches("/signin?return_to="), false)
}

/// Review 13: `hallpass_auth_after` was read from the request as given, so
/// `prompt=login&hallpass_auth_after=0` (or with `max_age=0`) skipped the
/// new sign-in. Only a value the server sealed for this same request,
/// within the hour, counts; the sign-in page's round trip still works.
#[test]
fn a_forged_or_foreign_hallpass_auth_after_does_not_skip_the_new_sign_in() {
    use crate::browser::Browser;
    use crate::support::PASSWORD;
    let s = TestServer::start();
    s.add_user("ada@example.com");
    let (client, _) = s.add_client();
    let b = Browser::new(&s);
    assert_eq!(b.sign_in(None, "ada", PASSWORD).status, 303);
    s.advance(3600);
    let req = |state: &str, extra: &[(&str, &str)]| {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", CB),
            ("scope", "openid"),
            ("state", state),
        ];
        pairs.extend_from_slice(extra);
        format!("/oauth2/authorize?{}", query(&pairs))
    };
    // Forged: a bare time, or a time with a made-up seal.
    for forged in ["0", "0.AAAA", "99999999999"] {
        for ask in [("prompt", "login"), ("max_age", "0")] {
            let r = b.get(&req("a", &[ask, ("hallpass_auth_after", forged)]));
            sign_in_return(&r);
        }
    }
    // Foreign: a value sealed for another request (another state).
    let back = sign_in_return(&b.get(&req("a", &[("max_age", "0")])));
    let value = hallpass::http::parse_form(back.split_once('?').unwrap().1)
        .into_iter()
        .find(|(k, _)| k == "hallpass_auth_after")
        .unwrap()
        .1;
    let r = b.get(&req(
        "b",
        &[("max_age", "0"), ("hallpass_auth_after", &value)],
    ));
    sign_in_return(&r);
    // The genuine return, with the old session: asked again.
    sign_in_return(&b.get(&back));
    // Through the sign-in page: one new sign-in, then the code.
    s.advance(1);
    let r = b.sign_in(Some(&back), "ada", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    let r = b.get(r.header("location").unwrap());
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(param(&r, "code").is_some(), "{:?}", r.header("location"));
    // Past the hour, the same return asks again.
    s.advance(hallpass::oidc::authorize::AUTH_AFTER_TTL);
    sign_in_return(&b.get(&back));
}

/// prompt=login without a browser session: the one sign-in is the new
/// one; the return does not ask for another.
#[test]
fn prompt_login_without_a_session_asks_for_one_sign_in_only() {
    use crate::browser::Browser;
    use crate::support::PASSWORD;
    let s = TestServer::start();
    s.add_user("ada@example.com");
    let (client, _) = s.add_client();
    let b = Browser::new(&s);
    let path = format!(
        "/oauth2/authorize?{}",
        query(&[
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", CB),
            ("scope", "openid"),
            ("prompt", "login"),
        ])
    );
    let back = sign_in_return(&b.get(&path));
    assert!(!back.contains("prompt"), "{back}");
    let r = b.sign_in(Some(&back), "ada", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    let r = b.get(r.header("location").unwrap());
    assert!(param(&r, "code").is_some(), "{:?}", r.header("location"));
}

// ---- end-session with an earlier session's id_token (review 13) ----------

/// Review 13 (RP-Initiated Logout 1.0 §2): the hint was matched on `sub`
/// only, so an id_token from an earlier, ended session signed the same
/// person out of a later one without asking. Now only an id_token of the
/// current session (its `auth_time`) ends it silently; an earlier one
/// goes to the sign-out page's confirm form, as no hint does.
#[test]
fn an_id_token_of_an_earlier_session_does_not_end_a_later_one_without_asking() {
    let f = flow();
    let old = f.exchange(&f.code("openid", &[])).json()["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    // That session ends; days later the same person signs in again.
    f.s.conn().execute("DELETE FROM web_sessions", []).unwrap();
    f.s.advance(3 * 86400);
    let later = browser(&f.s, &f.user.id, &["pwd"], f.s.now());
    let end = |hint: &str| {
        f.s.request(
            "GET",
            &format!("/oauth2/end-session?{}", query(&[("id_token_hint", hint)])),
            &[("Cookie", &later)],
            None,
        )
    };
    let r = end(&old);
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(r.header("location"), Some("/signout"));
    let sessions = |s: &TestServer| -> i64 {
        s.conn()
            .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(sessions(&f.s), 1, "the later session is kept");
    // An id_token of the later session ends it at once.
    let pairs = [
        ("response_type", "code"),
        ("client_id", f.client.client_id.as_str()),
        ("redirect_uri", CB),
        ("scope", "openid"),
    ];
    let code = param(&authorize(&f.s, Some(&later), &pairs), "code").unwrap();
    let current = f.exchange(&code).json()["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = end(&current);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("signed out"));
    assert_eq!(sessions(&f.s), 0);
}

/// The native password sign-in names its client too: a consent client's
/// app may not collect a person's password and skip the consent page.
#[test]
fn the_native_password_sign_in_refuses_a_consent_client() {
    let s = TestServer::start();
    s.add_user("ada@example.com");
    let (client, secret) = s.add_client();
    let login = |s: &TestServer| {
        s.post(
            "/auth/login",
            &json!({"client_id": client.client_id, "client_secret": secret,
                    "username": "ada", "password": crate::support::PASSWORD}),
        )
    };
    assert_eq!(login(&s).status, 200);
    make_consent(&s, &client.client_id);
    refused_outside_the_provider(&login(&s));
    let r = s.post(
        "/auth/login-token",
        &json!({"client_id": client.client_id, "client_secret": secret,
                "username": "ada", "password": crate::support::PASSWORD}),
    );
    refused_outside_the_provider(&r);
}
