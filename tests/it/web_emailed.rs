//! The emailed sign-in pages through the real server, as a browser drives
//! them, finished by reading the mail the test mail command captured: a
//! sign-in link, a sign-in code, forgot/reset password, sign-up in its
//! three modes; known and unknown addresses answered alike; single use;
//! dead links; CSRF on every form; the per-IP limit.

use serde_json::json;

use crate::browser::{assert_page_headers, enc, field, location, Browser};
use crate::dialects::api_key;
use crate::second_factor::{code_at, enable_native};
use crate::support::{Resp, TestServer, PASSWORD};
use hallpass::config::Signup;

const NEW_PASSWORD: &str = "cobalt-heron-lantern-42";

/// The path and query of the first link to `path` in a mail.
fn mailed_link(mail: &str, path: &str) -> String {
    let at = mail
        .find(&format!("{path}?token="))
        .unwrap_or_else(|| panic!("no {path} link in {mail}"));
    mail[at..]
        .split(char::is_whitespace)
        .next()
        .unwrap()
        .to_string()
}

/// The 6-digit code of a sign-in code mail.
fn mail_code(mail: &str) -> String {
    let at = mail.find("code is: ").expect("a sign-in code mail") + "code is: ".len();
    mail[at..at + 6].to_string()
}

/// GET `form_path`, then post its form with `email`.
fn ask(b: &Browser, form_path: &str, email: &str) -> Resp {
    let page = b.get(form_path);
    assert_eq!(page.status, 200, "{form_path}: {}", page.body);
    let action = form_path.split('?').next().unwrap();
    let mut fields = vec![("csrf", field(&page.body, "csrf")), ("email", email.into())];
    if page.body.contains("name=\"return_to\"") {
        fields.push(("return_to", field(&page.body, "return_to")));
    }
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post(action, &fields)
}

/// How many mails were ever queued to `to`.
fn mails_to(s: &TestServer, to: &str) -> i64 {
    s.conn()
        .query_row(
            "SELECT count(*) FROM mail_outbox WHERE to_addr = ?1",
            [to],
            |r| r.get(0),
        )
        .unwrap()
}

fn session_amr(s: &TestServer) -> String {
    s.conn()
        .query_row(
            "SELECT amr FROM web_sessions ORDER BY created_at DESC, rowid DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// GET a mailed link's page and press its button.
fn press(b: &Browser, link: &str) -> Resp {
    let page = b.get(link);
    assert_eq!(page.status, 200, "{link}: {}", page.body);
    b.post(
        "/signin/link",
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("token", &field(&page.body, "token")),
        ],
    )
}

// --- sign-in link -------------------------------------------------------------

#[test]
fn a_sign_in_link_signs_in_once_and_only_through_its_button() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    let signin = b.get("/signin?return_to=%2Faccount%3Ftab%3D1");
    for href in [
        "/signin/email-link?return_to=%2Faccount%3Ftab%3D1",
        "/signin/email-code?return_to=%2Faccount%3Ftab%3D1",
        "/signin/forgot",
    ] {
        assert!(signin.body.contains(href), "{href}: {}", signin.body);
    }
    assert!(
        !signin.body.contains("/signup"),
        "signup is invite: {}",
        signin.body
    );

    let r = ask(
        &b,
        "/signin/email-link?return_to=%2Faccount%3Ftab%3D1",
        "Ann@Example.com",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Check your mail"), "{}", r.body);
    assert_page_headers(&r);
    let mail = s.last_mail("ann@example.com");
    let link = mailed_link(&mail.text, "/signin/link");
    assert!(
        mail.text
            .contains(&format!("{}/signin/link?token=", s.base)),
        "{}",
        mail.text
    );
    assert!(!mail.subject.contains("token"), "{}", mail.subject);

    // A scanner's GET (twice) uses nothing up and signs nobody in.
    let other = Browser::new(&s);
    for _ in 0..2 {
        let page = other.get(&link);
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page
            .body
            .contains("<button type=\"submit\">Sign in</button>"));
        assert!(other.cookie("hallpass").is_none());
    }
    let r = press(&b, &link);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account?tab=1", "the page it was asked from");
    assert!(b.cookie("hallpass").is_some());
    assert_eq!(b.get("/account").status, 200);
    assert_eq!(session_amr(&s), r#"["email"]"#);
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

    // Single use: the page and the button both say it is dead.
    let again = other.get(&link);
    assert_eq!(again.status, 410, "{}", again.body);
    assert!(
        again.body.contains("email-link\">Ask for a new link"),
        "{}",
        again.body
    );
    let page = other.get("/signin/email-link");
    let r = other.post(
        "/signin/link",
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("token", link.split("token=").nth(1).unwrap()),
        ],
    );
    assert_eq!(r.status, 410, "{}", r.body);
    assert!(other.cookie("hallpass").is_none());
}

