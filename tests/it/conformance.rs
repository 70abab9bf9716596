//! The native dialect against SourceLoop 19.2.2's own contract (issue 15),
//! where it differs from the seed: AuthUser's number-typed `authClientId`
//! and required fields, the statuses 19.2.2 documents, its route names
//! beside the seed's, and SAML answered 501. The document itself is
//! checked by tests/interop.

use hallpass::accounts::{self, NewUser};
use hallpass::config::Signup;
use hallpass::crypto::b64url_decode;
use hallpass::{db, password};
use serde_json::{json, Value};

use crate::support::{TestServer, ITERATIONS, PASSWORD};

/// GET /auth/me with the access token of a fresh sign-in.
fn me(s: &TestServer, client: &accounts::Client, secret: &str, username: &str) -> Value {
    let t = s.login_token(client, secret, username);
    let r = s.get_auth("/auth/me", t["accessToken"].as_str().unwrap());
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// The claims of an access token, unverified (the server verified it).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&b64url_decode(payload).unwrap()).unwrap()
}

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

#[test]
fn auth_client_id_is_the_clients_number_unique_and_stable_across_restarts() {
    let mut s = TestServer::start();
    s.add_user("ada@example.com");
    let (web, web_secret) = s.add_client();
    let (app, app_secret) = s.add_client();
    assert_ne!(web.num, app.num);

    let first = me(&s, &web, &web_secret, "ada");
    assert!(first["authClientId"].is_i64(), "{first}");
    assert_eq!(first["authClientId"], web.num);
    assert_eq!(me(&s, &app, &app_secret, "ada")["authClientId"], app.num);
    // The token's claims carry it too; `aud` stays the client_id string.
    let t = s.login_token(&web, &web_secret, "ada");
    let c = claims(t["accessToken"].as_str().unwrap());
    assert_eq!(c["authClientId"], web.num);
    assert_eq!(c["aud"], web.client_id.as_str());

    s.restart();
    assert_eq!(me(&s, &web, &web_secret, "ada")["authClientId"], web.num);
    assert_eq!(me(&s, &app, &app_secret, "ada")["authClientId"], app.num);
}

#[test]
fn auth_user_always_has_first_name_username_role_and_both_date_names() {
    let s = TestServer::start();
    let (client, secret) = s.add_client();
    // add_user names everyone "Test User".
    s.add_user("ada@example.com");
    let u = me(&s, &client, &secret, "ada");
    assert_eq!(u["firstName"], "Test");
    assert_eq!(u["lastName"], "User");
    assert_eq!(u["username"], "ada");
    assert_eq!(u["role"], "user");
    assert!(u["createdOn"].is_string(), "{u}");
    assert_eq!(u["createdOn"], u["createdAt"]);
    assert_eq!(u["modifiedOn"], u["updatedAt"]);

    // No name and no username: the email stands in for both.
    let mut conn = s.conn();
    let new = NewUser {
        email: Some("grace@example.com".into()),
        password_hash: Some(password::hash(PASSWORD, ITERATIONS).unwrap()),
        role: "user".into(),
        ..NewUser::default()
    };
    db::immediate(&mut conn, |tx| accounts::create_user(tx, &new, s.now())).unwrap();
    let u = me(&s, &client, &secret, "grace@example.com");
    assert_eq!(u["username"], "grace@example.com");
    assert_eq!(u["firstName"], "grace");
    assert!(u.get("lastName").is_none(), "{u}");
    assert!(u.get("name").is_none(), "{u}");
}

#[test]
fn statuses_are_those_sourceloop_19_2_2_documents() {
    let s = TestServer::start_with(|c| c.signup = Signup::Open);
    s.add_user("ada@example.com");
    let (client, secret) = s.add_client();
    let body = |extra: Value| {
        let mut b = json!({"client_id": client.client_id, "client_secret": secret});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };

    // send-otp: 200 (a JSON body, SuccessResponse), known user or not.
    for key in ["ada", "nobody-here"] {
        let r = s.post("/auth/send-otp", &body(json!({"key": key})));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json(), json!({"success": true}));
    }
    // The seed's name for it keeps the seed's 204.
    s.advance(61);
    let r = s.post("/auth/passwordless/start", &body(json!({"key": "ada"})));
    assert_eq!((r.status, r.body.as_str()), (204, ""));

    for path in ["/auth/signup/create-token", "/auth/sign-up/create-token"] {
        let r = s.post(path, &body(json!({"email": "new@example.com"})));
        assert_eq!((r.status, r.body.as_str()), (204, ""), "{path}");
        s.advance(61);
    }

    let r = s.post("/auth/forget-password", &body(json!({"username": "ada"})));
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    let token = link_param(&s.outbox_body("ada@example.com"), "token");
    let r = s.send(
        "PATCH",
        "/auth/reset-password",
        &body(json!({"token": token, "password": "cobalt-heron-lantern-42"})),
    );
    assert_eq!((r.status, r.body.as_str()), (204, ""));
}

#[test]
fn every_signup_route_answers_under_both_spellings() {
    let s = TestServer::start_with(|c| c.signup = Signup::Open);
    let (client, secret) = s.add_client();
    // Without a sign-up token (or with a taken name): the same refusal
    // from both, never a 404.
    for (method, tail, body) in [
        ("GET", "verify-token", Value::Null),
        (
            "POST",
            "create-user",
            json!({"email": "a@example.com", "password": PASSWORD}),
        ),
        (
            "POST",
            "create-token",
            json!({"client_id": client.client_id, "client_secret": "wrong"}),
        ),
        ("POST", "fast", json!({})),
    ] {
        let answer = |path: String| {
            if method == "GET" {
                s.get(&path)
            } else {
                s.send(method, &path, &body)
            }
        };
        let seed = answer(format!("/auth/signup/{tail}"));
        let new = answer(format!("/auth/sign-up/{tail}"));
        assert_ne!(seed.status, 404, "{tail}: {}", seed.body);
        assert_eq!((seed.status, &seed.body), (new.status, &new.body), "{tail}");
    }
    // And one fast sign-up through the 19.2.2 name, start to finish.
    let r = s.post(
        "/auth/sign-up/fast",
        &json!({"client_id": client.client_id, "client_secret": secret,
                "username": "lin", "password": PASSWORD, "email": "lin@example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["accessToken"].is_string());
}

#[test]
fn saml_answers_501_in_the_native_error_shape() {
    let s = TestServer::start();
    for path in ["/auth/saml", "/auth/saml-redirect"] {
        for r in [s.get(path), s.post(path, &json!({}))] {
            assert_eq!(r.status, 501, "{path}: {}", r.body);
            let e = &r.json()["error"];
            assert_eq!(e["statusCode"], 501);
            assert_eq!(e["name"], "NotImplementedError");
            assert_eq!(e["code"], "not_implemented");
            assert_eq!(e["message"], "SAML sign-in is not supported by hallpass");
        }
    }
}
