//! Thin wrappers over ring: randomness, SHA-256, HMAC, constant-time
//! comparison, AES-256-GCM sealing and base64url. No primitive is written
//! here; this module only gives the rest of the crate one small vocabulary.
//!
//! Sealed values are `nonce (12 bytes) || ciphertext || tag (16 bytes)`, with
//! a fresh random nonce per seal and the purpose (e.g. `"signing-key"`) as
//! associated data, so a value sealed for one purpose cannot be opened as
//! another.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};

use crate::error::Error;

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::Internal("system randomness unavailable".into()))?;
    Ok(buf)
}

/// A 256-bit random token, base64url without padding (43 characters).
pub fn random_token() -> Result<String, Error> {
    Ok(b64url(&random_bytes(32)?))
}

/// A random UUID (version 4), in its canonical text form.
pub fn uuid_v4() -> Result<String, Error> {
    let mut b = random_bytes(16)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// `len` characters drawn uniformly from `alphabet` (rejection sampling:
/// bytes at or above the largest multiple of its size are skipped).
pub fn random_from(alphabet: &[u8], len: usize) -> Result<String, Error> {
    let n = alphabet.len();
    if n == 0 || n > 256 {
        return Err(Error::Internal("bad alphabet".into()));
    }
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes(32)? {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % n] as char);
            }
        }
    }
    Ok(out)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// SHA-256 of a token, hex-encoded: how tokens, codes and keys are stored.
pub fn token_hash(token: &str) -> String {
    hex(&sha256(token.as_bytes()))
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&k, data).as_ref().to_vec()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lower-case hex.
pub fn hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// base64url without padding (JWS, JWKS, tokens).
pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decodes base64url without padding; `None` for anything else.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// Standard base64 with padding (PHC strings, data URLs, keys from env).
pub fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decodes standard base64 with padding.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s.trim()).ok()
}

/// The 256-bit master key that seals secrets at rest.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// Wraps 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, Error> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Internal("the master key must be 32 bytes".into()))?;
        Ok(MasterKey(arr))
    }

    /// A fresh random key.
    pub fn generate() -> Result<MasterKey, Error> {
        MasterKey::from_bytes(&random_bytes(32)?)
    }

    /// The key as base64 (how it is written to the key file).
    pub fn to_base64(&self) -> String {
        b64(&self.0)
    }

    /// Parses a key given as base64 (44 chars) or hex (64 chars).
    pub fn parse(text: &str) -> Result<MasterKey, Error> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|c| c.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| Error::Internal("bad hex master key".into()))?
        } else {
            b64_decode(t).ok_or_else(|| {
                Error::Internal("the master key is neither 64 hex digits nor base64".into())
            })?
        };
        MasterKey::from_bytes(&bytes)
    }

    /// A key derived from the master key for one purpose (HMAC of codes).
    pub fn derive(&self, purpose: &str) -> Vec<u8> {
        hmac_sha256(&self.0, purpose.as_bytes())
    }

    fn aead(&self) -> Result<LessSafeKey, Error> {
        let k = UnboundKey::new(&AES_256_GCM, &self.0)
            .map_err(|_| Error::Internal("AES key rejected".into()))?;
        Ok(LessSafeKey::new(k))
    }

    /// Seals `plain` for `purpose` with AES-256-GCM and a random nonce.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce_bytes = random_bytes(NONCE_LEN)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&nonce_bytes);
        let mut buf = plain.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut buf,
            )
            .map_err(|_| Error::Internal("seal failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens a value sealed by `seal` for the same purpose.
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(Error::Internal("sealed value too short".into()));
        }
        let (n, rest) = sealed.split_at(NONCE_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(n);
        let mut buf = rest.to_vec();
        let plain = self
            .aead()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut buf,
            )
            .map_err(|_| {
                Error::Internal(
                    "cannot open a sealed value: wrong master key or corrupt data".into(),
                )
            })?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_fips_180_2_abc_vector() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_cases_1_and_2() {
        let key = [0x0bu8; 20];
        assert_eq!(
            hex(&hmac_sha256(&key, b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_purpose() {
        let k = MasterKey::generate().unwrap();
        let s = k.seal("signing-key", b"secret").unwrap();
        assert_eq!(k.open("signing-key", &s).unwrap(), b"secret");
        assert!(k.open("totp", &s).is_err());
        let other = MasterKey::generate().unwrap();
        assert!(other.open("signing-key", &s).is_err());
        let mut tampered = s.clone();
        tampered[15] ^= 1;
        assert!(k.open("signing-key", &tampered).is_err());
    }

    #[test]
    fn ct_eq_compares_contents_and_lengths() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid_v4().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn master_keys_parse_from_hex_and_base64() {
        let hexkey = "00".repeat(31) + "ff";
        let k = MasterKey::parse(&hexkey).unwrap();
        assert_eq!(MasterKey::parse(&k.to_base64()).unwrap().0, k.0);
        assert!(MasterKey::parse("short").is_err());
    }
}
