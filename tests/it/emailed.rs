//! Every emailed flow of the four dialects, finished by reading the mail:
//! magic links (yat, lagrello), emailed sign-in codes (send-otp,
//! passwordless), password reset and sign-up in its three modes; each
//! single-use value refused on reuse, after expiry and after too many
//! tries; known and unknown addresses answered alike; the per-address and
//! per-IP limits on mail.

use serde_json::{json, Value};

use crate::dialects::api_key;
use crate::second_factor::{code_at, enable_native};
use crate::support::{Resp, TestServer, PASSWORD};
use hallpass::config::Signup;

const NEW_PASSWORD: &str = "cobalt-heron-lantern-42";

/// The value of `name=` in the first link of a mail.
fn link_param(mail: &str, name: &str) -> String {
    let pat = format!("{name}=");
    let at = mail
        .find(&pat)
        .unwrap_or_else(|| panic!("no {name}= in {mail}"));
    mail[at + pat.len()..]
        .split(|c: char| c == '&' || c.is_whitespace())
        .next()
        .unwrap()
        .to_string()
}

/// The 6-digit code of a sign-in code mail.
fn mail_code(mail: &str) -> String {
    let at = mail.find("code is: ").expect("a sign-in code mail") + "code is: ".len();
    mail[at..at + 6].to_string()
}

