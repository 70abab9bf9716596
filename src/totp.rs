//! The TOTP second factor (RFC 6238) and recovery codes.
//!
//! * A factor is enrolled *pending*: a fresh 160-bit secret, sealed under the
//!   master key (bound to the user by the seal's purpose). It becomes *on*
//!   with the first good code, within `PENDING_TTL`; a pending factor never
//!   protects sign-in, and enrolling again replaces it.
//! * Codes are SHA-1, 6 digits, 30 s steps; one step of skew either side is
//!   accepted, and a step is accepted at most once per user (`last_step`),
//!   so a code cannot be replayed, not even an older one of the window.
//! * Recovery codes: 10 of 10 characters from an alphabet without look-alike
//!   characters, single use, stored as HMAC-SHA256 under a key derived from
//!   the master key (about 50 bits each: too short for a bare SHA-256; the
//!   soft lock bounds guessing). A new set replaces the old one.
//!
//! The brute-force limits and the login log around these checks live in
//! `auth`; this module is the factor itself and its rows.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use totp_lite::{totp_custom, Sha1};

use crate::crypto::{b64, ct_eq, hex, hmac_sha256, random_bytes, random_from, MasterKey};
use crate::error::Error;
use crate::url::percent_encode;

/// Seconds per time step.
pub const STEP: i64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// How long a pending enrollment may be confirmed, in seconds.
pub const PENDING_TTL: i64 = 600;
/// Secret length in bytes (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;
/// How many recovery codes a set has, and their length.
pub const RECOVERY_CODES: usize = 10;
pub const RECOVERY_LEN: usize = 10;
/// The recovery-code alphabet: no 0/o, 1/l/i.
pub const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Where a user's second factor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No factor, or a pending one that has expired.
    Off,
    /// Enrolled, waiting for its first code.
    Pending,
    /// Confirmed: sign-in needs a code.
    On,
}

/// A new enrollment, shown to the user once.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The secret, base32 without padding (what authenticator apps take).
    pub secret: String,
    /// The `otpauth://totp/…` URI the QR code encodes.
    pub uri: String,
    /// The recovery codes that confirming this enrollment will activate
    /// (empty when none were asked for).
    pub recovery_codes: Vec<String>,
}

/// The code for time step `step` (RFC 6238 with SHA-1).
pub fn code_at(secret: &[u8], step: i64, digits: u32) -> String {
    let time = (step.max(0) as u64).saturating_mul(STEP as u64);
    totp_custom::<Sha1>(STEP as u64, digits, secret, time)
}

/// The time step of unix time `now`.
pub fn step_of(now: i64) -> i64 {
    now.div_euclid(STEP)
}

/// Refuses anything but six ASCII digits, naming `field` (422).
pub fn check_code_format(field: &str, code: &str) -> Result<(), Error> {
    if code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "invalid",
            format!("{field} must be a {DIGITS}-digit code"),
        ))
    }
}

/// Refuses anything that cannot be a recovery code, naming `field` (422).
pub fn check_recovery_format(field: &str, code: &str) -> Result<(), Error> {
    match normalize_recovery(code) {
        Some(_) => Ok(()),
        None => Err(Error::invalid(
            field,
            "invalid",
            format!("{field} must be a {RECOVERY_LEN}-character recovery code"),
        )),
    }
}

/// A recovery code as typed, normalised (case, spaces and dashes ignored);
/// `None` when it cannot be one.
pub fn normalize_recovery(code: &str) -> Option<String> {
    let c: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (c.len() == RECOVERY_LEN && c.bytes().all(|b| RECOVERY_ALPHABET.contains(&b))).then_some(c)
}

/// The `otpauth://` URI of Google Authenticator's key-URI format:
/// label `issuer:account`, then secret, issuer and the parameters.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        percent_encode(issuer),
        percent_encode(account),
        percent_encode(issuer),
    )
}

