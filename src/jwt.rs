//! JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515), written here
//! on ring, and the signing keys behind them.
//!
//! Algorithms: ES256 (default), EdDSA (Ed25519), RS256 (with an operator's
//! PKCS#8 or PKCS#1 RSA key) and HS256 (for local development). Each key has
//! a `kid` (its RFC 7638 thumbprint; random for HS256) and exactly one
//! algorithm. Verification finds the key by `kid` and refuses any header
//! whose `alg` is not that key's: "none", and HS/ES confusion (an HMAC made
//! with a public key as secret), are refused by construction.
//!
//! Private keys are sealed with the master key in `signing_keys`. A retired
//! key stays in the JWKS, and still verifies, until `publish_until`: the
//! expiry of the last access token it may have signed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::crypto::{b64url, b64url_decode, ct_eq, hmac_sha256, random_bytes, sha256, MasterKey};
use crate::error::Error;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY: i64 = 60;
const SEAL_PURPOSE: &str = "signing-key";

/// A JWS algorithm hallpass signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// HMAC-SHA256 (a shared secret: not published in the JWKS).
    Hs256,
}

impl Alg {
    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
            Alg::Rs256 => "RS256",
            Alg::Hs256 => "HS256",
        }
    }

    /// Parses a JOSE name (exact case).
    pub fn from_name(s: &str) -> Option<Alg> {
        match s {
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            "RS256" => Some(Alg::Rs256),
            "HS256" => Some(Alg::Hs256),
            _ => None,
        }
    }
}

/// The claims of a hallpass access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[allow(non_snake_case)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The client id the token was issued to (or "hallpass").
    pub aud: String,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Not before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// A unique id for this token.
    pub jti: String,
    /// The session (refresh-token family) this token belongs to.
    pub sid: String,
    /// The tenant the token acts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenantId: Option<String>,
    /// The user's membership id in that tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userTenantId: Option<String>,
    /// The role (in the tenant, else the user's own).
    pub role: String,
    /// Permissions.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Authentication methods used (RFC 8176): "pwd", "otp", …
    #[serde(default)]
    pub amr: Vec<String>,
    /// AuthUser's `id` (= `sub`): SourceLoop apps read the user from the
    /// token's AuthUser claims (README, "native"). Only the identifying fields
    /// are carried, to keep tokens small; the rest is GET /auth/me.
    #[serde(default)]
    pub id: String,
    /// AuthUser's `username`, when the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// AuthUser's `email`, when the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// AuthUser's `authClientId`: the number of the client in `aud`
    /// (SourceLoop's is an integer); absent for sign-ins without a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authClientId: Option<i64>,
}

enum Private {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
    Hmac(Vec<u8>),
}

/// One signing key, private half included.
pub struct Key {
    /// Key id.
    pub kid: String,
    /// Its one algorithm.
    pub alg: Alg,
    private: Private,
    /// The public JWK (None for HS256).
    pub jwk: Option<Value>,
    /// When retired, until when it stays published.
    pub publish_until: Option<i64>,
}

impl Key {
    fn from_secret(kid: &str, alg: Alg, secret: &[u8]) -> Result<Key, Error> {
        let rng = SystemRandom::new();
        let bad = |_| Error::Internal(format!("signing key {kid} is unreadable"));
        let private = match alg {
            Alg::Es256 => Private::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, secret, &rng)
                    .map_err(bad)?,
            ),
            Alg::EdDsa => Private::Ed(Ed25519KeyPair::from_pkcs8(secret).map_err(bad)?),
            Alg::Rs256 => Private::Rsa(
                RsaKeyPair::from_pkcs8(secret)
                    .or_else(|_| RsaKeyPair::from_der(secret))
                    .map_err(bad)?,
            ),
            Alg::Hs256 => Private::Hmac(secret.to_vec()),
        };
        let jwk = public_jwk(&private).map(|mut j| {
            j["kid"] = json!(kid);
            j["alg"] = json!(alg.name());
            j["use"] = json!("sig");
            j
        });
        Ok(Key {
            kid: kid.to_string(),
            alg,
            private,
            jwk,
            publish_until: None,
        })
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = SystemRandom::new();
        match &self.private {
            Private::Ec(k) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Internal("ECDSA signing failed".into())),
            Private::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Private::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| Error::Internal("RSA signing failed".into()))?;
                Ok(sig)
            }
            Private::Hmac(s) => Ok(hmac_sha256(s, msg)),
        }
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.private {
            Private::Ec(k) => signature::UnparsedPublicKey::new(
                &signature::ECDSA_P256_SHA256_FIXED,
                k.public_key().as_ref(),
            )
            .verify(msg, sig)
            .is_ok(),
            Private::Ed(k) => {
                signature::UnparsedPublicKey::new(&signature::ED25519, k.public_key().as_ref())
                    .verify(msg, sig)
                    .is_ok()
            }
            Private::Rsa(k) => signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public())
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
            Private::Hmac(s) => ct_eq(&hmac_sha256(s, msg), sig),
        }
    }
}

