//! Forward-auth through the real server: `GET /auth/verify` asked as
//! nginx (`X-Original-URL`), Traefik and Caddy (`X-Forwarded-*`) ask it,
//! with a session from the sign-in pages or a bearer token, under the
//! access rules below.

use hallpass::accounts;
use hallpass::db;
use hallpass::forward::rules::RawAccess;
use hallpass::forward::Access;

use crate::browser::{location, Browser};
use crate::second_factor::{code_at, enable_native};
use crate::support::{Resp, TestServer, PASSWORD};

const RULES: &str = r#"
default_policy = "deny"

[[access.rules]]
domain = "public.home.example"
policy = "bypass"

[[access.rules]]
domain = "app.home.example"
path = "/admin"
groups = ["admins"]
policy = "one_factor"

[[access.rules]]
domain = "app.home.example"
path = "/admin"
policy = "deny"

[[access.rules]]
domain = "app.home.example"
path = "/secure"
policy = "two_factor"

[[access.rules]]
domain = "app.home.example"
path_regex = "^/api/"
methods = ["POST", "DELETE"]
users = ["bob"]
policy = "deny"

[[access.rules]]
domain = "*.home.example"
policy = "one_factor"
"#;

fn access(text: &str) -> Access {
    #[derive(serde::Deserialize)]
    struct File {
        access: RawAccess,
    }
    let f: File = toml::from_str(&format!("[access]\n{text}")).unwrap();
    Access::from_raw(f.access).unwrap()
}

/// A server behind a proxy on 127.0.0.1, with the rules above and the
/// session cookie shared under home.example.
fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.trusted_proxies = vec![hallpass::config::IpRange::parse("127.0.0.1").unwrap()];
        c.public_url = Some("http://auth.home.example".into());
        c.cookie_domain = Some("home.example".into());
        c.access = access(RULES);
    })
}

/// Asks as Traefik and Caddy do.
fn traefik(s: &TestServer, method: &str, url: &str, extra: &[(&str, &str)]) -> Resp {
    let (proto, rest) = url.split_once("://").unwrap();
    let (host, uri) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut h = vec![
        ("X-Forwarded-Method", method),
        ("X-Forwarded-Proto", proto),
        ("X-Forwarded-Host", host),
        ("X-Forwarded-Uri", uri),
    ];
    h.extend_from_slice(extra);
    s.request("GET", "/auth/verify", &h, None)
}

/// Asks as the README's nginx snippet does.
fn nginx(s: &TestServer, method: &str, url: &str, extra: &[(&str, &str)]) -> Resp {
    let mut h = vec![("X-Original-URL", url), ("X-Original-Method", method)];
    h.extend_from_slice(extra);
    s.request("GET", "/auth/verify?proxy=nginx", &h, None)
}

