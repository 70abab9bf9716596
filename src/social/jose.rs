//! The upstream side of JOSE: verifying the id_tokens identity providers
//! send us (OpenID Connect Core 1.0 §3.1.3.7), reading their JWKS (RFC
//! 7517), and signing the ES256 client secret Sign in with Apple wants.
//!
//! Every primitive is ring's; this module only parses and decides.
//! Accepted: RS256 (RSA keys of 2048 to 8192 bits) and ES256 (P-256, the
//! signature as raw `r || s`, RFC 7518 §3.4). The algorithm is pinned to
//! the key: the header's `alg` must fit the key's `kty`, and equal the
//! JWK's `alg` when the JWK names one, so "none", HS256 with a public key
//! as the secret, and RSA/EC confusion are refused by construction.
//!
//! Errors are short reasons for the log ("audience mismatch"); they never
//! carry token contents.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, UnparsedPublicKey};
use serde_json::{json, Map, Value};

use crate::crypto::{b64_decode, b64url, b64url_decode, ct_eq};

/// How long an Apple client secret is valid: 30 days, well under the six
/// months Apple allows, so a secret cached by mistake still expires soon.
pub const APPLE_SECRET_LIFETIME: i64 = 3600 * 24 * 30;

/// The `aud` of an Apple client secret.
const APPLE_AUDIENCE: &str = "https://appleid.apple.com";

/// The algorithms we accept on an upstream id_token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    fn from_name(s: &str) -> Option<Alg> {
        match s {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// The public half of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Public {
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// A P-256 point, uncompressed: `0x04 || x || y`.
    P256(Vec<u8>),
}

impl Public {
    fn fits(&self, alg: Alg) -> bool {
        matches!(
            (self, alg),
            (Public::Rsa { .. }, Alg::Rs256) | (Public::P256(_), Alg::Es256)
        )
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            Public::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
            Public::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
        }
    }
}

/// One signature key from a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Jwk {
    kid: Option<String>,
    /// The JWK's own `alg`, when it names one.
    alg: Option<String>,
    public: Public,
}

/// A provider's signature keys, parsed from its JWKS document: the RSA
/// and P-256 keys meant for signatures. Keys for encryption, of other
/// types or curves, RSA keys under 2048 bits and members that do not
/// decode are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

/// Decodes a JWK member (base64url; padding tolerated, as some providers
/// add it).
fn member(jwk: &Value, name: &str) -> Option<Vec<u8>> {
    b64url_decode(jwk.get(name)?.as_str()?.trim_end_matches('='))
}

/// A big-endian unsigned integer without its leading zero bytes: some
/// JWKS carry one on `n`, and ring wants the minimal encoding.
fn minimal(mut n: Vec<u8>) -> Vec<u8> {
    let zeros = n.iter().take_while(|&&b| b == 0).count();
    n.drain(..zeros);
    n
}

