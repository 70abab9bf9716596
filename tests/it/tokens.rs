//! Access tokens as others see them: checked by an independent JWT library
//! against our JWKS, for every algorithm; forged, tampered and expired
//! tokens refused; key rotation.

use hallpass::jwt::{self, Alg, KeySource};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::support::TestServer;

fn signed_in(s: &TestServer) -> (Value, String) {
    let (c, secret) = s.add_client();
    s.add_user("alice@example.com");
    (s.login_token(&c, &secret, "alice"), c.client_id)
}

/// Verifies `token` with the jsonwebtoken crate, given our JWKS.
fn verify_independently(s: &TestServer, token: &str, aud: &str, alg: Algorithm) -> Value {
    let jwks: JwkSet = serde_json::from_str(&s.get("/.well-known/jwks.json").body).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, alg);
    let kid = header.kid.expect("a kid in the header");
    let jwk = jwks.find(&kid).expect("the kid is published");
    let mut v = Validation::new(alg);
    v.set_audience(&[aud]);
    v.set_issuer(&[s.base.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims
}

#[test]
fn es256_tokens_verify_with_an_independent_library_and_carry_the_claims() {
    let s = TestServer::start();
    let (t, aud) = signed_in(&s);
    let claims = verify_independently(
        &s,
        t["accessToken"].as_str().unwrap(),
        &aud,
        Algorithm::ES256,
    );
    for k in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "tenantId",
        "userTenantId",
        "role",
        "permissions",
        "amr",
    ] {
        assert!(claims.get(k).is_some(), "claim {k} missing: {claims}");
    }
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

#[test]
fn eddsa_tokens_verify_with_an_independent_library() {
    let s = TestServer::start_with(|c| c.algorithm = Alg::EdDsa);
    let (t, aud) = signed_in(&s);
    verify_independently(
        &s,
        t["accessToken"].as_str().unwrap(),
        &aud,
        Algorithm::EdDSA,
    );
}

#[test]
fn rs256_tokens_use_the_operators_key_and_verify_independently() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/rsa-2048.pem");
    let s = TestServer::start_with(|c| {
        c.algorithm = Alg::Rs256;
        c.rsa_key_file = Some(fixture.clone());
    });
    let (t, aud) = signed_in(&s);
    verify_independently(
        &s,
        t["accessToken"].as_str().unwrap(),
        &aud,
        Algorithm::RS256,
    );
    assert_eq!(
        s.get("/.well-known/jwks.json").json()["keys"][0]["kty"],
        "RSA"
    );
}

#[test]
fn hs256_tokens_work_and_publish_no_key() {
    let s = TestServer::start_with(|c| c.algorithm = Alg::Hs256);
    let (t, _) = signed_in(&s);
    assert_eq!(
        s.get_auth("/auth/me", t["accessToken"].as_str().unwrap())
            .status,
        200
    );
    assert_eq!(s.get("/.well-known/jwks.json").json(), json!({"keys": []}));
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn part(token: &str, i: usize) -> Value {
    use base64::Engine;
    let p = token.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn tampered_and_unsigned_tokens_are_refused() {
    let s = TestServer::start();
    let (t, _) = signed_in(&s);
    let token = t["accessToken"].as_str().unwrap();
    let sig = token.split('.').nth(2).unwrap();
    let mut claims = part(token, 1);
    claims["role"] = json!("admin");
    let header = part(token, 0);
    let tampered = format!("{}.{}.{sig}", b64(&header), b64(&claims));
    let r = s.get_auth("/auth/me", &tampered);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["message"], "Token Invalid");

    let none = json!({"alg": "none", "typ": "JWT", "kid": header["kid"]});
    assert_eq!(
        s.get_auth(
            "/auth/me",
            &format!("{}.{}.", b64(&none), b64(&part(token, 1)))
        )
        .status,
        401
    );
    let no_kid = json!({"alg": "ES256", "typ": "JWT"});
    assert_eq!(
        s.get_auth(
            "/auth/me",
            &format!("{}.{}.{sig}", b64(&no_kid), b64(&part(token, 1)))
        )
        .status,
        401
    );
}

#[test]
fn an_expired_token_is_refused_after_the_leeway() {
    let s = TestServer::start();
    let (t, _) = signed_in(&s);
    let token = t["accessToken"].as_str().unwrap();
    s.advance(900 + 60);
    assert_eq!(
        s.get_auth("/auth/me", token).status,
        200,
        "within the 60 s leeway"
    );
    s.advance(2);
    let r = s.get_auth("/auth/me", token);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["message"], "Token Expired");
}

#[test]
fn rotation_keeps_old_tokens_valid_until_they_expire() {
    let s = TestServer::start();
    let (t, _) = signed_in(&s);
    let old = t["accessToken"].as_str().unwrap().to_string();
    let old_kid = part(&old, 0)["kid"].clone();
    {
        let mut conn = s.conn();
        let master = hallpass::app::load_master_key(&s.config).unwrap();
        jwt::rotate(
            &mut conn,
            &master,
            &KeySource::Generate(Alg::Es256),
            960,
            s.now(),
        )
        .unwrap();
    }
    s.running().reload_keys().unwrap();
    assert_eq!(
        s.get("/.well-known/jwks.json").json()["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(s.get_auth("/auth/me", &old).status, 200);
    let fresh = s
        .post(
            "/auth/token-refresh",
            &json!({"refreshToken": t["refreshToken"]}),
        )
        .json();
    assert_ne!(
        part(fresh["accessToken"].as_str().unwrap(), 0)["kid"],
        old_kid
    );
    s.advance(961);
    s.running().reload_keys().unwrap();
    let keys = s.get("/.well-known/jwks.json").json();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert_ne!(keys["keys"][0]["kid"], old_kid);
}