#[test]
fn an_unknown_address_gets_the_same_page_and_no_mail() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    for form in ["/signin/email-link", "/signin/forgot"] {
        let b = Browser::new(&s);
        let known = ask(&b, form, "ann@example.com");
        let unknown = ask(&b, form, "nobody@example.com");
        assert_eq!(known.status, 200, "{form}: {}", known.body);
        assert_eq!(unknown.status, known.status);
        assert_eq!(
            known.body.replace("ann@example.com", "X"),
            unknown.body.replace("nobody@example.com", "X"),
            "{form}"
        );
    }
    let b = Browser::new(&s);
    let known = ask(&b, "/signin/email-code", "ann@example.com");
    let unknown = ask(&b, "/signin/email-code", "nobody@example.com");
    assert_eq!((known.status, unknown.status), (303, 303));
    assert_eq!(
        location(&known).replace(&enc("ann@example.com"), "X"),
        location(&unknown).replace(&enc("nobody@example.com"), "X")
    );
    assert_eq!(mails_to(&s, "nobody@example.com"), 0);
    assert_eq!(mails_to(&s, "ann@example.com"), 3);
    // Nor is anything kept for nobody.
    let rows: i64 = s
        .conn()
        .query_row(
            "SELECT count(*) FROM one_time_codes WHERE user_id IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0);
    // A second ask within the minute answers alike and sends nothing more.
    let r = ask(&b, "/signin/email-link", "ann@example.com");
    assert_eq!(r.status, 200);
    assert_eq!(mails_to(&s, "ann@example.com"), 3);
    // Not an address: said next to the field, nothing looked up.
    let r = ask(&b, "/signin/email-link", "ann");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"email-error\""), "{}", r.body);
}