/// The size in bits of a minimal big-endian unsigned integer.
fn bits(n: &[u8]) -> usize {
    n.first()
        .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize)
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`). Fails when it is not
    /// one, or when no key in it is usable for RS256 or ES256.
    pub fn parse(v: &Value) -> Result<Jwks, String> {
        let list = v
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no keys array")?;
        let keys: Vec<Jwk> = list.iter().filter_map(Jwks::parse_key).collect();
        if keys.is_empty() {
            return Err("the JWKS has no usable signature key".into());
        }
        Ok(Jwks { keys })
    }

    fn parse_key(jwk: &Value) -> Option<Jwk> {
        if jwk.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
            return None;
        }
        let public = match jwk.get("kty")?.as_str()? {
            "RSA" => {
                let (n, e) = (minimal(member(jwk, "n")?), minimal(member(jwk, "e")?));
                if !(2048..=8192).contains(&bits(&n)) {
                    return None;
                }
                Public::Rsa { n, e }
            }
            "EC" if jwk.get("crv")?.as_str()? == "P-256" => {
                let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Public::P256(point)
            }
            _ => return None,
        };
        let text = |k: &str| jwk.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Jwk {
            kid: text("kid"),
            alg: text("alg"),
            public,
        })
    }

    /// True when a key has this `kid` (when not, the provider may have
    /// rotated: fetch its JWKS again, once).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there is no usable key (never, for a parsed JWKS).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key that must have signed a token with this `alg` and `kid`.
    fn choose(&self, alg: Alg, kid: Option<&str>) -> Result<&Jwk, String> {
        let key = match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid));
                let first = named.clone().next().ok_or("unknown kid")?;
                // Two keys under one kid (an RSA and an EC one, say): the
                // one the algorithm fits.
                named.find(|k| k.public.fits(alg)).unwrap_or(first)
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.public.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => k,
                    (None, _) => return Err("no key for the algorithm".into()),
                    (Some(_), Some(_)) => return Err("no kid, and more than one key".into()),
                }
            }
        };
        if !key.public.fits(alg) {
            return Err("the algorithm does not fit the key".into());
        }
        if key.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return Err("the algorithm is not the key's".into());
        }
        Ok(key)
    }
}

/// A JWS in compact form, split, with its header decoded.
struct Jws<'a> {
    /// `header.payload`: the bytes the signature covers.
    signed: &'a str,
    payload: &'a str,
    signature: &'a str,
    header: Map<String, Value>,
}

fn split(token: &str) -> Result<Jws<'_>, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWS in compact form".into());
    };
    let header = b64url_decode(h)
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .ok_or("the header does not decode")?;
    let signed = token
        .get(..h.len() + 1 + p.len())
        .ok_or("not a JWS in compact form")?;
    Ok(Jws {
        signed,
        payload: p,
        signature: s,
        header,
    })
}

/// A token's `alg` and `kid`, read from its header without verifying
/// anything (to pick, or refresh, the JWKS).
pub fn header(token: &str) -> Result<(String, Option<String>), String> {
    let header = split(token)?.header;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("the header has no alg")?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((alg.to_string(), kid))
}

/// What an id_token must say to be accepted.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The provider's issuer. A literal `{tenantid}` in it stands for the
    /// token's `tid` claim: Azure's multi-tenant issuer,
    /// `https://login.microsoftonline.com/{tenantid}/v2.0`.
    pub issuer: &'a str,
    /// Our client id at the provider.
    pub audience: &'a str,
    /// The nonce we sent with the authorization request, when we sent one.
    pub nonce: Option<&'a str>,
    /// The current time, unix seconds.
    pub now: i64,
    /// Clock skew tolerated on `exp` and `iat`, in seconds.
    pub leeway: i64,
}

/// A numeric claim (NumericDate: an integer, or a number with a fraction
/// that is dropped).
fn seconds(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// Verifies an id_token: signature by a key of `jwks` under RS256 or
/// ES256 (see the module doc for the pinning), then the claims of OIDC
/// Core §3.1.3.7: `iss`, `aud` (and `azp` when there are several
/// audiences), `exp`, `iat`, `nbf` when present, `nonce` when expected,
/// and a non-empty `sub`. Returns all the claims.
pub fn verify_id_token(token: &str, jwks: &Jwks, e: &Expect) -> Result<Map<String, Value>, String> {
    let jws = split(token)?;
    let header = &jws.header;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("the header has no alg")?;
    let alg = Alg::from_name(alg_name).ok_or("unsupported algorithm")?;
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: extensions we do not understand must be refused.
        return Err("unsupported critical header".into());
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err("the kid is not a string".into()),
    };
    let key = jwks.choose(alg, kid)?;
    let sig = b64url_decode(jws.signature).ok_or("the signature does not decode")?;
    if !key.public.verify(jws.signed.as_bytes(), &sig) {
        return Err("bad signature".into());
    }
    let claims = b64url_decode(jws.payload)
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .ok_or("the claims do not decode")?;
    check_claims(&claims, e)?;
    Ok(claims)
}