fn signed_in(s: &TestServer, login: &str) -> String {
    let b = Browser::new(s);
    let r = b.sign_in(None, login, PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    format!("hallpass={}", b.cookie("hallpass").unwrap())
}

fn join(s: &TestServer, user: &accounts::User, tenant: &str) {
    let mut conn = s.conn();
    db::immediate(&mut conn, |tx| {
        let t = match accounts::find_tenant(tx, tenant)? {
            Some(t) => t,
            None => accounts::create_tenant(tx, tenant, None, s.now())?,
        };
        accounts::add_to_tenant(tx, &user.id, &t.id, "member", None, s.now())
    })
    .unwrap();
}

#[test]
fn a_session_passes_with_the_users_headers_and_anonymous_requests_go_to_sign_in() {
    let s = server();
    let ann = s.add_user("ann@example.com");
    join(&s, &ann, "family");

    // Anonymous, Traefik/Caddy style: 302 to the sign-in page with rd.
    let url = "https://app.home.example/photos?album=1&x=%2F";
    let r = traefik(&s, "GET", url, &[]);
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(
        location(&r),
        format!(
            "http://auth.home.example/signin?rd={}",
            hallpass::url::percent_encode(url)
        )
    );
    assert!(r.header("remote-user").is_none());
    // nginx style: 401, the same URL in Location for the snippet.
    let r = nginx(&s, "GET", url, &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(location(&r).starts_with("http://auth.home.example/signin?rd=https%3A%2F%2Fapp."));

    let cookie = signed_in(&s, "ann");
    for r in [
        traefik(&s, "GET", url, &[("Cookie", &cookie)]),
        nginx(&s, "GET", url, &[("Cookie", &cookie)]),
    ] {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("remote-user"), Some("ann"));
        assert_eq!(r.header("remote-email"), Some("ann@example.com"));
        assert_eq!(r.header("remote-name"), Some("Test User"));
        assert_eq!(r.header("remote-groups"), Some("default,family,user"));
    }
    // HEAD asks the same.
    let r = s.request(
        "HEAD",
        "/auth/verify",
        &[
            ("X-Forwarded-Host", "app.home.example"),
            ("Cookie", &cookie),
        ],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("remote-user"), Some("ann"));

    // Bypass: through without a sign-in, the user headers empty.
    let r = traefik(&s, "GET", "https://public.home.example/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("remote-user"),
        Some(""),
        "empty: overwrites a forged one"
    );
    // No rule matches: the default policy (deny), signed in or not.
    for extra in [vec![], vec![("Cookie", cookie.as_str())]] {
        let r = traefik(&s, "GET", "https://other.example/", &extra);
        assert_eq!(r.status, 403, "{}", r.body);
    }

    // Signing out ends access.
    let b = Browser::new(&s);
    b.sign_in(None, "ann", PASSWORD);
    let c2 = format!("hallpass={}", b.cookie("hallpass").unwrap());
    assert_eq!(traefik(&s, "GET", url, &[("Cookie", &c2)]).status, 200);
    let page = b.get("/signout");
    let csrf = crate::browser::field(&page.body, "csrf");
    assert_eq!(b.post("/signout", &[("csrf", &csrf)]).status, 303);
    assert_eq!(traefik(&s, "GET", url, &[("Cookie", &c2)]).status, 302);
}

#[test]
fn groups_users_methods_and_deny_decide_in_order() {
    let s = server();
    let ann = s.add_user("ann@example.com");
    s.add_user("bob@example.com");
    let ann_c = signed_in(&s, "ann");
    let bob_c = signed_in(&s, "bob");
    let admin = "https://app.home.example/admin/settings";
    // Not in admins: rule 2 passes over them, rule 3 denies.
    assert_eq!(traefik(&s, "GET", admin, &[("Cookie", &ann_c)]).status, 403);
    // Anonymous on a rule with groups: sign in first (it may be theirs).
    assert_eq!(traefik(&s, "GET", admin, &[]).status, 302);
    join(&s, &ann, "admins");
    let r = traefik(&s, "GET", admin, &[("Cookie", &ann_c)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("remote-groups"), Some("admins,default,user"));
    // Path tricks are normalised before the rules see them (and a `..`
    // is refused outright: see dot_segments_and_encoded_separators_...).
    for sneaky in [
        "https://app.home.example/%61dmin",
        "https://app.home.example//admin/",
        "https://app.home.example/Admin",
        "https://app.home.example/admin;jsessionid=1/x",
    ] {
        assert_eq!(
            traefik(&s, "GET", sneaky, &[("Cookie", &bob_c)]).status,
            403,
            "{sneaky}"
        );
    }
    // users + methods + path_regex: bob may not POST or DELETE under
    // /api/; anyone else may, and bob may GET (the wildcard rule).
    let api = "https://app.home.example/api/x";
    for (method, cookie, want) in [
        ("POST", &bob_c, 403),
        ("DELETE", &bob_c, 403),
        ("GET", &bob_c, 200),
        ("POST", &ann_c, 200),
    ] {
        let r = traefik(&s, method, api, &[("Cookie", cookie)]);
        assert_eq!(r.status, want, "{method}: {}", r.body);
    }
    // Case does not matter for names.
    let r = traefik(
        &s,
        "post",
        "https://app.home.example/api/y",
        &[("Cookie", &bob_c)],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn two_factor_paths_send_a_password_only_session_to_the_step_up() {
    let s = server();
    let (client, cs) = s.add_client();
    let ann = s.add_user("ann@example.com");
    s.add_user("bob@example.com");
    let secure = "https://app.home.example/secure/vault";
    let bob_c = signed_in(&s, "bob");
    let r = traefik(&s, "GET", secure, &[("Cookie", &bob_c)]);
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(
        location(&r),
        format!(
            "http://auth.home.example/signin/step-up?rd={}",
            hallpass::url::percent_encode(secure)
        )
    );
    let r = nginx(&s, "GET", secure, &[("Cookie", &bob_c)]);
    assert_eq!(r.status, 401);
    assert!(location(&r).starts_with("http://auth.home.example/signin/step-up?rd="));
    // Anonymous: sign in first.
    let r = traefik(&s, "GET", secure, &[]);
    assert!(location(&r).starts_with("http://auth.home.example/signin?rd="));

    // A sign-in with the second factor passes.
    let secret = enable_native(&s, &client, &cs, &ann);
    let b = Browser::new(&s);
    let r = b.sign_in(None, "ann", PASSWORD);
    let page = b.get(location(&r));
    let csrf = crate::browser::field(&page.body, "csrf");
    let r = b.post(
        "/signin/second-factor",
        &[
            ("csrf", &csrf),
            ("return_to", "/account"),
            ("code", &code_at(&secret, s.now())),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = format!("hallpass={}", b.cookie("hallpass").unwrap());
    let r = traefik(&s, "GET", secure, &[("Cookie", &cookie)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("remote-user"), Some("ann"));
}

#[test]
fn a_bearer_access_token_is_accepted_in_place_of_the_cookie() {
    let s = server();
    let (client, cs) = s.add_client();
    s.add_user("ann@example.com");
    let t = s.login_token(&client, &cs, "ann");
    let token = t["accessToken"].as_str().unwrap();
    let auth = format!("Bearer {token}");
    let url = "https://app.home.example/api/items";
    let r = traefik(&s, "GET", url, &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("remote-user"), Some("ann"));
    // A password-only token on a two_factor path: the step-up.
    let r = traefik(
        &s,
        "GET",
        "https://app.home.example/secure",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 302);
    // A bad token without a session: 401 for the API client, not a page.
    let r = traefik(&s, "GET", url, &[("Authorization", "Bearer nope")]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    // ... but the app's own bearer beside a live session is no bar.
    let cookie = signed_in(&s, "ann");
    let r = traefik(
        &s,
        "GET",
        url,
        &[
            ("Authorization", "Bearer app-own-token"),
            ("Cookie", &cookie),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // After log out, the token no longer passes.
    let out = s.send_auth("POST", "/logout", token, &serde_json::json!({}));
    assert!(out.status < 300, "{}", out.body);
    let r = traefik(&s, "GET", url, &[("Authorization", &auth)]);
    assert_eq!(r.status, 401);
}

#[test]
fn forwarded_headers_from_an_untrusted_peer_grant_nothing() {
    // The proxy is 10.0.0.0/8; the test client (127.0.0.1) is not it.
    let s = TestServer::start_with(|c| {
        c.trusted_proxies = vec![hallpass::config::IpRange::parse("10.0.0.0/8").unwrap()];
        c.public_url = Some("http://auth.home.example".into());
        c.cookie_domain = Some("home.example".into());
        c.access = access(RULES);
    });
    s.add_user("ann@example.com");
    let cookie = signed_in(&s, "ann");
    for r in [
        traefik(&s, "GET", "https://public.home.example/", &[]),
        traefik(
            &s,
            "GET",
            "https://app.home.example/",
            &[("Cookie", &cookie)],
        ),
        nginx(&s, "GET", "https://public.home.example/", &[]),
        traefik(
            &s,
            "GET",
            "https://public.home.example/",
            &[("X-Forwarded-For", "10.0.0.1")],
        ),
    ] {
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("trusted_proxies"), "{}", r.body);
        assert!(r.header("remote-user").is_none());
    }
}

#[test]
fn the_original_request_must_be_well_formed() {
    let s = server();
    let cookie = {
        s.add_user("ann@example.com");
        signed_in(&s, "ann")
    };
    for headers in [
        vec![],
        vec![("X-Forwarded-Host", "app.home.example:99999")],
        vec![("X-Forwarded-Host", "ann@app.home.example")],
        vec![
            ("X-Forwarded-Host", "app.home.example"),
            ("X-Forwarded-Proto", "ftp"),
        ],
        vec![
            ("X-Forwarded-Host", "app.home.example"),
            ("X-Forwarded-Uri", "/a%00b"),
        ],
        vec![("X-Original-URL", "app.home.example/x")],
        vec![
            ("X-Original-URL", "https://app.home.example/x"),
            ("X-Original-Method", "G T"),
        ],
    ] {
        let mut h = headers.clone();
        h.push(("Cookie", &cookie));
        let path = if h.iter().any(|(k, _)| *k == "X-Original-URL") {
            "/auth/verify?proxy=nginx"
        } else {
            "/auth/verify"
        };
        let r = s.request("GET", path, &h, None);
        assert_eq!(r.status, 400, "{headers:?}: {}", r.body);
        assert!(r.header("remote-user").is_none());
    }
}

/// Rules for the path tests: a bypass beside a deny, a GET-only bypass.
const PATH_RULES: &str = r#"
default_policy = "one_factor"

[[access.rules]]
domain = "app.home.example"
path = "/public"
policy = "bypass"

[[access.rules]]
domain = "app.home.example"
path = ["/private", "/admin"]
policy = "deny"

[[access.rules]]
domain = "app.home.example"
path = "/feed"
methods = ["GET"]
policy = "bypass"
"#;

fn path_server() -> TestServer {
    TestServer::start_with(|c| {
        c.trusted_proxies = vec![hallpass::config::IpRange::parse("127.0.0.1").unwrap()];
        c.public_url = Some("http://auth.home.example".into());
        c.cookie_domain = Some("home.example".into());
        c.access = access(PATH_RULES);
    })
}

#[test]
fn dot_segments_and_encoded_separators_are_refused_not_resolved() {
    let s = path_server();
    s.add_user("ann@example.com");
    let cookie = signed_in(&s, "ann");
    // The app behind nginx (proxy_pass without a URI) or Caddy gets these
    // raw and may route them to /private: never a bypass, a 400.
    for path in [
        "/private/..%2Fpublic",
        "/private/../public",
        "/private/%2e%2e/public",
        "/private/%2E%2E/public",
        "/private/.%2e/public",
        "/private/..;/public",
        "/private/./x",
        "/public/..",
        "/private%2Fx",
        "/public%2F..%2Fprivate",
        "/public%5C..%5Cprivate",
        "/public\\..\\private",
        "/public%3B/x",
        "/public/%252F",
        "/public/%00",
    ] {
        let url = format!("https://app.home.example{path}");
        for r in [
            traefik(&s, "GET", &url, &[]),
            traefik(&s, "GET", &url, &[("Cookie", &cookie)]),
            nginx(&s, "GET", &url, &[("Cookie", &cookie)]),
        ] {
            assert_eq!(r.status, 400, "{path}: {}", r.body);
            assert!(r.body.contains("the path"), "{path}: {}", r.body);
            assert!(r.header("remote-user").is_none(), "{path}");
            assert!(r.header("location").is_none(), "{path}");
        }
    }
    // Dots inside a name, a query with ../ and empty segments are fine.
    for (path, want) in [
        ("/public/a..b/.well-known/x.tar.gz", 200),
        ("/public?next=/../private", 200),
        ("//public//", 200),
        ("/private?x=/../public", 403),
    ] {
        let r = traefik(&s, "GET", &format!("https://app.home.example{path}"), &[]);
        assert_eq!(r.status, want, "{path}: {}", r.body);
    }
}

#[test]
fn case_and_semicolon_variants_never_weaken_a_rule() {
    let s = path_server();
    s.add_user("ann@example.com");
    let cookie = signed_in(&s, "ann");
    for path in [
        "/private",
        "/PRIVATE",
        "/Private/x",
        "/Admin/users",
        "/admin;jsessionid=1/users",
        "/ADMIN;x=1",
        "/%41dmin",
    ] {
        let url = format!("https://app.home.example{path}");
        for extra in [vec![], vec![("Cookie", cookie.as_str())]] {
            let r = traefik(&s, "GET", &url, &extra);
            assert_eq!(r.status, 403, "{path}: {}", r.body);
        }
    }
    // The bypass holds for its own path (with parameters too) and does
    // not widen by case: /PUBLIC is the default's (one_factor).
    for (path, anonymous, signed_in) in [
        ("/public/a", 200, 200),
        ("/public;v=2/a", 200, 200),
        ("/PUBLIC/a", 302, 200),
        ("/Public", 302, 200),
    ] {
        let url = format!("https://app.home.example{path}");
        assert_eq!(traefik(&s, "GET", &url, &[]).status, anonymous, "{path}");
        let r = traefik(&s, "GET", &url, &[("Cookie", &cookie)]);
        assert_eq!(r.status, signed_in, "{path}");
    }
}

#[test]
fn a_get_rule_takes_head_too() {
    let s = path_server();
    let url = "https://app.home.example/feed/rss";
    for (method, want) in [("GET", 200), ("HEAD", 200), ("head", 200), ("POST", 302)] {
        let r = traefik(&s, method, url, &[]);
        assert_eq!(r.status, want, "{method}: {}", r.body);
        let r = nginx(&s, method, url, &[]);
        assert_eq!(r.status, if want == 302 { 401 } else { want }, "{method}");
    }
}

#[test]
fn a_host_outside_the_cookie_domain_is_never_sent_to_sign_in() {
    // A rule for a host the session cookie cannot reach: sending the
    // browser to sign in would loop, and rd would be an open redirect.
    let s = TestServer::start_with(|c| {
        c.trusted_proxies = vec![hallpass::config::IpRange::parse("127.0.0.1").unwrap()];
        c.public_url = Some("http://auth.home.example".into());
        c.cookie_domain = Some("home.example".into());
        c.access = access("[[access.rules]]\ndomain = \"evil.example\"\npolicy = \"one_factor\"\n");
    });
    s.add_user("ann@example.com");
    let r = traefik(&s, "GET", "https://evil.example/x", &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.header("location").is_none());
    assert!(r.body.contains("cookie_domain"), "{}", r.body);
    let r = nginx(&s, "GET", "https://evil.example/x", &[]);
    assert_eq!(r.status, 403);

    // A cookie of another site's name (host-only __Host- of an https
    // sign-in host, or a look-alike) is not ours: anonymous.
    let cookie = signed_in(&s, "ann");
    let value = cookie.trim_start_matches("hallpass=");
    for other in [
        format!("__Host-hallpass={value}"),
        format!("hallpass_other={value}"),
        format!("hallpass={value}x"),
    ] {
        let r = traefik(
            &s,
            "GET",
            "https://app.home.example/",
            &[("Cookie", &other)],
        );
        assert_eq!(r.status, 403, "{other}: no rule for app., default deny");
    }
}

#[test]
fn over_https_with_a_cookie_domain_the_shared_cookie_is_read() {
    let s = TestServer::start_with(|c| {
        c.trusted_proxies = vec![hallpass::config::IpRange::parse("127.0.0.1").unwrap()];
        c.public_url = Some("https://auth.home.example".into());
        c.cookie_domain = Some("home.example".into());
        c.access = access(RULES);
    });
    let ann = s.add_user("ann@example.com");
    // A session as the pages make it (their cookie change is the
    // coordinator's: web::session::set_session_cookie).
    let mut conn = s.conn();
    let id = db::immediate(&mut conn, |tx| {
        hallpass::web::session::start(tx, &ann.id, &["pwd".to_string()], 3600, 7200, s.now())
    })
    .unwrap();
    let url = "https://app.home.example/";
    let shared = format!("__Secure-hallpass={id}");
    let r = traefik(&s, "GET", url, &[("Cookie", &shared)]);
    assert_eq!(r.status, 200, "{}", r.body);
    // The host-only name is not what a proxied app's host receives.
    let host_only = format!("__Host-hallpass={id}");
    assert_eq!(
        traefik(&s, "GET", url, &[("Cookie", &host_only)]).status,
        302
    );
    let r = traefik(&s, "GET", url, &[]);
    assert_eq!(
        location(&r),
        "https://auth.home.example/signin?rd=https%3A%2F%2Fapp.home.example%2F"
    );
}

#[test]
fn the_cli_lists_the_rules_refuses_bad_ones_and_tests_a_url() {
    use crate::cli::{hallpass, run_command};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("h.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"https://auth.home.example\"\n[web]\ncookie_domain = \"home.example\"\n\
             [access]\n{RULES}"
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let mut init = hallpass(dir.path());
    init.args(["init", "--config", cfg]);
    assert!(run_command(init, None).0);
    let mut add = hallpass(dir.path());
    add.args([
        "user",
        "add",
        "bob@example.com",
        "--username",
        "bob",
        "--password-stdin",
        "--config",
        cfg,
    ]);
    let (ok, _, err) = run_command(add, Some(&format!("{PASSWORD}\n")));
    assert!(ok, "{err}");

    let mut check = hallpass(dir.path());
    check.args(["check-config", "--config", cfg]);
    let (ok, out, err) = run_command(check, None);
    assert!(ok, "{err}");
    assert!(
        out.contains("# rule 6\n[[access.rules]]\ndomain = [\"*.home.example\"]"),
        "{out}"
    );
    assert!(
        err.contains(
            "access rule 2: domain app.home.example, path /admin, groups admins: one_factor"
        ),
        "{err}"
    );
    assert!(err.contains("access: no rule matching: deny"), "{err}");

    let test = |args: &[&str]| {
        let mut c = hallpass(dir.path());
        c.args(["access", "test"])
            .args(args)
            .args(["--config", cfg]);
        let (ok, out, err) = run_command(c, None);
        assert!(ok, "{args:?}: {err}");
        out
    };
    let out = test(&["https://app.home.example/admin/x"]);
    assert!(out.contains("as anonymous"), "{out}");
    assert!(out.contains("rule 2: "), "{out}");
    assert!(out.contains("decision: sign in first"), "{out}");
    let out = test(&["https://app.home.example/admin/x", "--user", "bob"]);
    assert!(
        out.contains("rule 3: domain app.home.example, path /admin: deny"),
        "{out}"
    );
    assert!(out.contains("decision: deny (403)"), "{out}");
    let out = test(&[
        "https://app.home.example/api/v1",
        "--user",
        "bob",
        "--method",
        "delete",
    ]);
    assert!(
        out.contains("rule 5: ") && out.contains("decision: deny"),
        "{out}"
    );
    let out = test(&["https://app.home.example/secure", "--user", "bob"]);
    assert!(out.contains("decision: second factor first"), "{out}");
    let out = test(&[
        "https://app.home.example/secure",
        "--user",
        "bob",
        "--two-factor",
    ]);
    assert!(
        out.contains("decision: allow (200): Remote-User bob"),
        "{out}"
    );
    let out = test(&["https://other.example/"]);
    assert!(
        out.contains("no rule matches: default_policy deny"),
        "{out}"
    );
    // A case variant: the lower-case reading (rule 3, deny) is stricter.
    let out = test(&["https://app.home.example/ADMIN/x", "--user", "bob"]);
    assert!(
        out.contains("rule 3 (the path in lower case, /admin/x, is the stricter reading)"),
        "{out}"
    );
    assert!(out.contains("decision: deny (403)"), "{out}");
    // Parameters stripped; HEAD as GET.
    let out = test(&[
        "https://app.home.example/admin;jsessionid=1/x",
        "--method",
        "head",
    ]);
    assert!(out.contains("path /admin/x)"), "{out}");
    // What the server answers 400.
    let out = test(&["https://app.home.example/x/..%2Fadmin"]);
    assert!(
        out.contains("decision: malformed request (400, a deny to the proxy)")
            && out.contains("encoded '/'"),
        "{out}"
    );

    // An unreachable rule and an unknown policy are refused, by number.
    for (extra, says) in [
        (
            "[[access.rules]]\ndomain = \"x.home.example\"\npolicy = \"deny\"\n",
            "access rule 7 (domain x.home.example: deny) is never reached: rule 6",
        ),
        (
            "[[access.rules]]\ndomain = \"other.example\"\npolicy = \"allow\"\n",
            "access rule 7: unknown policy \"allow\"",
        ),
        (
            "[[access.rules]]\ndomain = \"other.example\"\npath = \"/my%20docs\"\npolicy = \"deny\"\n",
            "access rule 7: path \"/my%20docs\" could never match",
        ),
        (
            "[[access.rules]]\ndomain = \"other.example\"\npath = \"/a/./b\"\npolicy = \"deny\"\n",
            "access rule 7: path \"/a/./b\" could never match",
        ),
        (
            "[[access.rules]]\ndomain = \"other.example\"\npath = \"/Admin\"\npolicy = \"deny\"\n",
            "access rule 7: path \"/Admin\" has capitals: write \"/admin\"",
        ),
    ] {
        std::fs::write(
            &config,
            format!("public_url = \"https://auth.home.example\"\n[access]\n{RULES}{extra}"),
        )
        .unwrap();
        let mut check = hallpass(dir.path());
        check.args(["check-config", "--config", cfg]);
        let (ok, _, err) = run_command(check, None);
        assert!(!ok);
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn the_sign_in_page_returns_to_rd_with_the_shared_cookie_and_the_step_up_adds_the_factor() {
    let s = server();
    let (client, cs) = s.add_client();
    let ann = s.add_user("ann@example.com");
    s.add_user("bob@example.com");
    let secure = "https://app.home.example/secure/vault?x=1";

    // Sent by the proxy to /signin?rd=…: signed in, back at the app, with
    // the cookie every host under home.example gets.
    let b = Browser::new(&s);
    let page = b.get(&format!(
        "/signin?rd={}",
        hallpass::url::percent_encode(secure)
    ));
    assert_eq!(crate::browser::field(&page.body, "return_to"), secure);
    let r = b.post(
        "/signin",
        &[
            ("csrf", &crate::browser::field(&page.body, "csrf")),
            ("return_to", secure),
            ("login", "bob"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), secure);
    let c = crate::browser::set_cookie(&r, "hallpass").unwrap();
    assert!(c.contains("Domain=home.example"), "{c}");
    let bob_c = format!("hallpass={}", b.cookie("hallpass").unwrap());

    // bob has no TOTP: the step-up says what to do, and lets nothing by.
    let r = traefik(&s, "GET", secure, &[("Cookie", &bob_c)]);
    let step_up = location(&r)
        .strip_prefix("http://auth.home.example")
        .unwrap()
        .to_string();
    let page = b.get(&step_up);
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("/account#two-factor"), "{}", page.body);
    crate::browser::assert_page_headers(&page);

    // ann signed in with a password only, then turned TOTP on.
    let a = Browser::new(&s);
    assert_eq!(a.sign_in(None, "ann", PASSWORD).status, 303);
    let secret = enable_native(&s, &client, &cs, &ann);
    let old = format!("hallpass={}", a.cookie("hallpass").unwrap());
    assert_eq!(traefik(&s, "GET", secure, &[("Cookie", &old)]).status, 302);
    let page = a.get(&step_up);
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = crate::browser::field(&page.body, "csrf");
    assert_eq!(crate::browser::field(&page.body, "return_to"), secure);
    // Without its CSRF token: refused.
    let r = a.post(
        "/signin/step-up",
        &[("return_to", secure), ("code", "123456")],
    );
    assert_eq!(r.status, 403);
    let wrong = if code_at(&secret, s.now()) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = a.post(
        "/signin/step-up",
        &[("csrf", &csrf), ("return_to", secure), ("code", wrong)],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("id=\"code-error\""), "{}", r.body);
    let r = a.post(
        "/signin/step-up",
        &[
            ("csrf", &csrf),
            ("return_to", secure),
            ("code", &code_at(&secret, s.now())),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), secure);
    let new = format!("hallpass={}", a.cookie("hallpass").unwrap());
    assert_ne!(new, old, "a new session id after the step-up");
    let r = traefik(&s, "GET", secure, &[("Cookie", &new)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("remote-user"), Some("ann"));
    // The password-only session is over.
    let r = traefik(&s, "GET", "https://app.home.example/", &[("Cookie", &old)]);
    assert_eq!(r.status, 302);
    // Already stepped up: the page sends the browser straight on.
    let r = a.get(&step_up);
    assert_eq!((r.status, location(&r)), (303, secure));
}

#[test]
fn rd_is_followed_only_inside_the_cookie_domain() {
    let s = TestServer::start_with(|c| {
        c.public_url = Some("http://auth.home.example".into());
        c.cookie_domain = Some("home.example".into());
        c.limits.login_burst = 100.0;
    });
    s.add_user("ann@example.com");
    for (rd, to) in [
        (
            "https://grafana.home.example/d/1",
            "https://grafana.home.example/d/1",
        ),
        (
            "http://auth.home.example/account",
            "http://auth.home.example/account",
        ),
        ("https://evil.example/", "/account"),
        ("https://home.example.evil.example/", "/account"),
        ("https://evilhome.example/", "/account"),
        ("https://app.home.example@evil.example/", "/account"),
        ("https://evil.example\\@app.home.example/", "/account"),
        ("//evil.example/", "/account"),
        ("javascript:alert(1)//home.example", "/account"),
        ("https://app.home.example%2eevil.example/", "/account"),
    ] {
        let b = Browser::new(&s);
        let page = b.get(&format!("/signin?rd={}", hallpass::url::percent_encode(rd)));
        let r = b.post(
            "/signin",
            &[
                ("csrf", &crate::browser::field(&page.body, "csrf")),
                ("return_to", &crate::browser::field(&page.body, "return_to")),
                ("login", "ann"),
                ("password", PASSWORD),
            ],
        );
        assert_eq!((r.status, location(&r)), (303, to), "{rd}");
        // A forged hidden field is held to the same rule.
        let b = Browser::new(&s);
        let page = b.get("/signin");
        let r = b.post(
            "/signin",
            &[
                ("csrf", &crate::browser::field(&page.body, "csrf")),
                ("return_to", rd),
                ("login", "ann"),
                ("password", PASSWORD),
            ],
        );
        assert_eq!((r.status, location(&r)), (303, to), "forged {rd}");
    }
}

#[test]
fn the_convention_is_the_proxys_url_not_the_clients_headers() {
    // Traefik and Caddy pass a client's headers on to /auth/verify: an
    // X-Original-URL naming a bypass host must not stand in for the
    // X-Forwarded-* they set (review 14: an anonymous request reached
    // /private this way through a real Caddy).
    let s = server();
    let forged = [
        ("X-Original-URL", "https://public.home.example/"),
        ("X-Original-Method", "GET"),
    ];
    let r = traefik(&s, "GET", "https://app.home.example/secure", &forged);
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(location(&r).starts_with("http://auth.home.example/signin?rd="));
    let r = traefik(&s, "DELETE", "https://app.home.example/admin/x", &forged);
    assert_eq!(r.status, 302, "{}", r.body);
    // And nginx's URL reads only nginx's headers.
    let r = s.request(
        "GET",
        "/auth/verify?proxy=nginx",
        &[
            ("X-Forwarded-Host", "public.home.example"),
            ("X-Forwarded-Uri", "/"),
        ],
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn a_cookie_planted_beside_the_session_signs_no_one_in() {
    // A sibling host under the shared domain can set a `hallpass` cookie
    // too (cookie tossing). Sent beside ours, neither is believed; and a
    // sign-in deletes a host-only one left from before the cookie domain.
    let s = server();
    s.add_user("ann@example.com");
    s.add_user("bob@example.com");
    let ann = signed_in(&s, "ann");
    let bob = signed_in(&s, "bob");
    let url = "https://app.home.example/photos";
    let r = traefik(&s, "GET", url, &[("Cookie", &ann)]);
    assert_eq!(r.header("remote-user"), Some("ann"));
    let both = format!("{bob}; {ann}");
    let r = traefik(&s, "GET", url, &[("Cookie", &both)]);
    assert_eq!(r.status, 302, "two sessions under one name: {}", r.body);
    assert!(r.header("remote-user").is_none());

    let b = Browser::new(&s);
    let r = b.sign_in(None, "ann", PASSWORD);
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .filter(|v| v.starts_with("hallpass="))
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(
        cookies[0].starts_with("hallpass=;") && !cookies[0].contains("Domain"),
        "the host-only one is deleted: {cookies:?}"
    );
    assert!(cookies[1].contains("Domain=home.example"), "{cookies:?}");
}
