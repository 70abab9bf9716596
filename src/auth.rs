//! Sign-in flows shared by every dialect: the password check with its
//! brute-force defences, token issuance, refresh, tenant switch, bearer
//! authentication, logout and password change.
//!
//! Rules that hold for every caller:
//! * An unknown user, a user without a password and a wrong password cost
//!   the same (one PBKDF2 at the configured cost) and get the same answer.
//! * A disabled account is only revealed to a caller who gave its password.
//! * A soft-locked name answers 429 before any password is checked, for
//!   known and unknown names alike. The lock counts per name and source
//!   (softlock.rs), so another party's failures never hold up the caller,
//!   except through the account's hourly budget, which a source the
//!   account signed in from recently does not need.
//! * Every sign-in writes a login_activity row in the same transaction as
//!   the code or session it creates; every refusal writes one too.

use std::sync::Arc;

use rusqlite::{Connection, Transaction};

use crate::accounts::{self, Client, User};
use crate::app::Ctx;
use crate::audit::{self, Entry};
use crate::codes;
use crate::crypto::uuid_v4;
use crate::error::Error;
use crate::jwt::Claims;
use crate::limits::Family;
use crate::password;
use crate::sessions::{self, Grant, Issued, Pkce, Rotation};
use crate::softlock;

/// Who is calling, for logs and limits.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub ip: String,
    pub user_agent: Option<String>,
}

/// Tokens just issued.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
    /// Access-token expiry, unix seconds.
    pub expires_at: i64,
    pub user: User,
    pub claims: Claims,
}

/// Checks a login name and password. Returns the user on success; a wrong
/// password, an unknown name and a password-less account all give
/// `InvalidCredentials`.
pub fn check_password(
    cx: &mut Ctx,
    login: &str,
    password: &str,
    peer: &Peer,
) -> Result<User, Error> {
    check_password_as(cx, login, password, peer, "password")
}

/// `check_password`, its refusals logged with `method` (the sign-in pages
/// log theirs as "web").
pub fn check_password_as(
    cx: &mut Ctx,
    login: &str,
    password: &str,
    peer: &Peer,
    method: &str,
) -> Result<User, Error> {
    let now = cx.now();
    if let Err(e) = cx.app.limiter.take(Family::Login, &peer.ip, now) {
        cx.app.metrics.login("rate_limited");
        return Err(e);
    }
    let user = accounts::find_user_by_login(&cx.conn, login)?;
    let lock = softlock::Lock::password(user.as_ref().map(|u| u.id.as_str()), login, &peer.ip);
    // A malformed stored hash costs the same as an unknown user.
    let stored = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .filter(|h| password::is_well_formed(h));
    let lim = cx.app.config.limits.clone();
    let (counted, ok) = {
        // The hashing slot comes first: a "busy" refusal must not count as
        // a wrong password, or a login flood from elsewhere would soft-lock
        // the owner at their own address (issue 8 review).
        let app = cx.app.clone();
        let _permit = app
            .gate
            .enter()
            .inspect_err(|_| app.metrics.login("busy"))?;
        // The attempt is counted as a failure before the hash runs, in the
        // same transaction as the lock check, so concurrent guesses cannot
        // all slip in before the first one is counted; a success takes it
        // back.
        let counted = match cx.write(|tx| {
            softlock::check(tx, &lock, &lim, now)?;
            softlock::record_failure(tx, &lock, &lim, now)
        }) {
            Ok(c) => c,
            Err(e) => {
                cx.app.metrics.login("locked");
                return Err(e);
            }
        };
        let against = stored.as_deref().unwrap_or(&cx.app.dummy_hash);
        (
            counted,
            password::verify(password, against) && stored.is_some(),
        )
    };
    let actor = user.as_ref().map(|u| u.id.clone());
    let Some(user) = user.filter(|_| ok) else {
        cx.write(|tx| {
            audit::record(
                tx,
                &failed(actor.as_deref(), method, "invalid_credentials", peer),
                now,
            )
        })?;
        cx.app.metrics.login("invalid_credentials");
        return Err(Error::InvalidCredentials);
    };
    if !user.is_active() {
        cx.write(|tx| {
            softlock::clear(tx, &lock, Some(counted), now)?;
            audit::record(
                tx,
                &failed(Some(&user.id), method, "user_inactive", peer),
                now,
            )
        })?;
        cx.app.metrics.login("user_inactive");
        return Err(Error::UserInactive);
    }
    let iterations = cx.app.config.pbkdf2_iterations;
    let rehash = match &user.password_hash {
        Some(h) if password::needs_rehash(h, iterations) => {
            let _permit = cx.app.gate.enter()?;
            Some(password::hash(password, iterations)?)
        }
        _ => None,
    };
    cx.write(|tx| {
        softlock::clear(tx, &lock, Some(counted), now)?;
        if let Some(h) = &rehash {
            accounts::set_password_hash(tx, &user.id, h, now)?;
        }
        Ok(())
    })?;
    Ok(user)
}

