//! Password hashing and the password policy.
//!
//! Hashes are PBKDF2-HMAC-SHA256 (ring) with a 16-byte random salt, written
//! as a PHC-style string: `$pbkdf2-sha256$i=600000$<salt>$<hash>`, salt and
//! hash in unpadded standard base64. The iteration count lives in the string,
//! so a change of the configured cost is noticed at the next successful
//! sign-in (`needs_rehash`) and the hash is rewritten then.
//!
//! An unknown user must cost the same as a wrong password: callers run
//! `verify` against `dummy_hash(iterations)` and discard the result.
//!
//! The policy (8..=1024 characters, not one of the 10,000 most common
//! passwords) follows OWASP's Authentication Cheat Sheet and NIST SP 800-63B
//! 5.1.1.2: no composition rules, a blocklist instead.

use std::num::NonZeroU32;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ring::pbkdf2;

use crate::crypto::random_bytes;
use crate::error::Error;

/// The default PBKDF2 iteration count (OWASP, 2023 onwards).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in characters (bounds the hashing work).
pub const MAX_LEN: usize = 1024;

const ALG: &str = "pbkdf2-sha256";
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// The published list, most common first; see the header of the file.
const COMMON: &str = include_str!("common-passwords.txt");

/// Hashes `password` with a fresh salt.
pub fn hash(password: &str, iterations: u32) -> Result<String, Error> {
    let salt = random_bytes(SALT_LEN)?;
    let mut out = [0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        nonzero(iterations),
        &salt,
        password.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "${ALG}$i={iterations}${}${}",
        STANDARD_NO_PAD.encode(&salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// True when `password` matches the PHC string `stored`. A malformed stored
/// string never matches (and still costs one derivation).
pub fn verify(password: &str, stored: &str) -> bool {
    match parse(stored) {
        Some((iterations, salt, expected)) => pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            nonzero(iterations),
            &salt,
            password.as_bytes(),
            &expected,
        )
        .is_ok(),
        None => false,
    }
}

/// True when `stored` is a PHC string this module can verify.
pub fn is_well_formed(stored: &str) -> bool {
    parse(stored).is_some()
}

/// True when `stored` was made with other parameters than the configured ones.
pub fn needs_rehash(stored: &str, iterations: u32) -> bool {
    !matches!(parse(stored), Some((i, _, h)) if i == iterations && h.len() == HASH_LEN)
}

/// A well-formed hash with the given cost that no password matches, for
/// dummy verifies. Verifying against it costs a full derivation, but making
/// it costs nothing (start-up stays fast): the "hash" is random bytes.
pub fn dummy_hash(iterations: u32) -> Result<String, Error> {
    Ok(format!(
        "${ALG}$i={iterations}${}${}",
        STANDARD_NO_PAD.encode(random_bytes(SALT_LEN)?),
        STANDARD_NO_PAD.encode(random_bytes(HASH_LEN)?)
    ))
}

/// Checks `password` against the policy; the error names `field`.
pub fn check_policy(field: &str, password: &str) -> Result<(), Error> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(Error::invalid(
            field,
            "too_short",
            format!("The password must be at least {MIN_LEN} characters long"),
        ));
    }
    if n > MAX_LEN {
        return Err(Error::invalid(
            field,
            "too_long",
            format!("The password must be at most {MAX_LEN} characters long"),
        ));
    }
    if is_common(password) {
        return Err(Error::invalid(
            field,
            "too_common",
            "This password is one of the 10,000 most common passwords; choose another",
        ));
    }
    Ok(())
}

/// True when `password` (case-insensitively) is on the common-password list.
pub fn is_common(password: &str) -> bool {
    static SORTED: OnceLock<Vec<&'static str>> = OnceLock::new();
    let list = SORTED.get_or_init(|| {
        let mut v: Vec<&str> = COMMON
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        v.sort_unstable();
        v
    });
    let lower = password.to_lowercase();
    list.binary_search(&lower.as_str()).is_ok()
}

fn parse(stored: &str) -> Option<(u32, Vec<u8>, Vec<u8>)> {
    let mut parts = stored.split('$');
    if !parts.next()?.is_empty() || parts.next()? != ALG {
        return None;
    }
    let iterations: u32 = parts.next()?.strip_prefix("i=")?.parse().ok()?;
    let salt = STANDARD_NO_PAD.decode(parts.next()?).ok()?;
    let hash = STANDARD_NO_PAD.decode(parts.next()?).ok()?;
    if parts.next().is_some() || iterations == 0 || hash.is_empty() {
        return None;
    }
    Some((iterations, salt, hash))
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PBKDF2-HMAC-SHA256 vectors in the style of RFC 6070 (which covers
    /// SHA-1); these are the widely published SHA-256 counterparts.
    #[test]
    fn pbkdf2_sha256_matches_published_vectors() {
        let cases: [(&[u8], &[u8], u32, &str); 3] = [
            (
                b"password",
                b"salt",
                1,
                "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
            ),
            (
                b"password",
                b"salt",
                2,
                "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43",
            ),
            (
                b"password",
                b"salt",
                4096,
                "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
            ),
        ];
        for (pw, salt, it, want) in cases {
            let mut out = [0u8; 32];
            pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, nonzero(it), salt, pw, &mut out);
            assert_eq!(crate::crypto::hex(&out), want);
        }
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery staple", 1000).unwrap();
        assert!(h.starts_with("$pbkdf2-sha256$i=1000$"));
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapler", &h));
        assert!(!verify("x", "$bcrypt$garbage"));
    }

    #[test]
    fn a_changed_cost_asks_for_a_rehash() {
        let h = hash("correct horse battery staple", 1000).unwrap();
        assert!(!needs_rehash(&h, 1000));
        assert!(needs_rehash(&h, 2000));
        assert!(needs_rehash("garbage", 1000));
    }

    #[test]
    fn the_policy_refuses_short_long_and_common_passwords() {
        assert!(check_policy("password", "short").is_err());
        assert!(check_policy("password", &"a".repeat(1025)).is_err());
        assert!(check_policy("password", "Password1").is_err());
        assert!(check_policy("password", "iloveyou").is_err());
        assert!(check_policy("password", "mauve-otter-tangent-19").is_ok());
    }
}
