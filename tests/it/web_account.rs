//! The account page through the real server, as a browser drives it
//! (`browser.rs`): password change, two-factor authentication on and
//! off, new recovery codes, recent sign-ins, signing out other sessions,
//! and the CSRF token every form needs.

use hallpass::auth::{self, Peer};
use hallpass::web::{account as flows, session};
use hallpass::{password, Error};
use serde_json::json;

use crate::browser::{assert_page_headers, field, location, Browser};
use crate::second_factor::code_at;
use crate::support::{TestServer, ITERATIONS, PASSWORD};

const NEW_PASSWORD: &str = "violet-heron-lantern-73";
/// Someone else's choice: a stolen session's, a phished password's.
const OTHER_PASSWORD: &str = "umber-falcon-cistern-88";

/// The source a flow called directly sees.
fn peer() -> Peer {
    Peer {
        ip: "127.0.0.1".into(),
        user_agent: None,
    }
}

/// A browser signed in as `login` (with `password`).
fn signed_in<'a>(s: &'a TestServer, login: &str, password: &str) -> Browser<'a> {
    let b = Browser::new(s);
    let r = b.sign_in(None, login, password);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account");
    b
}

/// The account page and its forms' CSRF token.
fn account(b: &Browser) -> (String, String) {
    let r = b.get("/account");
    assert_eq!(r.status, 200, "{}", r.body);
    let csrf = field(&r.body, "csrf");
    (r.body, csrf)
}

/// The text of the element that opens with `open` (up to the next `<`).
fn text_after<'h>(html: &'h str, open: &str) -> &'h str {
    let start = html
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in {html}"))
        + open.len();
    &html[start..start + html[start..].find('<').unwrap()]
}

/// The recovery codes listed in `<ul id="recovery-codes">`.
fn recovery_codes(html: &str) -> Vec<String> {
    let start = html
        .find("<ul id=\"recovery-codes\"")
        .unwrap_or_else(|| panic!("no recovery codes in {html}"));
    let list = &html[start..start + html[start..].find("</ul>").unwrap()];
    list.split("<code>")
        .skip(1)
        .map(|c| c[..c.find("</code>").unwrap()].to_string())
        .collect()
}

/// Turns TOTP on from the account page; returns the secret and the
/// recovery codes shown. The clock is left one step after the confirming
/// code, so the next code is usable.
fn enrol(s: &TestServer, b: &Browser) -> (String, Vec<String>) {
    let (_, csrf) = account(b);
    let page = b.post("/account/totp", &[("csrf", &csrf), ("password", PASSWORD)]);
    assert_eq!(page.status, 200, "{}", page.body);
    let secret = text_after(&page.body, "<code id=\"totp-secret\">").to_string();
    let csrf = field(&page.body, "csrf");
    let done = b.post(
        "/account/totp/confirm",
        &[("csrf", &csrf), ("code", &code_at(&secret, s.now()))],
    );
    assert_eq!(done.status, 200, "{}", done.body);
    s.advance(30);
    (secret, recovery_codes(&done.body))
}

/// Signs in a fresh browser with the password and then `code` at the
/// second-factor page; returns the second step's answer.
fn sign_in_with_code<'a>(s: &'a TestServer, login: &str, code: &str) -> (Browser<'a>, u16) {
    let b = Browser::new(s);
    let r = b.sign_in(None, login, PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        location(&r).starts_with("/signin/second-factor"),
        "a second factor is asked for: {r:?}"
    );
    let page = b.get(location(&r));
    let csrf = field(&page.body, "csrf");
    let r = b.post("/signin/second-factor", &[("csrf", &csrf), ("code", code)]);
    (b, r.status)
}