pub(crate) fn failed<'a>(
    actor: Option<&'a str>,
    method: &'a str,
    outcome: &'a str,
    peer: &'a Peer,
) -> Entry<'a> {
    Entry {
        actor,
        login_type: "FAILED",
        outcome,
        method,
        ip: &peer.ip,
        user_agent: peer.user_agent.as_deref(),
        ..Entry::default()
    }
}

/// The grant of a fresh sign-in: the user's default tenant, the methods used.
pub fn grant_for(user: &User, client: Option<&Client>, amr: &[&str]) -> Grant {
    Grant {
        user_id: user.id.clone(),
        client_id: client.map(|c| c.client_id.clone()),
        tenant_id: user.default_tenant_id.clone(),
        amr: amr.iter().map(|s| s.to_string()).collect(),
    }
}

fn sign_in_entry<'a>(
    tx: &Connection,
    grant: &'a Grant,
    method: &'a str,
    peer: &'a Peer,
    now: i64,
) -> Result<Entry<'a>, Error> {
    let relogin = sessions::has_live_session(tx, &grant.user_id, grant.client_id.as_deref(), now)?;
    Ok(Entry {
        actor: Some(&grant.user_id),
        tenant_id: grant.tenant_id.as_deref(),
        client_id: grant.client_id.as_deref(),
        login_type: if relogin { "RELOGIN" } else { "ACCESS" },
        outcome: "success",
        method,
        amr: &grant.amr,
        ip: &peer.ip,
        user_agent: peer.user_agent.as_deref(),
    })
}

/// Records a completed sign-in, in the transaction that creates its code or
/// session: the login_activity row (ACCESS or RELOGIN), last_login_at, and
/// the source as trusted for the account (the soft lock's budget spares
/// it). Only here, after every factor: a password alone trusts no one.
pub(crate) fn record_sign_in(
    tx: &Connection,
    grant: &Grant,
    method: &str,
    peer: &Peer,
    now: i64,
) -> Result<(), Error> {
    let entry = sign_in_entry(tx, grant, method, peer, now)?;
    audit::record(tx, &entry, now)?;
    softlock::trust(tx, &grant.user_id, &peer.ip, now)?;
    accounts::touch_login(tx, &grant.user_id, now)
}

/// Records a refused sign-in outside any other transaction (a used magic
/// link, a disabled user's link).
pub(crate) fn record_refusal(
    cx: &mut Ctx,
    actor: Option<&str>,
    method: &str,
    outcome: &str,
    peer: &Peer,
) -> Result<(), Error> {
    let now = cx.now();
    cx.write(|tx| audit::record(tx, &failed(actor, method, outcome, peer), now))
}

