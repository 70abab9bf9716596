//! The sign-in pages through the real server, as a browser drives them
//! (`browser.rs`: cookies kept, redirects not followed, forms read back
//! from the HTML).

use serde_json::json;

use crate::browser::{assert_page_headers, enc, field, location, set_cookie, Browser};
use crate::second_factor::{code_at, enable_native};
use crate::support::{TestServer, PASSWORD};

#[test]
fn sign_in_sets_the_session_cookie_with_its_flags_and_a_new_id_every_time() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    let r = b.sign_in(None, "ann", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account");
    let c = set_cookie(&r, "hallpass").expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(c.contains(flag), "{c}");
    }
    assert!(!c.contains("Secure"), "plain http: {c}");
    assert!(
        c.contains("Max-Age=2592000"),
        "the longest a session lives: {c}"
    );
    let first = b.cookie("hallpass").unwrap();
    assert_eq!(first.len(), 43, "256 bits, base64url");
    // Only its hash is stored.
    let stored: String = s
        .conn()
        .query_row("SELECT id_hash FROM web_sessions", [], |r| r.get(0))
        .unwrap();
    assert_ne!(stored, first);

    let acct = b.get("/account");
    assert_eq!(acct.status, 200, "{}", acct.body);
    assert!(acct.body.contains("ann"), "{}", acct.body);
    let method: String = s
        .conn()
        .query_row(
            "SELECT token_payload ->> '$.method' FROM login_activity
              WHERE login_type IN ('ACCESS', 'RELOGIN')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(method, "web");

    // Again: a new id, and the one before no longer signs anyone in.
    let r = b.sign_in(None, "ann@example.com", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    let second = b.cookie("hallpass").unwrap();
    assert_ne!(first, second);
    let old = s.request(
        "GET",
        "/account",
        &[("Cookie", &format!("hallpass={first}"))],
        None,
    );
    assert_eq!(old.status, 303);
    assert_eq!(location(&old), "/signin?return_to=%2Faccount");
}

#[test]
fn over_https_the_cookies_are_host_prefixed_and_secure() {
    let s = TestServer::start_with(|c| c.public_url = Some("https://auth.example".into()));
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    let page = b.get("/signin");
    let csrf = set_cookie(&page, "__Host-hallpass_csrf").expect("a CSRF cookie");
    assert!(
        csrf.contains("Secure") && csrf.contains("HttpOnly"),
        "{csrf}"
    );
    let r = b.sign_in(None, "ann", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    let c = set_cookie(&r, "__Host-hallpass").expect("a session cookie");
    for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(c.contains(flag), "{c}");
    }
    assert!(!c.contains("Domain"), "{c}");
    assert_eq!(b.get("/account").status, 200);
}

#[test]
fn a_wrong_password_and_an_unknown_user_get_the_same_page() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    let wrong = b.sign_in(None, "ann", "not-the-password-1");
    let unknown = b.sign_in(None, "nobody", "not-the-password-1");
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(
        wrong.body.replace("value=\"ann\"", "value=\"X\""),
        unknown.body.replace("value=\"nobody\"", "value=\"X\"")
    );
    assert!(wrong.body.contains("class=\"error\" id=\"password-error\""));
    assert!(b.cookie("hallpass").is_none(), "no session");
    assert_page_headers(&wrong);
    // Empty fields are named next to the field.
    let page = b.get("/signin");
    let r = b.post(
        "/signin",
        &[("csrf", &field(&page.body, "csrf")), ("login", "ann")],
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("id=\"password-error\""), "{}", r.body);
}

#[test]
fn a_locked_account_says_to_wait() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    let mut last = None;
    for _ in 0..12 {
        let r = b.sign_in(None, "ann", "not-the-password-1");
        if r.status == 429 {
            last = Some(r);
            break;
        }
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = last.expect("locked within 12 tries");
    assert!(r.body.contains("Too many attempts. Wait"), "{}", r.body);
    assert!(r.header("retry-after").is_some());
    // The right password waits too.
    let r = b.sign_in(None, "ann", PASSWORD);
    assert_eq!(r.status, 429, "{}", r.body);
}