fn live_web_sessions(s: &TestServer) -> i64 {
    s.conn()
        .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn the_page_needs_a_session_and_has_its_sections_and_headers() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let r = Browser::new(&s).get("/account");
    assert_eq!(r.status, 303);
    assert_eq!(location(&r), "/signin?return_to=%2Faccount");
    assert_page_headers(&r);

    let b = signed_in(&s, "ann", PASSWORD);
    let r = b.get("/account");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_page_headers(&r);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    for id in ["password", "two-factor", "recovery", "activity", "sessions"] {
        assert!(r.body.contains(&format!("<section id=\"{id}\"")), "{id}");
    }
    assert!(r.body.contains("Set up two-factor authentication"));
    for label in ["current_password", "new_password", "confirm_password"] {
        assert!(
            r.body.contains(&format!("<label for=\"{label}\">")),
            "{label}"
        );
    }
    // Only fixed words come from the URL.
    let r = b.get("/account?done=%3Cb%3Ehello");
    assert!(!r.body.contains("hello") && !r.body.contains("class=\"notice\""));
    let r = b.get("/account?done=totp-off");
    assert!(r.body.contains("Two-factor authentication is off."));
}

#[test]
fn every_form_refuses_a_missing_or_foreign_csrf_token() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    s.add_user("bob@example.com");
    let ann = signed_in(&s, "ann", PASSWORD);
    let bob = signed_in(&s, "bob", PASSWORD);
    let (_, foreign) = account(&bob);
    let forms = [
        "/account/password",
        "/account/totp",
        "/account/totp/confirm",
        "/account/totp/disable",
        "/account/recovery",
        "/account/sessions/signout-others",
    ];
    for path in forms {
        for csrf in ["", foreign.as_str()] {
            let r = ann.post(
                path,
                &[
                    ("csrf", csrf),
                    ("current_password", PASSWORD),
                    ("new_password", NEW_PASSWORD),
                    ("confirm_password", NEW_PASSWORD),
                ],
            );
            assert_eq!(r.status, 403, "{path}: {}", r.body);
            assert_page_headers(&r);
        }
    }
    // Nothing happened: the password and Bob's session are as they were.
    assert_eq!(bob.get("/account").status, 200);
    assert_eq!(signed_in(&s, "ann", PASSWORD).get("/account").status, 200);

    // Without any cookie there is nothing a token could be bound to.
    for path in forms {
        let r = s.request(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(b"csrf="),
        );
        assert_eq!(r.status, 403, "{path}");
    }
}

#[test]
fn a_form_posted_after_its_session_ended_goes_to_sign_in() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = signed_in(&s, "ann", PASSWORD);
    let (_, csrf) = account(&b);
    let cookie = b.cookie("hallpass").unwrap();
    // Signed out elsewhere (the admin, a password reset): the token still
    // matches the cookie, but no session is behind it.
    s.conn().execute("DELETE FROM web_sessions", []).unwrap();
    let r = s.request(
        "POST",
        "/account/sessions/signout-others",
        &[
            ("Cookie", &format!("hallpass={cookie}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(format!("csrf={csrf}").as_bytes()),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/signin?return_to=%2Faccount");
}

#[test]
fn changing_the_password_checks_both_and_ends_every_other_session() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let (client, secret) = s.add_client();
    let app = s.login_token(&client, &secret, "ann");
    let other = signed_in(&s, "ann", PASSWORD);
    let b = signed_in(&s, "ann", PASSWORD);
    let (_, csrf) = account(&b);
    let change = |current: &str, new: &str, again: &str| {
        b.post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", current),
                ("new_password", new),
                ("confirm_password", again),
            ],
        )
    };

    let r = change("not-my-password-at-all", NEW_PASSWORD, NEW_PASSWORD);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r
        .body
        .contains("<p class=\"error\" id=\"current_password-error\">"));
    assert_page_headers(&r);
    let r = change(PASSWORD, "short", "short");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r
        .body
        .contains("<p class=\"error\" id=\"new_password-error\">"));
    assert!(r.body.contains("at least 8"), "{}", r.body);
    let r = change(PASSWORD, "password123", "password123");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r
        .body
        .contains("id=\"new_password-error\">This password is one of"));
    let r = change(PASSWORD, PASSWORD, PASSWORD);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"new_password-error\""));
    let r = change(PASSWORD, NEW_PASSWORD, "violet-heron-lantern-74");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r
        .body
        .contains("<p class=\"error\" id=\"confirm_password-error\">"));
    let r = change("", NEW_PASSWORD, NEW_PASSWORD);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"current_password-error\""));
    // None of these changed anything.
    assert_eq!(other.get("/account").status, 200);

    let before = b.cookie("hallpass").unwrap();
    let r = change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account?done=password#password");
    assert_page_headers(&r);
    // This browser goes on, under a new id; the old id is dead.
    let after = b.cookie("hallpass").unwrap();
    assert_ne!(before, after);
    let page = b.get("/account?done=password");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Your password is changed."),
        "{}",
        page.body
    );
    let old = s.request(
        "GET",
        "/account",
        &[("Cookie", &format!("hallpass={before}"))],
        None,
    );
    assert_eq!(old.status, 303);
    // The other browser and the app are signed out.
    assert_eq!(other.get("/account").status, 303);
    let r = s.post(
        "/auth/token-refresh",
        &json!({"refreshToken": app["refreshToken"]}),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(live_web_sessions(&s), 1);
    // The old password no longer signs in; the new one does.
    let r = Browser::new(&s).sign_in(None, "ann", PASSWORD);
    assert_eq!(r.status, 401, "{}", r.body);
    signed_in(&s, "ann", NEW_PASSWORD);
}