fn public_jwk(p: &Private) -> Option<Value> {
    match p {
        Private::Ec(k) => {
            let point = k.public_key().as_ref(); // 0x04 || x || y
            Some(json!({"kty": "EC", "crv": "P-256",
                        "x": b64url(point.get(1..33)?), "y": b64url(point.get(33..65)?)}))
        }
        Private::Ed(k) => Some(json!({"kty": "OKP", "crv": "Ed25519",
                                      "x": b64url(k.public_key().as_ref())})),
        Private::Rsa(k) => {
            let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
            Some(json!({"kty": "RSA", "n": b64url(&c.n), "e": b64url(&c.e)}))
        }
        Private::Hmac(_) => None,
    }
}

/// RFC 7638 thumbprint of a public JWK: SHA-256 over its required members in
/// lexicographic order, with no whitespace.
pub fn thumbprint(jwk: &Value) -> String {
    let s = |k: &str| jwk[k].as_str().unwrap_or_default().to_string();
    let canonical = match s("kty").as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv"),
            s("x"),
            s("y")
        ),
        "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s("crv"), s("x")),
        _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e"), s("n")),
    };
    b64url(&sha256(canonical.as_bytes()))
}

/// Makes a new private key: PKCS#8 for ES256/EdDSA, 32 random bytes for
/// HS256. RS256 keys are the operator's and come from a file.
fn generate_secret(alg: Alg) -> Result<Vec<u8>, Error> {
    let rng = SystemRandom::new();
    let fail = |_| Error::Internal("key generation failed".into());
    match alg {
        Alg::Es256 => Ok(EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .map_err(fail)?
        .as_ref()
        .to_vec()),
        Alg::EdDsa => Ok(Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(fail)?
            .as_ref()
            .to_vec()),
        Alg::Hs256 => random_bytes(32),
        Alg::Rs256 => Err(Error::Internal(
            "RS256 keys are supplied by the operator".into(),
        )),
    }
}

/// Reads an RSA private key from a DER or PEM file (PKCS#8 or PKCS#1).
pub fn read_rsa_key(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Internal(format!("cannot read RSA key {}: {e}", path.display())))?;
    let der = match std::str::from_utf8(&bytes) {
        Ok(text) if text.contains("-----BEGIN") => {
            let body: String = text
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::trim)
                .collect();
            crate::crypto::b64_decode(&body)
                .ok_or_else(|| Error::Internal(format!("bad PEM in {}", path.display())))?
        }
        _ => bytes,
    };
    Key::from_secret("probe", Alg::Rs256, &der)?;
    Ok(der)
}

/// All keys that sign or still verify, and which one signs.
pub struct KeySet {
    current: Arc<Key>,
    by_kid: HashMap<String, Arc<Key>>,
    /// A fingerprint of the rows loaded, to notice changes made elsewhere.
    pub stamp: String,
}