#[test]
fn a_form_without_its_csrf_token_is_refused() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    b.get("/signin");
    let r = b.post("/signin", &[("login", "ann"), ("password", PASSWORD)]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("Form expired"), "{}", r.body);
    assert_page_headers(&r);
    // A token from another browser's cookie does not fit this one's.
    let other = Browser::new(&s);
    let foreign = field(&other.get("/signin").body, "csrf");
    let r = b.post(
        "/signin",
        &[("csrf", &foreign), ("login", "ann"), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 403);
    // Nor a token without its cookie (a cross-site post from a fresh browser).
    let fresh = Browser::new(&s);
    let r = fresh.post(
        "/signin",
        &[("csrf", &foreign), ("login", "ann"), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 403);
    assert!(b.cookie("hallpass").is_none());

    // Sign-out needs the session's token: without it the session lives on.
    assert_eq!(b.sign_in(None, "ann", PASSWORD).status, 303);
    let r = b.post("/signout", &[]);
    assert_eq!(r.status, 403);
    let r = b.post("/signout", &[("csrf", &foreign)]);
    assert_eq!(r.status, 403);
    assert_eq!(b.get("/account").status, 200);
}

#[test]
fn totp_users_go_through_the_second_factor_page() {
    let s = TestServer::start();
    let (client, cs) = s.add_client();
    let user = s.add_user("ann@example.com");
    let secret = enable_native(&s, &client, &cs, &user);
    let b = Browser::new(&s);
    let r = b.sign_in(Some("/account?tab=1"), "ann", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        location(&r),
        "/signin/second-factor?return_to=%2Faccount%3Ftab%3D1"
    );
    assert!(
        b.cookie("hallpass").is_none(),
        "no session before the factor"
    );
    assert!(b.cookie("hallpass_pending").is_some());
    let n: i64 = s
        .conn()
        .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(b.get("/account").status, 303);

    let page = b.get(location(&r));
    assert_eq!(page.status, 200, "{}", page.body);
    assert_page_headers(&page);
    let csrf = field(&page.body, "csrf");
    let rt = field(&page.body, "return_to");
    assert_eq!(rt, "/account?tab=1");
    let wrong = b.post(
        "/signin/second-factor",
        &[("csrf", &csrf), ("return_to", &rt), ("code", "000000")],
    );
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.body.contains("id=\"code-error\""));
    // The code of the step after the confirming one (enable_native left
    // the clock there).
    let code = code_at(&secret, s.now());
    let r = b.post(
        "/signin/second-factor",
        &[("csrf", &csrf), ("return_to", &rt), ("code", &code)],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account?tab=1");
    assert!(b.cookie("hallpass").is_some());
    assert!(b.cookie("hallpass_pending").is_none(), "done with");
    let acct = b.get("/account");
    assert_eq!(acct.status, 200);
    assert!(acct.body.contains("second factor"), "{}", acct.body);
    let amr: String = s
        .conn()
        .query_row("SELECT amr FROM web_sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(amr, r#"["pwd","otp"]"#);
    // The pending sign-in was single use.
    let again = b.post(
        "/signin/second-factor",
        &[("csrf", &csrf), ("return_to", &rt), ("code", &code)],
    );
    assert_eq!(again.status, 403, "its cookie is gone: {}", again.body);
}

#[test]
fn a_pending_sign_in_survives_five_wrong_codes_only() {
    let s = TestServer::start();
    let (client, cs) = s.add_client();
    let user = s.add_user("ann@example.com");
    let secret = enable_native(&s, &client, &cs, &user);
    let b = Browser::new(&s);
    let r = b.sign_in(None, "ann", PASSWORD);
    let page = b.get(location(&r));
    let csrf = field(&page.body, "csrf");
    for _ in 0..5 {
        let r = b.post(
            "/signin/second-factor",
            &[("csrf", &csrf), ("code", "000000")],
        );
        assert!(matches!(r.status, 401 | 303), "{}", r.body);
    }
    let r = b.post(
        "/signin/second-factor",
        &[("csrf", &csrf), ("code", &code_at(&secret, s.now()))],
    );
    assert_eq!(r.status, 303);
    assert!(location(&r).starts_with("/signin?"), "{r:?}");
    assert!(b.cookie("hallpass").is_none());
}

#[test]
fn return_to_never_leaves_the_server() {
    // Eleven sign-ins from one address: past the default per-IP burst.
    let s = TestServer::start_with(|c| c.limits.login_burst = 100.0);
    s.add_user("ann@example.com");
    for evil in [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
    ] {
        let b = Browser::new(&s);
        let r = b.sign_in(Some(evil), "ann", PASSWORD);
        assert_eq!(r.status, 303, "{evil:?}: {}", r.body);
        assert_eq!(location(&r), "/account", "{evil:?}");
        // Posted straight, past the page.
        let page = b.get("/signin");
        let r = b.post(
            "/signin",
            &[
                ("csrf", &field(&page.body, "csrf")),
                ("return_to", evil),
                ("login", "ann"),
                ("password", PASSWORD),
            ],
        );
        assert_eq!(location(&r), "/account", "{evil:?}");
    }
    let b = Browser::new(&s);
    let to = "/oauth2/authorize?client_id=c&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=x";
    let r = b.sign_in(Some(to), "ann", PASSWORD);
    assert_eq!(location(&r), to);
}

#[test]
fn sign_out_ends_the_session() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    assert_eq!(b.sign_in(None, "ann", PASSWORD).status, 303);
    let id = b.cookie("hallpass").unwrap();
    let confirm = b.get("/signout");
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Sign out"));
    // GET alone signs nobody out.
    assert_eq!(b.get("/account").status, 200);
    let r = b.post("/signout", &[("csrf", &field(&confirm.body, "csrf"))]);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/signin");
    assert!(set_cookie(&r, "hallpass").unwrap().contains("Max-Age=0"));
    assert!(b.cookie("hallpass").is_none());
    let old = s.request(
        "GET",
        "/account",
        &[("Cookie", &format!("hallpass={id}"))],
        None,
    );
    assert_eq!(old.status, 303, "the cookie no longer works");
    assert_eq!(s.activity("LOGOUT"), 1);
    let n: i64 = s
        .conn()
        .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    // Signed out, the confirm page says so.
    assert!(b.get("/signout").body.contains("You are not signed in"));
}

#[test]
fn every_page_carries_the_security_headers() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    for path in [
        "/signin",
        "/signin/second-factor",
        "/signout",
        "/account",
        "/assets/hallpass.css",
    ] {
        let r = b.get(path);
        assert!(matches!(r.status, 200 | 303), "{path}: {}", r.status);
        assert_page_headers(&r);
        if r.status == 200 && path != "/assets/hallpass.css" {
            assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
            assert_eq!(
                r.header("content-type"),
                Some("text/html; charset=utf-8"),
                "{path}"
            );
            assert!(!r.body.contains("<script"), "{path}");
        }
    }
    let css = b.get("/assets/hallpass.css");
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.body.contains(":focus"));
    assert_eq!(b.sign_in(None, "ann", PASSWORD).status, 303);
    let acct = b.get("/account");
    assert_page_headers(&acct);
    assert_eq!(acct.header("cache-control"), Some("no-store"));
}