/// The issuer name authenticator apps show for a JWT issuer: its host
/// when it is a URL, else the issuer itself.
pub fn issuer_label(issuer: &str) -> String {
    let rest = issuer.split_once("://").map(|(_, r)| r).unwrap_or(issuer);
    rest.split('/').next().unwrap_or(rest).to_string()
}

fn qr(uri: &str) -> Result<qrcode::QrCode, Error> {
    qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M)
        .map_err(|e| Error::Internal(format!("cannot draw a QR code: {e}")))
}

/// The QR code of `uri` as an SVG document.
pub fn qr_svg(uri: &str) -> Result<String, Error> {
    Ok(qr(uri)?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build())
}

/// The QR code as text for a terminal (two modules per character cell).
pub fn qr_terminal(uri: &str) -> Result<String, Error> {
    Ok(qr(uri)?
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .build())
}

/// The QR code as a 1-bit greyscale PNG: 6 pixels a module, 4 modules of
/// quiet zone (ISO/IEC 18004).
pub fn qr_png(uri: &str) -> Result<Vec<u8>, Error> {
    const SCALE: usize = 6;
    const QUIET: usize = 4;
    let code = qr(uri)?;
    let modules = code.width();
    let dark = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let row_bytes = side.div_ceil(8);
    let mut pixels = vec![0xffu8; row_bytes * side];
    for y in 0..side {
        for x in 0..side {
            let (mx, my) = (x / SCALE, y / SCALE);
            let inside =
                (QUIET..QUIET + modules).contains(&mx) && (QUIET..QUIET + modules).contains(&my);
            if inside && dark[(my - QUIET) * modules + (mx - QUIET)] == qrcode::Color::Dark {
                pixels[y * row_bytes + x / 8] &= !(0x80 >> (x % 8));
            }
        }
    }
    let mut out = Vec::new();
    let png_err = |e: png::EncodingError| Error::Internal(format!("png: {e}"));
    {
        let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        let mut w = enc.write_header().map_err(png_err)?;
        w.write_image_data(&pixels).map_err(png_err)?;
    }
    Ok(out)
}

/// The QR code as a `data:image/png;base64,` URL.
pub fn qr_png_data_url(uri: &str) -> Result<String, Error> {
    Ok(format!("data:image/png;base64,{}", b64(&qr_png(uri)?)))
}

fn seal_purpose(user_id: &str) -> String {
    format!("totp:{user_id}")
}

fn recovery_hash(master: &MasterKey, user_id: &str, code: &str) -> String {
    hex(&hmac_sha256(
        &master.derive("recovery-code"),
        format!("{user_id}:{code}").as_bytes(),
    ))
}

fn random_recovery_code() -> Result<String, Error> {
    random_from(RECOVERY_ALPHABET, RECOVERY_LEN)
}

struct Row {
    sealed: Vec<u8>,
    created_at: i64,
    confirmed_at: Option<i64>,
    last_step: Option<i64>,
    pending_recovery: Option<String>,
}

fn row(conn: &Connection, user_id: &str) -> Result<Option<Row>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT sealed_secret, created_at, confirmed_at, last_step, pending_recovery
               FROM totp_factors WHERE user_id = ?1",
        )?
        .query_row([user_id], |r| {
            Ok(Row {
                sealed: r.get(0)?,
                created_at: r.get(1)?,
                confirmed_at: r.get(2)?,
                last_step: r.get(3)?,
                pending_recovery: r.get(4)?,
            })
        })
        .optional()?)
}

fn state_of(r: &Row, now: i64) -> State {
    match r.confirmed_at {
        Some(_) => State::On,
        None if now - r.created_at < PENDING_TTL => State::Pending,
        None => State::Off,
    }
}

/// Where the user's factor stands.
pub fn state(conn: &Connection, user_id: &str, now: i64) -> Result<State, Error> {
    Ok(row(conn, user_id)?
        .map(|r| state_of(&r, now))
        .unwrap_or(State::Off))
}