impl KeySet {
    /// Loads the current key and the retired keys still published.
    pub fn load(conn: &Connection, master: &MasterKey, now: i64) -> Result<KeySet, Error> {
        let mut stmt = conn.prepare_cached(
            "SELECT kid, alg, sealed_private, publish_until FROM signing_keys
              WHERE retired_at IS NULL OR publish_until > ?1
              ORDER BY retired_at IS NULL, created_at",
        )?;
        let rows = stmt.query_map([now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })?;
        let mut by_kid = HashMap::new();
        let mut current = None;
        let mut stamp = String::new();
        for row in rows {
            let (kid, alg, sealed, publish_until) = row?;
            let alg = Alg::from_name(&alg)
                .ok_or_else(|| Error::Internal(format!("unknown algorithm on key {kid}")))?;
            let secret = master.open(SEAL_PURPOSE, &sealed)?;
            let mut key = Key::from_secret(&kid, alg, &secret)?;
            key.publish_until = publish_until;
            stamp.push_str(&kid);
            stamp.push(if publish_until.is_none() { '*' } else { ',' });
            let key = Arc::new(key);
            if publish_until.is_none() {
                current = Some(key.clone());
            }
            by_kid.insert(kid, key);
        }
        let current = current.ok_or_else(|| {
            Error::Internal(
                "no signing key yet: run `hallpass init` or start the server once".into(),
            )
        })?;
        Ok(KeySet {
            current,
            by_kid,
            stamp,
        })
    }

    /// The current key's algorithm.
    pub fn current_alg(&self) -> Alg {
        self.current.alg
    }

    /// Signs `claims` (an access token's, or the OpenID provider's
    /// id_token and client tokens) with the current key.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, Error> {
        self.sign_as(claims, self.current.alg)
    }

    /// Signs with the current key, which must be of `alg` (a client of the
    /// OpenID provider may name the algorithm its id_tokens need; only the
    /// current key signs, so another algorithm is an error the provider
    /// reports before it issues anything).
    pub fn sign_as<T: Serialize>(&self, claims: &T, alg: Alg) -> Result<String, Error> {
        if alg != self.current.alg {
            return Err(Error::Internal(format!(
                "no current signing key for {}",
                alg.name()
            )));
        }
        let header = json!({"alg": self.current.alg.name(), "typ": "JWT", "kid": self.current.kid});
        let mut out = b64url(serde_json::to_string(&header)?.as_bytes());
        out.push('.');
        out.push_str(&b64url(serde_json::to_string(claims)?.as_bytes()));
        let sig = self.current.sign(out.as_bytes())?;
        out.push('.');
        out.push_str(&b64url(&sig));
        Ok(out)
    }

    /// Verifies signature, algorithm, issuer, `exp` and `nbf` (60 s leeway).
    pub fn verify(&self, token: &str, issuer: &str, now: i64) -> Result<Claims, Error> {
        let claims = self.verify_ignoring_expiry(token, issuer)?;
        if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY) || claims.iat > now + LEEWAY {
            return Err(Error::TokenInvalid);
        }
        if claims.exp + LEEWAY < now {
            return Err(Error::TokenExpired);
        }
        Ok(claims)
    }

    /// Verifies signature, algorithm and issuer only: for recognising the
    /// (possibly expired) access token a client sends along with a refresh.
    pub fn verify_ignoring_expiry(&self, token: &str, issuer: &str) -> Result<Claims, Error> {
        let claims: Claims = serde_json::from_slice(&self.verified_payload(token)?)
            .map_err(|_| Error::TokenInvalid)?;
        if claims.iss != issuer {
            return Err(Error::TokenInvalid);
        }
        Ok(claims)
    }

    /// Verifies signature and algorithm of any token we signed (id_tokens
    /// given back as `id_token_hint`, client-credentials tokens) and
    /// returns its payload; the caller checks issuer and times.
    pub fn verify_json(&self, token: &str) -> Result<Value, Error> {
        serde_json::from_slice(&self.verified_payload(token)?).map_err(|_| Error::TokenInvalid)
    }

    /// The payload bytes of a token whose `kid` is one of ours, whose
    /// `alg` is that key's (so "none" never passes) and whose signature
    /// holds.
    fn verified_payload(&self, token: &str) -> Result<Vec<u8>, Error> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::TokenInvalid);
        };
        let header: Value = b64url_decode(h)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Error::TokenInvalid)?;
        let kid = header["kid"].as_str().ok_or(Error::TokenInvalid)?;
        let key = self.by_kid.get(kid).ok_or(Error::TokenInvalid)?;
        if header["alg"].as_str() != Some(key.alg.name()) {
            return Err(Error::TokenInvalid);
        }
        let sig = b64url_decode(s).ok_or(Error::TokenInvalid)?;
        let signed_len = h.len() + 1 + p.len();
        if !key.verify(
            token
                .as_bytes()
                .get(..signed_len)
                .ok_or(Error::TokenInvalid)?,
            &sig,
        ) {
            return Err(Error::TokenInvalid);
        }
        b64url_decode(p).ok_or(Error::TokenInvalid)
    }

    /// The JSON Web Key Set: current and still-published retired keys.
    pub fn jwks(&self) -> Value {
        let mut keys: Vec<&Arc<Key>> = self.by_kid.values().collect();
        keys.sort_by_key(|k| (k.publish_until.is_some(), k.kid.clone()));
        json!({"keys": keys.iter().filter_map(|k| k.jwk.clone()).collect::<Vec<Value>>()})
    }

    /// Summary rows for `keys list`: (kid, alg, current?, publish_until).
    pub fn describe(&self) -> Vec<(String, &'static str, bool, Option<i64>)> {
        let mut v: Vec<_> = self
            .by_kid
            .values()
            .map(|k| {
                (
                    k.kid.clone(),
                    k.alg.name(),
                    Arc::ptr_eq(k, &self.current),
                    k.publish_until,
                )
            })
            .collect();
        v.sort_by_key(|r| (!r.2, r.0.clone()));
        v
    }
}