#[test]
fn sessions_end_when_the_user_is_disabled_or_their_password_changes() {
    let s = TestServer::start();
    let ann = s.add_user("ann@example.com");
    s.add_user("bob@example.com");
    let root = s.add_user("root@example.com");
    s.conn()
        .execute("UPDATE users SET role = 'admin' WHERE id = ?1", [&root.id])
        .unwrap();
    let (client, secret) = s.add_client();
    let admin = s.login_token(&client, &secret, "root")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();

    let b = Browser::new(&s);
    assert_eq!(b.sign_in(None, "ann", PASSWORD).status, 303);
    assert_eq!(b.get("/account").status, 200);
    let r = s.send_auth(
        "POST",
        &format!("/admin/users/{}/disable", ann.id),
        &admin,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(b.get("/account").status, 303, "disabled: signed out");
    // Enabled again, the old cookie stays dead.
    let r = s.send_auth(
        "POST",
        &format!("/admin/users/{}/enable", ann.id),
        &admin,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(b.get("/account").status, 303);

    // A password set by an admin ends Bob's browser session too.
    let b = Browser::new(&s);
    assert_eq!(b.sign_in(None, "bob", PASSWORD).status, 303);
    let r = s.send_auth(
        "POST",
        "/admin/users/bob@example.com/password",
        &admin,
        &json!({"password": "another-fine-password-42"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(b.get("/account").status, 303, "new password: signed out");
}

#[test]
fn a_session_ends_after_its_idle_time_and_at_its_absolute_expiry() {
    let s = TestServer::start_with(|c| {
        c.web_session_idle_secs = 3600;
        c.web_session_max_secs = 3 * 3600;
    });
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    assert_eq!(b.sign_in(None, "ann", PASSWORD).status, 303);
    // In use, it outlives the idle time...
    for _ in 0..3 {
        s.advance(3000);
        assert_eq!(b.get("/account").status, 200);
    }
    // ... but not its absolute lifetime.
    s.advance(3000);
    assert_eq!(b.get("/account").status, 303);
    // Unused for the idle time, a fresh one ends too.
    assert_eq!(b.sign_in(None, "ann", PASSWORD).status, 303);
    s.advance(3601);
    assert_eq!(b.get("/account").status, 303);
}

#[test]
fn over_long_fields_are_named_not_looked_up() {
    let s = TestServer::start();
    let b = Browser::new(&s);
    let long = "a".repeat(321);
    let r = b.sign_in(None, &long, PASSWORD);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"login-error\""));
    let r = b.sign_in(None, "ann", &"p".repeat(1025));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"password-error\""));
}

#[test]
fn an_app_signs_a_person_in_through_the_pages_and_the_openid_provider() {
    // The whole browser path, both halves of issue 13 together: the app
    // sends the browser to /oauth2/authorize, which sends it to /signin,
    // whose form brings it back, now with a session, for the code.
    let s = TestServer::start();
    s.add_user("ada@example.com");
    let (client, secret) = s.add_client();
    let b = Browser::new(&s);
    let authorize = format!(
        "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20email&state=s1&nonce=n1",
        enc(&client.client_id),
        enc("https://app.example/cb")
    );
    let first = b.get(&authorize);
    assert_eq!(first.status, 302, "{}", first.body);
    let to_signin = location(&first).to_string();
    assert!(to_signin.starts_with("/signin?return_to="), "{to_signin}");
    let return_to =
        hallpass::url::percent_decode(to_signin.trim_start_matches("/signin?return_to="), false);
    let signed = b.sign_in(
        Some(&return_to),
        "ada@example.com",
        crate::support::PASSWORD,
    );
    assert_eq!(signed.status, 303, "{}", signed.body);
    let back = location(&signed).to_string();
    assert!(back.starts_with("/oauth2/authorize?"), "{back}");
    let coded = b.get(&back);
    assert_eq!(coded.status, 302, "{}", coded.body);
    let to_app = location(&coded).to_string();
    assert!(to_app.starts_with("https://app.example/cb?"), "{to_app}");
    let q: std::collections::HashMap<String, String> =
        hallpass::http::parse_form(to_app.split_once('?').unwrap().1)
            .into_iter()
            .collect();
    assert_eq!(q["state"], "s1");
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&client_secret={}",
        enc(&q["code"]),
        enc("https://app.example/cb"),
        enc(&client.client_id),
        enc(&secret)
    );
    let t = s.request(
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    );
    assert_eq!(t.status, 200, "{}", t.body);
    let id_token = t.json()["id_token"].as_str().unwrap().to_string();
    let claims: serde_json::Value = serde_json::from_slice(
        &hallpass::crypto::b64url_decode(id_token.split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["nonce"], "n1");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
}

#[test]
fn a_pending_sign_in_finishes_once_even_replayed_with_its_cookie_and_another_code() {
    let s = TestServer::start();
    let (client, cs) = s.add_client();
    let user = s.add_user("ann@example.com");
    let secret = enable_native(&s, &client, &cs, &user);
    let b = Browser::new(&s);
    let r = b.sign_in(None, "ann", PASSWORD);
    let pending = b.cookie("hallpass_pending").expect("a pending cookie");
    let page = b.get(location(&r));
    let csrf = field(&page.body, "csrf");
    let r = b.post(
        "/signin/second-factor",
        &[("csrf", &csrf), ("code", &code_at(&secret, s.now()))],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account");
    // The same pending cookie again (a copy kept by an attacker, a
    // double submit), with a code of the next step that is itself valid.
    let again = s.request(
        "POST",
        "/signin/second-factor",
        &[
            ("Cookie", &format!("hallpass_pending={pending}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(
            format!(
                "csrf={}&code={}",
                enc(&csrf),
                code_at(&secret, s.now() + 30)
            )
            .as_bytes(),
        ),
    );
    assert_eq!(again.status, 303, "{}", again.body);
    assert!(location(&again).starts_with("/signin?"), "{again:?}");
    assert!(set_cookie(&again, "hallpass").is_none(), "no session");
    let sessions: i64 = s
        .conn()
        .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sessions, 1);
    // The token is used, and used in the sign-in's own transaction: its
    // used_at is the session's creation time, one activity row.
    let (used, created): (i64, i64) = s
        .conn()
        .query_row(
            "SELECT c.used_at, w.created_at FROM one_time_codes c, web_sessions w
              WHERE c.kind = 'web_second_factor'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(used, created);
    let web: i64 = s
        .conn()
        .query_row(
            "SELECT count(*) FROM login_activity WHERE login_type IN ('ACCESS', 'RELOGIN')
                AND token_payload ->> '$.method' = 'web'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(web, 1);
}

#[test]
fn concurrent_second_factor_posts_start_one_session() {
    let s = TestServer::start_with(|c| c.limits.login_burst = 100.0);
    let (client, cs) = s.add_client();
    let user = s.add_user("ann@example.com");
    let secret = enable_native(&s, &client, &cs, &user);
    let b = Browser::new(&s);
    let r = b.sign_in(None, "ann", PASSWORD);
    let pending = b.cookie("hallpass_pending").unwrap();
    let csrf = field(&b.get(location(&r)).body, "csrf");
    let now = s.now();
    let started: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = [now - 30, now, now + 30]
            .into_iter()
            .map(|t| {
                let (s, pending, csrf, code) = (&s, &pending, &csrf, code_at(&secret, t));
                scope.spawn(move || {
                    let r = s.request(
                        "POST",
                        "/signin/second-factor",
                        &[
                            ("Cookie", &format!("hallpass_pending={pending}")),
                            ("Content-Type", "application/x-www-form-urlencoded"),
                        ],
                        Some(format!("csrf={}&code={code}", enc(csrf)).as_bytes()),
                    );
                    r.status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        started.iter().all(|s| matches!(s, 303 | 401)),
        "{started:?}"
    );
    let sessions: i64 = s
        .conn()
        .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sessions, 1, "{started:?}");
}

#[test]
fn reading_a_session_writes_nothing_and_its_use_is_written_in_the_background() {
    let s = TestServer::start_with(|c| c.web_session_idle_secs = 3600);
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    assert_eq!(b.sign_in(None, "ann", PASSWORD).status, 303);
    let stored = || -> i64 {
        s.conn()
            .query_row("SELECT last_seen_at FROM web_sessions", [], |r| r.get(0))
            .unwrap()
    };
    let signed_in_at = stored();
    // Within a minute, a use moves nothing.
    s.advance(30);
    assert_eq!(b.get("/account").status, 200);
    assert_eq!(stored(), signed_in_at);
    // Later, the use is noted and written by the background thread (once
    // a second), not by the request.
    s.advance(100);
    assert_eq!(b.get("/account").status, 200);
    let want = signed_in_at + 130;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stored() != want {
        assert!(
            std::time::Instant::now() < deadline,
            "never written: {}",
            stored()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_configured_logo_is_served_with_its_type_and_shown_on_every_page() {
    let dir = tempfile::tempdir().unwrap();
    // A scripted SVG: served, but under the pages' CSP it can do nothing.
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let path = dir.path().join("logo.svg");
    std::fs::write(&path, svg).unwrap();
    let s = TestServer::start_with(|c| {
        c.web_logo = Some(path.clone());
        c.mail_product = "Acme Login".into();
    });
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    let r = b.get("/assets/logo");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    assert_eq!(r.body.as_bytes(), svg);
    assert_page_headers(&r);
    let img = r#"<img class="logo" src="/assets/logo" alt="Acme Login">"#;
    for path in ["/signin", "/signout"] {
        let page = b.get(path);
        assert!(page.body.contains(img), "{path}: {}", page.body);
    }
    assert_eq!(b.sign_in(None, "ann", PASSWORD).status, 303);
    assert!(b.get("/account").body.contains(img));

    // Without one: the name as text, and no logo route to speak of.
    let s = TestServer::start();
    let b = Browser::new(&s);
    assert_eq!(b.get("/assets/logo").status, 404);
    let page = b.get("/signin");
    assert!(!page.body.contains("/assets/logo"));
    assert!(page.body.contains("<p class=\"product\">hallpass</p>"));
}

#[test]
fn a_missing_oversized_or_unknown_logo_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(256 * 1024 + 1, 0);
    std::fs::write(&big, &bytes).unwrap();
    let gif = dir.path().join("logo.gif");
    std::fs::write(&gif, b"GIF89a......").unwrap();
    for (file, says) in [
        (dir.path().join("missing.png"), "cannot be read"),
        (big, "at most 256 KiB"),
        (gif, "is not a PNG, SVG, JPEG or WebP image"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let mut c = crate::support::test_config(&data);
        c.web_logo = Some(file.clone());
        let e = match hallpass::serve(c, hallpass::clock::Clock::manual(0)) {
            Ok(_) => panic!("{} was accepted", file.display()),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("web.logo") && e.contains(says), "{e}");
        assert!(
            !data.path().join("hallpass.db").exists(),
            "refused before anything is made"
        );
    }
}

#[test]
fn check_config_reads_the_logo_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("logo.png"), b"\x89PNG\r\n\x1a\n....").unwrap();
    std::fs::write(d.join("logo.txt"), b"hello").unwrap();
    let check = |logo: &str| {
        std::fs::write(d.join("h.toml"), format!("[web]\nlogo = \"{logo}\"\n")).unwrap();
        let mut cmd = crate::cli::hallpass(d);
        cmd.args(["check-config", "--config", "h.toml"]);
        crate::cli::run_command(cmd, None)
    };
    let (ok, out, err) = check("logo.png");
    assert!(ok, "{err}");
    assert!(out.contains("logo = \"logo.png\""), "{out}");
    assert!(err.contains("web logo: logo.png (image/png)"), "{err}");
    let (ok, _, err) = check("logo.txt");
    assert!(!ok);
    assert!(
        err.contains("web.logo") && err.contains("is not a PNG, SVG, JPEG or WebP image"),
        "{err}"
    );
}