/// Starts a pending enrollment, replacing any earlier pending one. With
/// `recovery`, a set of recovery codes is drawn too, to be activated when
/// the enrollment is confirmed. A user whose factor is on gets a Conflict.
pub fn enroll(
    tx: &Transaction,
    master: &MasterKey,
    user_id: &str,
    issuer: &str,
    account: &str,
    recovery: bool,
    now: i64,
) -> Result<Enrollment, Error> {
    if state(tx, user_id, now)? == State::On {
        return Err(Error::Conflict(
            "Two-factor authentication is already enabled".into(),
        ));
    }
    let raw = random_bytes(SECRET_BYTES)?;
    let secret = base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &raw);
    let recovery_codes = if recovery {
        (0..RECOVERY_CODES)
            .map(|_| random_recovery_code())
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let pending: Option<String> = if recovery {
        let hashes: Vec<String> = recovery_codes
            .iter()
            .map(|c| recovery_hash(master, user_id, c))
            .collect();
        Some(serde_json::to_string(&hashes)?)
    } else {
        None
    };
    tx.prepare_cached(
        "INSERT INTO totp_factors (user_id, sealed_secret, created_at, confirmed_at, last_step, pending_recovery)
         VALUES (?1, ?2, ?3, NULL, NULL, ?4)
         ON CONFLICT (user_id) DO UPDATE SET sealed_secret = ?2, created_at = ?3, confirmed_at = NULL,
                                             last_step = NULL, pending_recovery = ?4",
    )?
    .execute(params![
        user_id,
        master.seal(&seal_purpose(user_id), &raw)?,
        now,
        pending
    ])?;
    Ok(Enrollment {
        uri: otpauth_uri(issuer, account, &secret),
        secret,
        recovery_codes,
    })
}

/// True when `secret` (base32, as shown) and `codes` are exactly those of
/// the user's live pending enrollment (the mfa dialect's enable call).
pub fn pending_matches(
    conn: &Connection,
    master: &MasterKey,
    user_id: &str,
    secret: &str,
    codes: &[String],
    now: i64,
) -> Result<bool, Error> {
    let Some(r) = row(conn, user_id)? else {
        return Ok(false);
    };
    if state_of(&r, now) != State::Pending {
        return Ok(false);
    }
    let raw = master.open(&seal_purpose(user_id), &r.sealed)?;
    let given = base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        &secret.trim().to_ascii_uppercase(),
    )
    .unwrap_or_default();
    let mut want: Vec<String> = r
        .pending_recovery
        .as_deref()
        .map(serde_json::from_str)
        .transpose()?
        .unwrap_or_default();
    let mut got: Vec<String> = codes
        .iter()
        .map(|c| normalize_recovery(c).map(|c| recovery_hash(master, user_id, &c)))
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default();
    want.sort();
    got.sort();
    got.dedup();
    Ok(ct_eq(&raw, &given) && want.len() == got.len() && want == got)
}

/// Which pending enrollments a code may confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// None: only a factor that is on is checked.
    No,
    /// Enrollments without recovery codes (native, lagrello).
    Plain,
    /// Any, including those with recovery codes (the mfa dialect's enable,
    /// which checks its own preconditions first, and the CLI).
    Any,
}

