//! The flows behind the sign-in pages' forms. Each goes through the core
//! the APIs use: `auth::check_password_as` (rate limit, soft lock, the same
//! answer for an unknown name and a wrong password), `factors::required`
//! and `factors::check` (the second factor's own lock), and
//! `auth::record_sign_in` for the activity row (method "web").
//!
//! A user whose TOTP is on gets no session after the password: only a
//! pending token (`codes::WEB_SECOND_FACTOR`, single use, `PENDING_TTL`,
//! `MAX_ATTEMPTS` wrong codes), which the second-factor form needs with
//! the code. The session starts after the factor, with a new id.

use crate::accounts::{self, User};
use crate::app::Ctx;
use crate::audit::{self, Entry};
use crate::auth::{self, Peer};
use crate::codes;
use crate::crypto::random_token;
use crate::error::Error;
use crate::factors::{self, MAX_ATTEMPTS};
use crate::limits::Family;
use crate::totp::{Confirm, RecoveryUse};
use rusqlite::Transaction;

use super::session;

/// How long a half-done sign-in waits for its second factor, in seconds.
pub const PENDING_TTL: i64 = 300;

/// The activity log's method for the pages.
pub const METHOD: &str = "web";

/// What a right password leads to.
#[derive(Debug)]
pub enum PasswordStep {
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
) -> Result<PasswordStep, Error> {
    let user = auth::check_password_as(cx, login, password, peer, METHOD)?;
    if factors::required(cx, &user)? {
        let now = cx.now();
        let token = random_token()?;
        cx.write(|tx| {
            codes::issue_token(
                tx,
                codes::WEB_SECOND_FACTOR,
                &user.id,
                &token,
                PENDING_TTL,
                now,
            )
        })?;
        cx.app.metrics.login("second_factor_owed");
        return Ok(PasswordStep::SecondFactor(token));
    }
    finish(cx, &user, &["pwd"], old, peer).map(PasswordStep::Done)
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
            if e == Error::OtpInvalid {
                cx.write(|tx| codes::fail(tx, &found.hash))?;
            }
            return Err(e);
        }
    };
    if !cx.write(|tx| codes::consume(tx, &found.hash, now))? {
        return Err(Error::TokenInvalid);
    }
    let first = found.data.as_deref().unwrap_or("pwd");
    finish(cx, &user, &[first, amr], old, peer)
}

/// A complete sign-in: the activity row and a session with a new id, in
/// one transaction; the browser's old session (if any) ends in it.
pub(crate) fn finish(
    cx: &mut Ctx,
    user: &User,
    amr: &[&str],
    old: Option<&str>,
    peer: &Peer,
) -> Result<String, Error> {
    let now = cx.now();
    let times = Lifetimes::of(cx);
    let id = cx.write(|tx| finish_in(tx, &times, user, amr, old, peer, now))?;
    cx.app.metrics.login("success");
    Ok(id)
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

/// `finish`'s writes, in the caller's transaction (a flow that uses up an
/// emailed link or code starts the session in the same one); returns the
/// new session's cookie value. The caller counts the sign-in.
pub(crate) fn finish_in(
    tx: &Transaction,
    times: &Lifetimes,
    user: &User,
    amr: &[&str],
    old: Option<&str>,
    peer: &Peer,
    now: i64,
) -> Result<String, Error> {
    let grant = auth::grant_for(user, None, amr);
    if let Some(old) = old {
        session::end(tx, old, now)?;
    }
    auth::record_sign_in(tx, &grant, METHOD, peer, now)?;
    session::start(tx, &user.id, &grant.amr, times.idle, times.max, now)
}

/// A half-done sign-in whose first factor was `first` (an amr other than
/// the password's, kept with the pending token), in the caller's
/// transaction: returns the pending token for its cookie.
pub(crate) fn owe_in(
    tx: &Transaction,
    user: &User,
    first: &str,
    now: i64,
) -> Result<String, Error> {
    let token = random_token()?;
    codes::issue_token_with(
        tx,
        codes::WEB_SECOND_FACTOR,
        &user.id,
        &token,
        Some(first),
        PENDING_TTL,
        now,
    )?;
    Ok(token)
}
