//! Upstream sign-in at the sign-in page (issue 13): a button per configured
//! provider starts the same flow as an app's (state row, binding cookie,
//! PKCE, nonce, a verified id_token; tests/it/social.rs), answered at the
//! same callback, which ends it in a browser session and `return_to`, the
//! second-factor page, or the sign-in page with why not. Driven by
//! `browser::Browser` against the fake provider (tests/it/fakeidp.rs).

use serde_json::json;

use crate::browser::{assert_page_headers, field, location, set_cookie, Browser};
use crate::fakeidp::FakeIdp;
use crate::second_factor::{code_at, enable_native};
use crate::social::{
    activity, activity_of, authorize, count, google_idp, query_of, verified_user, world, Back,
    Started, GOOGLE, PUBLIC,
};
use crate::support::{Resp, TestServer};

/// Over https (the worlds of social.rs) the pages' cookies are `__Host-`.
const SESSION: &str = "__Host-hallpass";
const PENDING: &str = "__Host-hallpass_pending";

/// The sign-in page (with `return_to`), its button for `provider` pressed.
fn press(b: &Browser, return_to: &str, provider: &str) -> Resp {
    let page = b.get(&format!(
        "/signin?return_to={}",
        crate::browser::enc(return_to)
    ));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(&format!("value=\"{provider}\"")),
        "no button for {provider}: {}",
        page.body
    );
    b.post(
        "/signin/provider",
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("return_to", &field(&page.body, "return_to")),
            ("provider", provider),
        ],
    )
}

/// The 303 to the provider, as social.rs's `Started`.
fn to_provider(r: &Resp, idp: &FakeIdp) -> Started {
    assert_eq!(r.status, 303, "{}", r.body);
    assert_page_headers(r);
    let loc = location(r).to_string();
    assert!(loc.starts_with(&format!("{}/", idp.base)), "{loc}");
    let set_cookie = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .find(|v| v.starts_with("__Host-hp_oauth_"))
        .expect("a binding cookie");
    Started {
        state: query_of(&loc).remove("state").expect("our state upstream"),
        cookie: set_cookie.split(';').next().unwrap().to_string(),
        location: loc,
        set_cookie,
    }
}

/// The browser back at our callback from the provider.
fn back(b: &Browser, idp: &FakeIdp, st: &Started) -> Resp {
    match authorize(idp, st) {
        Back::Get(path) => b.get(&path),
        Back::Post(path, fields) => {
            let f: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            b.post(&path, &f)
        }
    }
}

#[test]
fn the_sign_in_page_has_a_button_per_configured_provider_only() {
    let s = TestServer::start();
    let page = Browser::new(&s).get("/signin");
    assert!(!page.body.contains("/signin/provider"), "{}", page.body);
    assert!(!page.body.contains("Or sign in with"));

    let idp = google_idp();
    let w = world(
        &idp,
        "open",
        &format!(
            "{GOOGLE}
[providers.pocket]
kind = \"oidc\"
client_id = \"c\"
client_secret = \"s\"
issuer = \"{{IDP}}\"
label = \"Pocket ID <home>\"

[providers.gh]
kind = \"github\"
client_id = \"c\"
client_secret = \"s\"
"
        ),
    );
    let page = Browser::new(&w.s).get("/signin");
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(body.contains("Or sign in with"), "{body}");
    for (name, label) in [
        ("google", "Google"),
        ("pocket", "Pocket ID &lt;home&gt;"),
        ("gh", "GitHub"),
    ] {
        assert!(
            body.contains(&format!("name=\"provider\" value=\"{name}\"")),
            "{name}: {body}"
        );
        assert!(
            body.contains(&format!(">{label}</button>")),
            "{label}: {body}"
        );
    }
    // Below the password form, each a form of its own with the page's
    // CSRF token and return_to.
    assert!(body.find("action=\"/signin\"").unwrap() < body.find("/signin/provider").unwrap());
    assert_eq!(body.matches("action=\"/signin/provider\"").count(), 3);
}