#[test]
fn a_sign_in_link_leaves_the_second_factor_owed() {
    let s = TestServer::start();
    let (client, cs) = s.add_client();
    let user = s.add_user("tia@example.com");
    let secret = enable_native(&s, &client, &cs, &user);
    let b = Browser::new(&s);
    ask(&b, "/signin/email-link", "tia@example.com");
    let link = mailed_link(&s.outbox_body("tia@example.com"), "/signin/link");
    let r = press(&b, &link);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/signin/second-factor?return_to=%2Faccount");
    assert!(
        b.cookie("hallpass").is_none(),
        "no session before the factor"
    );
    let page = b.get(location(&r));
    assert_eq!(page.status, 200, "{}", page.body);
    let r = b.post(
        "/signin/second-factor",
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("return_to", "/account"),
            ("code", &code_at(&secret, s.now())),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account");
    assert_eq!(session_amr(&s), r#"["email","otp"]"#);
}

#[test]
fn dead_and_garbage_links_get_the_expired_page() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    for path in [
        "/signin/link?token=garbage",
        "/signin/link",
        "/signin/reset?token=garbage",
        "/signin/reset",
    ] {
        let r = b.get(path);
        assert_eq!(r.status, 410, "{path}: {}", r.body);
        assert!(r.body.contains("Link expired"), "{path}: {}", r.body);
        assert_page_headers(&r);
    }
    let long = format!("/signin/link?token={}", "a".repeat(5000));
    assert_eq!(b.get(&long).status, 410);

    ask(&b, "/signin/email-link", "ann@example.com");
    let link = mailed_link(&s.outbox_body("ann@example.com"), "/signin/link");
    ask(&b, "/signin/forgot", "ann@example.com");
    let reset = mailed_link(&s.outbox_body("ann@example.com"), "/signin/reset");
    assert_eq!(b.get(&link).status, 200);
    s.advance(901);
    assert_eq!(b.get(&link).status, 410, "15 minutes");
    assert_eq!(b.get(&reset).status, 200);
    s.advance(900);
    assert_eq!(b.get(&reset).status, 410, "30 minutes");
    // A link of the API is no link of the pages, nor the other way round.
    let api = s.post("/auth/magic_link", &json!({"email": "ann@example.com"}));
    assert_eq!(api.status, 200, "{}", api.body);
    let mail = s.outbox_body("ann@example.com");
    let token = mail.split("refresh_token=").nth(1).unwrap();
    let token = token
        .split(|c: char| c == '&' || c.is_whitespace())
        .next()
        .unwrap();
    assert_eq!(b.get(&format!("/signin/link?token={token}")).status, 410);
}

// --- sign-in code ---------------------------------------------------------------

#[test]
fn a_sign_in_code_signs_in_once_and_dies_after_five_wrong_tries() {
    // The code lock would delay the sixth try anyway; here the code's own
    // limit is what is shown.
    let s = TestServer::start_with(|c| c.limits.free_failures = 100);
    s.add_user("oli@example.com");
    let b = Browser::new(&s);
    let r = ask(
        &b,
        "/signin/email-code?return_to=%2Faccount%3Fx%3D1",
        "oli@example.com",
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        location(&r),
        "/signin/email-code/verify?email=oli%40example.com&return_to=%2Faccount%3Fx%3D1"
    );
    let page = b.get(location(&r));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("oli@example.com"), "{}", page.body);
    let code = mail_code(&s.outbox_body("oli@example.com"));
    let post = |code: &str| {
        b.post(
            "/signin/email-code/verify",
            &[
                ("csrf", &field(&page.body, "csrf")),
                ("email", &field(&page.body, "email")),
                ("return_to", &field(&page.body, "return_to")),
                ("code", code),
            ],
        )
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = post(wrong);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("id=\"code-error\""), "{}", r.body);
    let r = post("12ab");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"code-error\""), "{}", r.body);
    let r = post(&format!(" {} {} ", &code[..3], &code[3..]));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account?x=1");
    assert_eq!(b.get("/account").status, 200);
    assert_eq!(session_amr(&s), r#"["email"]"#);
    // Single use (a new form: signing in ended the pre-session cookie).
    let page = b.get("/signin/email-code/verify?email=oli%40example.com");
    let r = b.post(
        "/signin/email-code/verify",
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("email", "oli@example.com"),
            ("code", &code),
        ],
    );
    assert_eq!(r.status, 401, "{}", r.body);

    // A new code survives five wrong tries only.
    s.advance(61);
    let c = Browser::new(&s);
    ask(&c, "/signin/email-code", "oli@example.com");
    let code = mail_code(&s.outbox_body("oli@example.com"));
    let page = c.get("/signin/email-code/verify?email=oli%40example.com");
    let csrf = field(&page.body, "csrf");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let r = c.post(
            "/signin/email-code/verify",
            &[
                ("csrf", &csrf),
                ("email", "oli@example.com"),
                ("code", wrong),
            ],
        );
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = c.post(
        "/signin/email-code/verify",
        &[
            ("csrf", &csrf),
            ("email", "oli@example.com"),
            ("code", &code),
        ],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(c.cookie("hallpass").is_none());
}

// --- forgot / reset -----------------------------------------------------------------

