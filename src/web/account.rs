//! The account page's flows: what a signed-in person changes about their
//! own account. Core: no HTTP types; each flow takes the browser session
//! `session::current` found and the form's fields as text, and goes
//! through the same core as the APIs.
//!
//! * Password change: `auth::change_password_and`, the flow of native
//!   PATCH /auth/change-password (the sign-in rate limit, the account's
//!   soft lock on the current password, the password policy, a new hash,
//!   the account's owed codes dropped, every emailed link and code and
//!   every half-done sign-in used up, as a reset does; refused when the
//!   stored password or this session changed meanwhile). Every token
//!   family and every other browser session of the user ends in its
//!   transaction, as at the API; this browser's session goes on under a
//!   new id (a new credential is a new privilege level: OWASP's session
//!   management cheat sheet renews the id then), with its methods and its
//!   sign-in time.
//! * Two-factor on asks for the current password first (an account
//!   without one: a sign-in in the last 10 minutes), as new recovery codes
//!   do; then `factors::enroll` draws a pending secret; the code
//!   that confirms it is checked like any second factor (`factors::
//!   check_in`: the factor's soft lock, a step used once, a FAILED row for
//!   a wrong code), and in the same transaction a fresh set of recovery
//!   codes is drawn, shown once.
//! * Two-factor off asks for a current code of the factor being removed
//!   (a TOTP code, or a recovery code for a lost phone), as the mfa
//!   dialect's disable does: it proves the person holds the factor, which
//!   a stolen session or a phished password does not.
//! * New recovery codes ask for the current password (re-authentication
//!   before a sensitive change); the old codes all stop working.
//! * Sign out other sessions ends every other browser session of the user
//!   and revokes every token family (apps signed in through the APIs or
//!   the OpenID provider end at their next refresh; their access tokens
//!   fail `auth::authenticate` at once), uses up the sign-ins under way
//!   (one owing its second factor, an app's unused code), and logs one
//!   LOGOUT row; this browser stays signed in, its id and sign-in time
//!   unchanged.
//! * Apps: the consents the person gave apps of the OpenID provider
//!   (`oidc::consent`); withdrawing one also revokes that app's provider
//!   sessions of the person, and its next sign-in asks again.

use rusqlite::Transaction;

use crate::accounts::{self, User};
use crate::activity::{self, Recent};
use crate::app::Ctx;
use crate::audit::{self, Entry};
use crate::auth::{self, Peer};
use crate::clock::iso8601;
use crate::codes;
use crate::crypto::MasterKey;
use crate::error::Error;
use crate::factors::{self, Factor};
use crate::sessions;
use crate::softlock;
use crate::totp::{self, Confirm, Enrollment, RecoveryUse, State};

use super::session::{self, BrowserSession};

/// How many sign-ins the page lists, newest first.
pub const RECENT: i64 = 10;

/// The activity log's method for "sign out other sessions".
pub const SIGN_OUT_OTHERS: &str = "signout_others";

/// What the account page shows.
#[derive(Debug, Clone)]
pub struct Overview {
    pub user: User,
    /// True when the account has a password (one signed up through a
    /// provider may have none: it cannot change what it does not have).
    pub has_password: bool,
    /// True when two-factor authentication is on (a pending enrollment is
    /// not: it protects nothing yet).
    pub totp_on: bool,
    /// Unused recovery codes (0 when two-factor authentication is off).
    pub recovery_left: i64,
    /// The newest rows of the user's login activity.
    pub recent: Vec<SignIn>,
    /// Live browser sessions besides this one.
    pub other_browsers: i64,
    /// Live token families: apps and API clients signed in as the user.
    pub app_sessions: usize,
    /// The apps the user has consented to, last changed first.
    pub apps: Vec<crate::oidc::consent::Consent>,
}

/// One row of the user's login activity, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct SignIn {
    /// ISO 8601, UTC.
    pub time: String,
    /// "Signed in", "Signed out", "Refused: wrong password", …
    pub event: String,
    /// True for a refusal.
    pub failed: bool,
    /// How: the method and factors ("sign-in page, password + authenticator app").
    pub method: String,
    pub ip: String,
    pub user_agent: String,
}

/// The account of a live session.
fn user_of(cx: &Ctx, s: &BrowserSession) -> Result<User, Error> {
    accounts::get_user(&cx.conn, &s.user_id)?
        .ok_or_else(|| Error::Internal("session of a missing user".into()))
}