/// Records a sign-in that starts no session of ours: lagrello's app asks
/// us to check a user's TOTP code and signs them in itself.
pub fn record_tenant_sign_in(
    cx: &mut Ctx,
    user_id: &str,
    tenant_id: &str,
    method: &str,
    amr: &[&str],
    peer: &Peer,
) -> Result<(), Error> {
    let now = cx.now();
    let grant = tenant_grant(user_id, tenant_id, amr);
    cx.write(|tx| record_sign_in(tx, &grant, method, peer, now))
}

/// The grant of a sign-in into a tenant without a client (lagrello).
pub(crate) fn tenant_grant(user_id: &str, tenant_id: &str, amr: &[&str]) -> Grant {
    Grant {
        user_id: user_id.to_string(),
        client_id: None,
        tenant_id: Some(tenant_id.to_string()),
        amr: amr.iter().map(|s| s.to_string()).collect(),
    }
}

/// Issues an auth code for a signed-in user (native /auth/login), logging
/// the sign-in in the same transaction. A code with a second factor owed
/// is not a sign-in yet: it is logged when /auth/verify-otp settles it.
pub fn issue_code(
    cx: &mut Ctx,
    client: &Client,
    grant: &Grant,
    mfa_owed: bool,
    challenge: Option<&str>,
    method: &str,
    peer: &Peer,
) -> Result<String, Error> {
    let now = cx.now();
    let code = cx.write(|tx| {
        if !mfa_owed {
            record_sign_in(tx, grant, method, peer, now)?;
        }
        sessions::issue_code(
            tx,
            grant,
            &client.client_id,
            mfa_owed.then_some(method),
            challenge,
            client.auth_code_ttl,
            now,
        )
    })?;
    cx.app.metrics.login(if mfa_owed {
        "second_factor_owed"
    } else {
        "success"
    });
    Ok(code)
}

/// Starts a session and issues tokens, logging the sign-in.
pub fn issue_tokens(
    cx: &mut Ctx,
    client: Option<&Client>,
    grant: &Grant,
    method: &str,
    peer: &Peer,
) -> Result<Tokens, Error> {
    let now = cx.now();
    let refresh_ttl = client
        .map(|c| c.refresh_ttl)
        .unwrap_or(cx.app.config.refresh_ttl);
    let (issued, subject) = cx.write(|tx| {
        record_sign_in(tx, grant, method, peer, now)?;
        let issued = sessions::start_family(tx, grant, false, refresh_ttl, now)?;
        Ok((issued, subject(tx, grant)?))
    })?;
    cx.app.metrics.login("success");
    mint(cx, subject, grant, &issued)
}

/// Exchanges an auth code for tokens (native POST /auth/token). The code
/// itself was the sign-in, so no activity row is written here. A code
/// issued with a PKCE challenge needs its verifier (RFC 7636, S256); a
/// wrong or missing one is refused without using the code up (see
/// `sessions::redeem_code`).
pub fn exchange_code(
    cx: &mut Ctx,
    client_id: &str,
    code: &str,
    verifier: Option<&str>,
    peer: &Peer,
) -> Result<Tokens, Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Token, &peer.ip, now)?;
    let client = accounts::get_client(&cx.conn, client_id)?.ok_or(Error::ClientInvalid)?;
    // A code of the OpenID provider (it has a scope) is bound to a redirect
    // URI only /oauth2/token checks: it is not good here.
    if sessions::code_binding(&cx.conn, code)?.is_some_and(|b| b.scope.is_some()) {
        return Err(Error::CodeExpired);
    }
    let outcome = cx.write(|tx| {
        let cg = match sessions::redeem_code(tx, code, client_id, Pkce::Verify(verifier), now)? {
            sessions::Redemption::Valid(cg) => cg,
            sessions::Redemption::Replayed => return Ok(None),
        };
        if cg.mfa_owed {
            return Err(Error::MfaRequired);
        }
        let subject = subject(tx, &cg.grant)?;
        if !subject.user.is_active() {
            return Err(Error::UserInactive);
        }
        let issued = sessions::start_family(tx, &cg.grant, false, client.refresh_ttl, now)?;
        sessions::bind_code(tx, code, &issued.family_id)?;
        Ok(Some((cg, issued, subject)))
    })?;
    let (cg, issued, subject) = outcome.ok_or(Error::CodeExpired)?;
    mint(cx, subject, &cg.grant, &issued)
}