/// What a new current key is made from.
pub enum KeySource {
    /// Generate one for this algorithm.
    Generate(Alg),
    /// The operator's RSA key (DER).
    Rsa(Vec<u8>),
}

/// Makes sure a current key of the configured kind exists, rotating when
/// the configuration asks for another algorithm or another RSA key.
/// Returns true when a key was created.
pub fn ensure_current(
    conn: &mut Connection,
    master: &MasterKey,
    source: &KeySource,
    keep_secs: i64,
    now: i64,
) -> Result<bool, Error> {
    crate::db::immediate(conn, |tx| {
        let current: Option<(String, String)> = tx
            .query_row(
                "SELECT kid, alg FROM signing_keys WHERE retired_at IS NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        let wanted = match source {
            KeySource::Generate(a) => *a,
            KeySource::Rsa(_) => Alg::Rs256,
        };
        let matches = match (&current, source) {
            (None, _) => false,
            (Some((_, alg)), KeySource::Generate(a)) => alg == a.name(),
            (Some((kid, _)), KeySource::Rsa(der)) => Key::from_secret("probe", Alg::Rs256, der)?
                .jwk
                .map(|j| thumbprint(&j) == *kid)
                .unwrap_or(false),
        };
        if matches {
            return Ok(false);
        }
        let secret = match source {
            KeySource::Generate(a) => generate_secret(*a)?,
            KeySource::Rsa(der) => der.clone(),
        };
        insert_key(tx, master, wanted, &secret, keep_secs, now)?;
        Ok(true)
    })
}

/// Retires the current key and makes a new one of the same algorithm (or
/// `alg` when given). Returns the new kid.
pub fn rotate(
    conn: &mut Connection,
    master: &MasterKey,
    source: &KeySource,
    keep_secs: i64,
    now: i64,
) -> Result<String, Error> {
    crate::db::immediate(conn, |tx| rotate_in(tx, master, source, keep_secs, now))
}

/// `rotate` inside the caller's transaction (the admin core writes its
/// audit row in the same one).
pub fn rotate_in(
    tx: &rusqlite::Transaction,
    master: &MasterKey,
    source: &KeySource,
    keep_secs: i64,
    now: i64,
) -> Result<String, Error> {
    let (alg, secret) = match source {
        KeySource::Generate(a) => (*a, generate_secret(*a)?),
        KeySource::Rsa(der) => (Alg::Rs256, der.clone()),
    };
    insert_key(tx, master, alg, &secret, keep_secs, now)
}

