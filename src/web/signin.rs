//! The flows behind the sign-in pages' forms. Each goes through the core
//! the APIs use: `auth::check_password_as` (rate limit, soft lock, the same
//! answer for an unknown name and a wrong password), `factors::required`
//! and `factors::check` (the second factor's own lock), and
//! `auth::record_sign_in` for the activity row (method "web").
//!
//! A user whose TOTP is on gets no session after the password: only a
//! pending token (`codes::WEB_SECOND_FACTOR`, single use, `PENDING_TTL`,
//! `MAX_ATTEMPTS` wrong codes), which the second-factor form needs with
//! the code. The session starts after the factor, with a new id, in one
//! transaction with the token's use and the activity row: a token is
//! spent only by the sign-in it finishes. The token keeps how the sign-in
//! began (`FirstStep`: the password form, a provider at the sign-in
//! page, an emailed link or code), for the activity row's method and the
//! session's amr. Flows that use something up as they sign in (an emailed
//! link or code) start the session in their own transaction through
//! `finish_in` / `owe_in`.

use crate::accounts::{self, User};
use crate::app::Ctx;
use crate::audit::{self, Entry};
use crate::auth::{self, Peer};
use crate::codes;
use crate::error::Error;
use crate::factors::{self, MAX_ATTEMPTS};
use crate::limits::Family;
use crate::sessions::Grant;
use crate::totp::{Confirm, RecoveryUse};
use rusqlite::Transaction;

use super::session;

/// How long a half-done sign-in waits for its second factor, in seconds.
pub const PENDING_TTL: i64 = 300;

/// The activity log's method for the pages.
pub const METHOD: &str = "web";

/// What a first step (a password, a provider, an emailed link or code)
/// leads to.
#[derive(Debug)]
pub enum Step {
    /// Signed in: the new session's cookie value.
    Done(String),
    /// A second factor is owed: the pending token (for its cookie).
    SecondFactor(String),
}

/// The password form. `old` is the session cookie the browser already
/// holds, if any: it ends when the new session starts.
pub fn password(
    cx: &mut Ctx,
    login: &str,
    password: &str,
    old: Option<&str>,
    peer: &Peer,
) -> Result<Step, Error> {
    let user = auth::check_password_as(cx, login, password, peer, METHOD)?;
    after_first_step(cx, &user, &FirstStep::password(), old, peer)
}

/// True while `pending` names a half-done sign-in that may still be
/// finished (the second-factor page shows its form only then).
pub fn pending_live(cx: &Ctx, pending: &str) -> Result<bool, Error> {
    Ok(
        codes::find_token(&cx.conn, codes::WEB_SECOND_FACTOR, pending, cx.now())?
            .is_some_and(|f| f.attempts < MAX_ATTEMPTS),
    )
}

/// The second-factor form: the pending token and a TOTP or recovery
/// code. A wrong code is OtpInvalid (and counts, against the token and the
/// account's second-factor lock); a dead token is TokenInvalid.
pub fn second_factor(
    cx: &mut Ctx,
    pending: &str,
    code: &str,
    old: Option<&str>,
    peer: &Peer,
) -> Result<String, Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let found = codes::find_token(&cx.conn, codes::WEB_SECOND_FACTOR, pending, now)?
        .filter(|f| f.attempts < MAX_ATTEMPTS)
        .ok_or(Error::TokenInvalid)?;
    let code: String = code.split_whitespace().collect();
    let factor = factors::parse_factor("code", &code, RecoveryUse::SignIn)?;
    let user = accounts::get_user(&cx.conn, &found.user_id)?.ok_or(Error::TokenInvalid)?;
    if !user.is_active() {
        return Err(Error::UserInactive);
    }
    let amr = match factors::check(cx, &user, factor, Confirm::No, peer) {
        Ok(amr) => amr,
        Err(e) => {
            // A wrong code counts against the pending sign-in too (its own
            // write: the factor's lock and audit row are already written).
            if e == Error::OtpInvalid {
                cx.write(|tx| codes::fail(tx, &found.hash))?;
            }
            return Err(e);
        }
    };
    let first = FirstStep::of(&found);
    let mut amr_all: Vec<&str> = first.amr.iter().map(String::as_str).collect();
    amr_all.push(amr);
    let grant = auth::grant_for(&user, None, &amr_all);
    let id = start_session(cx, &grant, &first.method, old, peer, |tx| {
        // Taken once, in the transaction that starts the session: a second
        // use of the same token (a replayed form, a double click) finds it
        // used, or past its limits, and starts nothing.
        let live = codes::find_token(tx, codes::WEB_SECOND_FACTOR, pending, now)?
            .is_some_and(|f| f.hash == found.hash && f.attempts < MAX_ATTEMPTS);
        if !live || !codes::consume(tx, &found.hash, now)? {
            return Err(Error::TokenInvalid);
        }
        Ok(())
    })?;
    Ok(id)
}

