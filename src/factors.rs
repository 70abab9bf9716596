//! Second-factor sign-in flows shared by every dialect: checking a TOTP or
//! recovery code under the brute-force limits, the two-step sign-ins
//! (native owed codes, yat limited sessions, the mfa dialect's X-MFA-Token),
//! enrollment and removal, recovery and the emailed MFA reset.
//!
//! Rules that hold for every caller:
//! * A user whose factor is on never gets a full session without a TOTP or
//!   recovery code (or, for the mfa reset, both emailed codes) in the same
//!   sign-in; the password step alone yields an owed code, a limited
//!   session or an X-MFA-Token, none of which /auth/me accepts.
//! * Every factor check counts against the account's soft lock before the
//!   code is compared, in the same transaction, exactly as passwords do;
//!   a refusal writes a FAILED row, a success clears the count. The lock
//!   of codes tried with a name alone counts per name and source, with the
//!   name's hourly budget (softlock.rs), so nobody can hold up the owner from
//!   elsewhere; the second factor's lock is shared by every source the
//!   account has not signed in from (see `softlock::Lock::factor`).
//! * A TOTP step is accepted once per user; recovery codes are single use.

use rusqlite::Transaction;

use crate::accounts::{self, User};
use crate::app::Ctx;
use crate::audit;
use crate::auth::{failed, mint, record_sign_in, subject, Peer, Tokens};
use crate::codes;
use crate::config::Limits;
use crate::crypto::{uuid_v4, MasterKey};
use crate::error::Error;
use crate::limits::Family;
use crate::mail;
use crate::sessions::{self, Grant, Redemption};
use crate::softlock;
use crate::totp::{self, Confirm, Enrollment, RecoveryUse, State};

/// How long an X-MFA-Token lives, in seconds.
pub const MFA_TOKEN_TTL: i64 = 1800;
/// Wrong codes an X-MFA-Token or a reset survives.
pub const MAX_ATTEMPTS: i64 = 5;
/// The limited session of a yat sign-in that owes a second factor.
pub const LIMITED_TTL: i64 = 600;
/// How long a recovery code used at /recover stays good for disabling.
pub const RECOVER_KEEP: i64 = 600;
/// MFA reset codes: length and lifetime.
pub const RESET_CODE_LEN: usize = 5;
pub const RESET_TTL: i64 = 86_400;
/// The least time between two MFA reset mail pairs to one account, in
/// seconds (a new pair replaces the last, so this also keeps a pair alive).
pub const RESET_INTERVAL: i64 = 900;

/// A second factor as presented.
#[derive(Debug, Clone, Copy)]
pub enum Factor<'a> {
    Totp(&'a str),
    Recovery(&'a str, RecoveryUse),
}

impl Factor<'_> {
    /// The RFC 8176 method reference the factor adds to a session.
    pub fn amr(&self) -> &'static str {
        match self {
            Factor::Totp(_) => "otp",
            Factor::Recovery(..) => "recovery",
        }
    }

    fn method(&self) -> &'static str {
        match self {
            Factor::Totp(_) => "totp",
            Factor::Recovery(..) => "recovery_code",
        }
    }
}

/// Reads `code` as a TOTP code (six digits) or a recovery code; anything
/// else is a 422 naming `field`.
pub fn parse_factor<'a>(
    field: &str,
    code: &'a str,
    recovery: RecoveryUse,
) -> Result<Factor<'a>, Error> {
    if totp::check_code_format(field, code).is_ok() {
        Ok(Factor::Totp(code))
    } else if totp::normalize_recovery(code).is_some() {
        Ok(Factor::Recovery(code, recovery))
    } else {
        Err(Error::invalid(
            field,
            "invalid",
            format!("{field} must be a 6-digit code or a recovery code"),
        ))
    }
}

/// Where the user's second factor stands.
pub fn state(cx: &Ctx, user_id: &str) -> Result<State, Error> {
    totp::state(&cx.conn, user_id, cx.now())
}

/// True when sign-in needs a second factor from this user.
pub fn required(cx: &Ctx, user: &User) -> Result<bool, Error> {
    Ok(state(cx, &user.id)? == State::On)
}