/// Rotates a refresh token. `tenant` switches tenant (must be the user's);
/// `bearer`, when a bearer was sent, must belong to the token's own family.
pub fn refresh(
    cx: &mut Ctx,
    token: &str,
    tenant: Option<&str>,
    bearer: Option<&Claims>,
    app: bool,
    peer: &Peer,
) -> Result<Tokens, Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Token, &peer.ip, now)?;
    // An app's refresh token (a provider session, `app`) is good only at
    // /oauth2/token, where the app authenticates; a native one only at the
    // native routes (RFC 9700 §4.14). Refused before any rotation.
    if let Some((family, _)) = sessions::peek(&cx.conn, token)? {
        let scoped = sessions::family(&cx.conn, &family)?.is_some_and(|f| f.scope.is_some());
        if scoped != app {
            return Err(Error::TokenInvalid);
        }
    }
    if let Some(claims) = bearer {
        match sessions::peek(&cx.conn, token)? {
            Some((family, _)) if family == claims.sid => {}
            _ => return Err(Error::TokenInvalid),
        }
    }
    let job = RotateJob {
        token: token.to_string(),
        tenant: tenant.map(str::to_string),
        now,
    };
    // Concurrent refreshes share a transaction (see batch.rs).
    let app = cx.app.clone();
    let outcome = app.rotations.run(job, |jobs| rotate_batch(cx, jobs))?;
    match outcome {
        Rotated::Fresh(grant, issued, subject) => mint(cx, *subject, &grant, &issued),
        Rotated::Reuse { family_id, user_id } => {
            cx.app.log.line(format!("security: refresh token reuse detected; session {family_id} of user {user_id} revoked"));
            cx.app.metrics.reuse();
            Err(Error::TokenRevoked)
        }
    }
}

/// A refresh waiting for its turn in a batch.
pub struct RotateJob {
    token: String,
    tenant: Option<String>,
    now: i64,
}

/// What one rotation came to.
pub enum Rotated {
    Fresh(Grant, Issued, Box<Subject>),
    /// Reuse detected: the family is revoked (and that is committed).
    Reuse {
        family_id: String,
        user_id: String,
    },
}

/// Runs a batch of rotations in one transaction, each inside its own
/// savepoint so that a refused one leaves no trace.
fn rotate_batch(cx: &mut Ctx, jobs: Vec<RotateJob>) -> Result<Vec<Result<Rotated, Error>>, Error> {
    let default_ttl = cx.app.config.refresh_ttl;
    cx.write(|tx| {
        let mut out = Vec::with_capacity(jobs.len());
        for job in &jobs {
            tx.prepare_cached("SAVEPOINT rotation")?.execute([])?;
            let r = rotate_one(tx, job, default_ttl);
            if r.is_err() {
                tx.prepare_cached("ROLLBACK TO rotation")?.execute([])?;
            }
            tx.prepare_cached("RELEASE rotation")?.execute([])?;
            out.push(r);
        }
        Ok(out)
    })
}

