//! The second factor through every dialect: enrollment with a QR code read
//! back by an independent decoder (rqrr), codes made as an authenticator app
//! makes them (RFC 6238 with totp-lite, from the decoded URI's secret), the
//! two-step sign-ins, replay and skew, recovery codes, the emailed reset,
//! and the refusals.

use serde_json::{json, Value};

use crate::support::{TestServer, PASSWORD};
use hallpass::accounts::{Client, User};

/// The code an authenticator app shows at unix time `t`.
pub(crate) fn code_at(secret_b32: &str, t: i64) -> String {
    let secret = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret_b32)
        .expect("base32 secret");
    totp_lite::totp_custom::<totp_lite::Sha1>(30, 6, &secret, t as u64)
}

/// Decodes a `data:image/png;base64,` QR code with rqrr.
fn decode_qr(data_url: &str) -> String {
    use base64::Engine;
    let b64 = data_url
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URL");
    let png_bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let stride = info.line_size;
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * stride + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

/// The `secret` parameter of an otpauth URI.
fn secret_of(uri: &str) -> String {
    uri.split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .expect("secret in the URI")
        .to_string()
}

/// The claims of a JWT, unverified (the tokens tests check signatures).
fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn login_code(s: &TestServer, client: &Client, secret: &str, username: &str) -> String {
    let r = s.post(
        "/auth/login",
        &json!({"client_id": client.client_id, "client_secret": secret,
                "username": username, "password": PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["code"].as_str().unwrap().to_string()
}

/// Turns TOTP on for `user` through the native flow; returns the secret.
/// Leaves the clock one step after the confirming code.
pub(crate) fn enable_native(s: &TestServer, client: &Client, secret: &str, user: &User) -> String {
    let name = user.username.clone().unwrap();
    let code = login_code(s, client, secret, &name);
    let qr = s.post(
        "/auth/create-qr-code",
        &json!({"code": code, "clientId": client.client_id}),
    );
    assert_eq!(qr.status, 200, "{}", qr.body);
    let totp_secret = secret_of(&decode_qr(qr.json()["qrCode"].as_str().unwrap()));
    let v = s.post(
        "/auth/verify-otp",
        &json!({"key": name, "otp": code_at(&totp_secret, s.now()), "code": code,
                "clientId": client.client_id}),
    );
    assert_eq!(v.status, 200, "{}", v.body);
    s.advance(30);
    totp_secret
}

#[test]
fn native_enrollment_serves_a_qr_code_that_decodes_to_the_otpauth_uri() {
    let s = TestServer::start();
    let (client, cs) = s.add_client();
    s.add_user("ann@example.com");
    let code = login_code(&s, &client, &cs, "ann");

    let check = |code: &str| {
        s.request(
            "GET",
            "/auth/check-qr-code",
            &[("code", code), ("clientId", &client.client_id)],
            None,
        )
    };
    assert_eq!(check(&code).json(), json!({"isGenerated": false}));
    assert_eq!(
        s.request("GET", "/auth/check-qr-code", &[("code", &code)], None)
            .status,
        401,
        "a missing header is 401"
    );

    let qr = s.post(
        "/auth/create-qr-code",
        &json!({"code": code, "clientId": client.client_id}),
    );
    assert_eq!(qr.status, 200, "{}", qr.body);
    let uri = decode_qr(qr.json()["qrCode"].as_str().unwrap());
    let secret = secret_of(&uri);
    let host = s.base.trim_start_matches("http://").replace(':', "%3A");
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/{host}:ann?secret={secret}&issuer={host}&algorithm=SHA1&digits=6&period=30"
        )
    );
    assert_eq!(secret.len(), 32, "160 bits in base32 without padding");

    // Pending: not isGenerated, and sign-in is not yet protected by it.
    assert_eq!(check(&code).json(), json!({"isGenerated": false}));
    let plain = login_code(&s, &client, &cs, "ann");
    let t = s.post(
        "/auth/token",
        &json!({"clientId": client.client_id, "code": plain}),
    );
    assert_eq!(t.status, 200, "{}", t.body);

    // The first good code confirms it, and swaps the login code.
    let v = s.post(
        "/auth/verify-otp",
        &json!({"key": "ann", "otp": code_at(&secret, s.now()), "code": code,
                "clientId": client.client_id}),
    );
    assert_eq!(v.status, 200, "{}", v.body);
    let fresh = v.json()["code"].as_str().unwrap().to_string();
    let t = s.post(
        "/auth/token",
        &json!({"clientId": client.client_id, "code": fresh}),
    );
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(
        claims(t.json()["accessToken"].as_str().unwrap())["amr"],
        json!(["pwd", "otp"])
    );
    let again = login_code(&s, &client, &cs, "ann");
    assert_eq!(check(&again).json(), json!({"isGenerated": true}));
    let twice = s.post(
        "/auth/create-qr-code",
        &json!({"code": again, "clientId": client.client_id}),
    );
    assert_eq!(twice.status, 409, "{}", twice.body);
}

#[test]
fn native_sign_in_with_totp_needs_the_login_code_and_a_fresh_totp_code() {
    let s = TestServer::start();
    let (client, cs) = s.add_client();
    let ann = s.add_user("ann@example.com");
    let secret = enable_native(&s, &client, &cs, &ann);

    // The password alone gives an owed code: /auth/token refuses it.
    let owed = login_code(&s, &client, &cs, "ann");
    let t = s.post(
        "/auth/token",
        &json!({"clientId": client.client_id, "code": owed}),
    );
    assert_eq!(t.status, 401);
    assert_eq!(t.json()["error"]["message"], "User Verification Failed");
    let lt = s.post(
        "/auth/login-token",
        &json!({"client_id": client.client_id, "client_secret": cs,
                "username": "ann", "password": PASSWORD}),
    );
    assert_eq!(lt.status, 401);
    assert_eq!(lt.json()["error"]["code"], "mfa_required");

    // A name and a TOTP code alone never sign in.
    let now_code = code_at(&secret, s.now());
    let alone = s.post("/auth/verify-otp", &json!({"key": "ann", "otp": now_code}));
    assert_eq!(alone.status, 401);
    assert_eq!(alone.json()["error"]["message"], "Otp Invalid");
    // Nor does someone else's login code.
    s.add_user("bob@example.com");
    let bobs = login_code(&s, &client, &cs, "bob");
    let foreign = s.post(
        "/auth/verify-otp",
        &json!({"key": "ann", "otp": now_code, "code": bobs}),
    );
    assert_eq!(foreign.status, 401);

    // Non-numeric or wrong-length codes are 422 naming the field.
    for bad in ["12345", "abcdef", "1234567"] {
        let r = s.post(
            "/auth/verify-otp",
            &json!({"key": "ann", "otp": bad, "code": owed}),
        );
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        assert_eq!(r.json()["error"]["details"][0]["path"], "/otp");
    }

    let good = s.post(
        "/auth/verify-otp",
        &json!({"key": "ann", "otp": now_code, "code": owed, "clientId": client.client_id}),
    );
    assert_eq!(good.status, 200, "{}", good.body);
    let fresh = good.json()["code"].as_str().unwrap().to_string();
    let t = s.post(
        "/auth/token",
        &json!({"clientId": client.client_id, "code": fresh}),
    );
    assert_eq!(t.status, 200, "{}", t.body);
    let access = t.json()["accessToken"].as_str().unwrap().to_string();
    assert_eq!(s.get_auth("/auth/me", &access).status, 200);

    // The owed code was used up; the same TOTP step is refused for the
    // next sign-in (replay), the next step is fine.
    let used = s.post(
        "/auth/verify-otp",
        &json!({"key": "ann", "otp": now_code, "code": owed}),
    );
    assert_eq!(used.status, 401);
    // (Twelve sign-in calls so far: let the per-IP bucket refill a little.)
    s.advance(20);
    let owed2 = login_code(&s, &client, &cs, "ann");
    let replay = s.post(
        "/auth/verify-otp",
        &json!({"key": "ann", "otp": now_code, "code": owed2}),
    );
    assert_eq!(replay.status, 401, "a code is accepted once");
    s.advance(30);
    let next = s.post(
        "/auth/verify-otp",
        &json!({"key": "ann", "otp": code_at(&secret, s.now()), "code": owed2}),
    );
    assert_eq!(next.status, 200, "{}", next.body);
    assert!(s.activity("FAILED") >= 3);
}

#[test]
fn skew_is_one_step_either_side_and_wrong_codes_meet_the_soft_lock() {
    let s = TestServer::start();
    let (key, _) = crate::dialects::api_key(&s, &["users:write", "auth:write"]);
    let auth = format!("Bearer {key}");
    let created = s.request(
        "POST",
        "/v1/users",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"userId":"u-1","email":"u1@example.com"}"#),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let on = s.send_auth("POST", "/v1/users/u-1/totp", &key, &json!({"enable": true}));
    assert_eq!(on.status, 200, "{}", on.body);
    let secret = on.json()["secretKey"].as_str().unwrap().to_string();
    let verify = |code: &str| s.get_auth(&format!("/v1/users/u-1/totp?payload={code}"), &key);

    // Confirm with the current code; the clock then moves two steps on.
    assert_eq!(verify(&code_at(&secret, s.now())).status, 200);
    s.advance(60);
    let now = s.now();
    assert_eq!(
        verify(&code_at(&secret, now - 60)).status,
        401,
        "two steps old"
    );
    assert_eq!(
        verify(&code_at(&secret, now - 30)).status,
        200,
        "one step old"
    );
    assert_eq!(verify(&code_at(&secret, now - 30)).status, 401, "replayed");
    assert_eq!(
        verify(&code_at(&secret, now - 30)).json()["errorType"],
        "UNAUTHORIZED"
    );
    assert_eq!(
        verify(&code_at(&secret, now + 30)).status,
        200,
        "one step ahead"
    );
    assert_eq!(
        verify(&code_at(&secret, now)).status,
        401,
        "older than an accepted step"
    );
    assert_eq!(verify("12ab56").status, 422);

    // Wrong codes count against the account's soft lock: 429 + Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(verify("000000").status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let locked = verify("000000");
    assert_eq!(locked.status, 429);
    assert!(locked.header("Retry-After").is_some());
}

#[test]
fn yat_limited_tokens_are_refused_until_the_second_factor() {
    let s = TestServer::start();
    let (client, cs) = s.add_client();
    let ann = s.add_user("ann@example.com");
    let secret = enable_native(&s, &client, &cs, &ann);
    let sign_in = || {
        let r = s.post(
            "/auth/token",
            &json!({"email": "ann@example.com", "password": PASSWORD}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let limited = sign_in();
    assert_eq!(limited["requires_2fa"], "GoogleAuthenticator");
    let access = limited["access_token"].as_str().unwrap();
    assert!(
        !access.contains('.'),
        "the limited access token is not a JWT a JWKS verifier could accept"
    );
    assert_eq!(s.get_auth("/auth/me", access).status, 401);
    let refresh = s.post(
        "/auth/token/refresh",
        &json!({"refresh_token": limited["refresh_token"]}),
    );
    assert_eq!(refresh.status, 401, "only /auth/2fa takes a limited token");

    let wrong = s.post(
        "/auth/2fa",
        &json!({"code": "000000", "refresh_token": limited["refresh_token"]}),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"], "Otp Invalid");
    let bad = s.post(
        "/auth/2fa",
        &json!({"code": "12", "refresh_token": limited["refresh_token"]}),
    );
    assert_eq!(bad.status, 422);
    assert!(bad.json()["fields"]["code"].is_array());

    let full = s.post(
        "/auth/2fa",
        &json!({"code": code_at(&secret, s.now()), "refresh_token": limited["refresh_token"]}),
    );
    assert_eq!(full.status, 200, "{}", full.body);
    let full = full.json();
    assert_eq!(full["requires_2fa"], Value::Null);
    let access = full["access_token"].as_str().unwrap();
    assert_eq!(s.get_auth("/auth/me", access).status, 200);
    assert_eq!(claims(access)["amr"], json!(["pwd", "otp"]));
    let refreshed = s.post(
        "/auth/token/refresh",
        &json!({"refresh_token": full["refresh_token"]}),
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    s.advance(30);
    let reused = s.post(
        "/auth/2fa",
        &json!({"code": code_at(&secret, s.now()), "refresh_token": limited["refresh_token"]}),
    );
    assert_eq!(reused.status, 401, "a limited token completes once");
    // Nor does it buy a refresh afterwards, even at once: that is reuse,
    // and it ends the session it became.
    let promoted = s.post(
        "/auth/token",
        &json!({"email": "ann@example.com", "password": PASSWORD}),
    );
    let promoted = promoted.json();
    s.advance(30);
    let full = s.post(
        "/auth/2fa",
        &json!({"code": code_at(&secret, s.now()), "refresh_token": promoted["refresh_token"]}),
    );
    assert_eq!(full.status, 200, "{}", full.body);
    let sneak = s.post(
        "/auth/token/refresh",
        &json!({"refresh_token": promoted["refresh_token"]}),
    );
    assert_eq!(sneak.status, 401);
    assert_eq!(
        s.get_auth("/auth/me", full.json()["access_token"].as_str().unwrap())
            .status,
        401,
        "reuse of the limited token revoked the session"
    );

    // A limited token lives 10 minutes.
    let late = sign_in();
    s.advance(601);
    let expired = s.post(
        "/auth/2fa",
        &json!({"code": code_at(&secret, s.now()), "refresh_token": late["refresh_token"]}),
    );
    assert_eq!(expired.status, 401);
}

/// Signs in through the mfa dialect (MFA off); returns UserAuth.
fn mfa_login(s: &TestServer, username: &str) -> crate::support::Resp {
    s.post(
        "/api/login",
        &json!({"username": username, "password": PASSWORD}),
    )
}

/// The access token of a sign-in through the mfa dialect (MFA off).
fn mfa_token(s: &TestServer, username: &str) -> String {
    let r = mfa_login(s, username);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["token"].as_str().unwrap().to_string()
}

/// Turns MFA on through the mfa dialect; returns (secret, recovery codes).
pub(crate) fn enable_mfa_dialect(s: &TestServer, username: &str) -> (String, Vec<String>) {
    let token = mfa_token(s, username);
    let g = s.request(
        "GET",
        "/api/user/mfa/generate",
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    );
    assert_eq!(g.status, 200, "{}", g.body);
    let g = g.json();
    let secret = g["secret"].as_str().unwrap().to_string();
    let codes: Vec<String> = g["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let patch = s.send_auth(
        "PATCH",
        "/api/users",
        &token,
        &json!({"recovery_email": format!("{username}.backup@example.org")}),
    );
    assert_eq!(patch.status, 200, "{}", patch.body);
    let en = s.send_auth(
        "PUT",
        "/api/user/mfa/enable",
        &token,
        &json!({"code": code_at(&secret, s.now()), "secret": secret, "recovery_codes": codes}),
    );
    assert_eq!(en.status, 200, "{}", en.body);
    s.advance(30);
    (secret, codes)
}

#[test]
fn mfa_dialect_enrolls_and_signs_in_with_the_x_mfa_token() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let token = mfa_token(&s, "ann");
    let g = s.get_auth("/api/user/mfa/generate", &token).json();
    let link = g["link"].as_str().unwrap();
    assert!(link.starts_with("otpauth://totp/"), "{link}");
    assert_eq!(secret_of(link), g["secret"].as_str().unwrap());
    let codes: Vec<Value> = g["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(codes.len(), 10);
    for c in &codes {
        let c = c.as_str().unwrap();
        assert_eq!(c.len(), 10);
        assert!(c
            .bytes()
            .all(|b| b"abcdefghjkmnpqrstuvwxyz23456789".contains(&b)));
    }
    let secret = g["secret"].as_str().unwrap();
    let enable = |body: Value| s.send_auth("PUT", "/api/user/mfa/enable", &token, &body);
    let good = json!({"code": code_at(secret, s.now()), "secret": secret, "recovery_codes": codes});

    let no_recovery_email = enable(good.clone());
    assert_eq!(no_recovery_email.status, 422, "{}", no_recovery_email.body);
    let same = s.send_auth(
        "PATCH",
        "/api/users",
        &token,
        &json!({"recovery_email": "ANN@example.com"}),
    );
    assert_eq!(same.status, 422);
    let set = s.send_auth(
        "PATCH",
        "/api/users",
        &token,
        &json!({"recovery_email": "ann@backup.example.org", "name": "Ann"}),
    );
    assert_eq!(set.status, 200);
    let clear = s.send_auth(
        "PATCH",
        "/api/users",
        &token,
        &json!({"recovery_email": ""}),
    );
    assert_eq!(clear.status, 422, "cannot be cleared once set");

    let other_secret = enable(
        json!({"code": code_at(secret, s.now()), "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "recovery_codes": codes}),
    );
    assert_eq!(other_secret.status, 422);
    let other_codes = enable(
        json!({"code": code_at(secret, s.now()), "secret": secret, "recovery_codes": ["abcdefghjk"]}),
    );
    assert_eq!(other_codes.status, 422);
    let wrong_code = enable(json!({"code": "000000", "secret": secret, "recovery_codes": codes}));
    assert_eq!(wrong_code.status, 401);
    assert_eq!(enable(good.clone()).status, 200);
    assert_eq!(enable(good).status, 409, "enabling twice");

    // The password step now answers 401, empty, with X-MFA-Token.
    let step = mfa_login(&s, "ann");
    assert_eq!(step.status, 401);
    assert_eq!(step.body, "");
    let mfa_token = step.header("X-MFA-Token").unwrap().to_string();
    assert_eq!(mfa_token.len(), 36, "a UUID");
    assert_eq!(step.header("X-Account-Lockout"), Some("0"));

    let forged = s.post(
        "/api/user/mfa/auth",
        &json!({"token": "6f1c1c8e-0000-4000-8000-000000000000", "code": code_at(secret, s.now())}),
    );
    assert_eq!(forged.status, 401);
    s.advance(30);
    let ok = s.post(
        "/api/user/mfa/auth",
        &json!({"token": mfa_token, "code": code_at(secret, s.now())}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let ua = ok.json();
    assert_eq!(ua["mfa"], true);
    assert_eq!(ua["recovery_email"], "ann@backup.example.org");
    assert_eq!(ua["name"], "Ann");
    assert_eq!(
        s.get_auth("/auth/me", ua["token"].as_str().unwrap()).status,
        200
    );
    s.advance(30);
    let reused = s.post(
        "/api/user/mfa/auth",
        &json!({"token": mfa_token, "code": code_at(secret, s.now())}),
    );
    assert_eq!(reused.status, 401, "single use");

    let stale = mfa_login(&s, "ann")
        .header("X-MFA-Token")
        .unwrap()
        .to_string();
    s.advance(1801);
    let expired = s.post(
        "/api/user/mfa/auth",
        &json!({"token": stale, "code": code_at(secret, s.now())}),
    );
    assert_eq!(expired.status, 401, "30 minutes");
}

#[test]
fn recovery_codes_sign_in_once_and_disable_within_ten_minutes() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let (_, codes) = enable_mfa_dialect(&s, "ann");

    // yat: a recovery code completes a limited sign-in, once.
    let limited = s
        .post(
            "/auth/token",
            &json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .json();
    let full = s.post(
        "/auth/2fa",
        &json!({"code": codes[0].to_uppercase(), "refresh_token": limited["refresh_token"]}),
    );
    assert_eq!(full.status, 200, "{}", full.body);
    assert_eq!(
        claims(full.json()["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "recovery"])
    );
    let limited = s
        .post(
            "/auth/token",
            &json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .json();
    let again = s.post(
        "/auth/2fa",
        &json!({"code": codes[0], "refresh_token": limited["refresh_token"]}),
    );
    assert_eq!(again.status, 401, "a recovery code works once");

    // mfa: /recover signs in with a code, which then disables MFA once.
    let rec = s.post(
        "/api/user/mfa/recover",
        &json!({"identifier": "ann@example.com", "recovery_code": codes[1]}),
    );
    assert_eq!(rec.status, 200, "{}", rec.body);
    let expires: i64 = rec.header("X-Expires-At").unwrap().parse().unwrap();
    assert_eq!(expires, s.now() + 600);
    let token = rec.json()["token"].as_str().unwrap().to_string();
    let rec_again = s.post(
        "/api/user/mfa/recover",
        &json!({"identifier": "ann@example.com", "recovery_code": codes[1]}),
    );
    assert_eq!(rec_again.status, 401);
    let neither = s.send_auth("PUT", "/api/user/mfa/disable", &token, &json!({}));
    assert_eq!(neither.status, 422);
    let off = s.send_auth(
        "PUT",
        "/api/user/mfa/disable",
        &token,
        &json!({"recovery_code": codes[1]}),
    );
    assert_eq!(off.status, 200, "{}", off.body);
    let twice = s.send_auth(
        "PUT",
        "/api/user/mfa/disable",
        &token,
        &json!({"recovery_code": codes[2]}),
    );
    assert_eq!(twice.status, 409, "disabling when not enabled");

    // MFA off: the password alone signs in again, everywhere.
    let direct = mfa_login(&s, "ann");
    assert_eq!(direct.status, 200, "{}", direct.body);
    assert_eq!(direct.json()["mfa"], false);
    let yat = s
        .post(
            "/auth/token",
            &json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .json();
    assert_eq!(yat["requires_2fa"], Value::Null);
}

#[test]
fn a_recovery_code_kept_by_recover_expires_after_ten_minutes() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let (_, codes) = enable_mfa_dialect(&s, "ann");
    let rec = s.post(
        "/api/user/mfa/recover",
        &json!({"identifier": "ann", "recovery_code": codes[3]}),
    );
    assert_eq!(rec.status, 200, "{}", rec.body);
    let token = rec.json()["token"].as_str().unwrap().to_string();
    s.advance(601);
    let late = s.send_auth(
        "PUT",
        "/api/user/mfa/disable",
        &token,
        &json!({"recovery_code": codes[3]}),
    );
    assert_eq!(late.status, 401);
    let fresh = s.send_auth(
        "PUT",
        "/api/user/mfa/disable",
        &token,
        &json!({"recovery_code": codes[4]}),
    );
    assert_eq!(fresh.status, 200, "an unused code still disables");
}

/// The reset code labelled `label` in the newest mail delivered to `to`.
fn outbox_code(s: &TestServer, to: &str, label: &str) -> String {
    let body = s.outbox_body(to);
    body.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {body}"))
        .trim()
        .to_string()
}

/// Regression test for issue 8: the reset codes were stored readable in
/// `mail_outbox`, so a copy of the database could turn MFA off. (A mail
/// command that fails keeps the mails queued, bodies at rest.)
#[test]
fn the_reset_codes_are_sealed_in_the_outbox() {
    let s = TestServer::start_with(|c| c.mail_command = vec!["false".into()]);
    s.add_user("ann@example.com");
    enable_mfa_dialect(&s, "ann");
    let r = s.post("/api/user/mfa/reset", &json!({"identifier": "ann"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let code = |to: &str, label: &str| {
        let body = s.queued_body(to);
        body.lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in {body}"))
            .trim()
            .to_string()
    };
    let main = code("ann@example.com", "Code 1 of 2:");
    let backup = code("ann.backup@example.org", "Code 2 of 2:");
    let conn = s.conn();
    let rows: Vec<(String, String, Vec<u8>)> = conn
        .prepare("SELECT typeof(sealed_body), subject, sealed_body FROM mail_outbox")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for (kind, subject, raw) in rows {
        assert_eq!(kind, "blob");
        for code in [&main, &backup] {
            for stored in [&raw, subject.as_bytes()] {
                let found = stored.windows(code.len()).any(|w| w == code.as_bytes());
                assert!(!found, "a reset code is readable in the outbox");
            }
        }
    }
}

#[test]
fn the_emailed_reset_needs_both_codes_and_turns_mfa_off() {
    let s = TestServer::start();
    let ann = s.add_user("ann@example.com");
    enable_mfa_dialect(&s, "ann");
    let queued = |s: &TestServer| -> i64 {
        s.conn()
            .query_row("SELECT count(*) FROM mail_outbox", [], |r| r.get(0))
            .unwrap()
    };
    let unknown = s.post("/api/user/mfa/reset", &json!({"identifier": "nobody"}));
    assert_eq!(unknown.status, 200, "no enumeration");
    assert_eq!(queued(&s), 0);

    let r = s.post(
        "/api/user/mfa/reset",
        &json!({"identifier": "ann@example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(queued(&s), 2);
    let flood = s.post(
        "/api/user/mfa/reset",
        &json!({"identifier": "ann@example.com"}),
    );
    assert_eq!(flood.status, 200);
    assert_eq!(
        queued(&s),
        2,
        "one pair of mails per quarter hour per account"
    );
    let main = outbox_code(&s, "ann@example.com", "Code 1 of 2:");
    let backup = outbox_code(&s, "ann.backup@example.org", "Code 2 of 2:");
    assert_eq!(main.len(), 5);
    let path = format!("/api/user/mfa/reset/{}", ann.id);

    let one_wrong = s.send(
        "PUT",
        &path,
        &json!({"main_email_code": main, "recovery_email_code": "zzzzz"}),
    );
    assert_eq!(one_wrong.status, 401);
    let ok = s.send(
        "PUT",
        &path,
        &json!({"main_email_code": main.to_uppercase(), "recovery_email_code": backup}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["mfa"], false);
    assert_eq!(mfa_login(&s, "ann").status, 200, "MFA is off");
    let reused = s.send(
        "PUT",
        &path,
        &json!({"main_email_code": main, "recovery_email_code": backup}),
    );
    assert_eq!(reused.status, 401, "single use");
}

#[test]
fn the_reset_codes_survive_five_wrong_tries_only() {
    let s = TestServer::start();
    let ann = s.add_user("ann@example.com");
    enable_mfa_dialect(&s, "ann");
    s.post("/api/user/mfa/reset", &json!({"identifier": "ann"}));
    let main = outbox_code(&s, "ann@example.com", "Code 1 of 2:");
    let backup = outbox_code(&s, "ann.backup@example.org", "Code 2 of 2:");
    let path = format!("/api/user/mfa/reset/{}", ann.id);
    for _ in 0..5 {
        s.send(
            "PUT",
            &path,
            &json!({"main_email_code": main, "recovery_email_code": "wrong"}),
        );
        // Stay clear of the soft lock's delay: this test is about the codes.
        s.advance(901);
    }
    let late = s.send(
        "PUT",
        &path,
        &json!({"main_email_code": main, "recovery_email_code": backup}),
    );
    assert_eq!(late.status, 401, "{}", late.body);
}

#[test]
fn lagrello_toggles_totp_with_an_api_key() {
    let s = TestServer::start();
    let (key, _) = crate::dialects::api_key(&s, &["users:write", "auth:write"]);
    let (reader, _) = crate::dialects::api_key(&s, &["users:read"]);
    let created = s.send_auth(
        "POST",
        "/v1/users",
        &key,
        &json!({"userId": "u-7", "email": "u7@example.com"}),
    );
    assert_eq!(created.status, 201);

    let wrong_key = s.send_auth(
        "POST",
        "/v1/users/u-7/totp",
        "not-a-key",
        &json!({"enable": true}),
    );
    assert_eq!(wrong_key.status, 403);
    assert_eq!(wrong_key.json()["errorType"], "FORBIDDEN");
    let scope = s.send_auth(
        "POST",
        "/v1/users/u-7/totp",
        &reader,
        &json!({"enable": true}),
    );
    assert_eq!(scope.status, 403);
    let unknown = s.send_auth(
        "POST",
        "/v1/users/nope/totp",
        &key,
        &json!({"enable": true}),
    );
    assert_eq!(unknown.status, 404);
    let no_flag = s.send_auth("POST", "/v1/users/u-7/totp", &key, &json!({}));
    assert_eq!(no_flag.status, 422);
    let off_first = s.send_auth(
        "POST",
        "/v1/users/u-7/totp",
        &key,
        &json!({"enable": false}),
    );
    assert_eq!(off_first.status, 409, "disabling when not enabled");

    let on = s.send_auth("POST", "/v1/users/u-7/totp", &key, &json!({"enable": true}));
    assert_eq!(on.status, 200, "{}", on.body);
    let on = on.json();
    let secret = on["secretKey"].as_str().unwrap();
    let uri = decode_qr(on["qrImage"].as_str().unwrap());
    assert_eq!(
        secret_of(&uri),
        secret,
        "the QR code carries the same secret"
    );

    let verify = |code: &str| s.get_auth(&format!("/v1/users/u-7/totp?payload={code}"), &key);
    assert_eq!(verify("000000").status, 401);
    let ok = verify(&code_at(secret, s.now()));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.json(),
        json!({"userId": "u-7", "email": "u7@example.com"})
    );
    let twice = s.send_auth("POST", "/v1/users/u-7/totp", &key, &json!({"enable": true}));
    assert_eq!(twice.status, 409, "enabling twice");
    let off = s.send_auth(
        "POST",
        "/v1/users/u-7/totp",
        &key,
        &json!({"enable": false}),
    );
    assert_eq!(off.status, 204);
    s.advance(30);
    assert_eq!(
        verify(&code_at(secret, s.now())).status,
        401,
        "TOTP not enabled"
    );
}

#[test]
fn a_pending_enrollment_expires_after_ten_minutes() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let token = mfa_token(&s, "ann");
    s.send_auth(
        "PATCH",
        "/api/users",
        &token,
        &json!({"recovery_email": "ann@backup.example.org"}),
    );
    let g = s.get_auth("/api/user/mfa/generate", &token).json();
    s.advance(601);
    let secret = g["secret"].as_str().unwrap();
    let late = s.send_auth(
        "PUT",
        "/api/user/mfa/enable",
        &token,
        &json!({"code": code_at(secret, s.now()), "secret": secret, "recovery_codes": g["recovery_codes"]}),
    );
    assert_eq!(late.status, 422, "{}", late.body);
}

#[test]
fn the_code_verify_otp_gives_keeps_the_pkce_challenge() {
    let s = TestServer::start();
    let (client, cs) = s.add_client();
    let ann = s.add_user("ann@example.com");
    let secret = enable_native(&s, &client, &cs, &ann);
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let r = s.post(
        "/auth/login",
        &json!({"client_id": client.client_id, "client_secret": cs, "username": "ann",
                "password": PASSWORD, "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = s.post(
        "/auth/verify-otp",
        &json!({"key": "ann", "otp": code_at(&secret, s.now()), "code": r.json()["code"]}),
    );
    assert_eq!(v.status, 200, "{}", v.body);
    let fresh = v.json()["code"].as_str().unwrap().to_string();
    let without = s.post(
        "/auth/token",
        &json!({"clientId": client.client_id, "code": fresh}),
    );
    assert_eq!(without.status, 422, "{}", without.body);
    let with = s.post(
        "/auth/token",
        &json!({"clientId": client.client_id, "code": fresh, "code_verifier": verifier}),
    );
    assert_eq!(with.status, 200, "{}", with.body);
}

#[test]
fn a_password_sign_in_does_not_reset_the_count_of_wrong_codes() {
    let s = TestServer::start();
    let (client, cs) = s.add_client();
    let ann = s.add_user("ann@example.com");
    enable_native(&s, &client, &cs, &ann);
    let limited = || {
        s.post(
            "/auth/token",
            &json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .json()["refresh_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let wrong = |rt: &str| {
        s.post("/auth/2fa", &json!({"code": "000000", "refresh_token": rt}))
            .status
    };
    let rt = limited();
    for _ in 0..3 {
        assert_eq!(wrong(&rt), 401);
    }
    s.advance(10);
    // The right password again: the count of wrong codes goes on (4 and 5
    // free, then the sixth attempt waits), it does not start over.
    let rt = limited();
    let statuses: Vec<u16> = (0..4).map(|_| wrong(&rt)).collect();
    assert_eq!(statuses, vec![401, 401, 429, 429]);
}

#[test]
fn code_shapes_are_checked_before_anything_else() {
    let s = TestServer::start();
    s.add_user("ann@example.com");
    let (_, codes) = enable_mfa_dialect(&s, "ann");
    let r = s.post("/auth/verify-otp", &json!({"key": "ann", "otp": "12x456"}));
    assert_eq!(r.status, 422, "{}", r.body);
    let long = "a".repeat(100);
    let r = s.post(
        "/api/user/mfa/auth",
        &json!({"token": long, "code": "123456"}),
    );
    assert_eq!(r.status, 401, "a forged token, however long: {}", r.body);
    let r = s.post(
        "/api/user/mfa/recover",
        &json!({"identifier": "ann", "recovery_code": "0"}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let token = s
        .post(
            "/api/user/mfa/recover",
            &json!({"identifier": "ann", "recovery_code": codes[0]}),
        )
        .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.send_auth(
        "PUT",
        "/api/user/mfa/disable",
        &token,
        &json!({"recovery_code": "not-a-code"}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
}

#[test]
fn an_mfa_dialect_enrollment_is_confirmed_only_by_its_enable_call() {
    let s = TestServer::start();
    let (client, cs) = s.add_client();
    s.add_user("ann@example.com");
    let token = mfa_token(&s, "ann");
    let g = s.get_auth("/api/user/mfa/generate", &token).json();
    let secret = g["secret"].as_str().unwrap();
    // native verify-otp would skip enable's checks (recovery email, codes).
    let code = login_code(&s, &client, &cs, "ann");
    let v = s.post(
        "/auth/verify-otp",
        &json!({"key": "ann", "otp": code_at(secret, s.now()), "code": code}),
    );
    assert_eq!(v.status, 401, "{}", v.body);
    assert_eq!(
        s.get_auth("/api/user/mfa/generate", &token).status,
        200,
        "still not on"
    );
}

#[test]
fn guessing_with_a_name_alone_does_not_lock_the_real_user_out() {
    let s = TestServer::start_with(|c| {
        c.limits.login_burst = 1e9;
        c.limits.login_per_minute = 1e9;
    });
    let (client, cs) = s.add_client();
    let ann = s.add_user("ann@example.com");
    let secret = enable_native(&s, &client, &cs, &ann);
    // Someone without the password hammers verify-otp with ann's name.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            s.post("/auth/verify-otp", &json!({"key": "ann", "otp": "000000"}))
                .status,
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // ann, with her password and her app, is not held up by it.
    let owed = login_code(&s, &client, &cs, "ann");
    let v = s.post(
        "/auth/verify-otp",
        &json!({"key": "ann", "otp": code_at(&secret, s.now()), "code": owed}),
    );
    assert_eq!(v.status, 200, "{}", v.body);
}

#[test]
fn code_refusals_do_not_tell_known_names_disabled_accounts_or_unknown_ones_apart() {
    let s = TestServer::start_with(|c| {
        c.limits.login_burst = 1e9;
        c.limits.login_per_minute = 1e9;
    });
    s.add_user("ann@example.com");
    enable_mfa_dialect(&s, "ann");
    s.add_user("bob@example.com");
    enable_mfa_dialect(&s, "bob");
    let dan = s.add_user("dan@example.com");
    enable_mfa_dialect(&s, "dan");
    let mut conn = s.conn();
    hallpass::db::immediate(&mut conn, |tx| {
        hallpass::accounts::set_status(tx, &dan.id, "disabled", 0)
    })
    .unwrap();
    // Wrong passwords first: they must not change how codes are answered.
    for name in ["ann", "ghost"] {
        for _ in 0..6 {
            s.post(
                "/api/login",
                &json!({"username": name, "password": "wrong-password-1"}),
            );
        }
    }
    let recover = |name: &str| {
        let r = s.post(
            "/api/user/mfa/recover",
            &json!({"identifier": name, "recovery_code": "aaaaaaaaaa"}),
        );
        (r.status, r.body)
    };
    let ann = recover("ann");
    assert_eq!(ann.0, 401);
    assert_eq!(recover("ghost"), ann, "unknown name");
    assert_eq!(recover("dan"), ann, "disabled account");
    assert_eq!(recover("bob"), ann, "known name, no wrong passwords");
}

#[test]
fn lagrello_refuses_to_verify_a_disabled_users_code() {
    let s = TestServer::start();
    let (key, _) = crate::dialects::api_key(&s, &["users:write", "auth:write"]);
    s.send_auth(
        "POST",
        "/v1/users",
        &key,
        &json!({"userId": "u-9", "email": "u9@example.com"}),
    );
    let on = s
        .send_auth("POST", "/v1/users/u-9/totp", &key, &json!({"enable": true}))
        .json();
    let secret = on["secretKey"].as_str().unwrap().to_string();
    let verify = |code: &str| s.get_auth(&format!("/v1/users/u-9/totp?payload={code}"), &key);
    assert_eq!(verify(&code_at(&secret, s.now())).status, 200);
    let mut conn = s.conn();
    hallpass::db::immediate(&mut conn, |tx| {
        tx.execute(
            "UPDATE users SET status = 'disabled' WHERE email = 'u9@example.com'",
            [],
        )?;
        Ok(())
    })
    .unwrap();
    s.advance(30);
    assert_eq!(verify(&code_at(&secret, s.now())).status, 403);
}

/// Issue 8, for codes tried with a name alone: wrong recovery codes from
/// other addresses (past their own delay and the name's hourly budget)
/// cannot stop the owner recovering from an address they signed in from;
/// a new address is refused once the budget is spent.
#[test]
fn recovery_guesses_from_elsewhere_cannot_keep_the_owner_out() {
    let s = TestServer::start_with(|c| {
        c.limits.free_failures = 3;
        c.limits.account_failures_per_hour = 6;
    });
    s.add_user("ann@example.com");
    // Enabling signs in from 127.0.0.1: the owner's trusted address.
    let (_, codes) = enable_mfa_dialect(&s, "ann");
    let recover = |ip: &str, code: &str| {
        s.post_from(
            ip,
            "/api/user/mfa/recover",
            &json!({"identifier": "ann", "recovery_code": code}),
        )
        .status
    };
    let mut statuses = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.5"] {
        for _ in 0..4 {
            statuses.push(recover(ip, "abcdefghjk"));
        }
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 401, 401, 401, 429]);
    assert_eq!(recover("127.0.0.4", &codes[1]), 429, "a new address waits");
    assert_eq!(recover("127.0.0.1", &codes[0]), 200, "the owner does not");
}