/// An answer with the headers that legitimately vary (Date) left out.
fn shape(r: &Resp) -> (u16, Vec<(String, String)>, String) {
    let mut h: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("date"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    h.sort();
    (r.status, h, r.body.clone())
}

fn client_body(c: &hallpass::accounts::Client, secret: &str, extra: Value) -> Value {
    let mut b = json!({"client_id": c.client_id, "client_secret": secret});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

fn exchange(s: &TestServer, client_id: &str, code: &str) -> Resp {
    s.post("/auth/token", &json!({"clientId": client_id, "code": code}))
}

// --- yat magic link --------------------------------------------------------

#[test]
fn yat_magic_link_signs_in_once_and_dies_after_fifteen_minutes() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    // The link may lead only here or to a registered client's origin.
    s.add_client(); // redirect URL https://app.example/cb
    for evil in [
        "https://evil.example/steal",
        "//evil.example",
        "https://app.example@evil.example/",
    ] {
        let r = s.post(
            "/auth/magic_link",
            &json!({"email": "ann@example.com", "redirect": evil}),
        );
        assert_eq!(r.status, 422, "{evil}: {}", r.body);
    }
    let r = s.post(
        "/auth/magic_link",
        &json!({"email": "nobody@example.com", "redirect": "https://app.example/after"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.post(
        "/auth/magic_link",
        &json!({"email": "ann@example.com", "redirect": "/home"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "Active");
    let mail = s.outbox_body("ann@example.com");
    assert!(mail.contains("/magic_link?refresh_token="), "{mail}");
    assert!(mail.contains("redirect=%2Fhome"), "{mail}");
    let token = link_param(&mail, "refresh_token");

    let t = s.post("/auth/token/refresh", &json!({"refresh_token": token}));
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.json()["requires_2fa"], Value::Null);
    let me = s.get_auth("/auth/me", t.json()["access_token"].as_str().unwrap());
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["email"], "ann@example.com");
    // Its refresh token is an ordinary one.
    let again = s.post(
        "/auth/token/refresh",
        &json!({"refresh_token": t.json()["refresh_token"]}),
    );
    assert_eq!(again.status, 200, "{}", again.body);

    let reuse = s.post("/auth/token/refresh", &json!({"refresh_token": token}));
    assert_eq!(reuse.status, 401, "{}", reuse.body);

    s.advance(61);
    s.post("/auth/magic_link", &json!({"email": "ann@example.com"}));
    let late = link_param(&s.outbox_body("ann@example.com"), "refresh_token");
    assert_ne!(late, token);
    s.advance(901);
    let r = s.post("/auth/token/refresh", &json!({"refresh_token": late}));
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn a_magic_link_leaves_the_second_factor_owed() {
    let s = TestServer::start();
    let user = s.add_user("tia@example.com");
    let (client, secret) = s.add_client();
    let totp = enable_native(&s, &client, &secret, &user);
    s.post("/auth/magic_link", &json!({"email": "tia@example.com"}));
    let token = link_param(&s.outbox_body("tia@example.com"), "refresh_token");
    let t = s.post("/auth/token/refresh", &json!({"refresh_token": token}));
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.json()["requires_2fa"], "GoogleAuthenticator");
    let limited = t.json()["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        s.get_auth("/auth/me", t.json()["access_token"].as_str().unwrap())
            .status,
        401
    );
    let full = s.post(
        "/auth/2fa",
        &json!({"code": code_at(&totp, s.now()), "refresh_token": limited}),
    );
    assert_eq!(full.status, 200, "{}", full.body);
    assert_eq!(full.json()["requires_2fa"], Value::Null);
}

#[test]
fn magic_link_answers_alike_for_known_and_unknown_addresses() {
    let s = TestServer::start();
    s.add_user("kim@example.com");
    let known = s.post("/auth/magic_link", &json!({"email": "kim@example.com"}));
    let unknown = s.post("/auth/magic_link", &json!({"email": "nobody@example.com"}));
    assert_eq!(known.status, 200);
    assert_eq!(shape(&known), shape(&unknown));
    let crlf = s.post(
        "/auth/magic_link",
        &json!({"email": "kim@example.com\r\nBcc: evil@example.com"}),
    );
    assert_eq!(crlf.status, 422, "{}", crlf.body);
}

// --- lagrello magic link ---------------------------------------------------

#[test]
fn lagrello_magic_link_goes_to_the_callback_and_verifies_once() {
    let s = TestServer::start();
    let (key, tenant) = api_key(&s, &["users:write", "users:read", "auth:write"]);
    let r = s.send_auth(
        "POST",
        "/v1/users",
        &key,
        &json!({"userId": "u-1", "email": "lu@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    s.send_auth("POST", "/v1/users", &key, &json!({"userId": "no-mail"}));

    // The default callback.
    let r = s.send_auth("POST", "/v1/users/u-1/email", &key, &json!({}));
    assert_eq!(r.status, 204, "{}", r.body);
    let mail = s.outbox_body("lu@example.com");
    assert!(mail.contains(&format!("{}/magic?token=", s.base)), "{mail}");
    let token = link_param(&mail, "token");
    let ok = s.get_auth(&format!("/v1/users/email?payload={token}"), &key);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.json(),
        json!({"userId": "u-1", "email": "lu@example.com"})
    );
    let reuse = s.get_auth(&format!("/v1/users/email?payload={token}"), &key);
    assert_eq!(reuse.status, 401);
    assert_eq!(
        reuse.json()["message"],
        "End users token is wrong, DO NOT authenticate user"
    );

    // The tenant's own callback, and expiry.
    s.conn()
        .execute(
            "UPDATE tenants SET callback_url = 'https://app.example/in?t={}' WHERE id = ?1",
            [&tenant],
        )
        .unwrap();
    s.advance(61);
    s.send_auth("POST", "/v1/users/u-1/email", &key, &json!({}));
    let mail = s.outbox_body("lu@example.com");
    assert!(mail.contains("https://app.example/in?t="), "{mail}");
    let token = link_param(&mail, "t");
    s.advance(901);
    let late = s.get_auth(&format!("/v1/users/email?payload={token}"), &key);
    assert_eq!(late.status, 401);

    // A link sent before the user was disabled signs nobody in.
    s.advance(61);
    s.send_auth("POST", "/v1/users/u-1/email", &key, &json!({}));
    let token = link_param(&s.outbox_body("lu@example.com"), "t");
    s.conn()
        .execute(
            "UPDATE users SET status = 'disabled' WHERE email = 'lu@example.com'",
            [],
        )
        .unwrap();
    let disabled = s.get_auth(&format!("/v1/users/email?payload={token}"), &key);
    assert_eq!(disabled.status, 403, "{}", disabled.body);

    let none = s.send_auth("POST", "/v1/users/no-mail/email", &key, &json!({}));
    assert_eq!(none.status, 400, "{}", none.body);
    let (reader, _) = api_key(&s, &["users:read"]);
    let r = s.send_auth("POST", "/v1/users/u-1/email", &reader, &json!({}));
    assert_eq!(r.status, 403);
}

// --- emailed codes ---------------------------------------------------------

#[test]
fn send_otp_mails_a_code_that_verify_otp_turns_into_a_login_code_once() {
    let s = TestServer::start();
    s.add_user("oli@example.com");
    let (client, secret) = s.add_client();
    let r = s.post(
        "/auth/send-otp",
        &client_body(&client, &secret, json!({"key": "oli"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let otp = mail_code(&s.outbox_body("oli@example.com"));
    let v = s.post("/auth/verify-otp", &json!({"key": "oli", "otp": otp}));
    assert_eq!(v.status, 200, "{}", v.body);
    let t = exchange(&s, &client.client_id, v.json()["code"].as_str().unwrap());
    assert_eq!(t.status, 200, "{}", t.body);
    let again = s.post("/auth/verify-otp", &json!({"key": "oli", "otp": otp}));
    assert_eq!(again.status, 401);
    assert_eq!(again.json()["error"]["message"], "Otp Invalid");

    // Expired after ten minutes.
    s.advance(61);
    s.post(
        "/auth/send-otp",
        &client_body(&client, &secret, json!({"key": "oli@example.com"})),
    );
    let otp = mail_code(&s.outbox_body("oli@example.com"));
    s.advance(601);
    let late = s.post("/auth/verify-otp", &json!({"key": "oli", "otp": otp}));
    assert_eq!(late.status, 401);
}

#[test]
fn an_emailed_code_dies_after_five_wrong_tries() {
    let s = TestServer::start();
    s.add_user("fay@example.com");
    let (client, secret) = s.add_client();
    s.post(
        "/auth/passwordless/start",
        &client_body(&client, &secret, json!({"key": "fay"})),
    );
    let otp = mail_code(&s.outbox_body("fay@example.com"));
    let wrong = if otp == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let r = s.post(
            "/auth/passwordless/verify",
            &json!({"key": "fay", "otp": wrong}),
        );
        assert_eq!(r.status, 401, "{}", r.body);
    }
    // Past the soft lock's first delay, the right code is dead all the same.
    s.advance(5);
    let r = s.post(
        "/auth/passwordless/verify",
        &json!({"key": "fay", "otp": otp}),
    );
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn passwordless_signs_in_and_a_user_with_totp_still_owes_the_factor() {
    let s = TestServer::start();
    s.add_user("pam@example.com");
    let tia = s.add_user("tom@example.com");
    let (client, secret) = s.add_client();
    s.post(
        "/auth/passwordless/start",
        &client_body(&client, &secret, json!({"key": "pam@example.com"})),
    );
    let otp = mail_code(&s.outbox_body("pam@example.com"));
    let v = s.post(
        "/auth/passwordless/verify",
        &json!({"key": "pam@example.com", "otp": otp}),
    );
    assert_eq!(v.status, 200, "{}", v.body);
    let t = exchange(&s, &client.client_id, v.json()["code"].as_str().unwrap());
    assert_eq!(t.status, 200, "{}", t.body);

    let totp = enable_native(&s, &client, &secret, &tia);
    s.post(
        "/auth/passwordless/start",
        &client_body(&client, &secret, json!({"key": "tom"})),
    );
    let otp = mail_code(&s.outbox_body("tom@example.com"));
    let v = s.post(
        "/auth/passwordless/verify",
        &json!({"key": "tom", "otp": otp}),
    );
    assert_eq!(v.status, 200, "{}", v.body);
    let owed = v.json()["code"].as_str().unwrap().to_string();
    assert_eq!(exchange(&s, &client.client_id, &owed).status, 401);
    let done = s.post(
        "/auth/verify-otp",
        &json!({"key": "tom", "otp": code_at(&totp, s.now()), "code": owed,
                "clientId": client.client_id}),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    let t = exchange(&s, &client.client_id, done.json()["code"].as_str().unwrap());
    assert_eq!(t.status, 200, "{}", t.body);
}

#[test]
fn code_requests_answer_alike_and_flood_no_mailbox() {
    let s = TestServer::start();
    s.add_user("max@example.com");
    let (client, secret) = s.add_client();
    let ask = |key: &str| {
        s.post(
            "/auth/send-otp",
            &client_body(&client, &secret, json!({"key": key})),
        )
    };
    let known = ask("max");
    let unknown = ask("nobody-here");
    assert_eq!(known.status, 200);
    assert_eq!(shape(&known), shape(&unknown));
    let first = s.outbox_body("max@example.com");
    // A second request within the minute answers the same and sends nothing.
    let again = ask("max@example.com");
    assert_eq!(shape(&again), shape(&known));
    assert_eq!(s.outbox_body("max@example.com"), first);
    // The first code still works: nothing replaced it.
    let v = s.post(
        "/auth/verify-otp",
        &json!({"key": "max", "otp": mail_code(&first)}),
    );
    assert_eq!(v.status, 200, "{}", v.body);
    // At most five an hour.
    let mut last = first;
    for n in 0..4 {
        s.advance(61);
        ask("max");
        let now = s.outbox_body("max@example.com");
        assert_ne!(now, last, "mail {} of the hour is sent", n + 2);
        last = now;
    }
    s.advance(61);
    ask("max");
    assert_eq!(s.outbox_body("max@example.com"), last, "the sixth is not");
    s.advance(3600);
    ask("max");
    assert_ne!(s.outbox_body("max@example.com"), last);
}

#[test]
fn mail_requests_meet_the_per_ip_limit() {
    let s = TestServer::start_with(|c| c.limits.login_burst = 3.0);
    let (client, secret) = s.add_client();
    for n in 0..3 {
        let r = s.post(
            "/auth/forget-password",
            &client_body(
                &client,
                &secret,
                json!({"username": format!("u{n}@example.com")}),
            ),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let r = s.post(
        "/auth/forget-password",
        &client_body(&client, &secret, json!({"username": "u9@example.com"})),
    );
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("Retry-After").is_some());
    // Another address is another bucket.
    let other = s.post_from(
        "127.0.0.2",
        "/auth/forget-password",
        &client_body(&client, &secret, json!({"username": "u9@example.com"})),
    );
    assert_eq!(other.status, 204, "{}", other.body);
}

// --- password reset --------------------------------------------------------

#[test]
fn forget_password_answers_alike_and_the_reset_ends_sessions_and_the_soft_lock() {
    let s = TestServer::start();
    s.add_user("rex@example.com");
    let (client, secret) = s.add_client();
    let session = s.login_token(&client, &secret, "rex");
    // Guesses from another source, until the soft lock holds it.
    let guesser = "127.0.0.3";
    let mut locked = false;
    for _ in 0..8 {
        let r = s.post_from(
            guesser,
            "/auth/login-token",
            &client_body(
                &client,
                &secret,
                json!({"username": "rex", "password": "wrong-guess-000"}),
            ),
        );
        locked |= r.status == 429;
    }
    assert!(locked, "the soft lock holds");

    let ask = |name: &str| {
        s.post(
            "/auth/forget-password",
            &client_body(&client, &secret, json!({"username": name})),
        )
    };
    let known = ask("rex");
    let unknown = ask("ghost@example.com");
    assert_eq!(known.status, 204, "{}", known.body);
    assert_eq!(shape(&known), shape(&unknown));
    let bad_client = s.post(
        "/auth/forget-password",
        &json!({"username": "rex", "client_id": client.client_id, "client_secret": "nope"}),
    );
    assert_eq!(bad_client.status, 401);

    let mail = s.outbox_body("rex@example.com");
    assert!(
        mail.contains(&format!("{}/reset-password?token=", s.base)),
        "{mail}"
    );
    let first = link_param(&mail, "token");
    // A second request a minute later: the reset below uses the newer
    // link, and the older one dies with the old password.
    s.advance(61);
    let again = s.post(
        "/auth/forget-password",
        &json!({"username": "rex", "client_id": client.client_id, "client_secret": secret}),
    );
    assert_eq!(again.status, 204);
    let token = link_param(&s.outbox_body("rex@example.com"), "token");
    assert_ne!(token, first);
    let check = s.get(&format!("/auth/verify-reset-password-link?token={token}"));
    assert_eq!(check.status, 200, "{}", check.body);
    assert_eq!(check.json(), json!({"success": true}));

    let weak = s.send(
        "PATCH",
        "/auth/reset-password",
        &client_body(
            &client,
            &secret,
            json!({"token": token, "password": "short"}),
        ),
    );
    assert_eq!(weak.status, 422, "{}", weak.body);
    let r = s.send(
        "PATCH",
        "/auth/reset-password",
        &client_body(
            &client,
            &secret,
            json!({"token": token, "password": NEW_PASSWORD}),
        ),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let older = s.get(&format!("/auth/verify-reset-password-link?token={first}"));
    assert_eq!(
        older.status, 401,
        "the older link died with the old password"
    );

    // Every family is revoked.
    let old = s.post(
        "/auth/token-refresh",
        &json!({"refreshToken": session["refreshToken"]}),
    );
    assert_eq!(old.status, 401, "{}", old.body);
    // The soft lock is cleared: the new password works at once, there too.
    let login = s.post_from(
        guesser,
        "/auth/login-token",
        &client_body(
            &client,
            &secret,
            json!({"username": "rex", "password": NEW_PASSWORD}),
        ),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    // Single use.
    let reuse = s.send(
        "PATCH",
        "/auth/reset-password",
        &client_body(
            &client,
            &secret,
            json!({"token": token, "password": PASSWORD}),
        ),
    );
    assert_eq!(reuse.status, 401);
    let check = s.get(&format!("/auth/verify-reset-password-link?token={token}"));
    assert_eq!(check.status, 401);
    assert_eq!(check.json()["error"]["message"], "TokenRevoked");

    // Thirty minutes.
    s.advance(61);
    ask("rex");
    let token = link_param(&s.outbox_body("rex@example.com"), "token");
    s.advance(1801);
    let check = s.get(&format!("/auth/verify-reset-password-link?token={token}"));
    assert_eq!(check.status, 401);
    assert_eq!(check.json()["error"]["message"], "Token Expired");
    let late = s.send(
        "PATCH",
        "/auth/reset-password",
        &client_body(
            &client,
            &secret,
            json!({"token": token, "password": PASSWORD}),
        ),
    );
    assert_eq!(late.status, 401);
}

#[test]
fn a_line_break_in_an_address_is_refused() {
    let s = TestServer::start_with(|c| c.signup = Signup::Open);
    let (client, secret) = s.add_client();
    let evil = "a@example.com\r\nBcc: victim@example.com";
    for (path, field) in [
        ("/auth/forget-password", "username"),
        ("/auth/send-otp", "key"),
        ("/auth/signup/create-token", "email"),
    ] {
        let r = s.post(path, &client_body(&client, &secret, json!({ field: evil })));
        assert_eq!(r.status, 422, "{path}: {}", r.body);
    }
}

// --- sign-up ---------------------------------------------------------------

fn admin_token(s: &TestServer) -> String {
    let mut conn = s.conn();
    let new = hallpass::accounts::NewUser {
        email: Some("root@example.com".into()),
        username: Some("root".into()),
        password_hash: Some(hallpass::password::hash(PASSWORD, 1000).unwrap()),
        role: "admin".into(),
        ..Default::default()
    };
    hallpass::db::immediate(&mut conn, |tx| {
        hallpass::accounts::create_user(tx, &new, s.now())
    })
    .unwrap();
    let (client, secret) = s.add_client();
    s.login_token(&client, &secret, "root")["accessToken"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn invite_sign_up_needs_an_admin_or_a_users_write_key_and_the_token_is_single_use() {
    let s = TestServer::start();
    let (client, secret) = s.add_client();
    let body = |email: &str| client_body(&client, &secret, json!({"email": email}));
    let anon = s.post("/auth/signup/create-token", &body("new@example.com"));
    assert_eq!(anon.status, 403, "{}", anon.body);
    let (reader, _) = api_key(&s, &["users:read"]);
    let r = s.send_auth(
        "POST",
        "/auth/signup/create-token",
        &reader,
        &body("new@example.com"),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    let (writer, tenant) = api_key(&s, &["users:write"]);
    let r = s.send_auth(
        "POST",
        "/auth/sign-up/create-token",
        &writer,
        &body("new@example.com"),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let mail = s.outbox_body("new@example.com");
    assert!(
        mail.contains(&format!("{}/signup?token=", s.base)),
        "{mail}"
    );
    let token = link_param(&mail, "token");

    let v = s.get_auth("/auth/signup/verify-token", &token);
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.json()["email"], "new@example.com");
    let exp = v.json()["exp"].as_i64().unwrap();
    assert!((s.now() + 86_400 - exp).abs() <= 1);

    let create = |email: &str| {
        s.send_auth(
            "POST",
            "/auth/signup/create-user",
            &token,
            &json!({"email": email, "password": PASSWORD, "username": "newbie", "name": "New Bie"}),
        )
    };
    let wrong = create("other@example.com");
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    let ok = create("NEW@example.com");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["email"], "new@example.com");
    assert_eq!(ok.json()["user"]["username"], "newbie");
    let id = ok.json()["user"]["id"].as_str().unwrap().to_string();
    let (verified, joined): (Option<i64>, i64) = s
        .conn()
        .query_row(
            "SELECT email_verified_at, (SELECT count(*) FROM user_tenants WHERE user_id = ?1 AND tenant_id = ?2)
               FROM users WHERE id = ?1",
            [&id, &tenant],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(verified.is_some());
    assert_eq!(joined, 1, "the key's tenant");
    assert_eq!(create("new@example.com").status, 401, "single use");
    s.login_token(&client, &secret, "newbie");

    // An admin bearer may invite too; the token lives 24 hours.
    let admin = admin_token(&s);
    let r = s.send_auth(
        "POST",
        "/auth/signup/create-token",
        &admin,
        &body("late@example.com"),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let token = link_param(&s.outbox_body("late@example.com"), "token");
    s.advance(86_401);
    let v = s.get_auth("/auth/signup/verify-token", &token);
    assert_eq!(v.status, 401);
    assert_eq!(v.json()["error"]["message"], "Token Expired");
}

#[test]
fn sign_up_off_refuses_every_caller() {
    let s = TestServer::start_with(|c| c.signup = Signup::Off);
    let (client, secret) = s.add_client();
    let (writer, _) = api_key(&s, &["users:write"]);
    let r = s.send_auth(
        "POST",
        "/auth/signup/create-token",
        &writer,
        &client_body(&client, &secret, json!({"email": "x@example.com"})),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s.post(
        "/auth/signup/fast",
        &client_body(
            &client,
            &secret,
            json!({"username": "x", "password": PASSWORD, "email": "x@example.com"}),
        ),
    );
    assert_eq!(r.status, 403, "{}", r.body);
}

#[test]
fn open_sign_up_never_tells_that_an_address_has_an_account() {
    let s = TestServer::start_with(|c| c.signup = Signup::Open);
    s.add_user("has@example.com");
    let (client, secret) = s.add_client();
    let body = |email: &str| client_body(&client, &secret, json!({"email": email}));
    let known = s.post("/auth/signup/create-token", &body("has@example.com"));
    let unknown = s.post("/auth/signup/create-token", &body("fresh@example.com"));
    assert_eq!(unknown.status, 204, "{}", unknown.body);
    assert_eq!(shape(&known), shape(&unknown));
    let owner = s.outbox_body("has@example.com");
    assert!(owner.contains("already has an account"), "{owner}");
    assert!(!owner.contains("token="), "{owner}");
    let token = link_param(&s.outbox_body("fresh@example.com"), "token");
    let ok = s.send_auth(
        "POST",
        "/auth/signup/create-user",
        &token,
        &json!({"email": "fresh@example.com", "password": PASSWORD}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn fast_sign_up_signs_in_and_the_address_is_the_accounts_once_verified() {
    let s = TestServer::start_with(|c| c.signup = Signup::Open);
    s.add_user("has@example.com");
    let (client, secret) = s.add_client();
    let fast = |username: &str, email: &str| {
        s.post(
            "/auth/signup/fast",
            &client_body(
                &client,
                &secret,
                json!({"username": username, "password": PASSWORD, "email": email}),
            ),
        )
    };
    let r = fast("speedy", "speedy@example.com");
    assert_eq!(r.status, 200, "{}", r.body);
    let me = s.get_auth("/auth/me", r.json()["accessToken"].as_str().unwrap());
    assert_eq!(me.json()["username"], "speedy");
    assert!(me.json().get("email").is_none(), "not the account's yet");

    let mail = s.outbox_body("speedy@example.com");
    assert!(
        mail.contains(&format!("{}/auth/verify-email?token=", s.base)),
        "{mail}"
    );
    let token = link_param(&mail, "token");
    let v = s.get(&format!("/auth/verify-email?token={token}"));
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.json()["email"], "speedy@example.com");
    assert_eq!(
        s.get(&format!("/auth/verify-email?token={token}")).status,
        401
    );
    s.login_token(&client, &secret, "speedy@example.com");

    // A taken username is a conflict; a taken address is not revealed.
    assert_eq!(fast("speedy", "other@example.com").status, 409);
    let r = fast("copycat", "has@example.com");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(s
        .outbox_body("has@example.com")
        .contains("already has an account"));
}