/// Everything the account page shows for session `s`.
pub fn overview(cx: &Ctx, s: &BrowserSession) -> Result<Overview, Error> {
    let now = cx.now();
    let user = user_of(cx, s)?;
    let totp_on = factors::state(cx, &user.id)? == State::On;
    let recovery_left = if totp_on {
        totp::recovery_left(&cx.conn, &user.id)?
    } else {
        0
    };
    let recent = activity::recent(
        &cx.conn,
        &Recent {
            last: RECENT,
            actor: Some(&user.id),
            outcome: None,
        },
    )?
    .into_iter()
    .map(|a| {
        let payload: serde_json::Value = a
            .token_payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default();
        let amr: Vec<&str> = payload["amr"]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        let method = payload["method"].as_str().unwrap_or("");
        SignIn {
            time: iso8601(a.login_time),
            event: event_words(&a.login_type, &a.outcome, method),
            failed: a.login_type == "FAILED",
            method: method_words(method, &amr),
            ip: a.ip_address.unwrap_or_default(),
            user_agent: a.device_info.unwrap_or_default(),
        }
    })
    .collect();
    Ok(Overview {
        has_password: user.password_hash.is_some(),
        totp_on,
        recovery_left,
        recent,
        other_browsers: session::count_others(&cx.conn, &user.id, &s.id_hash, now)?,
        app_sessions: sessions::live_sessions(&cx.conn, &user.id, now)?.len(),
        apps: crate::oidc::consent::list(&cx.conn, &user.id)?,
        user,
    })
}

/// What happened, for a person.
fn event_words(login_type: &str, outcome: &str, method: &str) -> String {
    match (login_type, outcome) {
        ("ACCESS" | "RELOGIN", _) => "Signed in".into(),
        ("LOGOUT", _) if method == SIGN_OUT_OTHERS => "Signed out other sessions".into(),
        ("LOGOUT", _) => "Signed out".into(),
        ("FAILED", "invalid_credentials") => "Refused: wrong password".into(),
        ("FAILED", "otp_invalid") => "Refused: wrong code".into(),
        ("FAILED", "user_inactive") => "Refused: account disabled".into(),
        ("FAILED", other) => format!("Refused ({})", other.replace('_', " ")),
        (other, _) => other.to_ascii_lowercase(),
    }
}

/// How, for a person: the method, then the factors.
fn method_words(method: &str, amr: &[&str]) -> String {
    let how = match method {
        "web" => "sign-in page",
        "password" => "password (app)",
        "basic" => "password (HTTP Basic)",
        "oidc" => "app (OpenID Connect)",
        "magic_link" => "emailed link",
        "email_otp" => "emailed code",
        "totp" => "authenticator app",
        "recovery_code" => "recovery code",
        "logout" => "app",
        SIGN_OUT_OTHERS => "account page",
        "" => "",
        other => other,
    };
    let factors: Vec<&str> = amr
        .iter()
        .map(|a| match *a {
            "pwd" => "password",
            "otp" => "authenticator app",
            "recovery" => "recovery code",
            "email" => "email",
            other => other,
        })
        .collect();
    match (how, factors.is_empty()) {
        (h, true) => h.to_string(),
        ("", false) => factors.join(" + "),
        (h, false) => format!("{h}, {}", factors.join(" + ")),
    }
}

/// Changes the password (`current` must be right; `new` must pass the
/// policy and differ). Every token family and every browser session of
/// the user ends, and this browser's goes on under a new id, returned for
/// its cookie. Errors: IncorrectPassword (also when the stored password
/// changed while this one was checked and hashed), RateLimited,
/// Validation (field `password`: the new one), TokenRevoked (this
/// browser's session ended meanwhile: nothing is changed, and the browser
/// signs in again).
pub fn change_password(
    cx: &mut Ctx,
    s: &BrowserSession,
    current: &str,
    new: &str,
    peer: &Peer,
) -> Result<String, Error> {
    let user = user_of(cx, s)?;
    let (idle, max) = (
        cx.app.config.web_session_idle_secs,
        cx.app.config.web_session_max_secs,
    );
    auth::change_password_and(cx, &user, current, new, peer, |tx, now| {
        // Ended while the password was checked and hashed ("sign out other
        // sessions" in another browser, the admin): renewing it would bring
        // it back, so the whole change is refused.
        if !session::exists(tx, &s.id_hash)? {
            return Err(Error::TokenRevoked);
        }
        sessions::revoke_user_families(tx, &user.id, None, "password changed", now)?;
        // The same sign-in, carried on: its methods and its time (an app
        // asking for max_age must not see a sign-in that did not happen).
        session::renew(tx, s, idle, max, now)
    })
}