fn rotate_one(tx: &Transaction, job: &RotateJob, default_ttl: i64) -> Result<Rotated, Error> {
    let tenant = job.tenant.as_deref();
    // The client is read once: for the new token's lifetime here, and for
    // the access token's audience and lifetime below.
    let client = std::cell::RefCell::new(None);
    let ttl = |client_id: Option<&str>| {
        let c = client_id.and_then(|c| accounts::get_client(tx, c).ok().flatten());
        let ttl = c.as_ref().map(|c| c.refresh_ttl).unwrap_or(default_ttl);
        *client.borrow_mut() = c;
        ttl
    };
    match sessions::rotate(tx, &job.token, tenant, ttl, job.now)? {
        Rotation::Rotated { grant, issued } => {
            // After the rotation, so a replayed token with a bad tenantId
            // still trips reuse detection; an error here rolls the rotation
            // back (to its savepoint).
            if let Some(t) = tenant {
                if accounts::membership(tx, &grant.user_id, t)?.is_none() {
                    return Err(Error::Forbidden(
                        "The user is not a member of this tenant".into(),
                    ));
                }
            }
            let subject = subject_with(tx, &grant, client.into_inner())?;
            if !subject.user.is_active() {
                return Err(Error::UserInactive);
            }
            Ok(Rotated::Fresh(grant, issued, Box::new(subject)))
        }
        Rotation::ReuseDetected { family_id, user_id } => Ok(Rotated::Reuse { family_id, user_id }),
    }
}

/// What an access token says about its holder, read in the transaction
/// that issued the session (no extra read transaction on the hot path).
pub struct Subject {
    user: User,
    membership: Option<accounts::Membership>,
    client: Option<Client>,
}

pub(crate) fn subject(tx: &Connection, grant: &Grant) -> Result<Subject, Error> {
    let client = match &grant.client_id {
        Some(c) => accounts::get_client(tx, c)?,
        None => None,
    };
    subject_with(tx, grant, client)
}

/// `subject`, with the session's client already read.
fn subject_with(tx: &Connection, grant: &Grant, client: Option<Client>) -> Result<Subject, Error> {
    let user = accounts::get_user(tx, &grant.user_id)?.ok_or(Error::TokenInvalid)?;
    let membership = match &grant.tenant_id {
        // A session in a tenant the user has left ends at its next refresh.
        Some(t) => Some(accounts::membership(tx, &user.id, t)?.ok_or(Error::TokenRevoked)?),
        None => None,
    };
    Ok(Subject {
        user,
        membership,
        client,
    })
}

/// Signs an access token for a session (outside the writer lock).
pub(crate) fn mint(cx: &Ctx, s: Subject, grant: &Grant, issued: &Issued) -> Result<Tokens, Error> {
    let now = cx.now();
    let Subject {
        user,
        membership,
        client,
    } = s;
    let ttl = client
        .as_ref()
        .map(|c| c.access_ttl)
        .unwrap_or(cx.app.config.access_ttl);
    let role = if user.is_admin() {
        "admin".to_string()
    } else {
        membership
            .as_ref()
            .map(|m| m.role.clone())
            .unwrap_or_else(|| user.role.clone())
    };
    let auth_client_id = client.as_ref().map(|c| c.num);
    let claims = Claims {
        iss: cx.app.issuer.clone(),
        sub: user.id.clone(),
        aud: client
            .map(|c| c.client_id)
            .unwrap_or_else(|| "hallpass".into()),
        exp: now + ttl,
        iat: now,
        nbf: None,
        jti: uuid_v4()?,
        sid: issued.family_id.clone(),
        tenantId: grant.tenant_id.clone(),
        userTenantId: membership.map(|m| m.id),
        role,
        permissions: user.permissions.clone(),
        amr: grant.amr.clone(),
        id: user.id.clone(),
        username: user.username.clone(),
        email: user.email.clone(),
        authClientId: auth_client_id,
    };
    let access_token = cx.app.keys()?.sign(&claims)?;
    Ok(Tokens {
        access_token,
        refresh_token: issued.refresh_token.clone(),
        expires_in: ttl,
        expires_at: now + ttl,
        user,
        claims,
    })
}

