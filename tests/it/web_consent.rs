//! The OpenID provider's pages (issue 13) as a browser drives them: the
//! consent page of a consent client (allow, deny, the grant remembered,
//! prompt=consent and prompt=none, its form's CSRF token and sealed
//! request), the error page of an authorization request that cannot go
//! back to the app, and the confirmed sign-out's way back to the app.

use std::collections::HashMap;

use serde_json::json;

use crate::browser::{assert_page_headers, enc, field, location, set_cookie, Browser};
use crate::oidc::assert_misconfigured;
use crate::support::{Resp, TestServer, PASSWORD};

const CB: &str = "https://app.example/cb";
const OTHER: &str = "https://app.example/other";
const BYE: &str = "https://app.example/bye";

/// A server with ada, and a confidential consent client named "Grafana"
/// with two redirect URIs and a post-logout URI.
fn setup() -> (TestServer, hallpass::accounts::Client, String) {
    let s = TestServer::start();
    s.add_user("ada@example.com");
    let (client, secret) = s.add_client();
    s.conn()
        .execute(
            "UPDATE clients SET consent = 1, name = 'Grafana', redirect_urls = ?1,
                    post_logout_redirect_urls = ?2 WHERE client_id = ?3",
            rusqlite::params![
                json!([CB, OTHER]).to_string(),
                json!([BYE]).to_string(),
                client.client_id
            ],
        )
        .unwrap();
    (s, client, secret)
}

fn signed_in(s: &TestServer) -> Browser<'_> {
    let b = Browser::new(s);
    let r = b.sign_in(None, "ada", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    b
}

fn authorize_path(client_id: &str, scope: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("scope", scope),
        ("state", "st&1"),
        ("nonce", "n1"),
    ];
    pairs.extend_from_slice(extra);
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("/oauth2/authorize?{}", q.join("&"))
}

/// The query of a redirect to the app.
fn to_app(r: &Resp) -> HashMap<String, String> {
    let loc = location(r);
    assert!(loc.starts_with(CB), "{} {loc} {}", r.status, r.body);
    hallpass::http::parse_form(loc.split_once('?').unwrap().1)
        .into_iter()
        .collect()
}

/// The consent form's fields from its page, with a decision.
fn answer(page: &Resp, decision: &str) -> Vec<(&'static str, String)> {
    vec![
        ("csrf", field(&page.body, "csrf")),
        ("request", field(&page.body, "request")),
        ("seal", field(&page.body, "seal")),
        ("decision", decision.to_string()),
    ]
}