#[test]
fn a_reset_link_sets_the_password_once_and_ends_every_session() {
    let s = TestServer::start();
    s.add_user("rex@example.com");
    let signed_in = Browser::new(&s);
    assert_eq!(signed_in.sign_in(None, "rex", PASSWORD).status, 303);
    assert_eq!(signed_in.get("/account").status, 200);

    let b = Browser::new(&s);
    let r = ask(&b, "/signin/forgot", "rex@example.com");
    assert_eq!(r.status, 200, "{}", r.body);
    let mail = s.last_mail("rex@example.com");
    let link = mailed_link(&mail.text, "/signin/reset");
    assert!(mail.text.contains(&s.base), "{}", mail.text);
    let page = b.get(&link);
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = field(&page.body, "csrf");
    let token = field(&page.body, "token");
    let post = |pw: &str, confirm: &str| {
        b.post(
            "/signin/reset",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", pw),
                ("password_confirm", confirm),
            ],
        )
    };
    let r = post("short", "short");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"password-error\""), "{}", r.body);
    assert!(r.body.contains("at least 8"), "{}", r.body);
    let r = post("password", "password");
    assert_eq!(r.status, 422);
    assert!(r.body.contains("most common"), "{}", r.body);
    let r = post(NEW_PASSWORD, "something-else-entirely");
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("id=\"password_confirm-error\""),
        "{}",
        r.body
    );
    // None of those used the link up.
    let r = post(NEW_PASSWORD, NEW_PASSWORD);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Password changed"), "{}", r.body);

    // The session from before is over; the old password is.
    assert_eq!(signed_in.get("/account").status, 303);
    assert_eq!(b.sign_in(None, "rex", PASSWORD).status, 401);
    assert_eq!(b.sign_in(None, "rex", NEW_PASSWORD).status, 303);
    // Single use (a new browser: the other one signed in, which ended its
    // pre-session cookie).
    let c = Browser::new(&s);
    assert_eq!(c.get(&link).status, 410);
    let page = c.get("/signin/forgot");
    let r = c.post(
        "/signin/reset",
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("token", &token),
            ("password", NEW_PASSWORD),
            ("password_confirm", NEW_PASSWORD),
        ],
    );
    assert_eq!(r.status, 410, "{}", r.body);
}

// --- sign-up --------------------------------------------------------------------------

/// Posts the sign-up link's form.
fn finish_sign_up(b: &Browser, link: &str, name: &str, password: &str) -> Resp {
    let page = b.get(link);
    assert_eq!(page.status, 200, "{}", page.body);
    b.post(
        "/signup/finish",
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("token", &field(&page.body, "token")),
            ("name", name),
            ("password", password),
            ("password_confirm", password),
        ],
    )
}