/// Authenticates a bearer access token: signature, expiry, a live session
/// and an active user. Cached verification keeps this cheap.
///
/// A token the OpenID Provider issued to an app (its session has a scope)
/// is refused here: it is for that app and for /oauth2/userinfo, never
/// for hallpass's own APIs (RFC 9700 §2.3), or an app a person signed
/// into would hold the person's, even an admin's, power over hallpass.
pub fn authenticate(cx: &Ctx, token: &str) -> Result<(Arc<Claims>, User), Error> {
    match authenticate_any(cx, token)? {
        (_, _, true) => Err(Error::TokenInvalid),
        (claims, user, false) => Ok((claims, user)),
    }
}

/// An access token of a provider session (an app's), for the provider's
/// own endpoints (userinfo); anything else is refused.
pub fn authenticate_app(cx: &Ctx, token: &str) -> Result<(Arc<Claims>, User), Error> {
    match authenticate_any(cx, token)? {
        (claims, user, true) => Ok((claims, user)),
        _ => Err(Error::TokenInvalid),
    }
}

/// A live access token, its user, and whether its session is a provider
/// session.
fn authenticate_any(cx: &Ctx, token: &str) -> Result<(Arc<Claims>, User, bool), Error> {
    let now = cx.now();
    let keys = cx.app.keys()?;
    let claims = cx.app.verified.verify(&keys, token, &cx.app.issuer, now)?;
    let (user, live, provider) =
        sessions::session_user(&cx.conn, &claims.sub, &claims.sid)?.ok_or(Error::TokenRevoked)?;
    if !live {
        return Err(Error::TokenRevoked);
    }
    if !user.is_active() {
        return Err(Error::UserInactive);
    }
    Ok((claims, user, provider))
}

/// Ends the bearer's session, and the session of `refresh_token` when it
/// is the same user's.
pub fn logout(
    cx: &mut Ctx,
    claims: &Claims,
    refresh_token: Option<&str>,
    peer: &Peer,
) -> Result<(), Error> {
    let now = cx.now();
    let other = match refresh_token {
        Some(t) => match sessions::peek(&cx.conn, t)? {
            Some((family, user)) if user == claims.sub => Some(family),
            _ => return Err(Error::TokenInvalid),
        },
        None => None,
    };
    cx.write(|tx| {
        sessions::revoke_family(tx, &claims.sid, "logout", now)?;
        if let Some(f) = &other {
            sessions::revoke_family(tx, f, "logout", now)?;
        }
        audit::record(
            tx,
            &Entry {
                actor: Some(&claims.sub),
                tenant_id: claims.tenantId.as_deref(),
                client_id: Some(&claims.aud),
                login_type: "LOGOUT",
                outcome: "success",
                method: "logout",
                amr: &claims.amr,
                ip: &peer.ip,
                user_agent: peer.user_agent.as_deref(),
            },
            now,
        )
    })
}

/// Changes a signed-in user's password: the old one must be right (a
/// credential check, with the same limits as sign-in), the new one must
/// pass the policy and differ. Every other session is ended.
pub fn change_password(
    cx: &mut Ctx,
    claims: &Claims,
    user: &User,
    old: &str,
    new: &str,
    peer: &Peer,
) -> Result<(), Error> {
    change_password_and(cx, user, old, new, peer, |tx, now| {
        sessions::revoke_user_families(tx, &user.id, Some(&claims.sid), "password changed", now)
            .map(|_| ())
    })
}