/// Step-up: a signed-in session whose sign-in had no second factor (a
/// forward-auth `two_factor` rule asked for one) proves it with a TOTP or
/// recovery code. The answer is a new session (new id, the old one ended
/// in the same transaction, which also checks it is still live) whose amr
/// adds the factor, logged as a sign-in with method "web". A wrong code is
/// OtpInvalid, counted against the account's second-factor lock.
pub fn step_up(
    cx: &mut Ctx,
    s: &session::BrowserSession,
    cookie_value: &str,
    code: &str,
    peer: &Peer,
) -> Result<String, Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let user = accounts::get_user(&cx.conn, &s.user_id)?.ok_or(Error::TokenInvalid)?;
    if !user.is_active() {
        return Err(Error::UserInactive);
    }
    let code: String = code.split_whitespace().collect();
    let factor = factors::parse_factor("code", &code, RecoveryUse::SignIn)?;
    let amr = factors::check(cx, &user, factor, Confirm::No, peer)?;
    let mut all: Vec<&str> = s
        .amr
        .iter()
        .map(String::as_str)
        .filter(|a| *a != amr)
        .collect();
    all.push(amr);
    let grant = auth::grant_for(&user, None, &all);
    start_session(cx, &grant, METHOD, Some(cookie_value), peer, |tx| {
        // Signed out (or ended by an admin) meanwhile: nothing to step up.
        match session::current(tx, cookie_value, now)? {
            Some(live) if live.user_id == user.id => Ok(()),
            _ => Err(Error::TokenInvalid),
        }
    })
}

/// True when a session's sign-in had a second factor (RFC 8176 amr).
pub fn has_second_factor(amr: &[String]) -> bool {
    amr.iter()
        .any(|a| matches!(a.as_str(), "otp" | "recovery" | "mfa"))
}

/// How a half-done sign-in began, kept with its pending token: the
/// activity log's method and the amr of its first step. A token without
/// it is the password form's ("web", ["pwd"]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FirstStep {
    pub method: String,
    pub amr: Vec<String>,
}

impl FirstStep {
    /// A first step logged as `method` that proved `amr`.
    pub fn new(method: &str, amr: &[&str]) -> FirstStep {
        FirstStep {
            method: method.into(),
            amr: amr.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn password() -> FirstStep {
        FirstStep::new(METHOD, &["pwd"])
    }

    fn of(found: &codes::Found) -> FirstStep {
        found
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_else(FirstStep::password)
    }
}

/// What a first step that proved who the user is (a password, a provider's
/// sign-in) leads to: a session, or when their TOTP is on, a pending token
/// for the second-factor form that remembers `first`. `old` is the session
/// cookie the browser already holds, ended when the new session starts.
pub(crate) fn after_first_step(
    cx: &mut Ctx,
    user: &User,
    first: &FirstStep,
    old: Option<&str>,
    peer: &Peer,
) -> Result<Step, Error> {
    if factors::required(cx, user)? {
        let now = cx.now();
        let token = cx.write(|tx| owe_in(tx, user, first, now))?;
        cx.app.metrics.login("second_factor_owed");
        return Ok(Step::SecondFactor(token));
    }
    let amr: Vec<&str> = first.amr.iter().map(String::as_str).collect();
    let grant = auth::grant_for(user, None, &amr);
    start_session(cx, &grant, &first.method, old, peer, |_| Ok(())).map(Step::Done)
}

/// A complete sign-in: `also` (what else the sign-in uses up), the
/// activity row and a session with a new id, in one transaction; the
/// browser's old session (if any) ends in it.
fn start_session(
    cx: &mut Ctx,
    grant: &Grant,
    method: &str,
    old: Option<&str>,
    peer: &Peer,
    also: impl FnOnce(&rusqlite::Transaction) -> Result<(), Error>,
) -> Result<String, Error> {
    let now = cx.now();
    let times = Lifetimes::of(cx);
    let id = cx.write(|tx| {
        also(tx)?;
        finish_in(tx, &times, grant, method, old, peer, now)
    })?;
    cx.app.metrics.login("success");
    Ok(id)
}

/// A session's lifetimes, read from the config before a transaction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetimes {
    idle: i64,
    max: i64,
}

impl Lifetimes {
    pub(crate) fn of(cx: &Ctx) -> Lifetimes {
        Lifetimes {
            idle: cx.app.config.web_session_idle_secs,
            max: cx.app.config.web_session_max_secs,
        }
    }
}

/// A complete sign-in's writes in the caller's transaction: the browser's
/// old session (if any) ends, the activity row, a session with a new id,
/// whose cookie value is returned. The caller counts the sign-in.
pub(crate) fn finish_in(
    tx: &Transaction,
    times: &Lifetimes,
    grant: &Grant,
    method: &str,
    old: Option<&str>,
    peer: &Peer,
    now: i64,
) -> Result<String, Error> {
    if let Some(old) = old {
        session::end(tx, old, now)?;
    }
    auth::record_sign_in(tx, grant, method, peer, now)?;
    session::start(tx, &grant.user_id, &grant.amr, times.idle, times.max, now)
}

/// A half-done sign-in whose first step was `first`, in the caller's
/// transaction: returns the pending token for its cookie.
pub(crate) fn owe_in(
    tx: &Transaction,
    user: &User,
    first: &FirstStep,
    now: i64,
) -> Result<String, Error> {
    let data = serde_json::to_string(first)?;
    codes::issue_link(
        tx,
        codes::WEB_SECOND_FACTOR,
        &user.id,
        Some(&user.id),
        Some(&data),
        PENDING_TTL,
        now,
    )
}

/// Signs a browser out: ends its session and logs a LOGOUT row. A cookie
/// naming no live session is no error (nothing to end).
pub fn sign_out(cx: &mut Ctx, cookie_value: &str, peer: &Peer) -> Result<(), Error> {
    let now = cx.now();
    let live = session::current(&cx.conn, cookie_value, now)?;
    cx.write(|tx| {
        session::end(tx, cookie_value, now)?;
        let Some(s) = &live else { return Ok(()) };
        audit::record(
            tx,
            &Entry {
                actor: Some(&s.user_id),
                login_type: "LOGOUT",
                outcome: "success",
                method: METHOD,
                amr: &s.amr,
                ip: &peer.ip,
                user_agent: peer.user_agent.as_deref(),
                ..Entry::default()
            },
            now,
        )
    })
}