fn insert_key(
    tx: &rusqlite::Transaction,
    master: &MasterKey,
    alg: Alg,
    secret: &[u8],
    keep_secs: i64,
    now: i64,
) -> Result<String, Error> {
    let key = Key::from_secret("new", alg, secret)?;
    let kid = match &key.jwk {
        Some(j) => thumbprint(j),
        None => b64url(&random_bytes(16)?),
    };
    let exists: bool = tx.query_row(
        "SELECT count(*) > 0 FROM signing_keys WHERE kid = ?1",
        [&kid],
        |r| r.get(0),
    )?;
    if exists {
        // The same RSA key again: make it current once more.
        tx.execute(
            "UPDATE signing_keys SET retired_at = ?1, publish_until = ?2
              WHERE retired_at IS NULL AND kid <> ?3",
            params![now, now + keep_secs, kid],
        )?;
        tx.execute(
            "UPDATE signing_keys SET retired_at = NULL, publish_until = NULL WHERE kid = ?1",
            [&kid],
        )?;
        return Ok(kid);
    }
    tx.execute(
        "UPDATE signing_keys SET retired_at = ?1, publish_until = ?2 WHERE retired_at IS NULL",
        params![now, now + keep_secs],
    )?;
    tx.execute(
        "INSERT INTO signing_keys (kid, alg, sealed_private, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![kid, alg.name(), master.seal(SEAL_PURPOSE, secret)?, now],
    )?;
    Ok(kid)
}

/// Remembers tokens already verified, so a hot `/auth/me` costs a hash and a
/// map look-up instead of a signature check. Keyed by SHA-256 of the whole
/// token (never by a part of it), valid until the token's expiry.
#[derive(Default)]
pub struct VerifyCache {
    map: Mutex<HashMap<[u8; 32], Arc<Claims>>>,
}

const CACHE_MAX: usize = 20_000;

