//! The flows that go through a mailbox, shared by every dialect: magic
//! links (yat, lagrello), emailed sign-in codes (native send-otp and
//! passwordless) and password reset. Sign-up (tokens, create-user, fast
//! sign-up, address verification) is in signup.rs, on the helpers here.
//!
//! Rules that hold for every caller:
//! * **Stored hashed, mailed in the same transaction.** Every link token
//!   is 256 random bits kept as SHA-256, every code an HMAC (codes.rs);
//!   the mail is queued (`mail::queue`) in the transaction that creates
//!   it, so either both exist or neither does.
//! * **Redeemed in one transaction.** Looking a token or code up, counting
//!   a wrong try, and using it up happen in one `Ctx::write`, so two racing
//!   tries are compared one after the other.
//! * **No enumeration.** A request naming an address answers the same
//!   status, body and headers whether or not an account has it, and does
//!   the same work: for nobody, the token and the mail are written to a
//!   stand-in recipient inside a savepoint that is then rolled back (see
//!   `send`), so the transaction has the same shape and cost.
//! * **No mailbox flood.** Every mail-sending request takes a token from
//!   the caller's per-IP login bucket (429 beyond it), and every address
//!   gets at most one mail of a kind a minute and five an hour
//!   (`codes::quota_take`); beyond that the request answers as usual and
//!   sends nothing.
//! * Emailed codes are tried under the typed name's code lock
//!   (`softlock::Lock::code`), as the MFA reset's are, and die after
//!   `CODE_ATTEMPTS` wrong tries.

use rusqlite::{Connection, Transaction};

use crate::accounts::{self, Client, User};
use crate::app::Ctx;
use crate::audit;
use crate::auth::{self, failed, record_sign_in, Peer, Tokens};
use crate::codes::{self, Link};
use crate::crypto::token_hash;
use crate::error::Error;
use crate::factors::{self, LimitedPair};
use crate::limits::Family;
use crate::mail::{self, Kind, Mail};
use crate::password;
use crate::sessions;
use crate::softlock;
use crate::totp::{self, State};
use crate::url::percent_encode;

/// Lifetimes in seconds (the README's endpoint tables give them).
pub const MAGIC_LINK_TTL: i64 = 900;
pub const CODE_TTL: i64 = 600;
pub const RESET_TTL: i64 = 1800;
pub const SIGNUP_TTL: i64 = 86_400;
/// The link of a fast sign-up's verification mail.
pub const VERIFY_TTL: i64 = 86_400;
/// Emailed sign-in codes: digits, and wrong tries a code survives.
pub const CODE_LEN: usize = 6;
pub const CODE_ATTEMPTS: i64 = 5;

/// Refuses a CR or LF (or any control character) in a value that may
/// reach a mail header, before anything is looked up (422).
pub fn refuse_line_breaks(field: &str, value: &str) -> Result<(), Error> {
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "invalid",
            format!("{field} cannot contain a line break or control character"),
        ));
    }
    Ok(())
}

/// The user a request for mail names, when it is one we mail: active and
/// with an address. Anyone else is treated as nobody.
pub(crate) fn mailable(user: Option<User>) -> Option<(User, String)> {
    let user = user.filter(User::is_active)?;
    let email = user.email.clone()?;
    Some((user, email))
}

/// Sends one mail of quota kind `kind` to `to`, unless the address's quota
/// is spent. `write` issues the code or token and queues the mail in the
/// transaction; with `real` false (nobody has the address) it runs all the
/// same inside a savepoint that is rolled back: the same statements and
/// the same cost, and nothing kept. Returns whether a mail went out.
pub(crate) fn send(
    tx: &Connection,
    kind: &str,
    to: &str,
    real: bool,
    now: i64,
    write: impl FnOnce(&Connection) -> Result<(), Error>,
) -> Result<bool, Error> {
    if !codes::quota_take(tx, to, kind, now)? {
        return Ok(false);
    }
    if real {
        write(tx)?;
        return Ok(true);
    }
    tx.execute_batch("SAVEPOINT pretend")?;
    let done = write(tx);
    tx.execute_batch("ROLLBACK TO pretend; RELEASE pretend")?;
    done.map(|_| false)
}