/// Checks a TOTP code. The accepted step is consumed; a live pending
/// enrollment is checked too when `confirm` allows it, and a good code
/// confirms it (activating its recovery codes). Returns false for a wrong,
/// replayed or out-of-window code, and when there is no factor to check.
pub fn verify(
    tx: &Transaction,
    master: &MasterKey,
    user_id: &str,
    code: &str,
    confirm: Confirm,
    now: i64,
) -> Result<bool, Error> {
    let Some(r) = row(tx, user_id)? else {
        return Ok(false);
    };
    match (state_of(&r, now), confirm) {
        (State::On, _) => {}
        (State::Pending, Confirm::Any) => {}
        (State::Pending, Confirm::Plain) if r.pending_recovery.is_none() => {}
        _ => return Ok(false),
    }
    let secret = master.open(&seal_purpose(user_id), &r.sealed)?;
    let current = step_of(now);
    let after = r.last_step.unwrap_or(i64::MIN);
    // Every candidate is computed and compared, matched or not.
    let mut matched = None;
    for step in current - 1..=current + 1 {
        let ok = ct_eq(
            code_at(&secret, step, DIGITS as u32).as_bytes(),
            code.as_bytes(),
        );
        if ok && step > after {
            matched = Some(step);
        }
    }
    let Some(step) = matched else {
        return Ok(false);
    };
    tx.prepare_cached(
        "UPDATE totp_factors SET last_step = ?2, confirmed_at = coalesce(confirmed_at, ?3),
                                 pending_recovery = NULL
          WHERE user_id = ?1",
    )?
    .execute(params![user_id, step, now])?;
    if r.confirmed_at.is_none() {
        if let Some(pending) = &r.pending_recovery {
            let hashes: Vec<String> = serde_json::from_str(pending)?;
            replace_recovery(tx, user_id, &hashes, now)?;
        }
    }
    Ok(true)
}

fn replace_recovery(
    tx: &Connection,
    user_id: &str,
    hashes: &[String],
    now: i64,
) -> Result<(), Error> {
    tx.prepare_cached("DELETE FROM recovery_codes WHERE user_id = ?1")?
        .execute([user_id])?;
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO recovery_codes (user_id, hash, created_at) VALUES (?1, ?2, ?3)",
    )?;
    for h in hashes {
        ins.execute(params![user_id, h, now])?;
    }
    Ok(())
}

/// How a recovery code is being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryUse {
    /// Signing in: the code is used up.
    SignIn,
    /// Signing in at the mfa dialect's /recover: used up, but good once
    /// more for disabling MFA within `keep` seconds.
    SignInKeep { keep: i64 },
    /// Disabling MFA: an unused code, or one kept by `SignInKeep`.
    Disable,
}

/// Redeems a recovery code. Returns false for a wrong or used code (or
/// when the user's factor is not on).
pub fn redeem_recovery(
    tx: &Transaction,
    master: &MasterKey,
    user_id: &str,
    code: &str,
    how: RecoveryUse,
    now: i64,
) -> Result<bool, Error> {
    if state(tx, user_id, now)? != State::On {
        return Ok(false);
    }
    let Some(code) = normalize_recovery(code) else {
        return Ok(false);
    };
    let hash = recovery_hash(master, user_id, &code);
    let found: Option<(Option<i64>, Option<i64>)> = tx
        .prepare_cached(
            "SELECT used_at, reusable_until FROM recovery_codes WHERE user_id = ?1 AND hash = ?2",
        )?
        .query_row([user_id, &hash], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let ok = match (found, how) {
        (Some((None, _)), RecoveryUse::SignInKeep { keep }) => {
            tx.prepare_cached(
                "UPDATE recovery_codes SET used_at = ?3, reusable_until = ?4 WHERE user_id = ?1 AND hash = ?2",
            )?
            .execute(params![user_id, hash, now, now + keep])?;
            true
        }
        (Some((None, _)), _) => {
            tx.prepare_cached(
                "UPDATE recovery_codes SET used_at = ?3 WHERE user_id = ?1 AND hash = ?2",
            )?
            .execute(params![user_id, hash, now])?;
            true
        }
        (Some((Some(_), Some(until))), RecoveryUse::Disable) if until > now => {
            tx.prepare_cached(
                "UPDATE recovery_codes SET reusable_until = NULL WHERE user_id = ?1 AND hash = ?2",
            )?
            .execute(params![user_id, hash])?;
            true
        }
        _ => false,
    };
    Ok(ok)
}

/// How many unused recovery codes the user has left.
pub fn recovery_left(conn: &Connection, user_id: &str) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
        )?
        .query_row([user_id], |r| r.get(0))?)
}

