//! The emailed flows behind the sign-in pages: a sign-in link, a sign-in
//! code, forgot/reset password, and sign-up. Each is a thin layer over the
//! core the APIs use (emailed.rs, signup.rs): the same per-IP bucket,
//! per-address quota, stand-in for an address nobody has, code lock and
//! single use. What is the pages' own:
//!
//! * **Offered only with a mail command.** With no `[mail] command` (the
//!   log mailer of local development) none of these flows is offered
//!   (`mail_on`): a person at a browser cannot read the server's stderr.
//! * **A session in the redeeming transaction.** Using up a link or code
//!   and starting the browser's session (or, for a user with TOTP, the
//!   pending sign-in that owes the second factor) are one transaction
//!   (`signin::finish_in` / `signin::owe_in`), logged with method "web"
//!   and amr "email".
//! * **Sign-up in two steps.** `/signup` asks for an address and mails a
//!   sign-up link (signup.rs's create-token: an address that has an
//!   account gets an "account exists" mail instead, so the page never says
//!   which); the link's page asks for a name and a password and creates the
//!   account (create-user), signed in. The address is proved before any
//!   account has it: nobody can squat someone else's address.

use rusqlite::Transaction;

use crate::accounts::User;
use crate::app::Ctx;
use crate::auth::Peer;
use crate::config::{Config, Signup};
use crate::emailed::{self, ForPages};
use crate::error::Error;
use crate::signup::{self, Inviter, SignupForm};
use crate::totp::{self, State};

use super::signin::{self, FirstStep, Lifetimes, Step};

/// The first factor an emailed link or code counts as.
const AMR: &str = "email";

/// True when the emailed flows are offered: a mail command is configured.
pub fn mail_on(config: &Config) -> bool {
    !config.mail_command.is_empty()
}

/// True when anyone may ask for a sign-up link at `/signup`: sign-up is
/// open and mail goes out.
pub fn signup_open(config: &Config) -> bool {
    config.signup == Signup::Open && mail_on(config)
}

/// True when a sign-up link's page takes new accounts: unless sign-up is
/// off (with `invite`, the links an admin or an API key had mailed).
pub fn signup_links_taken(config: &Config) -> bool {
    config.signup != Signup::Off
}

/// Mails a sign-in link for `email` (nothing when no account has it);
/// `return_to` is kept with the token, for after the sign-in.
pub fn send_link(cx: &mut Ctx, email: &str, return_to: &str, peer: &Peer) -> Result<(), Error> {
    emailed::send_for_pages(cx, ForPages::SignInLink, email, Some(return_to), peer)
}

/// Ok while the sign-in link `token` is live.
pub fn link_live(cx: &Ctx, token: &str) -> Result<(), Error> {
    emailed::check_page_link(cx, ForPages::SignInLink, token)
}

/// Uses up the sign-in link `token`: signed in, or the second factor
/// owed. Returns the step and the page the link was asked from.
pub fn use_link(
    cx: &mut Ctx,
    token: &str,
    old: Option<&str>,
    peer: &Peer,
) -> Result<(Step, Option<String>), Error> {
    let now = cx.now();
    let times = Lifetimes::of(cx);
    let (step, return_to) = emailed::redeem_page_link(cx, token, peer, |tx, user, data| {
        let step = step_in(tx, &times, user, old, peer, now)?;
        Ok((step, data.map(str::to_string)))
    })?;
    count(cx, &step);
    Ok((step, return_to))
}

/// Mails a 6-digit sign-in code for `email` (nothing when no account has
/// it).
pub fn send_code(cx: &mut Ctx, email: &str, peer: &Peer) -> Result<(), Error> {
    emailed::send_for_pages(cx, ForPages::SignInCode, email, None, peer)
}

/// The code mailed for `email`: signed in, or the second factor owed. A
/// wrong, used or expired code is OtpInvalid.
pub fn use_code(
    cx: &mut Ctx,
    email: &str,
    code: &str,
    old: Option<&str>,
    peer: &Peer,
) -> Result<Step, Error> {
    let now = cx.now();
    let times = Lifetimes::of(cx);
    let code: String = code.split_whitespace().collect();
    let step = emailed::verify_page_code(cx, email, &code, peer, |tx, user| {
        step_in(tx, &times, user, old, peer, now)
    })?;
    count(cx, &step);
    Ok(step)
}

/// Mails a reset link for `email` (nothing when no account has it).
pub fn forgot(cx: &mut Ctx, email: &str, peer: &Peer) -> Result<(), Error> {
    emailed::send_for_pages(cx, ForPages::ResetLink, email, None, peer)
}

/// Ok while the reset link `token` is live.
pub fn reset_live(cx: &Ctx, token: &str) -> Result<(), Error> {
    emailed::check_page_link(cx, ForPages::ResetLink, token)
}

/// Sets the password through the reset link `token`; every session of
/// the user ends (the browser signs in again with the new password).
pub fn reset(cx: &mut Ctx, token: &str, password: &str, peer: &Peer) -> Result<(), Error> {
    emailed::reset_page_password(cx, token, password, peer)
}

/// Mails a sign-up link to `email` (its owner an "account exists" mail
/// instead when it has an account).
pub fn request_signup(cx: &mut Ctx, email: &str, peer: &Peer) -> Result<(), Error> {
    signup::create_signup_token(cx, &Inviter::Anyone, email.trim(), peer)
}

/// The address a live sign-up link was mailed to.
pub fn signup_address(cx: &Ctx, token: &str) -> Result<String, Error> {
    signup::check_signup_token(cx, token).map(|(email, _)| email)
}

/// Creates the account of the sign-up link `token` and signs it in, in
/// one transaction; returns the session's cookie value.
pub fn sign_up(
    cx: &mut Ctx,
    token: &str,
    name: Option<&str>,
    password: &str,
    old: Option<&str>,
    peer: &Peer,
) -> Result<String, Error> {
    let now = cx.now();
    let times = Lifetimes::of(cx);
    let email = signup_address(cx, token)?;
    let form = SignupForm {
        email: &email,
        password,
        name,
        username: None,
    };
    let (_, id) = signup::create_user_then(cx, token, &form, peer, |tx, user| {
        finish_in(tx, &times, user, old, peer, now)
    })?;
    cx.app.metrics.login("success");
    Ok(id)
}

/// After an emailed link or code, in its transaction: the session, or
/// the pending sign-in of a user whose TOTP is on.
fn step_in(
    tx: &Transaction,
    times: &Lifetimes,
    user: &User,
    old: Option<&str>,
    peer: &Peer,
    now: i64,
) -> Result<Step, Error> {
    if totp::state(tx, &user.id, now)? == State::On {
        return signin::owe_in(tx, user, &FirstStep::new(signin::METHOD, &[AMR]), now)
            .map(Step::SecondFactor);
    }
    finish_in(tx, times, user, old, peer, now).map(Step::Done)
}

/// The session of an emailed sign-in, in the caller's transaction.
fn finish_in(
    tx: &Transaction,
    times: &Lifetimes,
    user: &User,
    old: Option<&str>,
    peer: &Peer,
    now: i64,
) -> Result<String, Error> {
    let grant = crate::auth::grant_for(user, None, &[AMR]);
    signin::finish_in(tx, times, &grant, signin::METHOD, old, peer, now)
}

fn count(cx: &Ctx, step: &Step) {
    cx.app.metrics.login(match step {
        Step::Done(_) => "success",
        Step::SecondFactor(_) => "second_factor_owed",
    });
}