/// Checks a second factor of `user`, whose password (or session) was
/// shown, under the account's second-factor soft lock (its own count: a
/// password sign-in does not reset it). With `confirm`, a TOTP code may
/// confirm a pending enrollment. Returns the amr entry on success;
/// OtpInvalid (or 429 while locked) otherwise.
pub fn check(
    cx: &mut Ctx,
    user: &User,
    factor: Factor,
    confirm: Confirm,
    peer: &Peer,
) -> Result<&'static str, Error> {
    let lock = softlock::Lock::factor(&user.id, &peer.ip);
    check_under(cx, user, factor, confirm, &lock, peer)
}

/// `check`, counted against `lock`.
fn check_under(
    cx: &mut Ctx,
    user: &User,
    factor: Factor,
    confirm: Confirm,
    lock: &softlock::Lock,
    peer: &Peer,
) -> Result<&'static str, Error> {
    let now = cx.now();
    let lim = cx.app.config.limits.clone();
    let master = cx.app.master.clone();
    let outcome =
        cx.write(|tx| check_in(tx, &master, &lim, user, factor, confirm, lock, peer, now))?;
    checked(cx, user, factor, outcome)
}

/// The transaction of a factor check, for flows that change something in
/// the same transaction when the code is right (the account page turning
/// the factor on or off): the lock checked, the code compared (a TOTP step
/// consumed, a recovery code used), and a refusal counted against `lock`
/// with its FAILED row. The inner `Err` is the refusal (OtpInvalid, or 429
/// while locked), to be committed all the same; pass it to `checked`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_in(
    tx: &Transaction,
    master: &MasterKey,
    lim: &Limits,
    user: &User,
    factor: Factor,
    confirm: Confirm,
    lock: &softlock::Lock,
    peer: &Peer,
    now: i64,
) -> Result<Result<(), Error>, Error> {
    if let Err(e) = softlock::check(tx, lock, lim, now) {
        return Ok(Err(e));
    }
    let ok = match factor {
        Factor::Totp(code) => totp::verify(tx, master, &user.id, code, confirm, now)?,
        Factor::Recovery(code, how) => totp::redeem_recovery(tx, master, &user.id, code, how, now)?,
    };
    if ok {
        softlock::clear(tx, lock, None, now)?;
        Ok(Ok(()))
    } else {
        softlock::record_failure(tx, lock, lim, now)?;
        audit::record(
            tx,
            &failed(Some(&user.id), factor.method(), "otp_invalid", peer),
            now,
        )?;
        Ok(Err(Error::OtpInvalid))
    }
}

/// After a committed `check_in`: the metrics of a refusal, the log line of
/// a recovery code used; the amr entry on success.
pub(crate) fn checked(
    cx: &Ctx,
    user: &User,
    factor: Factor,
    outcome: Result<(), Error>,
) -> Result<&'static str, Error> {
    if let Err(e) = outcome {
        cx.app.metrics.login(match e {
            Error::RateLimited { .. } => "locked",
            _ => "otp_invalid",
        });
        return Err(e);
    }
    if let Factor::Recovery(..) = factor {
        let left = totp::recovery_left(&cx.conn, &user.id)?;
        cx.app.log.line(format!(
            "security: recovery code used by user {} ({left} left)",
            user.id
        ));
    }
    Ok(factor.amr())
}

/// A refusal of a code tried without a password (unknown user, no factor,
/// no or a wrong login code, an inactive account): counted against the
/// typed identifier's code lock and logged like a wrong code, so it
/// answers and costs the same whoever the name belongs to.
fn refuse(cx: &mut Ctx, user: Option<&User>, login: &str, method: &str, peer: &Peer) -> Error {
    let now = cx.now();
    let lock = code_lock(user, login, peer);
    let lim = cx.app.config.limits.clone();
    let actor = user.map(|u| u.id.clone());
    let written = cx.write(|tx| {
        softlock::check(tx, &lock, &lim, now)?;
        softlock::record_failure(tx, &lock, &lim, now)?;
        audit::record(
            tx,
            &failed(actor.as_deref(), method, "otp_invalid", peer),
            now,
        )
    });
    cx.app.metrics.login("otp_invalid");
    match written {
        Err(e) => e,
        Ok(()) => Error::OtpInvalid,
    }
}

/// The lock on codes tried with `login` alone, from the caller's source.
fn code_lock(user: Option<&User>, login: &str, peer: &Peer) -> softlock::Lock {
    softlock::Lock::code(login, user.map(|u| u.id.as_str()), &peer.ip)
}

fn with_amr(base: &[String], extra: &str) -> Vec<String> {
    let mut amr = base.to_vec();
    if !amr.iter().any(|a| a == extra) {
        amr.push(extra.to_string());
    }
    amr
}