/// Removes the user's factor and recovery codes. Returns the state the
/// factor was in.
pub fn remove(tx: &Connection, user_id: &str, now: i64) -> Result<State, Error> {
    let before = state(tx, user_id, now)?;
    tx.prepare_cached("DELETE FROM totp_factors WHERE user_id = ?1")?
        .execute([user_id])?;
    tx.prepare_cached("DELETE FROM recovery_codes WHERE user_id = ?1")?
        .execute([user_id])?;
    Ok(before)
}

/// A new set of recovery codes for a user whose factor is on, replacing
/// every earlier code, used or not (the account page). Returns the codes,
/// to be shown once: only their hashes are kept. Conflict when the factor
/// is not on.
pub fn regenerate_recovery(
    tx: &Connection,
    master: &MasterKey,
    user_id: &str,
    now: i64,
) -> Result<Vec<String>, Error> {
    if state(tx, user_id, now)? != State::On {
        return Err(Error::Conflict(
            "Two-factor authentication is not enabled".into(),
        ));
    }
    let codes = (0..RECOVERY_CODES)
        .map(|_| random_recovery_code())
        .collect::<Result<Vec<_>, _>>()?;
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| recovery_hash(master, user_id, c))
        .collect();
    replace_recovery(tx, user_id, &hashes, now)?;
    Ok(codes)
}

/// The user's live pending enrollment, to be shown again (its secret and
/// URI; recovery codes drawn with it are never readable again, so none
/// are returned). None when no enrollment is pending.
pub fn pending_enrollment(
    conn: &Connection,
    master: &MasterKey,
    user_id: &str,
    issuer: &str,
    account: &str,
    now: i64,
) -> Result<Option<Enrollment>, Error> {
    let Some(r) = row(conn, user_id)? else {
        return Ok(None);
    };
    if state_of(&r, now) != State::Pending {
        return Ok(None);
    }
    let raw = master.open(&seal_purpose(user_id), &r.sealed)?;
    let secret = base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &raw);
    Ok(Some(Enrollment {
        uri: otpauth_uri(issuer, account, &secret),
        secret,
        recovery_codes: Vec::new(),
    }))
}

/// Deletes pending enrollments that can no longer be confirmed (the sweeper).
pub fn sweep(tx: &Connection, now: i64) -> Result<usize, Error> {
    Ok(tx.execute(
        "DELETE FROM totp_factors WHERE confirmed_at IS NULL AND created_at < ?1",
        [now - PENDING_TTL],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, the SHA-1 rows (8 digits, the 20-byte seed).
    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let seed = b"12345678901234567890";
        for (time, want) in [
            (59_i64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(seed, step_of(time), 8), want, "T = {time}");
        }
        // Six digits are the last six of the same value.
        assert_eq!(code_at(seed, step_of(59), 6), "287082");
    }

    #[test]
    fn code_format_and_recovery_normalisation() {
        assert!(check_code_format("code", "012345").is_ok());
        for bad in ["12345", "1234567", "12345a", " 12345", ""] {
            assert_eq!(check_code_format("code", bad).unwrap_err().status(), 422);
        }
        assert_eq!(
            normalize_recovery("ABCDE-fghjk").as_deref(),
            Some("abcdefghjk")
        );
        assert_eq!(normalize_recovery("abcdefghj0"), None);
        assert_eq!(normalize_recovery("abc"), None);
    }

    #[test]
    fn recovery_codes_use_only_the_unambiguous_alphabet() {
        for _ in 0..50 {
            let c = random_recovery_code().unwrap();
            assert_eq!(c.len(), RECOVERY_LEN);
            assert!(c.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)), "{c}");
        }
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters() {
        let uri = otpauth_uri("Hall Pass", "ann@example.com", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri,
            "otpauth://totp/Hall%20Pass:ann%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Hall%20Pass&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn the_png_is_a_png_with_a_quiet_zone() {
        let png = qr_png("otpauth://totp/x:y?secret=AAAA").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(qr_svg("otpauth://totp/x:y?secret=AAAA")
            .unwrap()
            .starts_with("<?xml"));
        assert!(qr_terminal("x").unwrap().contains('█'));
    }
}