/// The subject a stand-in row is stored under (never a user id).
pub(crate) fn nobody(typed: &str) -> String {
    format!("nobody:{}", token_hash(&typed.trim().to_lowercase()))
}

/// Who a mail-sending request writes for: the user and their address, or
/// for nobody the stand-in subject and the address as typed (`send` rolls
/// that one back). Returns (subject, user id, recipient).
fn recipient<'a>(
    target: &'a Option<(User, String)>,
    typed: &'a str,
) -> (String, Option<&'a str>, &'a str) {
    match target {
        Some((u, e)) => (u.id.clone(), Some(u.id.as_str()), e.as_str()),
        None => (nobody(typed), None, typed),
    }
}

pub(crate) fn queue(
    tx: &Connection,
    cx_mail: &mail::Outgoing,
    m: Mail,
    now: i64,
) -> Result<(), Error> {
    mail::queue(tx, cx_mail, &m, now).map(|_| ())
}

// --- magic links ----------------------------------------------------------

/// Who a yat magic link is asked for.
pub enum Named<'a> {
    Email(&'a str),
    UserId(&'a str),
}

/// yat POST /auth/magic_link: mails `{public_url}/magic_link?refresh_token=
/// <t>&redirect=<r>` to the user, whether or not anyone has the address
/// (the answer is the caller's to make the same).
pub fn send_magic_link(
    cx: &mut Ctx,
    named: Named,
    redirect: Option<&str>,
    peer: &Peer,
) -> Result<(), Error> {
    let now = cx.now();
    let typed = match named {
        Named::Email(e) | Named::UserId(e) => e,
    };
    refuse_line_breaks("email", typed)?;
    if let Some(r) = redirect {
        refuse_line_breaks("redirect", r)?;
        // The mail is genuinely ours: its link may only lead back here or
        // to an app registered as a client (no open redirect).
        let mut allowed = vec![cx.app.public_url.clone()];
        for c in accounts::list_clients(&cx.conn)? {
            allowed.extend(c.redirect_urls);
        }
        if !crate::url::is_allowed_target(r, &allowed) {
            return Err(Error::invalid(
                "redirect",
                "invalid",
                "redirect must be a path on this server or a URL on the origin of a registered client redirect URL",
            ));
        }
    }
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let user = match named {
        Named::Email(e) => accounts::find_user_by_login(&cx.conn, e)?,
        Named::UserId(id) => accounts::get_user(&cx.conn, id)?,
    };
    let target = mailable(user);
    let out = cx.app.mail.clone();
    let base = cx.app.public_url.clone();
    let redirect = redirect.map(percent_encode);
    cx.write(|tx| {
        let (subject, user_id, to) = recipient(&target, typed);
        send(tx, codes::MAGIC_LINK, to, target.is_some(), now, |tx| {
            let token = codes::issue_link(
                tx,
                codes::MAGIC_LINK,
                &subject,
                user_id,
                None,
                MAGIC_LINK_TTL,
                now,
            )?;
            let mut link = format!("{base}/magic_link?refresh_token={token}");
            if let Some(r) = &redirect {
                link.push_str(&format!("&redirect={r}"));
            }
            let values = [("link", link.as_str()), ("minutes", "15")];
            queue(
                tx,
                &out,
                Mail {
                    kind: Kind::MagicLink,
                    to,
                    values: &values,
                },
                now,
            )
        })
    })?;
    Ok(())
}

/// What a yat refresh came to: a full session, or (a magic link for a
/// user with TOTP) a limited one that owes the second factor.
pub enum SignIn {
    Full(Box<Tokens>),
    Owed(LimitedPair),
}

/// Uses up a live magic-link token of `kind` scoped to `tenant` (None for
/// yat's): compare and consume in one transaction. Returns its user.
fn redeem_magic(cx: &mut Ctx, token: &str, tenant: Option<&str>) -> Result<Option<String>, Error> {
    let now = cx.now();
    cx.write(|tx| {
        let Link::Live(f) = codes::lookup_link(tx, codes::MAGIC_LINK, token, now)? else {
            return Ok(None);
        };
        if f.data.as_deref() != tenant || f.user_id.is_empty() {
            return Ok(None);
        }
        Ok(codes::consume(tx, &f.hash, now)?.then_some(f.user_id))
    })
}

/// yat POST /auth/token/refresh: a magic-link token signs in (a user with
/// TOTP gets a limited session, as a password sign-in does); anything else
/// is a refresh token, rotated.
pub fn refresh_or_magic(cx: &mut Ctx, token: &str, peer: &Peer) -> Result<SignIn, Error> {
    let now = cx.now();
    let is_link = matches!(
        codes::lookup_link(&cx.conn, codes::MAGIC_LINK, token, now)?,
        Link::Live(_) | Link::Used
    );
    if !is_link {
        return auth::refresh(cx, token, None, None, false, peer)
            .map(|t| SignIn::Full(Box::new(t)));
    }
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let Some(user_id) = redeem_magic(cx, token, None)? else {
        auth::record_refusal(cx, None, "magic_link", "token_invalid", peer)?;
        return Err(Error::TokenInvalid);
    };
    let user = accounts::get_user(&cx.conn, &user_id)?.ok_or(Error::TokenInvalid)?;
    if !user.is_active() {
        auth::record_refusal(cx, Some(&user.id), "magic_link", "user_inactive", peer)?;
        return Err(Error::UserInactive);
    }
    // Getting the mail proves the address.
    cx.write(|tx| accounts::mark_email_verified(tx, &user.id, now))?;
    let grant = auth::grant_for(&user, None, &["email"]);
    if factors::required(cx, &user)? {
        return factors::start_limited(cx, &grant).map(SignIn::Owed);
    }
    let tokens = auth::issue_tokens(cx, None, &grant, "magic_link", peer)?;
    Ok(SignIn::Full(Box::new(tokens)))
}

/// lagrello POST /v1/users/{userId}/email: mails the tenant's callback URL
/// with `{}` replaced by a fresh token (default `{public_url}/magic?token={}`).
/// The API key is the authority here, so a user without an address is a
/// plain 400; the per-address quota still applies, silently.
pub fn send_tenant_magic_link(
    cx: &mut Ctx,
    tenant_id: &str,
    user: &User,
    peer: &Peer,
) -> Result<(), Error> {
    let now = cx.now();
    let email = user
        .email
        .clone()
        .ok_or_else(|| Error::BadRequest("The user has no email address".into()))?;
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let callback = accounts::find_tenant(&cx.conn, tenant_id)?
        .and_then(|t| t.callback_url)
        .unwrap_or_else(|| format!("{}/magic?token={{}}", cx.app.public_url));
    let out = cx.app.mail.clone();
    let active = user.is_active();
    cx.write(|tx| {
        send(tx, codes::MAGIC_LINK, &email, active, now, |tx| {
            let token = codes::issue_link(
                tx,
                codes::MAGIC_LINK,
                &user.id,
                Some(&user.id),
                Some(tenant_id),
                MAGIC_LINK_TTL,
                now,
            )?;
            let link = callback.replace("{}", &token);
            let values = [("link", link.as_str()), ("minutes", "15")];
            queue(
                tx,
                &out,
                Mail {
                    kind: Kind::MagicLink,
                    to: &email,
                    values: &values,
                },
                now,
            )
        })
    })?;
    Ok(())
}

/// lagrello GET /v1/users/email?payload=: uses up a live link token of the
/// tenant; returns its user's id. Wrong, used or expired: TokenInvalid.
/// Either way a login_activity row says so (the app signs the user in on
/// our word).
pub fn redeem_tenant_magic_link(
    cx: &mut Ctx,
    tenant_id: &str,
    token: &str,
    peer: &Peer,
) -> Result<String, Error> {
    let now = cx.now();
    let Some(user_id) = redeem_magic(cx, token, Some(tenant_id))? else {
        auth::record_refusal(cx, None, "magic_link", "token_invalid", peer)?;
        return Err(Error::TokenInvalid);
    };
    // A link sent before the user was disabled signs nobody in (the link
    // is used up all the same).
    let active = accounts::get_user(&cx.conn, &user_id)?.is_some_and(|u| u.is_active());
    if !active {
        auth::record_refusal(cx, Some(&user_id), "magic_link", "user_inactive", peer)?;
        return Err(Error::UserInactive);
    }
    let grant = auth::tenant_grant(&user_id, tenant_id, &["email"]);
    cx.write(|tx| {
        accounts::mark_email_verified(tx, &user_id, now)?;
        record_sign_in(tx, &grant, "magic_link", peer, now)
    })?;
    Ok(user_id)
}

// --- emailed sign-in codes ------------------------------------------------

/// native /auth/send-otp and /auth/passwordless/start: mails a 6-digit
/// code (10 min, 5 tries) to the user `key` names, for `client`.
pub fn send_code(cx: &mut Ctx, client: &Client, key: &str, peer: &Peer) -> Result<(), Error> {
    // A consent client signs people in at the provider only.
    crate::oidc::consent::provider_only(client)?;
    let now = cx.now();
    refuse_line_breaks("key", key)?;
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let target = mailable(accounts::find_user_by_login(&cx.conn, key)?);
    let out = cx.app.mail.clone();
    let master = cx.app.master.clone();
    let client_id = client.client_id.clone();
    cx.write(|tx| {
        let (subject, user_id, to) = recipient(&target, key);
        send(tx, codes::EMAIL_OTP, to, target.is_some(), now, |tx| {
            let code = codes::issue_digits(
                tx,
                &master,
                codes::EMAIL_OTP,
                &subject,
                user_id,
                Some(&client_id),
                CODE_LEN,
                CODE_TTL,
                now,
            )?;
            let values = [("code", code.as_str()), ("minutes", "10")];
            queue(
                tx,
                &out,
                Mail {
                    kind: Kind::SignInCode,
                    to,
                    values: &values,
                },
                now,
            )
        })
    })?;
    Ok(())
}

/// native /auth/passwordless/verify (and /auth/verify-otp for a user
/// without a second factor): the emailed code for `key` gives a login code
/// of the client it was asked for; a user with TOTP gets an owed one. Every
/// refusal is the same OtpInvalid, counted against the typed name's code
/// lock; the code itself dies after `CODE_ATTEMPTS` wrong tries.
pub fn verify_code(cx: &mut Ctx, key: &str, otp: &str, peer: &Peer) -> Result<String, Error> {
    let now = cx.now();
    let code = redeem_code(
        cx,
        codes::EMAIL_OTP,
        "email_otp",
        key,
        otp,
        peer,
        |tx, u, f| {
            let client_id = f.data.clone().unwrap_or_default();
            let client = accounts::get_client(tx, &client_id)?.ok_or(Error::ClientInvalid)?;
            let owed = totp::state(tx, &u.id, now)? == State::On;
            let grant = auth::grant_for(u, Some(&client), &["email"]);
            if !owed {
                record_sign_in(tx, &grant, "email_otp", peer, now)?;
            }
            sessions::issue_code(
                tx,
                &grant,
                &client.client_id,
                owed.then_some("email_otp"),
                None,
                client.auth_code_ttl,
                now,
            )
        },
    )?;
    cx.app.metrics.login("success");
    Ok(code)
}

/// Checks the emailed code of `kind` sent for `key`, and on a match uses
/// it up and runs `then` with its user and row, all in one transaction
/// (the address counts as verified). Every refusal is the same OtpInvalid,
/// counted against the typed name's code lock and the code's tries, and
/// logged with `method`.
#[allow(clippy::too_many_arguments)]
fn redeem_code<T>(
    cx: &mut Ctx,
    kind: &str,
    method: &str,
    key: &str,
    otp: &str,
    peer: &Peer,
    then: impl FnOnce(&Transaction, &User, &codes::Found) -> Result<T, Error>,
) -> Result<T, Error> {
    let now = cx.now();
    totp::check_code_format("otp", otp)?;
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let user = accounts::find_user_by_login(&cx.conn, key)?;
    let lock = softlock::Lock::code(key, user.as_ref().map(|u| u.id.as_str()), &peer.ip);
    let subject = user.as_ref().map_or_else(|| nobody(key), |u| u.id.clone());
    let master = cx.app.master.clone();
    let lim = cx.app.config.limits.clone();
    let outcome = cx.write(|tx| {
        softlock::check(tx, &lock, &lim, now)?;
        let found = codes::find_code(tx, &master, kind, &subject, otp, now)?;
        if let (Some((f, true)), Some(u)) = (&found, &user) {
            if f.attempts < CODE_ATTEMPTS && codes::consume(tx, &f.hash, now)? {
                softlock::clear(tx, &lock, None, now)?;
                if !u.is_active() {
                    return Ok(Err(Error::UserInactive));
                }
                accounts::mark_email_verified(tx, &u.id, now)?;
                return then(tx, u, f).map(Ok);
            }
        }
        if let Some((f, _)) = &found {
            codes::fail(tx, &f.hash)?;
        }
        softlock::record_failure(tx, &lock, &lim, now)?;
        let actor = user.as_ref().map(|u| u.id.as_str());
        audit::record(tx, &failed(actor, method, "otp_invalid", peer), now)?;
        Ok(Err(Error::OtpInvalid))
    })?;
    if outcome.is_err() {
        cx.app.metrics.login("otp_invalid");
    }
    outcome
}

/// native /auth/verify-otp: with a login code from /auth/login, for a user
/// with a TOTP factor (on or pending), the TOTP check as before
/// (`factors::verify_login_code`); otherwise the emailed code.
pub fn verify_otp(
    cx: &mut Ctx,
    key: &str,
    otp: &str,
    code: Option<&str>,
    client_id: Option<&str>,
    peer: &Peer,
) -> Result<String, Error> {
    let has_factor = match (code, accounts::find_user_by_login(&cx.conn, key)?) {
        (Some(_), Some(u)) => factors::state(cx, &u.id)? != State::Off,
        _ => false,
    };
    if has_factor {
        return factors::verify_login_code(cx, key, otp, code, client_id, peer);
    }
    verify_code(cx, key, otp, peer)
}

// --- password reset -------------------------------------------------------

/// native /auth/forget-password: mails `{public_url}/reset-password?token=`
/// (30 min, single use) to the user `login` names, if any.
pub fn forget_password(
    cx: &mut Ctx,
    client: &Client,
    login: &str,
    peer: &Peer,
) -> Result<(), Error> {
    let now = cx.now();
    refuse_line_breaks("username", login)?;
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let target = mailable(accounts::find_user_by_login(&cx.conn, login)?);
    let out = cx.app.mail.clone();
    let base = cx.app.public_url.clone();
    let client_id = client.client_id.clone();
    cx.write(|tx| {
        let (subject, user_id, to) = recipient(&target, login);
        send(tx, codes::PASSWORD_RESET, to, target.is_some(), now, |tx| {
            let token = codes::issue_link(
                tx,
                codes::PASSWORD_RESET,
                &subject,
                user_id,
                Some(&client_id),
                RESET_TTL,
                now,
            )?;
            let link = format!("{base}/reset-password?token={token}");
            let values = [("link", link.as_str()), ("minutes", "30")];
            queue(
                tx,
                &out,
                Mail {
                    kind: Kind::PasswordReset,
                    to,
                    values: &values,
                },
                now,
            )
        })
    })?;
    Ok(())
}

/// The refusal for a link that is not live: used (TokenRevoked) or
/// unknown/expired (TokenExpired).
pub(crate) fn dead(link: &Link) -> Error {
    match link {
        Link::Used => Error::TokenRevoked,
        _ => Error::TokenExpired,
    }
}

/// native GET /auth/verify-reset-password-link: Ok while the link is live.
pub fn check_reset_link(cx: &Ctx, token: &str) -> Result<(), Error> {
    check_link(cx, codes::PASSWORD_RESET, token)
}

/// native PATCH /auth/reset-password: the link's user gets `new` as their
/// password; the link is used up, every session ends, the soft lock on the
/// password is cleared and outstanding login codes are dropped. The link
/// must be used with the client that asked for it.
pub fn reset_password(
    cx: &mut Ctx,
    client: &Client,
    token: &str,
    new: &str,
    peer: &Peer,
) -> Result<(), Error> {
    let client_id = client.client_id.clone();
    reset_with(
        cx,
        codes::PASSWORD_RESET,
        Some(&client_id),
        token,
        new,
        peer,
    )
}

/// A reset link of `kind` (the API's, asked for by client `client_id`,
/// or the pages', for no client) sets `new` as its user's password: see
/// `reset_password`.
fn reset_with(
    cx: &mut Ctx,
    kind: &str,
    client_id: Option<&str>,
    token: &str,
    new: &str,
    peer: &Peer,
) -> Result<(), Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    // A dead link or a weak password is refused before any hashing, and
    // without using the link up.
    check_link(cx, kind, token)?;
    password::check_policy("password", new)?;
    let hash = {
        let _permit = cx.app.gate.enter()?;
        password::hash(new, cx.app.config.pbkdf2_iterations)?
    };
    let user_id = cx.write(|tx| {
        let f = match codes::lookup_link(tx, kind, token, now)? {
            Link::Live(f) => f,
            other => return Err(dead(&other)),
        };
        if f.data.as_deref() != client_id {
            return Err(Error::TokenInvalid);
        }
        if f.user_id.is_empty() || !codes::consume(tx, &f.hash, now)? {
            return Err(Error::TokenRevoked);
        }
        accounts::set_password_hash(tx, &f.user_id, &hash, now)?;
        softlock::clear_password(tx, &f.user_id)?;
        sessions::drop_codes(tx, &f.user_id)?;
        // Every other link and code mailed before (another reset link, a
        // magic link, a sign-in code) dies with the old password.
        codes::void_user(tx, &f.user_id, now)?;
        // Every refresh-token family and every browser session ends.
        sessions::revoke_user_families(tx, &f.user_id, None, "password reset", now)?;
        accounts::mark_email_verified(tx, &f.user_id, now)?;
        Ok(f.user_id)
    })?;
    cx.app.log.line(format!(
        "security: password of user {user_id} reset through the emailed link; every session ended"
    ));
    Ok(())
}