/// The password change behind every caller (`change_password`, the
/// account page): `end`, run in the transaction that stores the new hash,
/// ends the sessions the caller's kind of session says (a bearer keeps its
/// own token family; the account page its browser, under a new id).
///
/// `user` is the row read when the request began, and the current
/// password is checked against its hash; the new hash is computed outside
/// any transaction (it is slow). So the write stores the new hash only if
/// the stored one is still the hash that was checked: a reset, an admin's
/// change or another change that landed in between is never undone by
/// this one, which is then refused as `IncorrectPassword` (the password
/// given is no longer the current one). In the same transaction every
/// emailed link and code of the account and every half-done sign-in
/// owing a second factor is used up (`codes::void_user`), as a reset
/// does: nothing mailed or begun under the old password outlives it.
pub fn change_password_and<T>(
    cx: &mut Ctx,
    user: &User,
    old: &str,
    new: &str,
    peer: &Peer,
    end: impl FnOnce(&Transaction, i64) -> Result<T, Error>,
) -> Result<T, Error> {
    let now = cx.now();
    check_current_password(cx, user, old, peer)?;
    if old == new {
        return Err(Error::invalid(
            "password",
            "same_as_old",
            "The new password must differ from the old one",
        ));
    }
    password::check_policy("password", new)?;
    // `check_current_password` refuses an account without a password, so
    // there is a verified hash here.
    let verified = user.password_hash.clone().ok_or(Error::IncorrectPassword)?;
    let hash = {
        let _permit = cx.app.gate.enter()?;
        password::hash(new, cx.app.config.pbkdf2_iterations)?
    };
    cx.write(|tx| {
        if !accounts::replace_password_hash(tx, &user.id, &verified, &hash, now)? {
            return Err(Error::IncorrectPassword);
        }
        // A new password makes every source's guesses at the old one moot.
        softlock::clear_password(tx, &user.id)?;
        sessions::drop_codes(tx, &user.id)?;
        codes::void_user(tx, &user.id, now)?;
        end(tx, now)
    })
}

/// Checks a signed-in user's own password before a sensitive change
/// (re-authentication): the sign-in rate limit, then the account's
/// password soft lock from this source, counted before the hash runs and
/// taken back when it is right. A wrong one is `IncorrectPassword`.
pub fn check_current_password(
    cx: &mut Ctx,
    user: &User,
    given: &str,
    peer: &Peer,
) -> Result<(), Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let lock = softlock::Lock::password(Some(&user.id), "", &peer.ip);
    let lim = cx.app.config.limits.clone();
    let stored = user.password_hash.clone();
    let (counted, ok) = {
        // The slot first, then the count, as in `check_password`: a busy
        // refusal is no wrong password, and concurrent guesses cannot
        // overrun the budget.
        let app = cx.app.clone();
        let _permit = app.gate.enter()?;
        let counted = cx.write(|tx| {
            softlock::check(tx, &lock, &lim, now)?;
            softlock::record_failure(tx, &lock, &lim, now)
        })?;
        let ok = password::verify(given, stored.as_deref().unwrap_or(&cx.app.dummy_hash))
            && stored.is_some();
        (counted, ok)
    };
    if !ok {
        return Err(Error::IncorrectPassword);
    }
    // The password was right: not a failure, whatever follows.
    cx.write(|tx| softlock::clear(tx, &lock, Some(counted), now))
}

/// When the soft lock on `login` ends for the caller's source (unix
/// seconds; 0 when it may try now): its own delay, or, when the account
/// budget refuses it, when the budget has room; never a delay another
/// source caused. With `proved` (the caller just gave the right password
/// and owes a second factor), also the second factor's lock as it applies
/// to this source, which tells nothing to someone without the password.
pub fn lock_ends(cx: &Ctx, login: &str, peer: &Peer, proved: bool) -> Result<i64, Error> {
    let now = cx.now();
    let lim = &cx.app.config.limits;
    let user = accounts::find_user_by_login(&cx.conn, login)?;
    let id = user.as_ref().map(|u| u.id.as_str());
    let password = softlock::Lock::password(id, login, &peer.ip);
    let mut until = softlock::locked_until(&cx.conn, &password, lim, now)?;
    if let (Some(id), true) = (id, proved) {
        let factor = softlock::Lock::factor(id, &peer.ip);
        until = until.max(softlock::locked_until(&cx.conn, &factor, lim, now)?);
    }
    Ok(until)
}