/// Starts (or restarts) a pending TOTP enrollment; `recovery` draws the
/// recovery codes its confirmation will activate.
pub fn enroll(cx: &mut Ctx, user: &User, recovery: bool) -> Result<Enrollment, Error> {
    let now = cx.now();
    let issuer = totp::issuer_label(&cx.app.issuer);
    let master = cx.app.master.clone();
    cx.write(|tx| {
        totp::enroll(
            tx,
            &master,
            &user.id,
            &issuer,
            user.display_name(),
            recovery,
            now,
        )
    })
}

/// Turns the user's factor off, with their recovery codes. Returns what it
/// was.
pub fn remove(cx: &mut Ctx, user: &User, why: &str) -> Result<State, Error> {
    let now = cx.now();
    let before = cx.write(|tx| totp::remove(tx, &user.id, now))?;
    if before == State::On {
        cx.app.log.line(format!(
            "security: two-factor authentication of user {} turned off ({why})",
            user.id
        ));
    }
    Ok(before)
}

/// mfa PUT /api/user/mfa/enable: confirms the user's pending enrollment
/// with a TOTP code. The user needs a recovery address, and `secret` and
/// `recovery_codes` must be exactly those `generate` showed (422).
pub fn enable_pending(
    cx: &mut Ctx,
    user: &User,
    code: &str,
    secret: &str,
    recovery_codes: &[String],
    peer: &Peer,
) -> Result<(), Error> {
    totp::check_code_format("code", code)?;
    if user.recovery_email.is_none() {
        return Err(Error::invalid(
            "recovery_email",
            "required",
            "Set a recovery email (PATCH /api/users) before enabling MFA",
        ));
    }
    let not_pending = |msg: &str| Error::invalid("secret", "invalid", msg);
    match state(cx, &user.id)? {
        State::On => {
            return Err(Error::Conflict(
                "Two-factor authentication is already enabled".into(),
            ))
        }
        State::Off => {
            return Err(not_pending(
                "No enrollment is pending: call /api/user/mfa/generate first",
            ))
        }
        State::Pending => {}
    }
    let now = cx.now();
    if !totp::pending_matches(
        &cx.conn,
        &cx.app.master,
        &user.id,
        secret,
        recovery_codes,
        now,
    )? {
        return Err(not_pending(
            "secret and recovery_codes must be those of the pending enrollment",
        ));
    }
    check(cx, user, Factor::Totp(code), Confirm::Any, peer).map(|_| ())
}

/// mfa PUT /api/user/mfa/disable: a TOTP code, or a recovery code (one
/// kept by `recover` included), turns the user's factor off.
pub fn disable(
    cx: &mut Ctx,
    user: &User,
    code: Option<&str>,
    recovery_code: Option<&str>,
    peer: &Peer,
) -> Result<(), Error> {
    let factor = match (code, recovery_code) {
        (Some(c), _) => {
            totp::check_code_format("code", c)?;
            Factor::Totp(c)
        }
        (None, Some(r)) => {
            totp::check_recovery_format("recovery_code", r)?;
            Factor::Recovery(r, RecoveryUse::Disable)
        }
        (None, None) => return Err(Error::required("code")),
    };
    if state(cx, &user.id)? != State::On {
        return Err(Error::Conflict(
            "Two-factor authentication is not enabled".into(),
        ));
    }
    check(cx, user, factor, Confirm::No, peer)?;
    remove(cx, user, "disabled by the user").map(|_| ())
}

// --- native: owed login codes -------------------------------------------

/// The user of a live login code of `client_id` (check-qr-code and
/// create-qr-code name the user by it).
pub fn code_user(cx: &Ctx, code: &str, client_id: &str) -> Result<User, Error> {
    let cg = sessions::peek_code(&cx.conn, code, Some(client_id), cx.now())?
        .ok_or(Error::CodeExpired)?;
    accounts::get_user(&cx.conn, &cg.grant.user_id)?.ok_or(Error::CodeExpired)
}