#[test]
fn open_sign_up_mails_a_link_that_creates_the_account_signed_in() {
    let s = TestServer::start_with(|c| c.signup = Signup::Open);
    s.add_user("has@example.com");
    let b = Browser::new(&s);
    assert!(b.get("/signin").body.contains("href=\"/signup\""));
    let new = ask(&b, "/signup", "new@example.com");
    let taken = ask(&b, "/signup", "has@example.com");
    assert_eq!(new.status, 200, "{}", new.body);
    assert_eq!(
        new.body.replace("new@example.com", "X"),
        taken.body.replace("has@example.com", "X")
    );
    // The owner of the address is told instead.
    let owner = s.last_mail("has@example.com");
    assert!(owner.subject.contains("already have"), "{}", owner.subject);
    assert!(!owner.text.contains("/signup?token="), "{}", owner.text);

    let link = mailed_link(&s.outbox_body("new@example.com"), "/signup");
    let page = b.get(&link);
    assert!(page.body.contains("new@example.com"), "{}", page.body);
    let r = finish_sign_up(&b, &link, "Nia New", "short");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"password-error\""), "{}", r.body);
    assert!(r.body.contains("value=\"Nia New\""), "kept: {}", r.body);
    let r = finish_sign_up(&b, &link, "Nia New", NEW_PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account");
    let acct = b.get("/account");
    assert_eq!(acct.status, 200);
    assert!(acct.body.contains("new@example.com"), "{}", acct.body);
    let (name, verified): (String, Option<i64>) = s
        .conn()
        .query_row(
            "SELECT name, email_verified_at FROM users WHERE email = 'new@example.com'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(name, "Nia New");
    assert!(verified.is_some(), "the link proved the address");
    // Single use; the new account signs in with its password.
    assert_eq!(b.get(&link).status, 410);
    let c = Browser::new(&s);
    assert_eq!(c.sign_in(None, "new@example.com", NEW_PASSWORD).status, 303);
}

#[test]
fn invite_sign_up_takes_only_mailed_invitations() {
    let s = TestServer::start(); // signup = invite
    let b = Browser::new(&s);
    assert!(!b.get("/signin").body.contains("/signup"));
    assert_eq!(b.get("/signup").status, 404);
    let page = b.get("/signin");
    let r = b.post(
        "/signup",
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("email", "x@example.com"),
        ],
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(mails_to(&s, "x@example.com"), 0);

    // An invitation from an API key with users:write lands on the page.
    let (client, secret) = s.add_client();
    let (key, _) = api_key(&s, &["users:write"]);
    let r = s.send_auth(
        "POST",
        "/auth/signup/create-token",
        &key,
        &json!({"client_id": client.client_id, "client_secret": secret, "email": "inv@example.com"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let link = mailed_link(&s.outbox_body("inv@example.com"), "/signup");
    let r = finish_sign_up(&b, &link, "", NEW_PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(b.get("/account").status, 200);
    assert_eq!(b.get("/signup?token=garbage").status, 410);
}

#[test]
fn sign_up_off_offers_no_page() {
    let s = TestServer::start_with(|c| c.signup = Signup::Off);
    let b = Browser::new(&s);
    assert!(!b.get("/signin").body.contains("/signup"));
    for path in ["/signup", "/signup?token=garbage"] {
        let r = b.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_page_headers(&r);
    }
    let page = b.get("/signin");
    let csrf = field(&page.body, "csrf");
    for path in ["/signup", "/signup/finish"] {
        let r = b.post(path, &[("csrf", &csrf), ("email", "x@example.com")]);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
}

// --- what every emailed page shares -----------------------------------------------------

#[test]
fn without_a_mail_command_no_emailed_flow_is_offered() {
    let s = TestServer::start_with(|c| {
        c.mail_command = Vec::new();
        c.signup = Signup::Open;
    });
    let b = Browser::new(&s);
    let signin = b.get("/signin");
    for href in [
        "/signin/email-link",
        "/signin/email-code",
        "/signin/forgot",
        "/signup",
    ] {
        assert!(!signin.body.contains(href), "{href}: {}", signin.body);
    }
    for path in [
        "/signin/email-link",
        "/signin/email-code",
        "/signin/email-code/verify?email=a%40example.com",
        "/signin/link?token=x",
        "/signin/forgot",
        "/signin/reset?token=x",
        "/signup",
    ] {
        assert_eq!(b.get(path).status, 404, "{path}");
    }
    let csrf = field(&signin.body, "csrf");
    for path in ["/signin/email-link", "/signin/forgot", "/signup"] {
        let r = b.post(path, &[("csrf", &csrf), ("email", "a@example.com")]);
        assert_eq!(r.status, 404, "{path}");
    }
}

#[test]
fn every_emailed_form_refuses_a_post_without_its_csrf_token() {
    let s = TestServer::start_with(|c| c.signup = Signup::Open);
    s.add_user("ann@example.com");
    let b = Browser::new(&s);
    let foreign = field(&Browser::new(&s).get("/signin").body, "csrf");
    b.get("/signin");
    for path in [
        "/signin/email-link",
        "/signin/link",
        "/signin/email-code",
        "/signin/email-code/verify",
        "/signin/forgot",
        "/signin/reset",
        "/signup",
        "/signup/finish",
    ] {
        for fields in [vec![], vec![("csrf", foreign.as_str())]] {
            let mut fields = fields;
            fields.extend([
                ("email", "ann@example.com"),
                ("token", "t"),
                ("code", "123456"),
                ("password", NEW_PASSWORD),
                ("password_confirm", NEW_PASSWORD),
            ]);
            let r = b.post(path, &fields);
            assert_eq!(r.status, 403, "{path}: {}", r.body);
            assert!(r.body.contains("Form expired"), "{path}: {}", r.body);
            assert_page_headers(&r);
        }
    }
    assert_eq!(mails_to(&s, "ann@example.com"), 0);
}

#[test]
fn asking_for_mail_too_often_from_one_address_gets_the_429_page() {
    let s = TestServer::start_with(|c| c.limits.login_burst = 3.0);
    let b = Browser::new(&s);
    let page = b.get("/signin/email-link");
    let csrf = field(&page.body, "csrf");
    let mut last = None;
    for i in 0..6 {
        let r = b.post(
            "/signin/email-link",
            &[("csrf", &csrf), ("email", &format!("p{i}@example.com"))],
        );
        if r.status == 429 {
            last = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = last.expect("limited within six asks");
    assert!(r.body.contains("Too many attempts. Wait"), "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert_page_headers(&r);
}