/// Ok while a link of `kind` is live; else why not (`dead`).
fn check_link(cx: &Ctx, kind: &str, token: &str) -> Result<(), Error> {
    match codes::lookup_link(&cx.conn, kind, token, cx.now())? {
        Link::Live(_) => Ok(()),
        other => Err(dead(&other)),
    }
}

// --- the sign-in pages (web/emailed.rs) -----------------------------------
//
// The pages are no API client: their links and codes are kinds of their
// own (`codes::WEB_*`), with no client in `data`, used only at the pages.
// Everything else is shared with the APIs: the per-IP login bucket, the
// per-address quota (counted under the API's kind of the same mail, so
// the pages and an app together stay within it), the stand-in for
// nobody, the code lock, the attempt limit, single use.

/// What a mail asked for at the sign-in pages carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForPages {
    /// A sign-in link to `/signin/link?token=` (15 min).
    SignInLink,
    /// A 6-digit sign-in code (10 min, `CODE_ATTEMPTS` tries).
    SignInCode,
    /// A reset link to `/signin/reset?token=` (30 min).
    ResetLink,
}

impl ForPages {
    /// The code kind, the quota kind (the API's), the mail, the lifetime.
    fn kinds(self) -> (&'static str, &'static str, Kind, i64) {
        match self {
            ForPages::SignInLink => (
                codes::WEB_MAGIC_LINK,
                codes::MAGIC_LINK,
                Kind::MagicLink,
                MAGIC_LINK_TTL,
            ),
            ForPages::SignInCode => (
                codes::WEB_EMAIL_OTP,
                codes::EMAIL_OTP,
                Kind::SignInCode,
                CODE_TTL,
            ),
            ForPages::ResetLink => (
                codes::WEB_PASSWORD_RESET,
                codes::PASSWORD_RESET,
                Kind::PasswordReset,
                RESET_TTL,
            ),
        }
    }
}