/// How recent the sign-in of an account without a password must be to
/// turn two-factor authentication on (it has no password to ask for).
pub const RECENT_SIGN_IN_SECS: i64 = 600;

/// Starts (or restarts) turning two-factor authentication on: a pending
/// secret, to be confirmed with a code within `totp::PENDING_TTL`. Asks
/// for the current password first (`reauthenticate`). Errors: Conflict
/// (already on), Validation (`password`: none given), IncorrectPassword,
/// RateLimited, Forbidden (no password, and a sign-in too old).
pub fn start_totp(
    cx: &mut Ctx,
    s: &BrowserSession,
    password: &str,
    peer: &Peer,
) -> Result<Enrollment, Error> {
    let user = user_of(cx, s)?;
    // Before the password check: "already on" costs no attempt.
    if factors::state(cx, &user.id)? == State::On {
        return Err(Error::Conflict(
            "Two-factor authentication is already on".into(),
        ));
    }
    reauthenticate(cx, s, &user, password, peer)?;
    factors::enroll(cx, &user, false)
}

/// Proves the person at the browser is the account's owner before a
/// factor is added (OWASP's MFA cheat sheet: changing factors asks for
/// re-authentication, or a session alone, stolen or borrowed, could put
/// the thief's authenticator on the account and lock the owner out).
///
/// With a password: the current password, through
/// `auth::check_current_password` (the sign-in rate limit, the account's
/// soft lock on the password from this source), as for new recovery
/// codes. Without one (signed up through a provider, or emailed links
/// only) there is nothing to type here, so the session's own sign-in must
/// be recent: at most `RECENT_SIGN_IN_SECS` old. Signing in again is the
/// re-authentication, at the provider or the emailed link.
fn reauthenticate(
    cx: &mut Ctx,
    s: &BrowserSession,
    user: &User,
    password: &str,
    peer: &Peer,
) -> Result<(), Error> {
    if user.password_hash.is_none() {
        if cx.now() - s.auth_time > RECENT_SIGN_IN_SECS {
            return Err(Error::Forbidden(format!(
                "For your safety, setting up two-factor authentication needs a sign-in \
                 in the last {} minutes. Sign out, sign in again, then set it up.",
                RECENT_SIGN_IN_SECS / 60
            )));
        }
        return Ok(());
    }
    if password.is_empty() {
        return Err(Error::invalid(
            "password",
            "required",
            "Enter your current password.",
        ));
    }
    if password.chars().count() > crate::password::MAX_LEN {
        return Err(Error::IncorrectPassword);
    }
    auth::check_current_password(cx, user, password, peer)
}

/// The pending enrollment to show again (after a wrong code), if any.
pub fn pending_totp(cx: &Ctx, s: &BrowserSession) -> Result<Option<Enrollment>, Error> {
    let user = user_of(cx, s)?;
    totp::pending_enrollment(
        &cx.conn,
        &cx.app.master,
        &user.id,
        &totp::issuer_label(&cx.app.issuer),
        user.display_name(),
        cx.now(),
    )
}

/// Confirms the pending enrollment with a code from the app, and draws the
/// recovery codes, in one transaction. Returns the codes (shown once).
/// Errors: Validation (`code`: not six digits, or nothing pending any
/// more), OtpInvalid, RateLimited (the factor's soft lock), Conflict
/// (already on).
pub fn confirm_totp(
    cx: &mut Ctx,
    s: &BrowserSession,
    code: &str,
    peer: &Peer,
) -> Result<Vec<String>, Error> {
    let user = user_of(cx, s)?;
    let code: String = code.split_whitespace().collect();
    totp::check_code_format("code", &code)?;
    match factors::state(cx, &user.id)? {
        State::On => {
            return Err(Error::Conflict(
                "Two-factor authentication is already on".into(),
            ))
        }
        State::Off => {
            return Err(Error::invalid(
                "code",
                "expired",
                "This set-up has expired. Start again.",
            ))
        }
        State::Pending => {}
    }
    let factor = Factor::Totp(&code);
    let (outcome, codes) = checked_write(
        cx,
        &user,
        factor,
        Confirm::Plain,
        peer,
        |tx, master, now| totp::regenerate_recovery(tx, master, &user.id, now),
    )?;
    factors::checked(cx, &user, factor, outcome)?;
    cx.app.log.line(format!(
        "security: two-factor authentication of user {} turned on (account page)",
        user.id
    ));
    Ok(codes.unwrap_or_default())
}