/// The claim checks of `verify_id_token`, after the signature.
fn check_claims(claims: &Map<String, Value>, e: &Expect) -> Result<(), String> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);

    let issuer = if e.issuer.contains("{tenantid}") {
        let tid = text("tid").ok_or("no tid for the tenant issuer")?;
        if tid.is_empty() || !tid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err("bad tid".into());
        }
        e.issuer.replace("{tenantid}", tid)
    } else {
        e.issuer.to_string()
    };
    if text("iss") != Some(issuer.as_str()) {
        return Err("issuer mismatch".into());
    }

    match claims.get("aud") {
        Some(Value::String(a)) if a == e.audience => {}
        Some(Value::Array(list)) if list.iter().any(|a| a.as_str() == Some(e.audience)) => {
            // OIDC Core §3.1.3.7 items 4 and 5: with several audiences,
            // the authorized party must be us.
            if list.len() > 1 && text("azp") != Some(e.audience) {
                return Err("several audiences and azp is not ours".into());
            }
        }
        _ => return Err("audience mismatch".into()),
    }

    let exp = seconds(claims, "exp").ok_or("no exp")?;
    if exp <= e.now - e.leeway {
        return Err("expired".into());
    }
    let iat = seconds(claims, "iat").ok_or("no iat")?;
    if iat > e.now + e.leeway {
        return Err("issued in the future".into());
    }
    if seconds(claims, "nbf").is_some_and(|nbf| nbf > e.now + e.leeway) {
        return Err("not yet valid".into());
    }

    if let Some(expected) = e.nonce {
        let got = text("nonce").ok_or("no nonce")?;
        if !ct_eq(got.as_bytes(), expected.as_bytes()) {
            return Err("nonce mismatch".into());
        }
    }

    if text("sub").is_none_or(str::is_empty) {
        return Err("no sub".into());
    }
    Ok(())
}

/// The DER inside a PEM block labelled `PRIVATE KEY` (PKCS#8).
fn pkcs8_from_pem(pem: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let start = pem
        .find(BEGIN)
        .ok_or("no PRIVATE KEY block in the .p8 file")?
        + BEGIN.len();
    let len = pem
        .get(start..)
        .and_then(|rest| rest.find(END))
        .ok_or("the PRIVATE KEY block is not closed")?;
    let body: String = pem
        .get(start..start + len)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    b64_decode(&body).ok_or_else(|| "the PRIVATE KEY block is not base64".into())
}