/// The pages' "email me" forms: mails what `what` carries to the account
/// of the address `email`; for an address no active account has, the
/// same work, rolled back (`send`). A link's `data` (the page to go on to
/// after a sign-in link) is kept with its token, not put in the link.
/// The caller answers the same either way.
pub fn send_for_pages(
    cx: &mut Ctx,
    what: ForPages,
    email: &str,
    data: Option<&str>,
    peer: &Peer,
) -> Result<(), Error> {
    let now = cx.now();
    let email = email.trim();
    refuse_line_breaks("email", email)?;
    accounts::check_email("email", email)?;
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let target = mailable(accounts::find_user_by_email(&cx.conn, email)?);
    let out = cx.app.mail.clone();
    let master = cx.app.master.clone();
    let base = cx.app.public_url.clone();
    let (kind, quota, mail_kind, ttl) = what.kinds();
    cx.write(|tx| {
        let (subject, user_id, to) = recipient(&target, email);
        send(tx, quota, to, target.is_some(), now, |tx| {
            let (name, value) = match what {
                ForPages::SignInCode => {
                    let code = codes::issue_digits(
                        tx, &master, kind, &subject, user_id, None, CODE_LEN, ttl, now,
                    )?;
                    ("code", code)
                }
                ForPages::SignInLink | ForPages::ResetLink => {
                    let token = codes::issue_link(tx, kind, &subject, user_id, data, ttl, now)?;
                    let page = match what {
                        ForPages::SignInLink => "signin/link",
                        _ => "signin/reset",
                    };
                    ("link", format!("{base}/{page}?token={token}"))
                }
            };
            let minutes = (ttl / 60).to_string();
            let values = [(name, value.as_str()), ("minutes", minutes.as_str())];
            queue(
                tx,
                &out,
                Mail {
                    kind: mail_kind,
                    to,
                    values: &values,
                },
                now,
            )
        })
    })?;
    Ok(())
}