/// native /auth/verify-otp for a user with a TOTP factor: `code` must be
/// their live login code (of `client_id` when given); with a right TOTP
/// code (which confirms a pending factor) it is swapped for a fresh code
/// without the second-factor debt. A name and a TOTP code alone never sign
/// in: every refusal is the same OtpInvalid.
pub fn verify_login_code(
    cx: &mut Ctx,
    login: &str,
    otp: &str,
    code: Option<&str>,
    client_id: Option<&str>,
    peer: &Peer,
) -> Result<String, Error> {
    let now = cx.now();
    totp::check_code_format("otp", otp)?;
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    // Only a live login code of this user shows that the password was
    // given; then the account's second-factor lock applies (in `check`).
    // Anything less is counted against the typed name (see `refuse`), so
    // guessing with a name alone cannot lock the real user out.
    let user = accounts::find_user_by_login(&cx.conn, login)?;
    let found = match (&user, code) {
        (Some(u), Some(c)) => {
            sessions::peek_code(&cx.conn, c, client_id, now)?.filter(|cg| cg.grant.user_id == u.id)
        }
        _ => None,
    };
    // Emailed one-time codes (users without TOTP) arrive with the mail
    // capability; until then such a user has nothing to verify here.
    let on = match &user {
        Some(u) => state(cx, &u.id)? != State::Off,
        None => false,
    };
    let (user, cg) = match (user, found) {
        (Some(u), Some(cg)) if on => (u, cg),
        (other, _) => {
            let lock = code_lock(other.as_ref(), login, peer);
            softlock::check(&cx.conn, &lock, &cx.app.config.limits, now)?;
            return Err(refuse(cx, other.as_ref(), login, "totp", peer));
        }
    };
    let client_id = cg.grant.client_id.clone().ok_or(Error::CodeExpired)?;
    let amr = check(cx, &user, Factor::Totp(otp), Confirm::Plain, peer)?;
    let client = accounts::get_client(&cx.conn, &client_id)?.ok_or(Error::ClientInvalid)?;
    let code = code.unwrap_or_default();
    let fresh = cx.write(|tx| {
        let Redemption::Valid(cg) =
            sessions::redeem_code(tx, code, &client_id, sessions::Pkce::CarryOver, now)?
        else {
            return Ok(None);
        };
        // The first step: a password, an emailed code, a provider.
        let method = cg.first_method.clone();
        let method = method.as_deref().unwrap_or("password");
        let grant = Grant {
            amr: with_amr(&cg.grant.amr, amr),
            ..cg.grant
        };
        record_sign_in(tx, &grant, method, peer, now)?;
        sessions::issue_code(
            tx,
            &grant,
            &client_id,
            None,
            cg.challenge.as_deref(),
            client.auth_code_ttl,
            now,
        )
        .map(Some)
    })?;
    cx.app.metrics.login("success");
    fresh.ok_or(Error::CodeExpired)
}

// --- yat: limited sessions ------------------------------------------------

/// A limited pair (yat, second factor owed).
#[derive(Debug, Clone)]
pub struct LimitedPair {
    /// An opaque random value, not a JWT: nothing accepts it, not even a
    /// service that verifies our tokens offline with the JWKS.
    pub access_token: String,
    /// Good only at `complete_limited`, for `LIMITED_TTL`.
    pub refresh_token: String,
}

/// Starts a limited session for a password sign-in that owes a second
/// factor.
pub fn start_limited(cx: &mut Ctx, grant: &Grant) -> Result<LimitedPair, Error> {
    let now = cx.now();
    let issued = cx.write(|tx| sessions::start_family(tx, grant, true, LIMITED_TTL, now))?;
    cx.app.metrics.login("second_factor_owed");
    Ok(LimitedPair {
        access_token: crate::crypto::random_token()?,
        refresh_token: issued.refresh_token,
    })
}

/// yat /auth/2fa: a limited session's refresh token and a TOTP or recovery
/// code give a full session (the same family, now with the factor in amr).
pub fn complete_limited(
    cx: &mut Ctx,
    refresh_token: &str,
    code: &str,
    peer: &Peer,
) -> Result<Tokens, Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let factor = parse_factor("code", code, RecoveryUse::SignIn)?;
    let limited =
        sessions::limited_session(&cx.conn, refresh_token, now)?.ok_or(Error::TokenInvalid)?;
    let user = accounts::get_user(&cx.conn, &limited.user_id)?.ok_or(Error::TokenInvalid)?;
    if !user.is_active() {
        return Err(Error::UserInactive);
    }
    let amr = check(cx, &user, factor, Confirm::No, peer)?;
    let full = with_amr(&limited.amr, amr);
    let ttl = limited
        .client_id
        .as_deref()
        .and_then(|c| accounts::get_client(&cx.conn, c).ok().flatten())
        .map(|c| c.refresh_ttl)
        .unwrap_or(cx.app.config.refresh_ttl);
    let grant = Grant {
        user_id: limited.user_id.clone(),
        client_id: limited.client_id.clone(),
        tenant_id: limited.tenant_id.clone(),
        amr: full.clone(),
    };
    let out = cx.write(|tx| {
        let Some(issued) = sessions::promote(tx, refresh_token, &limited, &full, ttl, now)? else {
            return Ok(None);
        };
        record_sign_in(tx, &grant, "password", peer, now)?;
        Ok(Some((issued, subject(tx, &grant)?)))
    })?;
    let (issued, subject) = out.ok_or(Error::TokenInvalid)?;
    cx.app.metrics.login("success");
    mint(cx, subject, &grant, &issued)
}