/// Sign in with Apple's client secret: an ES256 JWT signed with the
/// developer's `.p8` key (PEM, PKCS#8 P-256), valid for
/// `APPLE_SECRET_LIFETIME` from `now`.
///
/// See <https://developer.apple.com/documentation/accountorganizationaldatasharing/creating-a-client-secret>.
pub fn apple_client_secret(
    p8_pem: &str,
    team_id: &str,
    key_id: &str,
    client_id: &str,
    now: i64,
) -> Result<String, String> {
    let der = pkcs8_from_pem(p8_pem)?;
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        .map_err(|_| "the .p8 file is not a P-256 PKCS#8 key")?;
    let header = json!({"alg": "ES256", "kid": key_id});
    let claims = json!({
        "iss": team_id,
        "iat": now,
        "exp": now + APPLE_SECRET_LIFETIME,
        "aud": APPLE_AUDIENCE,
        "sub": client_id,
    });
    let mut out = b64url(header.to_string().as_bytes());
    out.push('.');
    out.push_str(&b64url(claims.to_string().as_bytes()));
    let sig = key
        .sign(&rng, out.as_bytes())
        .map_err(|_| "ECDSA signing failed")?;
    out.push('.');
    out.push_str(&b64url(sig.as_ref()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{b64, hmac_sha256};
    use ring::signature::{KeyPair, RsaKeyPair};

    const ISS: &str = "https://idp.example";
    const AUD: &str = "client-1";
    const NOW: i64 = 1_700_000_000;

    /// The repository's RSA test key (also used by the integration tests).
    const RSA_PEM: &str = include_str!("../../tests/it/fixtures/rsa-2048.pem");

    enum Signer {
        Ec(EcdsaKeyPair),
        Rsa(RsaKeyPair),
    }

    impl Signer {
        fn ec() -> Signer {
            let rng = SystemRandom::new();
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            Signer::Ec(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
        }

        fn rsa() -> Signer {
            let der = pkcs8_from_pem(RSA_PEM).unwrap();
            Signer::Rsa(RsaKeyPair::from_pkcs8(&der).unwrap())
        }

        fn jwk(&self, kid: &str) -> Value {
            match self {
                Signer::Ec(k) => {
                    let p = k.public_key().as_ref();
                    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                           "x": b64url(&p[1..33]), "y": b64url(&p[33..65])})
                }
                Signer::Rsa(k) => {
                    let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
                    json!({"kty": "RSA", "kid": kid, "n": b64url(&c.n), "e": b64url(&c.e)})
                }
            }
        }

        fn sign(&self, header: &Value, claims: &Value) -> String {
            let rng = SystemRandom::new();
            let mut out = b64url(header.to_string().as_bytes());
            out.push('.');
            out.push_str(&b64url(claims.to_string().as_bytes()));
            let sig = match self {
                Signer::Ec(k) => k.sign(&rng, out.as_bytes()).unwrap().as_ref().to_vec(),
                Signer::Rsa(k) => {
                    let mut sig = vec![0u8; k.public().modulus_len()];
                    k.sign(&signature::RSA_PKCS1_SHA256, &rng, out.as_bytes(), &mut sig)
                        .unwrap();
                    sig
                }
            };
            out.push('.');
            out.push_str(&b64url(&sig));
            out
        }
    }

    fn jwks(keys: &[Value]) -> Jwks {
        Jwks::parse(&json!({ "keys": keys })).unwrap()
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": AUD, "sub": "user-42", "iat": NOW, "exp": NOW + 300,
               "nonce": "n-0S6_WzA2Mj", "email": "a@example.com"})
    }

    fn expect() -> Expect<'static> {
        Expect {
            issuer: ISS,
            audience: AUD,
            nonce: Some("n-0S6_WzA2Mj"),
            now: NOW,
            leeway: 60,
        }
    }

    fn es256(kid: &str) -> Value {
        json!({"alg": "ES256", "kid": kid, "typ": "JWT"})
    }

    /// Signs `claims` with a fresh EC key under kid "k1" and checks them.
    fn check(claims: &Value, e: &Expect) -> Result<Map<String, Value>, String> {
        let k = Signer::ec();
        verify_id_token(&k.sign(&es256("k1"), claims), &jwks(&[k.jwk("k1")]), e)
    }

    #[test]
    fn a_valid_rs256_token_passes() {
        let k = Signer::rsa();
        let t = k.sign(&json!({"alg": "RS256", "kid": "r1"}), &claims());
        let got = verify_id_token(&t, &jwks(&[k.jwk("r1")]), &expect()).unwrap();
        assert_eq!(got["sub"], "user-42");
        assert_eq!(got["email"], "a@example.com");
    }

    #[test]
    fn an_rsa_modulus_with_a_leading_zero_byte_still_verifies() {
        let k = Signer::rsa();
        let mut jwk = k.jwk("r1");
        let mut n = vec![0u8];
        n.extend(b64url_decode(jwk["n"].as_str().unwrap()).unwrap());
        jwk["n"] = json!(b64url(&n));
        let t = k.sign(&json!({"alg": "RS256", "kid": "r1"}), &claims());
        assert!(verify_id_token(&t, &jwks(&[jwk]), &expect()).is_ok());
    }

    #[test]
    fn a_valid_es256_token_passes() {
        let got = check(&claims(), &expect()).unwrap();
        assert_eq!(got["sub"], "user-42");
    }

    #[test]
    fn the_kid_chooses_the_key_among_several() {
        let (a, b) = (Signer::ec(), Signer::ec());
        let set = jwks(&[a.jwk("a"), b.jwk("b"), Signer::rsa().jwk("r")]);
        let t = b.sign(&es256("b"), &claims());
        assert!(verify_id_token(&t, &set, &expect()).is_ok());
        assert!(set.has_kid("a") && set.has_kid("r") && !set.has_kid("c"));
        let t = b.sign(&es256("c"), &claims());
        assert_eq!(
            verify_id_token(&t, &set, &expect()).unwrap_err(),
            "unknown kid"
        );
    }

    #[test]
    fn without_a_kid_only_a_single_key_of_the_type_is_tried() {
        let (a, b) = (Signer::ec(), Signer::ec());
        let t = a.sign(&json!({"alg": "ES256"}), &claims());
        let one = jwks(&[a.jwk("a"), Signer::rsa().jwk("r")]);
        assert!(verify_id_token(&t, &one, &expect()).is_ok());
        let two = jwks(&[a.jwk("a"), b.jwk("b")]);
        assert!(verify_id_token(&t, &two, &expect()).is_err());
    }

    #[test]
    fn a_token_signed_by_another_key_is_refused() {
        let (a, b) = (Signer::ec(), Signer::ec());
        let t = a.sign(&es256("k1"), &claims());
        assert_eq!(
            verify_id_token(&t, &jwks(&[b.jwk("k1")]), &expect()).unwrap_err(),
            "bad signature"
        );
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let k = Signer::ec();
        let t = k.sign(&es256("k1"), &claims());
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = claims();
        c["sub"] = json!("admin");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64url(c.to_string().as_bytes()),
            parts[2]
        );
        assert!(verify_id_token(&forged, &jwks(&[k.jwk("k1")]), &expect()).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        let k = Signer::ec();
        let h = b64url(br#"{"alg":"none","kid":"k1"}"#);
        let p = b64url(claims().to_string().as_bytes());
        for t in [format!("{h}.{p}."), format!("{h}.{p}")] {
            assert!(verify_id_token(&t, &jwks(&[k.jwk("k1")]), &expect()).is_err());
        }
    }

    #[test]
    fn hs256_with_the_public_key_as_secret_is_refused() {
        for k in [Signer::ec(), Signer::rsa()] {
            let jwk = k.jwk("k1");
            let msg = format!(
                "{}.{}",
                b64url(br#"{"alg":"HS256","kid":"k1"}"#),
                b64url(claims().to_string().as_bytes())
            );
            for secret in [
                jwk.to_string().into_bytes(),
                b64(jwk.to_string().as_bytes()).into_bytes(),
            ] {
                let t = format!("{msg}.{}", b64url(&hmac_sha256(&secret, msg.as_bytes())));
                assert_eq!(
                    verify_id_token(&t, &jwks(std::slice::from_ref(&jwk)), &expect()).unwrap_err(),
                    "unsupported algorithm"
                );
            }
        }
    }

    #[test]
    fn the_alg_must_fit_the_key_type_and_the_jwk_alg() {
        // An RS256 header naming an EC key.
        let k = Signer::ec();
        let t = k.sign(&json!({"alg": "RS256", "kid": "k1"}), &claims());
        assert_eq!(
            verify_id_token(&t, &jwks(&[k.jwk("k1")]), &expect()).unwrap_err(),
            "the algorithm does not fit the key"
        );
        // A JWK that says RS384: an RS256 token is not accepted from it,
        // even with a good signature.
        let r = Signer::rsa();
        let mut jwk = r.jwk("r1");
        jwk["alg"] = json!("RS384");
        let t = r.sign(&json!({"alg": "RS256", "kid": "r1"}), &claims());
        assert_eq!(
            verify_id_token(&t, &jwks(std::slice::from_ref(&jwk)), &expect()).unwrap_err(),
            "the algorithm is not the key's"
        );
        jwk["alg"] = json!("RS256");
        assert!(verify_id_token(&t, &jwks(&[jwk]), &expect()).is_ok());
    }

    #[test]
    fn a_wrong_audience_is_refused() {
        let mut c = claims();
        c["aud"] = json!("client-2");
        assert_eq!(check(&c, &expect()).unwrap_err(), "audience mismatch");
        c["aud"] = json!(["client-2", "client-3"]);
        assert_eq!(check(&c, &expect()).unwrap_err(), "audience mismatch");
    }

    #[test]
    fn an_audience_array_needs_azp_when_it_has_several_entries() {
        let mut c = claims();
        c["aud"] = json!([AUD]);
        assert!(check(&c, &expect()).is_ok());
        c["aud"] = json!([AUD, "other"]);
        assert!(check(&c, &expect()).is_err());
        c["azp"] = json!("other");
        assert!(check(&c, &expect()).is_err());
        c["azp"] = json!(AUD);
        assert!(check(&c, &expect()).is_ok());
    }

    #[test]
    fn a_wrong_issuer_is_refused() {
        let mut c = claims();
        c["iss"] = json!("https://evil.example");
        assert_eq!(check(&c, &expect()).unwrap_err(), "issuer mismatch");
        c.as_object_mut().unwrap().remove("iss");
        assert_eq!(check(&c, &expect()).unwrap_err(), "issuer mismatch");
    }

    #[test]
    fn expiry_and_issue_time_have_leeway() {
        let mut c = claims();
        c["exp"] = json!(NOW - 59);
        assert!(check(&c, &expect()).is_ok());
        c["exp"] = json!(NOW - 60);
        assert_eq!(check(&c, &expect()).unwrap_err(), "expired");
        c = claims();
        c["iat"] = json!(NOW + 60);
        assert!(check(&c, &expect()).is_ok());
        c["iat"] = json!(NOW + 61);
        assert_eq!(check(&c, &expect()).unwrap_err(), "issued in the future");
        c.as_object_mut().unwrap().remove("iat");
        assert_eq!(check(&c, &expect()).unwrap_err(), "no iat");
        c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(check(&c, &expect()).unwrap_err(), "no exp");
    }

    #[test]
    fn the_nonce_must_match_when_one_was_sent() {
        let mut c = claims();
        c["nonce"] = json!("n-0S6_WzA2Mk");
        assert_eq!(check(&c, &expect()).unwrap_err(), "nonce mismatch");
        c.as_object_mut().unwrap().remove("nonce");
        assert_eq!(check(&c, &expect()).unwrap_err(), "no nonce");
        let e = Expect {
            nonce: None,
            ..expect()
        };
        assert!(check(&c, &e).is_ok());
    }

    #[test]
    fn sub_must_be_a_non_empty_string() {
        let mut c = claims();
        c["sub"] = json!("");
        assert_eq!(check(&c, &expect()).unwrap_err(), "no sub");
        c["sub"] = json!(42);
        assert_eq!(check(&c, &expect()).unwrap_err(), "no sub");
    }

    #[test]
    fn the_azure_tenant_issuer_takes_the_tokens_tid() {
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let e = Expect {
            issuer: template,
            ..expect()
        };
        let tid = "9188040d-6c67-4c5b-b112-36a304b66dad";
        let mut c = claims();
        c["tid"] = json!(tid);
        c["iss"] = json!(format!("https://login.microsoftonline.com/{tid}/v2.0"));
        assert!(check(&c, &e).is_ok());
        // The issuer of another tenant than the token's own.
        c["iss"] =
            json!("https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0");
        assert_eq!(check(&c, &e).unwrap_err(), "issuer mismatch");
        // The template itself, and a token without tid.
        c["iss"] = json!(template);
        assert!(check(&c, &e).is_err());
        c.as_object_mut().unwrap().remove("tid");
        assert!(check(&c, &e).is_err());
        c["tid"] = json!("a/../b");
        assert_eq!(check(&c, &e).unwrap_err(), "bad tid");
    }

    #[test]
    fn the_header_gives_alg_and_kid_without_verifying() {
        let t = Signer::ec().sign(&es256("k9"), &claims());
        assert_eq!(header(&t).unwrap(), ("ES256".into(), Some("k9".into())));
        let t = Signer::ec().sign(&json!({"alg": "ES256"}), &claims());
        assert_eq!(header(&t).unwrap(), ("ES256".into(), None));
        assert!(header("a.b").is_err());
        assert!(header("!!.b.c").is_err());
    }

    #[test]
    fn the_jwks_keeps_only_usable_signature_keys() {
        let (ec, rsa) = (Signer::ec(), Signer::rsa());
        let mut enc = ec.jwk("enc");
        enc["use"] = json!("enc");
        let mut p384 = ec.jwk("p384");
        p384["crv"] = json!("P-384");
        let small = json!({"kty": "RSA", "kid": "small", "e": "AQAB",
                           "n": b64url(&[0xc5u8; 128])});
        let set = Jwks::parse(&json!({"keys": [
            ec.jwk("ec"), rsa.jwk("rsa"), enc, p384, small,
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "kid": "bad", "x": "!!", "y": "!!"},
        ]}))
        .unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.has_kid("ec") && set.has_kid("rsa"));
        for kid in ["enc", "p384", "small", "ed", "hmac", "bad"] {
            assert!(!set.has_kid(kid), "{kid}");
        }
        assert!(Jwks::parse(&json!({"keys": []})).is_err());
        assert!(Jwks::parse(&json!({"nokeys": 1})).is_err());
    }

    #[test]
    fn the_apple_client_secret_verifies_with_its_public_key() {
        use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};

        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let body = b64(pkcs8.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\r\n{}\r\n-----END PRIVATE KEY-----\r\n",
            lines.join("\r\n")
        );
        let now = 1_700_000_000;
        let secret =
            apple_client_secret(&pem, "TEAM123456", "KEY987", "com.example.web", now).unwrap();

        let h = decode_header(&secret).unwrap();
        assert_eq!(h.alg, Algorithm::ES256);
        assert_eq!(h.kid.as_deref(), Some("KEY987"));
        let point = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        let key = DecodingKey::from_ec_components(&b64url(&point[1..33]), &b64url(&point[33..65]))
            .unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["https://appleid.apple.com"]);
        v.set_issuer(&["TEAM123456"]);
        v.validate_exp = false; // `now` is fixed in the past
        let got = decode::<Value>(&secret, &key, &v).unwrap().claims;
        assert_eq!(got["sub"], "com.example.web");
        assert_eq!(got["iat"], now);
        assert_eq!(got["exp"], now + APPLE_SECRET_LIFETIME);

        // Our own verifier agrees, and another key does not.
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "KEY987",
                         "x": b64url(&point[1..33]), "y": b64url(&point[33..65])});
        let other = Signer::ec().jwk("KEY987");
        let e = Expect {
            issuer: "TEAM123456",
            audience: "https://appleid.apple.com",
            nonce: None,
            now,
            leeway: 0,
        };
        // Apple's secret has no nonce and `sub` is the client id: it passes
        // the id_token checks as a whole.
        assert!(verify_id_token(&secret, &jwks(&[jwk]), &e).is_ok());
        assert!(verify_id_token(&secret, &jwks(&[other]), &e).is_err());
    }

    #[test]
    fn a_p8_that_is_not_a_p256_key_is_refused() {
        assert!(apple_client_secret("nothing here", "T", "K", "C", NOW).is_err());
        assert!(apple_client_secret(RSA_PEM, "T", "K", "C", NOW).is_err());
        let garbled = "-----BEGIN PRIVATE KEY-----\n%%%\n-----END PRIVATE KEY-----\n";
        assert!(apple_client_secret(garbled, "T", "K", "C", NOW).is_err());
    }
}