/// A second-factor check of `user` and, when the code is right, `then`,
/// in one transaction. A refusal is committed with its count and FAILED
/// row and returned as the first value (for `factors::checked`); `then`'s
/// result is there only after a right code.
fn checked_write<T>(
    cx: &mut Ctx,
    user: &User,
    factor: Factor,
    confirm: Confirm,
    peer: &Peer,
    then: impl FnOnce(&Transaction, &MasterKey, i64) -> Result<T, Error>,
) -> Result<(Result<(), Error>, Option<T>), Error> {
    let now = cx.now();
    let lim = cx.app.config.limits.clone();
    let master = cx.app.master.clone();
    let lock = softlock::Lock::factor(&user.id, &peer.ip);
    cx.write(|tx| {
        let outcome =
            factors::check_in(tx, &master, &lim, user, factor, confirm, &lock, peer, now)?;
        let done = match outcome {
            Ok(()) => Some(then(tx, &master, now)?),
            Err(_) => None,
        };
        Ok((outcome, done))
    })
}

/// Turns two-factor authentication off, with a current TOTP code or a
/// recovery code, in one transaction with the check. Errors: Validation
/// (`code`), OtpInvalid, RateLimited, Conflict (not on).
pub fn disable_totp(
    cx: &mut Ctx,
    s: &BrowserSession,
    code: &str,
    peer: &Peer,
) -> Result<(), Error> {
    let user = user_of(cx, s)?;
    let code: String = code.split_whitespace().collect();
    let factor = factors::parse_factor("code", &code, RecoveryUse::Disable)?;
    if factors::state(cx, &user.id)? != State::On {
        return Err(Error::Conflict(
            "Two-factor authentication is not on".into(),
        ));
    }
    let (outcome, _) = checked_write(cx, &user, factor, Confirm::No, peer, |tx, _, now| {
        totp::remove(tx, &user.id, now)
    })?;
    factors::checked(cx, &user, factor, outcome)?;
    cx.app.log.line(format!(
        "security: two-factor authentication of user {} turned off (account page)",
        user.id
    ));
    Ok(())
}

/// Replaces the recovery codes, after the current password. Returns the
/// new codes (shown once). Errors: IncorrectPassword, RateLimited,
/// Conflict (two-factor authentication is off).
pub fn regenerate_recovery(
    cx: &mut Ctx,
    s: &BrowserSession,
    password: &str,
    peer: &Peer,
) -> Result<Vec<String>, Error> {
    let user = user_of(cx, s)?;
    if factors::state(cx, &user.id)? != State::On {
        return Err(Error::Conflict(
            "Two-factor authentication is not on".into(),
        ));
    }
    auth::check_current_password(cx, &user, password, peer)?;
    let now = cx.now();
    let master = cx.app.master.clone();
    let codes = cx.write(|tx| totp::regenerate_recovery(tx, &master, &user.id, now))?;
    cx.app.log.line(format!(
        "security: recovery codes of user {} replaced (account page)",
        user.id
    ));
    Ok(codes)
}

/// Ends every other browser session of the user, revokes every token
/// family and uses up the sign-ins under way (a pending second factor,
/// an unused auth code), with one LOGOUT row, in one transaction. Returns
/// how many browser sessions and token families ended.
pub fn sign_out_others(
    cx: &mut Ctx,
    s: &BrowserSession,
    peer: &Peer,
) -> Result<(usize, usize), Error> {
    let now = cx.now();
    let user_id = s.user_id.clone();
    cx.write(|tx| {
        let browsers = session::end_others(tx, &user_id, &s.id_hash)?;
        // Sign-ins under way elsewhere end too: one owing its second
        // factor (pages or mfa dialect), an app's unused code.
        codes::void_pending_second_factor(tx, &user_id, now)?;
        sessions::drop_codes(tx, &user_id)?;
        let families = sessions::revoke_user_tokens(
            tx,
            &user_id,
            None,
            "signed out from the account page",
            now,
        )?;
        audit::record(
            tx,
            &Entry {
                actor: Some(&user_id),
                login_type: "LOGOUT",
                outcome: "success",
                method: SIGN_OUT_OTHERS,
                amr: &s.amr,
                ip: &peer.ip,
                user_agent: peer.user_agent.as_deref(),
                ..Entry::default()
            },
            now,
        )?;
        Ok((browsers, families))
    })
}

/// Withdraws the user's consent to app `client_id` (and revokes what it
/// granted); false when there was none.
pub fn withdraw_app(cx: &mut Ctx, s: &BrowserSession, client_id: &str) -> Result<bool, Error> {
    let now = cx.now();
    cx.write(|tx| crate::oidc::consent::withdraw(tx, &s.user_id, client_id, now))
}