/// Review 13, F1: a password change checks the current password against
/// the user row its request read first, and hashes the new one outside
/// any transaction. A reset by the owner landing in between (here put
/// there by hand: the row is read, the stored hash replaced, then the
/// change runs on what it read) must stand, not be overwritten.
#[test]
fn a_password_change_does_not_undo_a_reset_made_while_it_ran() {
    let s = TestServer::start();
    let read_first = s.add_user("vic@example.com");
    let reset = password::hash(NEW_PASSWORD, ITERATIONS).unwrap();
    s.conn()
        .execute(
            "UPDATE users SET password_hash = ?1 WHERE id = ?2",
            [&reset, &read_first.id],
        )
        .unwrap();
    // The same function behind the account page and the JSON API's
    // change-password.
    let r = auth::change_password_and(
        &mut s.ctx(),
        &read_first,
        PASSWORD,
        OTHER_PASSWORD,
        &peer(),
        |_, _| Ok(()),
    );
    assert_eq!(r, Err(Error::IncorrectPassword));
    // The reset's password signs in; the change's does not.
    let r = Browser::new(&s).sign_in(None, "vic", OTHER_PASSWORD);
    assert_eq!(r.status, 401, "{}", r.body);
    signed_in(&s, "vic", NEW_PASSWORD);
}

/// Review 13, F1: the account page's change renews this browser's session
/// under a new id; a session ended while the change ran ("sign out other
/// sessions" from the owner's browser, a reset, the admin) must stay
/// ended, and the change must not happen.
#[test]
fn a_password_change_does_not_bring_back_a_session_ended_while_it_ran() {
    let s = TestServer::start();
    s.add_user("vic@example.com");
    let b = signed_in(&s, "vic", PASSWORD);
    let mut cx = s.ctx();
    let cookie = b.cookie("hallpass").unwrap();
    let read_first = session::current(&cx.conn, &cookie, s.now())
        .unwrap()
        .unwrap();
    s.conn()
        .execute(
            "DELETE FROM web_sessions WHERE id_hash = ?1",
            [&read_first.id_hash],
        )
        .unwrap();
    let r = flows::change_password(&mut cx, &read_first, PASSWORD, OTHER_PASSWORD, &peer());
    assert_eq!(r, Err(Error::TokenRevoked));
    assert_eq!(live_web_sessions(&s), 0);
    // Nothing changed: the password is the old one.
    let r = Browser::new(&s).sign_in(None, "vic", OTHER_PASSWORD);
    assert_eq!(r.status, 401, "{}", r.body);
    signed_in(&s, "vic", PASSWORD);
}

/// The link to `path` in a mail's text.
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