// --- mfa: X-MFA-Token, recovery, reset ------------------------------------

/// The X-MFA-Token for a password sign-in that owes a second factor.
pub fn start_mfa_token(cx: &mut Ctx, user: &User) -> Result<String, Error> {
    let now = cx.now();
    let token = uuid_v4()?;
    cx.write(|tx| codes::issue_token(tx, codes::MFA_LOGIN, &user.id, &token, MFA_TOKEN_TTL, now))?;
    cx.app.metrics.login("second_factor_owed");
    Ok(token)
}

/// Issues a full session after a completed second factor.
fn sign_in(
    cx: &mut Ctx,
    user: &User,
    amr: &[&str],
    method: &str,
    peer: &Peer,
) -> Result<Tokens, Error> {
    if !user.is_active() {
        return Err(Error::UserInactive);
    }
    let grant = crate::auth::grant_for(user, None, amr);
    crate::auth::issue_tokens(cx, None, &grant, method, peer)
}

/// mfa /api/user/mfa/auth: the X-MFA-Token and a TOTP code. The token
/// survives `MAX_ATTEMPTS` wrong codes, and is used up by the right one.
pub fn finish_mfa_token(
    cx: &mut Ctx,
    token: &str,
    code: &str,
    peer: &Peer,
) -> Result<Tokens, Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let found = codes::find_token(&cx.conn, codes::MFA_LOGIN, token, now)?
        .filter(|f| f.attempts < MAX_ATTEMPTS)
        .ok_or(Error::TokenInvalid)?;
    totp::check_code_format("code", code)?;
    let user = accounts::get_user(&cx.conn, &found.user_id)?.ok_or(Error::TokenInvalid)?;
    if !user.is_active() {
        return Err(Error::UserInactive);
    }
    if let Err(e) = check(cx, &user, Factor::Totp(code), Confirm::No, peer) {
        if e == Error::OtpInvalid {
            cx.write(|tx| codes::fail(tx, &found.hash))?;
        }
        return Err(e);
    }
    if !cx.write(|tx| codes::consume(tx, &found.hash, now))? {
        return Err(Error::TokenInvalid);
    }
    sign_in(cx, &user, &["pwd", "otp"], "password", peer)
}

/// mfa /api/user/mfa/recover: a name and a recovery code sign in; the code
/// stays good for disabling MFA until the returned time (unix seconds).
pub fn recover(cx: &mut Ctx, login: &str, code: &str, peer: &Peer) -> Result<(Tokens, i64), Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    totp::check_recovery_format("recovery_code", code)?;
    // No password here: the typed name's code lock, for every name alike.
    let user = accounts::find_user_by_login(&cx.conn, login)?;
    let lock = code_lock(user.as_ref(), login, peer);
    softlock::check(&cx.conn, &lock, &cx.app.config.limits, now)?;
    let usable = match &user {
        Some(u) => u.is_active() && state(cx, &u.id)? == State::On,
        None => false,
    };
    let user = match user {
        Some(u) if usable => u,
        // A disabled account answers as an unknown one.
        other => return Err(refuse(cx, other.as_ref(), login, "recovery_code", peer)),
    };
    let factor = Factor::Recovery(code, RecoveryUse::SignInKeep { keep: RECOVER_KEEP });
    check_under(cx, &user, factor, Confirm::No, &lock, peer)?;
    let tokens = sign_in(cx, &user, &["recovery"], "recovery_code", peer)?;
    Ok((tokens, now + RECOVER_KEEP))
}