fn post(b: &Browser, fields: &[(&'static str, String)]) -> Resp {
    let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post("/consent", &f)
}

fn consent_page(b: &Browser, path: &str) -> Resp {
    let r = b.get(path);
    assert_eq!(r.status, 200, "{:?} {}", r.header("location"), r.body);
    assert!(
        r.body.contains("name=\"decision\" value=\"allow\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("name=\"decision\" value=\"deny\""));
    r
}

fn granted(s: &TestServer) -> Option<String> {
    s.conn()
        .query_row("SELECT scope FROM consents", [], |r| r.get(0))
        .ok()
}

fn exchange(s: &TestServer, client: &str, secret: &str, code: &str) -> Resp {
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&client_secret={}",
        enc(code),
        enc(CB),
        enc(client),
        enc(secret)
    );
    s.request(
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    )
}

#[test]
fn a_consent_client_gets_the_page_and_allow_gives_a_code_that_works() {
    let (s, client, secret) = setup();
    let b = signed_in(&s);
    let page = consent_page(
        &b,
        &authorize_path(&client.client_id, "openid email offline_access", &[]),
    );
    assert_page_headers(&page);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    for words in [
        "Allow Grafana?",
        "<strong>Grafana</strong> asks to use your hallpass account, <strong>ada",
        "your email address",
        "Stay connected",
        "(offline_access)",
    ] {
        assert!(page.body.contains(words), "{words}: {}", page.body);
    }
    assert_eq!(granted(&s), None, "nothing stored before the answer");
    let r = post(&b, &answer(&page, "allow"));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_page_headers(&r);
    let q = to_app(&r);
    assert_eq!(q["state"], "st&1");
    assert!(q.contains_key("iss"));
    let t = exchange(&s, &client.client_id, &secret, &q["code"]);
    assert_eq!(t.status, 200, "{}", t.body);
    let t = t.json();
    assert_eq!(t["scope"], json!("openid email offline_access"));
    assert!(t["refresh_token"].is_string());
    let claims: serde_json::Value = serde_json::from_slice(
        &hallpass::crypto::b64url_decode(
            t["id_token"].as_str().unwrap().split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["nonce"], "n1");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(granted(&s).as_deref(), Some("openid email offline_access"));
}

#[test]
fn deny_sends_access_denied_with_state_and_stores_nothing() {
    let (s, client, _) = setup();
    let b = signed_in(&s);
    let page = consent_page(&b, &authorize_path(&client.client_id, "openid", &[]));
    let r = post(&b, &answer(&page, "deny"));
    assert_eq!(r.status, 303, "{}", r.body);
    let q = to_app(&r);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st&1");
    assert!(!q.contains_key("code"));
    assert_eq!(granted(&s), None);
    // Neither allow nor deny: refused, nothing sent to the app.
    let r = post(&b, &answer(&page, "maybe"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.header("location").is_none());
    // And the page asks again next time.
    consent_page(&b, &authorize_path(&client.client_id, "openid", &[]));
}

#[test]
fn the_grant_is_remembered_and_a_wider_scope_asks_again() {
    let (s, client, _) = setup();
    let b = signed_in(&s);
    let page = consent_page(&b, &authorize_path(&client.client_id, "openid email", &[]));
    assert_eq!(post(&b, &answer(&page, "allow")).status, 303);
    // The same scope, and fewer: straight to the app with a code.
    for scope in ["openid email", "email openid", "openid"] {
        let r = b.get(&authorize_path(&client.client_id, scope, &[]));
        assert_eq!(r.status, 302, "{scope}: {}", r.body);
        assert!(to_app(&r).contains_key("code"), "{scope}");
    }
    // A wider one asks again; allowed, the grant is the union.
    let page = consent_page(
        &b,
        &authorize_path(&client.client_id, "openid profile", &[]),
    );
    assert!(page.body.contains("your name"), "{}", page.body);
    let r = post(&b, &answer(&page, "allow"));
    assert!(to_app(&r).contains_key("code"));
    assert_eq!(granted(&s).as_deref(), Some("openid email profile"));
    let r = b.get(&authorize_path(
        &client.client_id,
        "openid email profile",
        &[],
    ));
    assert_eq!(r.status, 302, "{}", r.body);
    // Another person at another browser is asked for their own.
    s.add_user("bob@example.com");
    let bob = Browser::new(&s);
    assert_eq!(bob.sign_in(None, "bob", PASSWORD).status, 303);
    consent_page(&bob, &authorize_path(&client.client_id, "openid", &[]));
}

#[test]
fn prompt_consent_always_asks_and_prompt_none_answers_from_the_grant() {
    let (s, client, _) = setup();
    let b = signed_in(&s);
    // No grant yet: prompt=none is consent_required, at the app.
    let r = b.get(&authorize_path(
        &client.client_id,
        "openid",
        &[("prompt", "none")],
    ));
    assert_eq!(r.status, 302, "{}", r.body);
    let q = to_app(&r);
    assert_eq!(q["error"], "consent_required");
    assert_eq!(q["state"], "st&1");
    let page = consent_page(&b, &authorize_path(&client.client_id, "openid", &[]));
    post(&b, &answer(&page, "allow"));
    // Granted: prompt=none gets a code; a wider scope is consent_required.
    let r = b.get(&authorize_path(
        &client.client_id,
        "openid",
        &[("prompt", "none")],
    ));
    assert!(to_app(&r).contains_key("code"));
    let r = b.get(&authorize_path(
        &client.client_id,
        "openid email",
        &[("prompt", "none")],
    ));
    assert_eq!(to_app(&r)["error"], "consent_required");
    // prompt=consent asks although the grant covers it, and its answer
    // does not ask again.
    let page = consent_page(
        &b,
        &authorize_path(&client.client_id, "openid", &[("prompt", "consent")]),
    );
    let r = post(&b, &answer(&page, "allow"));
    assert!(to_app(&r).contains_key("code"), "{:?}", location(&r));
    // A first-party client never asks, prompt=consent included.
    let (first, _) = s.add_client();
    let r = b.get(&authorize_path(
        &first.client_id,
        "openid",
        &[("prompt", "consent")],
    ));
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(to_app(&r).contains_key("code"));
}

/// Review 13: `prompt=login consent` lost `consent` on the way back from
/// the new sign-in (the whole `prompt` was dropped), so a person who had
/// consented before was not asked again. Only `login` is dropped now.
#[test]
fn prompt_login_consent_still_asks_for_consent_after_the_new_sign_in() {
    let (s, client, _) = setup();
    let b = signed_in(&s);
    let page = consent_page(&b, &authorize_path(&client.client_id, "openid", &[]));
    post(&b, &answer(&page, "allow"));
    s.advance(5);
    let r = b.get(&authorize_path(
        &client.client_id,
        "openid",
        &[("prompt", "login consent")],
    ));
    assert_eq!(r.status, 302, "{}", r.body);
    let back =
        hallpass::url::percent_decode(location(&r).trim_start_matches("/signin?return_to="), false);
    assert!(back.starts_with("/oauth2/authorize?"), "{back}");
    assert!(back.contains("prompt=consent"), "{back}");
    let r = b.sign_in(Some(&back), "ada", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    // Signed in anew: the consent page, though the grant covers the scope.
    let page = consent_page(&b, location(&r));
    let r = post(&b, &answer(&page, "allow"));
    assert!(to_app(&r).contains_key("code"), "{:?}", location(&r));
}

#[test]
fn the_consent_form_needs_its_csrf_token_and_its_own_session() {
    let (s, client, _) = setup();
    let b = signed_in(&s);
    let page = consent_page(&b, &authorize_path(&client.client_id, "openid", &[]));
    let good = answer(&page, "allow");
    let without: Vec<_> = good.iter().filter(|(k, _)| *k != "csrf").cloned().collect();
    let mut wrong = good.clone();
    wrong[0].1 = "x".repeat(43);
    for fields in [without, wrong] {
        let r = post(&b, &fields);
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.header("location").is_none());
        assert!(r.body.contains("Form expired"), "{}", r.body);
        assert_page_headers(&r);
    }
    // Posted by another signed-in browser (its own session, not ada's):
    // the token is not its session's.
    s.add_user("bob@example.com");
    let bob = Browser::new(&s);
    assert_eq!(bob.sign_in(None, "bob", PASSWORD).status, 303);
    assert_eq!(post(&bob, &good).status, 403);
    // Nor with no session at all.
    let nobody = Browser::new(&s);
    assert_eq!(post(&nobody, &good).status, 403);
    assert_eq!(granted(&s), None);
    // The real one still works.
    assert!(to_app(&post(&b, &good)).contains_key("code"));
}

#[test]
fn a_changed_hidden_request_is_refused() {
    let (s, client, _) = setup();
    let (other, _) = s.add_client();
    s.conn()
        .execute(
            "UPDATE clients SET consent = 1 WHERE client_id = ?1",
            [&other.client_id],
        )
        .unwrap();
    let b = signed_in(&s);
    let page = consent_page(&b, &authorize_path(&client.client_id, "openid", &[]));
    let good = answer(&page, "allow");
    let request = good[1].1.clone();
    assert!(request.contains("redirect_uri="), "{request}");
    let forged = [
        // Another registered redirect URI of the same client.
        request.replace(&enc(CB), &enc(OTHER)),
        // Another client.
        request.replace(&client.client_id, &other.client_id),
        // A wider scope.
        request.replace("scope=openid", "scope=openid%20email%20offline_access"),
        // Another state.
        request.replace("state=", "state=x"),
        // A PKCE challenge of the attacker's.
        format!("{request}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"),
    ];
    for f in forged {
        assert_ne!(f, request);
        let mut fields = good.clone();
        fields[1].1 = f.clone();
        let r = post(&b, &fields);
        assert_eq!(r.status, 403, "{f}: {}", r.body);
        assert!(r.header("location").is_none(), "{f}");
    }
    // A seal left out, or another page's seal.
    let mut fields = good.clone();
    fields[2].1 = String::new();
    assert_eq!(post(&b, &fields).status, 403);
    let page2 = consent_page(&b, &authorize_path(&client.client_id, "openid email", &[]));
    fields[2].1 = field(&page2.body, "seal");
    assert_eq!(post(&b, &fields).status, 403);
    assert_eq!(granted(&s), None);
}

#[test]
fn the_request_is_checked_again_when_the_answer_comes_back() {
    // The page was shown; meanwhile the operator changed the client. The
    // answer is checked like a new request, never trusted from the page.
    let (s, client, _) = setup();
    let b = signed_in(&s);
    let page = consent_page(&b, &authorize_path(&client.client_id, "openid email", &[]));
    s.conn()
        .execute(
            "UPDATE clients SET scopes = '[\"openid\"]' WHERE client_id = ?1",
            [&client.client_id],
        )
        .unwrap();
    let r = post(&b, &answer(&page, "allow"));
    assert_eq!(to_app(&r)["error"], "invalid_scope");
    s.conn()
        .execute(
            "UPDATE clients SET redirect_urls = ?1 WHERE client_id = ?2",
            rusqlite::params![json!([OTHER]).to_string(), client.client_id],
        )
        .unwrap();
    let r = post(&b, &answer(&page, "allow"));
    assert_misconfigured(&r);
    assert_eq!(granted(&s), None);
}

#[test]
fn an_unknown_client_or_unregistered_redirect_uri_gets_the_error_page() {
    let (s, client, _) = setup();
    let b = signed_in(&s);
    let anon = Browser::new(&s);
    for who in [&b, &anon] {
        let r = who.get(&authorize_path("nosuchclient", "openid", &[]));
        assert_misconfigured(&r);
        assert!(r.body.contains("client_id is unknown"), "{}", r.body);
        let evil = authorize_path(&client.client_id, "openid", &[])
            .replace(&enc(CB), &enc("https://evil.example/cb"));
        let r = who.get(&evil);
        assert_misconfigured(&r);
        assert!(!r.body.contains("evil.example"), "no echo: {}", r.body);
        // Two registered URIs and none named.
        let r = who.get(&format!(
            "/oauth2/authorize?response_type=code&client_id={}&scope=openid",
            client.client_id
        ));
        assert_misconfigured(&r);
        // client_id twice.
        let r = who.get(&format!(
            "{}&client_id=x",
            authorize_path(&client.client_id, "openid", &[])
        ));
        assert_misconfigured(&r);
    }
    // The form-encoded POST to authorize too.
    let r = s.request(
        "POST",
        "/oauth2/authorize",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"response_type=code&client_id=nosuchclient&scope=openid"),
    );
    assert_misconfigured(&r);
}

#[test]
fn a_withdrawn_consent_asks_again_and_ends_what_it_granted() {
    // Listed on the account page, and withdrawn there.
    let (s, client, secret) = setup();
    let b = signed_in(&s);
    let page = consent_page(
        &b,
        &authorize_path(&client.client_id, "openid offline_access", &[]),
    );
    let code = to_app(&post(&b, &answer(&page, "allow")))["code"].clone();
    let t = exchange(&s, &client.client_id, &secret, &code).json();
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    // A second code, not yet exchanged.
    let r = b.get(&authorize_path(&client.client_id, "openid", &[]));
    let unused = to_app(&r)["code"].clone();
    let user: String = s
        .conn()
        .query_row(
            "SELECT id FROM users WHERE email = 'ada@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let conn = s.conn();
    let listed = hallpass::oidc::consent::list(&conn, &user).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].client_name, "Grafana");
    assert_eq!(listed[0].scopes, vec!["openid", "offline_access"]);
    // The account page lists it, and withdraws it.
    let acct = b.get("/account");
    assert_eq!(acct.status, 200, "{}", acct.body);
    assert!(acct.body.contains("id=\"apps\""), "{}", acct.body);
    assert!(acct.body.contains("Withdraw from Grafana"), "{}", acct.body);
    assert_eq!(field(&acct.body, "client_id"), client.client_id);
    let csrf = field(&acct.body, "csrf");
    let r = b.post(
        "/account/apps/withdraw",
        &[("client_id", &client.client_id)],
    );
    assert_eq!(r.status, 403, "no csrf: {}", r.body);
    let r = b.post(
        "/account/apps/withdraw",
        &[("csrf", &csrf), ("client_id", &client.client_id)],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account?done=app-withdrawn#apps");
    assert!(hallpass::oidc::consent::list(&conn, &user)
        .unwrap()
        .is_empty());
    let acct = b.get("/account?done=app-withdrawn");
    assert!(
        acct.body.contains("no longer has your consent"),
        "{}",
        acct.body
    );
    assert!(
        !acct.body.contains("Withdraw from Grafana"),
        "{}",
        acct.body
    );
    // The refresh token and the unused code are dead; the page asks again.
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}",
        enc(&refresh),
        enc(&client.client_id),
        enc(&secret)
    );
    let r = s.request(
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], json!("invalid_grant"));
    let r = exchange(&s, &client.client_id, &secret, &unused);
    assert_eq!(r.status, 400, "{}", r.body);
    consent_page(&b, &authorize_path(&client.client_id, "openid", &[]));
}