#[test]
fn a_provider_signs_a_browser_in_and_it_goes_on_to_return_to() {
    let idp = google_idp();
    idp.set_identity("g-1", Some("nora@example.com"), json!(true));
    let w = world(&idp, "open", GOOGLE);
    let b = Browser::new(&w.s);
    let st = to_provider(&press(&b, "/account?tab=2", "google"), &idp);
    // The same upstream request as an app's: our callback, PKCE, nonce.
    let q = query_of(&st.location);
    assert_eq!(
        q["redirect_uri"],
        format!("{PUBLIC}/auth/google-auth-redirect")
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["nonce"].len() >= 16);
    assert!(st.set_cookie.contains("HttpOnly") && st.set_cookie.contains("Secure"));
    let stored: (Option<String>, String) =
        w.s.conn()
            .query_row("SELECT client_id, return_to FROM oauth_states", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
    assert_eq!(stored, (None, "/account?tab=2".to_string()));

    let r = back(&b, &idp, &st);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_page_headers(&r);
    assert_eq!(location(&r), "/account?tab=2");
    let c = set_cookie(&r, SESSION).expect("a session cookie");
    assert!(c.contains("HttpOnly") && c.contains("Secure"), "{c}");
    let name = st.cookie.split_once('=').unwrap().0;
    assert!(
        set_cookie(&r, name).is_some_and(|v| v.contains("Max-Age=0")),
        "the binding cookie is cleared: {:?}",
        r.headers
    );
    assert!(b.get("/account").body.contains("nora@example.com"));
    let amr: String =
        w.s.conn()
            .query_row("SELECT amr FROM web_sessions", [], |r| r.get(0))
            .unwrap();
    assert_eq!(amr, r#"["fed"]"#);
    // Logged under the provider's name, and no code of ours was made.
    let rows = activity_of(&w.s, "google");
    assert_eq!(
        rows,
        vec![("ACCESS".into(), "success".into())],
        "{:?}",
        activity(&w.s)
    );
    assert_eq!(count(&w.s, "SELECT count(*) FROM auth_codes"), 0);
    assert_eq!(
        count(&w.s, "SELECT count(*) FROM oauth_states"),
        0,
        "single use"
    );
    assert!(idp.problems().is_empty(), "{:?}", idp.problems());

    // Again from the same browser: the same user, a new session id, the
    // old one ended.
    let first = b.cookie(SESSION).unwrap();
    let st = to_provider(&press(&b, "/account", "google"), &idp);
    assert_eq!(back(&b, &idp, &st).status, 303);
    assert_ne!(b.cookie(SESSION).unwrap(), first);
    assert_eq!(count(&w.s, "SELECT count(*) FROM web_sessions"), 1);
    assert_eq!(count(&w.s, "SELECT count(*) FROM users"), 1);
}

#[test]
fn a_totp_user_goes_on_to_the_second_factor_page() {
    let idp = google_idp();
    idp.set_identity("g-ann", Some("ann@example.com"), json!(true));
    let w = world(&idp, "invite", GOOGLE);
    let ann = verified_user(&w.s, "ann@example.com");
    let totp = enable_native(&w.s, &w.client, &w.secret, &ann);
    let b = Browser::new(&w.s);
    let st = to_provider(&press(&b, "/account", "google"), &idp);
    let r = back(&b, &idp, &st);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/signin/second-factor?return_to=%2Faccount");
    assert!(b.cookie(SESSION).is_none(), "no session before the code");
    assert!(b.cookie(PENDING).is_some());
    assert!(
        activity_of(&w.s, "google").is_empty(),
        "{:?}",
        activity(&w.s)
    );

    let page = b.get(location(&r));
    assert_eq!(page.status, 200, "{}", page.body);
    let r = b.post(
        "/signin/second-factor",
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("return_to", &field(&page.body, "return_to")),
            ("code", &code_at(&totp, w.s.now())),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account");
    assert!(b.cookie(SESSION).is_some());
    let amr: String =
        w.s.conn()
            .query_row("SELECT amr FROM web_sessions", [], |r| r.get(0))
            .unwrap();
    assert_eq!(amr, r#"["fed","otp"]"#);
    let rows = activity_of(&w.s, "google");
    assert_eq!(
        rows,
        vec![("ACCESS".into(), "success".into())],
        "{:?}",
        activity(&w.s)
    );
}

/// The sign-in page a refused sign-in lands on says `words`.
fn lands_on_signin_saying(b: &Browser, r: &Resp, reason: &str, words: &str) {
    assert_eq!(r.status, 303, "{}", r.body);
    let to = location(r).to_string();
    assert!(to.starts_with("/signin?return_to=%2Faccount&"), "{to}");
    assert_eq!(query_of(&to)["failed"], reason, "{to}");
    let page = b.get(&to);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("class=\"notice\""), "{}", page.body);
    assert!(page.body.contains(words), "{words:?} in {}", page.body);
    assert!(b.cookie(SESSION).is_none());
}

#[test]
fn refusals_go_back_to_the_sign_in_page_with_a_message() {
    let idp = google_idp();
    idp.set_identity("g-2", Some("zed@example.com"), json!(true));
    let w = world(&idp, "invite", GOOGLE);
    let b = Browser::new(&w.s);
    // Sign-up is closed and nobody has this identity.
    let st = to_provider(&press(&b, "/account", "google"), &idp);
    lands_on_signin_saying(
        &b,
        &back(&b, &idp, &st),
        "signup_closed",
        "sign-up is closed",
    );
    // Cancelled at the provider.
    idp.deny(true);
    let st = to_provider(&press(&b, "/account", "google"), &idp);
    lands_on_signin_saying(
        &b,
        &back(&b, &idp, &st),
        "provider_refused",
        "cancelled or refused",
    );
    assert_eq!(count(&w.s, "SELECT count(*) FROM users"), 0);
    let rows = activity_of(&w.s, "google");
    assert_eq!(rows.len(), 2, "{:?}", activity(&w.s));
    assert!(rows.iter().all(|(t, _)| t == "FAILED"));
    // A reason not of ours in the URL says nothing.
    let page = b.get("/signin?failed=%3Cb%3Eyou+won&provider=google");
    assert!(!page.body.contains("class=\"notice\""), "{}", page.body);
}

#[test]
fn an_unreachable_provider_is_said_at_the_start() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let idp = google_idp();
    let w = world(
        &idp,
        "open",
        &format!(
            "[providers.google]\nclient_id = \"g\"\nclient_secret = \"s\"\nissuer = \"http://127.0.0.1:{port}\"\ntimeout_secs = 1\n"
        ),
    );
    let b = Browser::new(&w.s);
    let r = press(&b, "/account", "google");
    lands_on_signin_saying(&b, &r, "provider_unreachable", "did not answer in time");
}

#[test]
fn the_binding_cookie_is_still_required() {
    let idp = google_idp();
    idp.set_identity("g-3", Some("eve@example.com"), json!(true));
    let w = world(&idp, "open", GOOGLE);
    // Eve starts a sign-in at her provider account and hands the callback
    // URL to Ann's browser (login CSRF): refused, nobody signed in.
    let eve = Browser::new(&w.s);
    let st = to_provider(&press(&eve, "/account", "google"), &idp);
    let ann = Browser::new(&w.s);
    let r = back(&ann, &idp, &st);
    lands_on_signin_saying(&ann, &r, "unbound_state", "another browser");
    assert_eq!(count(&w.s, "SELECT count(*) FROM web_sessions"), 0);
    // And the state is spent: Eve's own browser cannot finish it either.
    let r = back(&eve, &idp, &st);
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn return_to_cannot_leave_the_server_and_the_form_needs_its_csrf_token() {
    let idp = google_idp();
    idp.set_identity("g-4", Some("ivy@example.com"), json!(true));
    let w = world(&idp, "open", GOOGLE);
    let b = Browser::new(&w.s);
    for evil in ["//evil.example", "https://evil.example/", "/\\evil.example"] {
        // Each sign-in ends the page's CSRF cookie: a fresh page each time.
        let csrf = field(&b.get("/signin").body, "csrf");
        let r = b.post(
            "/signin/provider",
            &[("csrf", &csrf), ("return_to", evil), ("provider", "google")],
        );
        let st = to_provider(&r, &idp);
        let done = back(&b, &idp, &st);
        assert_eq!(done.status, 303, "{}", done.body);
        assert_eq!(location(&done), "/account", "{evil:?}");
    }
    // No token, a foreign one, or no such provider.
    let r = b.post("/signin/provider", &[("provider", "google")]);
    assert_eq!(r.status, 403, "{}", r.body);
    let other = field(&Browser::new(&w.s).get("/signin").body, "csrf");
    let r = b.post(
        "/signin/provider",
        &[("csrf", &other), ("provider", "google")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let page = b.get("/signin");
    let r = b.post(
        "/signin/provider",
        &[("csrf", &field(&page.body, "csrf")), ("provider", "nope")],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("not offered here"), "{}", r.body);
    assert_eq!(count(&w.s, "SELECT count(*) FROM oauth_states"), 0);
}