impl VerifyCache {
    /// Verifies through the cache.
    pub fn verify(
        &self,
        keys: &KeySet,
        token: &str,
        issuer: &str,
        now: i64,
    ) -> Result<Arc<Claims>, Error> {
        let digest = sha256(token.as_bytes());
        if let Ok(map) = self.map.lock() {
            if let Some(c) = map.get(&digest) {
                if c.exp + LEEWAY >= now {
                    return Ok(c.clone());
                }
            }
        }
        let claims = Arc::new(keys.verify(token, issuer, now)?);
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= CACHE_MAX {
                map.retain(|_, c| c.exp + LEEWAY >= now);
                if map.len() >= CACHE_MAX {
                    map.clear();
                }
            }
            map.insert(digest, claims.clone());
        }
        Ok(claims)
    }

    /// Forgets everything (after a key change).
    pub fn clear(&self) {
        if let Ok(mut m) = self.map.lock() {
            m.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyset(alg: Alg) -> (tempfile::TempDir, KeySet, Connection, MasterKey) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open_and_migrate(&dir.path().join("k.db")).unwrap();
        let master = MasterKey::generate().unwrap();
        ensure_current(&mut conn, &master, &KeySource::Generate(alg), 900, 1000).unwrap();
        let ks = KeySet::load(&conn, &master, 1000).unwrap();
        (dir, ks, conn, master)
    }

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "https://auth.example".into(),
            sub: "u1".into(),
            aud: "c1".into(),
            exp: now + 900,
            iat: now,
            nbf: None,
            jti: "j".into(),
            sid: "s".into(),
            tenantId: None,
            userTenantId: None,
            role: "user".into(),
            permissions: vec![],
            amr: vec!["pwd".into()],
            id: "u1".into(),
            username: None,
            email: None,
            authClientId: Some(1),
        }
    }

    #[test]
    fn every_algorithm_signs_and_verifies_its_own_tokens() {
        for alg in [Alg::Es256, Alg::EdDsa, Alg::Hs256] {
            let (_d, ks, _c, _m) = keyset(alg);
            let t = ks.sign(&claims(1000)).unwrap();
            assert_eq!(
                ks.verify(&t, "https://auth.example", 1000).unwrap().sub,
                "u1"
            );
            assert_eq!(
                ks.verify(&t, "https://other", 1000),
                Err(Error::TokenInvalid)
            );
        }
    }

    #[test]
    fn sign_as_refuses_an_algorithm_the_current_key_is_not() {
        let (_d, ks, _c, _m) = keyset(Alg::Es256);
        assert!(ks.sign_as(&claims(1000), Alg::Es256).is_ok());
        assert!(matches!(
            ks.sign_as(&claims(1000), Alg::Rs256),
            Err(Error::Internal(_))
        ));
        let any = ks.sign(&json!({"iss": "x", "sub": "c"})).unwrap();
        assert_eq!(ks.verify_json(&any).unwrap()["sub"], json!("c"));
    }

    #[test]
    fn expiry_has_sixty_seconds_of_leeway() {
        let (_d, ks, _c, _m) = keyset(Alg::Es256);
        let t = ks.sign(&claims(1000)).unwrap();
        assert!(ks
            .verify(&t, "https://auth.example", 1000 + 900 + 60)
            .is_ok());
        assert_eq!(
            ks.verify(&t, "https://auth.example", 1000 + 900 + 61),
            Err(Error::TokenExpired)
        );
    }

    #[test]
    fn alg_none_and_a_swapped_alg_are_refused() {
        let (_d, ks, _c, _m) = keyset(Alg::Es256);
        let t = ks.sign(&claims(1000)).unwrap();
        let mut parts: Vec<&str> = t.split('.').collect();
        let kid = ks.current.kid.clone();
        let none = b64url(format!(r#"{{"alg":"none","kid":"{kid}"}}"#).as_bytes());
        parts[0] = &none;
        let forged = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(
            ks.verify(&forged, "https://auth.example", 1000),
            Err(Error::TokenInvalid)
        );
        // HS256 with the public key as the HMAC secret.
        let hs = b64url(format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#).as_bytes());
        let msg = format!("{hs}.{}", parts[1]);
        let public = serde_json::to_vec(ks.current.jwk.as_ref().unwrap()).unwrap();
        let forged = format!("{msg}.{}", b64url(&hmac_sha256(&public, msg.as_bytes())));
        assert_eq!(
            ks.verify(&forged, "https://auth.example", 1000),
            Err(Error::TokenInvalid)
        );
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let (_d, ks, _c, _m) = keyset(Alg::EdDsa);
        let t = ks.sign(&claims(1000)).unwrap();
        let mut c = claims(1000);
        c.sub = "admin".into();
        let fake = b64url(serde_json::to_string(&c).unwrap().as_bytes());
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], fake, parts[2]);
        assert_eq!(
            ks.verify(&forged, "https://auth.example", 1000),
            Err(Error::TokenInvalid)
        );
    }

    #[test]
    fn a_rotated_key_still_verifies_until_its_last_token_expires() {
        let (_d, ks, mut conn, master) = keyset(Alg::Es256);
        let old = ks.sign(&claims(1000)).unwrap();
        rotate(
            &mut conn,
            &master,
            &KeySource::Generate(Alg::Es256),
            900,
            1100,
        )
        .unwrap();
        let ks2 = KeySet::load(&conn, &master, 1100).unwrap();
        assert_eq!(ks2.jwks()["keys"].as_array().unwrap().len(), 2);
        assert!(ks2.verify(&old, "https://auth.example", 1100).is_ok());
        let ks3 = KeySet::load(&conn, &master, 2001).unwrap();
        assert_eq!(ks3.jwks()["keys"].as_array().unwrap().len(), 1);
        assert_eq!(
            ks3.verify(&old, "https://auth.example", 1100),
            Err(Error::TokenInvalid)
        );
    }

    /// RFC 7515 appendix A.1: the HS256 example JWS verifies with its key,
    /// and fails with one byte of the payload changed.
    #[test]
    fn hs256_matches_rfc_7515_appendix_a1() {
        let k = b64url_decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow").unwrap();
        let key = Key::from_secret("rfc", Alg::Hs256, &k).unwrap();
        let msg = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let sig = b64url_decode("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        assert!(key.verify(msg.as_bytes(), &sig));
        assert_eq!(key.sign(msg.as_bytes()).unwrap(), sig);
        let tampered = msg.replace("eyJpc3Mi", "eyJpc3Ni");
        assert!(!key.verify(tampered.as_bytes(), &sig));
    }

    /// RFC 7515 appendix A.3: the ES256 example verifies with ring's
    /// fixed-length (r || s) P-256 verifier, the encoding our tokens use.
    #[test]
    fn es256_signature_encoding_matches_rfc_7515_appendix_a3() {
        let x = b64url_decode("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU").unwrap();
        let y = b64url_decode("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0").unwrap();
        let mut point = vec![4u8];
        point.extend(x);
        point.extend(y);
        let msg = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let sig = b64url_decode("DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q").unwrap();
        let key = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point);
        assert!(key.verify(msg.as_bytes(), &sig).is_ok());
    }

    /// RFC 7638 section 3.1's example key and thumbprint.
    #[test]
    fn thumbprints_match_rfc_7638() {
        let jwk = json!({"kty": "RSA", "e": "AQAB", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