/// Ok while the pages' link `token` (a sign-in or reset link) is live:
/// TokenRevoked once used, TokenExpired when unknown or expired.
pub fn check_page_link(cx: &Ctx, what: ForPages, token: &str) -> Result<(), Error> {
    check_link(cx, what.kinds().0, token)
}

/// Uses up the pages' sign-in link `token` and, in the same transaction,
/// runs `then` with its user and its `data` (the address counts as
/// verified). Dead: TokenRevoked / TokenExpired; a user disabled since:
/// UserInactive (the link used up all the same). Refusals are logged.
pub fn redeem_page_link<T>(
    cx: &mut Ctx,
    token: &str,
    peer: &Peer,
    then: impl FnOnce(&Transaction, &User, Option<&str>) -> Result<T, Error>,
) -> Result<T, Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let outcome = cx.write(|tx| {
        let f = match codes::lookup_link(tx, codes::WEB_MAGIC_LINK, token, now)? {
            Link::Live(f) if !f.user_id.is_empty() => f,
            other => return Ok(Err((None, dead(&other)))),
        };
        if !codes::consume(tx, &f.hash, now)? {
            return Ok(Err((None, Error::TokenRevoked)));
        }
        match accounts::get_user(tx, &f.user_id)? {
            Some(u) if u.is_active() => {
                accounts::mark_email_verified(tx, &u.id, now)?;
                then(tx, &u, f.data.as_deref()).map(Ok)
            }
            _ => Ok(Err((Some(f.user_id), Error::UserInactive))),
        }
    })?;
    outcome.or_else(|(actor, e)| {
        let why = if e == Error::UserInactive {
            "user_inactive"
        } else {
            "token_invalid"
        };
        auth::record_refusal(cx, actor.as_deref(), "web", why, peer)?;
        Err(e)
    })
}

/// The pages' emailed code for `email`: on a match it is used up and
/// `then` runs with its user in the same transaction; see `redeem_code`.
pub fn verify_page_code<T>(
    cx: &mut Ctx,
    email: &str,
    code: &str,
    peer: &Peer,
    then: impl FnOnce(&Transaction, &User) -> Result<T, Error>,
) -> Result<T, Error> {
    redeem_code(
        cx,
        codes::WEB_EMAIL_OTP,
        "web",
        email.trim(),
        code,
        peer,
        |tx, u, _| then(tx, u),
    )
}

/// The pages' reset link `token` sets `new` as its user's password, as
/// the API's reset does (policy, every session and token family ended,
/// other mailed links and codes voided).
pub fn reset_page_password(cx: &mut Ctx, token: &str, new: &str, peer: &Peer) -> Result<(), Error> {
    reset_with(cx, codes::WEB_PASSWORD_RESET, None, token, new, peer)
}