// ---- the confirmed sign-out's way back -------------------------------------

#[test]
fn a_confirmed_sign_out_goes_back_to_the_registered_post_logout_uri_only() {
    let (s, client, _) = setup();
    let b = signed_in(&s);
    let q = format!(
        "/oauth2/end-session?client_id={}&post_logout_redirect_uri={}&state={}",
        client.client_id,
        enc(BYE),
        enc("z&1")
    );
    let r = b.get(&q);
    assert_eq!(r.status, 302, "{}", r.body);
    let confirm = location(&r).to_string();
    assert!(confirm.starts_with("/signout?"), "{confirm}");
    assert!(b.cookie("hallpass").is_some(), "still signed in");
    let page = b.get(&confirm);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("return to Grafana"), "{}", page.body);
    let fields = [
        ("csrf", field(&page.body, "csrf")),
        ("logout_client", field(&page.body, "logout_client")),
        ("logout_uri", field(&page.body, "logout_uri")),
        ("logout_state", field(&page.body, "logout_state")),
    ];
    let post = |b: &Browser, f: &[(&str, String)]| {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.post("/signout", &f)
    };
    let r = post(&b, &fields);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), format!("{BYE}?state=z%261"));
    assert!(set_cookie(&r, "hallpass").unwrap().contains("Max-Age=0"));
    assert!(b.get("/account").status == 303, "signed out");

    // Forged fields: an unregistered URI, or a registered one of another
    // client, is never followed; the person is signed out to /signin.
    let (other, _) = s.add_client();
    s.conn()
        .execute(
            "UPDATE clients SET post_logout_redirect_urls = '[\"https://other.example/bye\"]'
              WHERE client_id = ?1",
            [&other.client_id],
        )
        .unwrap();
    for (c, uri) in [
        (client.client_id.as_str(), "https://evil.example/"),
        (client.client_id.as_str(), "https://other.example/bye"),
        ("nosuchclient", BYE),
    ] {
        let b = signed_in(&s);
        let page = b.get(&format!(
            "/signout?client_id={c}&post_logout_redirect_uri={}",
            enc(uri)
        ));
        assert_eq!(page.status, 200);
        assert!(
            !page.body.contains("logout_uri"),
            "not carried: {}",
            page.body
        );
        let r = post(
            &b,
            &[
                ("csrf", field(&page.body, "csrf")),
                ("logout_client", c.to_string()),
                ("logout_uri", uri.to_string()),
            ],
        );
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(location(&r), "/signin", "{uri}");
    }
    // Without the CSRF token: refused, still signed in.
    let b = signed_in(&s);
    let r = post(
        &b,
        &[
            ("logout_client", client.client_id.clone()),
            ("logout_uri", BYE.to_string()),
        ],
    );
    assert_eq!(r.status, 403);
    assert!(r.header("location").is_none());
    assert_eq!(b.get("/account").status, 200);
    // An unregistered URI at end-session itself: refused, no redirect.
    let r = b.get(&format!(
        "/oauth2/end-session?client_id={}&post_logout_redirect_uri={}",
        client.client_id,
        enc("https://evil.example/")
    ));
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
    // Not signed in: the page offers the way back as a link.
    let anon = Browser::new(&s);
    let page = anon.get(&format!(
        "/signout?client_id={}&post_logout_redirect_uri={}&state=q",
        client.client_id,
        enc(BYE)
    ));
    assert!(page.body.contains("You are not signed in"), "{}", page.body);
    assert!(page.body.contains("Return to Grafana"), "{}", page.body);
}