/// Asks the emailed pages for a reset link, then (a minute later, past
/// the per-address quota's interval) a sign-in link; returns both.
fn mailed_reset_and_sign_in_links(s: &TestServer, email: &str) -> (String, String) {
    let b = Browser::new(s);
    let page = b.get("/signin/forgot");
    let r = b.post(
        "/signin/forgot",
        &[("csrf", &field(&page.body, "csrf")), ("email", email)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let reset = mailed_link(&s.last_mail(email).text, "/signin/reset");
    s.advance(61);
    let page = b.get("/signin/email-link");
    let r = b.post(
        "/signin/email-link",
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("email", email),
            ("return_to", "/account"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let link = mailed_link(&s.last_mail(email).text, "/signin/link");
    // Both live before the change.
    for l in [&reset, &link] {
        assert_eq!(Browser::new(s).get(l).status, 200, "{l}");
    }
    (reset, link)
}

/// Review 13, F2: links and codes mailed before a password change die
/// with the old password, as they do at a reset: a reset link in a mailbox
/// someone else reads must not undo the owner's change.
#[test]
fn a_password_change_uses_up_the_links_mailed_before_it() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let (client, secret) = s.add_client();
    let app = s.login_token(&client, &secret, "ann");

    // The JSON API's change-password.
    let (reset, link) = mailed_reset_and_sign_in_links(&s, "ann@example.com");
    let r = s.send_auth(
        "PATCH",
        "/auth/change-password",
        app["accessToken"].as_str().unwrap(),
        &json!({"oldPassword": PASSWORD, "password": NEW_PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for l in [&reset, &link] {
        let page = Browser::new(&s).get(l);
        assert_eq!(page.status, 410, "{l}: {}", page.body);
    }

    // The account page's.
    s.advance(61);
    let (reset, link) = mailed_reset_and_sign_in_links(&s, "ann@example.com");
    let b = signed_in(&s, "ann", NEW_PASSWORD);
    let (_, csrf) = account(&b);
    let r = b.post(
        "/account/password",
        &[
            ("csrf", &csrf),
            ("current_password", NEW_PASSWORD),
            ("new_password", OTHER_PASSWORD),
            ("confirm_password", OTHER_PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    for l in [&reset, &link] {
        let page = Browser::new(&s).get(l);
        assert_eq!(page.status, 410, "{l}: {}", page.body);
    }
}

/// Review 13, F2: "sign out other sessions" also ends a sign-in under way
/// elsewhere that has the password and owes only its second factor.
#[test]
fn signing_out_other_sessions_ends_a_sign_in_owing_its_second_factor() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = signed_in(&s, "ann", PASSWORD);
    let (secret, _) = enrol(&s, &b);
    // Elsewhere: the password given, the code page open.
    let other = Browser::new(&s);
    let r = other.sign_in(None, "ann", PASSWORD);
    assert!(location(&r).starts_with("/signin/second-factor"), "{r:?}");
    let page = other.get(location(&r));
    let pending_csrf = field(&page.body, "csrf");

    let (_, csrf) = account(&b);
    let r = b.post("/account/sessions/signout-others", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303, "{}", r.body);
    let r = other.post(
        "/signin/second-factor",
        &[
            ("csrf", &pending_csrf),
            ("code", &code_at(&secret, s.now())),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(location(&r).starts_with("/signin?"), "{r:?}");
    assert_eq!(other.get("/account").status, 303);
    assert_eq!(live_web_sessions(&s), 1);
}

#[test]
fn a_wrong_current_password_is_rate_limited_like_sign_in() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = signed_in(&s, "ann", PASSWORD);
    let (_, csrf) = account(&b);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = b.post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", "not-my-password-at-all"),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        );
        statuses.push(r.status);
        if r.status == 429 {
            assert!(r.header("retry-after").is_some(), "{r:?}");
            assert!(r
                .body
                .contains("id=\"current_password-error\">Too many attempts"));
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[test]
fn two_factor_is_set_up_from_the_qr_page_and_then_asked_for_at_sign_in() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = signed_in(&s, "ann", PASSWORD);
    let (body, csrf) = account(&b);
    assert!(body.contains("<label for=\"totp_password\">Current password</label>"));
    // The session alone does not add a factor: the current password first.
    let set_up =
        |password: &str| b.post("/account/totp", &[("csrf", &csrf), ("password", password)]);
    for (password, status) in [("", 422), ("not-my-password-at-all", 401)] {
        let r = set_up(password);
        assert_eq!(r.status, status, "{password:?}: {}", r.body);
        assert!(
            r.body
                .contains("<p class=\"error\" id=\"totp_password-error\">"),
            "{}",
            r.body
        );
        assert!(r.body.contains("<strong>Off.</strong>"));
    }
    let page = set_up(PASSWORD);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_page_headers(&page);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(
        page.body.contains("<img id=\"totp-qr\" alt=\"")
            && page.body.contains("src=\"data:image&#x2f;png;base64,"),
        "{}",
        page.body
    );
    assert!(page.body.contains("action=\"/account/totp/confirm\""));
    let secret = text_after(&page.body, "<code id=\"totp-secret\">").to_string();
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    let csrf = field(&page.body, "csrf");

    // A wrong code, then an empty one: refused next to the field, the same
    // secret shown again.
    let r = b.post(
        "/account/totp/confirm",
        &[("csrf", &csrf), ("code", "000000")],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("<p class=\"error\" id=\"code-error\">"));
    assert_eq!(text_after(&r.body, "<code id=\"totp-secret\">"), secret);
    let r = b.post("/account/totp/confirm", &[("csrf", &csrf), ("code", "")]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"code-error\""));
    // Still off: signing in asks for no code.
    assert_eq!(
        Browser::new(&s)
            .sign_in(None, "ann", PASSWORD)
            .header("location"),
        Some("/account")
    );

    let done = b.post(
        "/account/totp/confirm",
        &[("csrf", &csrf), ("code", &code_at(&secret, s.now()))],
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert_page_headers(&done);
    assert_eq!(done.header("cache-control"), Some("no-store"));
    let codes = recovery_codes(&done.body);
    assert_eq!(codes.len(), 10, "{}", done.body);
    s.advance(30);

    let (body, _) = account(&b);
    assert!(body.contains("<strong>On.</strong>"), "{body}");
    assert!(body.contains("10 unused"), "{body}");
    // Setting up again while on is refused.
    let (_, csrf) = account(&b);
    let r = b.post("/account/totp", &[("csrf", &csrf), ("password", PASSWORD)]);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("id=\"totp-error\""));

    // Signing in now owes the code.
    let (_, status) = sign_in_with_code(&s, "ann", "000000");
    assert_eq!(status, 401);
    let (c, status) = sign_in_with_code(&s, "ann", &code_at(&secret, s.now()));
    assert_eq!(status, 303);
    assert_eq!(c.get("/account").status, 200);
    s.advance(30);
    // A recovery code shown on the page works once.
    let (_, status) = sign_in_with_code(&s, "ann", &codes[0]);
    assert_eq!(status, 303);
    let (_, status) = sign_in_with_code(&s, "ann", &codes[0]);
    assert_eq!(status, 401);
}

/// Review 13, F3: wrong passwords at the set-up form count against the
/// same limits as every other check of the current password.
#[test]
fn a_wrong_password_at_the_two_factor_set_up_is_rate_limited() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = signed_in(&s, "ann", PASSWORD);
    let (_, csrf) = account(&b);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = b.post(
            "/account/totp",
            &[("csrf", &csrf), ("password", "not-my-password-at-all")],
        );
        statuses.push(r.status);
        if r.status == 429 {
            assert!(r.header("retry-after").is_some(), "{r:?}");
            assert!(r
                .body
                .contains("id=\"totp_password-error\">Too many attempts"));
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // Locked: even the right password waits.
    let r = b.post("/account/totp", &[("csrf", &csrf), ("password", PASSWORD)]);
    assert_eq!(r.status, 429, "{}", r.body);
}

/// Review 13, F3: an account without a password (signed up through a
/// provider) has nothing to type; its session's sign-in must be recent
/// instead, else the page says to sign in again.
#[test]
fn without_a_password_two_factor_set_up_needs_a_recent_sign_in() {
    let s = TestServer::start();
    let user = s.add_user("pat@example.com");
    s.conn()
        .execute(
            "UPDATE users SET password_hash = NULL WHERE id = ?1",
            [&user.id],
        )
        .unwrap();
    let mut cx = s.ctx();
    let amr = vec!["fed".to_string()];
    let id = cx
        .write(|tx| session::start(tx, &user.id, &amr, 86_400, 86_400 * 30, s.now()))
        .unwrap();
    let b = Browser::new(&s);
    b.keep(&crate::support::Resp {
        status: 200,
        headers: vec![("set-cookie".into(), format!("hallpass={id}; Path=/"))],
        body: String::new(),
    });
    let (body, csrf) = account(&b);
    assert!(!body.contains("totp_password"), "{body}");
    assert!(body.contains("sign in again"), "{body}");

    s.advance(flows::RECENT_SIGN_IN_SECS + 1);
    let r = b.post("/account/totp", &[("csrf", &csrf)]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body
            .contains("<p class=\"error\" id=\"totp-error\">For your safety"),
        "{}",
        r.body
    );
    assert!(r.body.contains("Sign out, sign in again"), "{}", r.body);
    assert!(r.body.contains("<strong>Off.</strong>"));

    // Just signed in: the set-up page.
    let id = cx
        .write(|tx| session::start(tx, &user.id, &amr, 86_400, 86_400 * 30, s.now()))
        .unwrap();
    let b = Browser::new(&s);
    b.keep(&crate::support::Resp {
        status: 200,
        headers: vec![("set-cookie".into(), format!("hallpass={id}; Path=/"))],
        body: String::new(),
    });
    let (_, csrf) = account(&b);
    let r = b.post("/account/totp", &[("csrf", &csrf)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<code id=\"totp-secret\">"));
}

#[test]
fn a_set_up_not_confirmed_in_time_must_start_again() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = signed_in(&s, "ann", PASSWORD);
    let (_, csrf) = account(&b);
    let page = b.post("/account/totp", &[("csrf", &csrf), ("password", PASSWORD)]);
    let secret = text_after(&page.body, "<code id=\"totp-secret\">").to_string();
    s.advance(601);
    let (_, csrf) = account(&b);
    let r = b.post(
        "/account/totp/confirm",
        &[("csrf", &csrf), ("code", &code_at(&secret, s.now()))],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r
        .body
        .contains("<p class=\"error\" id=\"totp-error\">This set-up has expired"));
    assert!(r.body.contains("<strong>Off.</strong>"));
}

#[test]
fn two_factor_goes_off_only_with_a_code_of_the_factor() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = signed_in(&s, "ann", PASSWORD);
    let (secret, codes) = enrol(&s, &b);
    let (_, csrf) = account(&b);
    for (code, status) in [("000000", 401), ("", 422), ("not a code", 422)] {
        let r = b.post("/account/totp/disable", &[("csrf", &csrf), ("code", code)]);
        assert_eq!(r.status, status, "{code}: {}", r.body);
        assert!(
            r.body.contains("<p class=\"error\" id=\"code-error\">"),
            "{code}"
        );
    }
    let r = b.post(
        "/account/totp/disable",
        &[("csrf", &csrf), ("code", &code_at(&secret, s.now()))],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account?done=totp-off#two-factor");
    let page = b.get(location(&r));
    assert!(page.body.contains("Two-factor authentication is off."));
    assert!(page.body.contains("<strong>Off.</strong>"));
    // Signing in asks for no code, and the recovery codes are gone.
    let r = Browser::new(&s).sign_in(None, "ann", PASSWORD);
    assert_eq!(location(&r), "/account");
    let left: i64 = s
        .conn()
        .query_row("SELECT count(*) FROM recovery_codes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);

    // On again, then off with a recovery code (a lost phone).
    s.advance(30);
    let (_, codes2) = enrol(&s, &b);
    assert_ne!(codes, codes2);
    let (_, csrf) = account(&b);
    let r = b.post(
        "/account/totp/disable",
        &[("csrf", &csrf), ("code", &codes2[3].to_uppercase())],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    // Off now: a second try says so.
    let r = b.post(
        "/account/totp/disable",
        &[("csrf", &csrf), ("code", "123456")],
    );
    assert_eq!(r.status, 409, "{}", r.body);
}

#[test]
fn new_recovery_codes_need_the_password_and_replace_the_old_ones() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let b = signed_in(&s, "ann", PASSWORD);
    let (_, csrf) = account(&b);
    // Off: there is nothing to replace.
    let r = b.post(
        "/account/recovery",
        &[("csrf", &csrf), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("id=\"password-error\""));

    let (_, old) = enrol(&s, &b);
    let (_, csrf) = account(&b);
    let r = b.post(
        "/account/recovery",
        &[("csrf", &csrf), ("password", "not-my-password-at-all")],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("<p class=\"error\" id=\"password-error\">"));
    let r = b.post("/account/recovery", &[("csrf", &csrf), ("password", "")]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"password-error\""));

    let r = b.post(
        "/account/recovery",
        &[("csrf", &csrf), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_page_headers(&r);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let new = recovery_codes(&r.body);
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    // The old codes stop working; the new ones work.
    let (_, status) = sign_in_with_code(&s, "ann", &old[0]);
    assert_eq!(status, 401);
    let (_, status) = sign_in_with_code(&s, "ann", &new[0]);
    assert_eq!(status, 303);
}

#[test]
fn recent_sign_ins_are_listed_with_refusals() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    s.add_user("bob@example.com");
    let r = Browser::new(&s).sign_in(None, "ann", "not-my-password-at-all");
    assert_eq!(r.status, 401);
    // Bob's sign-ins are not Ann's to see.
    signed_in(&s, "bob", PASSWORD);
    let b = signed_in(&s, "ann", PASSWORD);
    let (body, _) = account(&b);
    let start = body.find("<section id=\"activity\"").unwrap();
    let section = &body[start..start + body[start..].find("</section>").unwrap()];
    assert!(section.contains("Refused: wrong password"), "{section}");
    assert!(section.contains("Signed in"), "{section}");
    assert!(section.contains("sign-in page, password"), "{section}");
    assert!(section.contains("127.0.0.1"), "{section}");
    assert!(section.contains("class=\"failed\""), "{section}");
    assert_eq!(section.matches("<li").count(), 2, "{section}");
    // Newest first.
    assert!(section.find("Signed in").unwrap() < section.find("Refused").unwrap());
}

#[test]
fn signing_out_other_sessions_keeps_this_one() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    s.add_user("bob@example.com");
    let (client, secret) = s.add_client();
    let app = s.login_token(&client, &secret, "ann");
    let bob = signed_in(&s, "bob", PASSWORD);
    let other = signed_in(&s, "ann", PASSWORD);
    let b = signed_in(&s, "ann", PASSWORD);
    let (body, csrf) = account(&b);
    assert!(
        body.contains("1 other browser session, 1 app session."),
        "{body}"
    );
    let cookie = b.cookie("hallpass").unwrap();
    let r = b.post("/account/sessions/signout-others", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), "/account?done=signed-out-others#sessions");
    assert_page_headers(&r);
    // This browser stays, same id; the other browser and the app end.
    assert_eq!(b.cookie("hallpass").unwrap(), cookie);
    let page = b.get("/account?done=signed-out-others");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Your other sessions are signed out."));
    assert!(page
        .body
        .contains("0 other browser sessions, 0 app sessions."));
    assert!(
        page.body.contains("Signed out other sessions"),
        "{}",
        page.body
    );
    assert_eq!(other.get("/account").status, 303);
    let r = s.get_auth("/auth/me", app["accessToken"].as_str().unwrap());
    assert_eq!(r.status, 401, "{}", r.body);
    let r = s.post(
        "/auth/token-refresh",
        &json!({"refreshToken": app["refreshToken"]}),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    // Someone else's session is untouched.
    assert_eq!(bob.get("/account").status, 200);
    assert_eq!(s.activity("LOGOUT"), 1);
}