/// mfa /api/user/mfa/reset: mails one code to the main address and one to
/// the recovery address of a user whose MFA is on. Says nothing about
/// whether the name is known.
pub fn request_reset(cx: &mut Ctx, login: &str, peer: &Peer) -> Result<(), Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let Some(user) = accounts::find_user_by_login(&cx.conn, login)? else {
        return Ok(());
    };
    let (Some(main), Some(recovery)) = (user.email.clone(), user.recovery_email.clone()) else {
        return Ok(());
    };
    if state(cx, &user.id)? != State::On {
        return Ok(());
    }
    // One pair of mails per quarter hour per account, however many ask.
    let last = codes::last_issued(&cx.conn, codes::MFA_RESET_MAIN, &user.id)?;
    if last.is_some_and(|t| now - t < RESET_INTERVAL) {
        return Ok(());
    }
    let master = cx.app.master.clone();
    let out = cx.app.mail.clone();
    cx.write(|tx| {
        let a = codes::issue_code(
            tx,
            &master,
            codes::MFA_RESET_MAIN,
            &user.id,
            RESET_CODE_LEN,
            RESET_TTL,
            now,
        )?;
        let b = codes::issue_code(
            tx,
            &master,
            codes::MFA_RESET_RECOVERY,
            &user.id,
            RESET_CODE_LEN,
            RESET_TTL,
            now,
        )?;
        mail::queue(
            tx,
            &out,
            &mail::Mail {
                kind: mail::Kind::MfaReset,
                to: &main,
                values: &[("code", &a), ("part", "1 of 2"), ("account", &user.id)],
            },
            now,
        )?;
        mail::queue(
            tx,
            &out,
            &mail::Mail {
                kind: mail::Kind::MfaReset,
                to: &recovery,
                values: &[("code", &b), ("part", "2 of 2"), ("account", &main)],
            },
            now,
        )?;
        Ok(())
    })
}

/// mfa PUT /api/user/mfa/reset/{user-id}: both emailed codes turn MFA off
/// and sign in. Together they survive `MAX_ATTEMPTS` wrong tries.
pub fn finish_reset(
    cx: &mut Ctx,
    user_id: &str,
    main_code: &str,
    recovery_code: &str,
    peer: &Peer,
) -> Result<Tokens, Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let Some(user) = accounts::get_user(&cx.conn, user_id)? else {
        return Err(refuse(cx, None, user_id, "mfa_reset", peer));
    };
    let lock = code_lock(Some(&user), user_id, peer);
    softlock::check(&cx.conn, &lock, &cx.app.config.limits, now)?;
    if !user.is_active() {
        // A disabled account answers as wrong codes do.
        return Err(refuse(cx, Some(&user), user_id, "mfa_reset", peer));
    }
    let master = cx.app.master.clone();
    let lim = cx.app.config.limits.clone();
    // One transaction from the lock check to the count: concurrent tries
    // are compared one after another, each seeing the attempts and the
    // failures of the ones before (issue 8 review).
    let done = cx.write(|tx| {
        softlock::check(tx, &lock, &lim, now)?;
        let a = codes::find_code(tx, &master, codes::MFA_RESET_MAIN, &user.id, main_code, now)?;
        let b = codes::find_code(
            tx,
            &master,
            codes::MFA_RESET_RECOVERY,
            &user.id,
            recovery_code,
            now,
        )?;
        let right = match (&a, &b) {
            (Some((a, a_ok)), Some((b, b_ok))) => {
                let right =
                    *a_ok && *b_ok && a.attempts < MAX_ATTEMPTS && b.attempts < MAX_ATTEMPTS;
                if !right {
                    codes::fail(tx, &a.hash)?;
                    codes::fail(tx, &b.hash)?;
                }
                right && codes::consume(tx, &a.hash, now)? && codes::consume(tx, &b.hash, now)?
            }
            _ => false,
        };
        if !right {
            softlock::record_failure(tx, &lock, &lim, now)?;
            audit::record(
                tx,
                &failed(Some(&user.id), "mfa_reset", "otp_invalid", peer),
                now,
            )?;
            return Ok(false);
        }
        totp::remove(tx, &user.id, now)?;
        softlock::clear(tx, &lock, None, now)?;
        Ok(true)
    })?;
    if !done {
        cx.app.metrics.login("otp_invalid");
        return Err(Error::OtpInvalid);
    }
    cx.app.log.line(format!(
        "security: two-factor authentication of user {} turned off by the emailed reset",
        user.id
    ));
    sign_in(cx, &user, &["email"], "mfa_reset", peer)
}
