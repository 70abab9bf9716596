//! Sign-up, shared by every dialect: sign-up tokens (who may ask for one
//! depends on `signup`), creating the user from a token, fast sign-up when
//! sign-up is open, and the verification link of a fast sign-up's address.
//! The rules of emailed.rs hold here too (stored hashed, mailed in the same
//! transaction, redeemed in one transaction, no enumeration: a duplicate
//! address is never revealed to an anonymous caller, its owner gets a mail
//! instead; no mailbox flood).

use serde_json::json;

use crate::accounts::{self, Client, NewUser, User};
use crate::app::Ctx;
use crate::auth::{self, Peer, Tokens};
use crate::codes::{self, Link};
use crate::config::Signup;
use crate::emailed::{dead, nobody, queue, refuse_line_breaks, send, SIGNUP_TTL, VERIFY_TTL};
use crate::error::Error;
use crate::limits::Family;
use crate::mail::{Kind, Mail};
use crate::password;

/// Who asks for a sign-up token.
#[derive(Debug, Clone, PartialEq)]
pub enum Inviter {
    /// Nobody in particular (allowed only when `signup = "open"`).
    Anyone,
    /// A server admin (bearer).
    Admin,
    /// An API key with `users:write`; the new user joins its tenant.
    Tenant(String),
}

/// Who the `Authorization` bearer of a create-token request is: an API
/// key (with `users:write` to count), or an access token (an admin to
/// count). No bearer is `Anyone`; a bearer that is neither is 401.
pub fn inviter(cx: &Ctx, bearer: Option<&str>) -> Result<Inviter, Error> {
    let Some(b) = bearer else {
        return Ok(Inviter::Anyone);
    };
    match accounts::authenticate_api_key(&cx.conn, b) {
        Ok(k) if k.has_scope("users:write") => return Ok(Inviter::Tenant(k.tenant_id)),
        Ok(_) => return Ok(Inviter::Anyone),
        Err(Error::Unauthenticated) => {}
        Err(e) => return Err(e),
    }
    let (_, user) = auth::authenticate(cx, b)?;
    Ok(if user.is_admin() {
        Inviter::Admin
    } else {
        Inviter::Anyone
    })
}

/// native POST /auth/signup/create-token: mails a sign-up link
/// `{public_url}/signup?token=` (24 h) to `email`; when the address has an
/// account, its owner gets an "account exists" mail instead and the
/// caller learns nothing. `signup = "off"` refuses everyone (403),
/// `"invite"` everyone but an admin or a `users:write` key (403).
pub fn create_signup_token(
    cx: &mut Ctx,
    inviter: &Inviter,
    email: &str,
    peer: &Peer,
) -> Result<(), Error> {
    let now = cx.now();
    match (cx.app.config.signup, inviter) {
        (Signup::Off, _) => return Err(Error::Forbidden("Sign-up is turned off".into())),
        (Signup::Invite, Inviter::Anyone) => {
            return Err(Error::Forbidden(
                "Sign-up is by invitation: an admin or an API key with users:write creates sign-up tokens".into(),
            ))
        }
        _ => {}
    }
    refuse_line_breaks("email", email)?;
    accounts::check_email("email", email)?;
    let email = email.trim().to_string();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let exists = accounts::find_user_by_login(&cx.conn, &email)?.is_some();
    let tenant = match inviter {
        Inviter::Tenant(t) => Some(t.clone()),
        _ => None,
    };
    let data = json!({ "email": email, "tenant": tenant }).to_string();
    let out = cx.app.mail.clone();
    let base = cx.app.public_url.clone();
    cx.write(|tx| {
        // The link is written either way (the same work); for an address
        // with an account it is rolled back and the owner told instead.
        send(tx, codes::SIGNUP, &email, true, now, |tx| {
            tx.execute_batch("SAVEPOINT signup")?;
            let token = codes::issue_link(
                tx,
                codes::SIGNUP,
                &nobody(&email),
                None,
                Some(&data),
                SIGNUP_TTL,
                now,
            )?;
            let link = format!("{base}/signup?token={token}");
            let values = [("link", link.as_str()), ("minutes", "1440")];
            queue(
                tx,
                &out,
                Mail {
                    kind: Kind::SignUp,
                    to: &email,
                    values: &values,
                },
                now,
            )?;
            if exists {
                tell_owner_instead(tx, &out, &email, "signup", now)?;
            }
            tx.execute_batch("RELEASE signup")?;
            Ok(())
        })
    })?;
    Ok(())
}

/// The address and tenant a sign-up link was made for.
fn signup_data(f: &codes::Found) -> Result<(String, Option<String>), Error> {
    let v: serde_json::Value = serde_json::from_str(f.data.as_deref().unwrap_or("{}"))?;
    let email = v["email"]
        .as_str()
        .ok_or_else(|| Error::Internal("sign-up token without an address".into()))?;
    Ok((email.to_string(), v["tenant"].as_str().map(str::to_string)))
}

/// native GET /auth/signup/verify-token: the address and expiry (unix
/// seconds) of a live sign-up token.
pub fn check_signup_token(cx: &Ctx, token: &str) -> Result<(String, i64), Error> {
    match codes::lookup_link(&cx.conn, codes::SIGNUP, token, cx.now())? {
        Link::Live(f) => Ok((signup_data(&f)?.0, f.expires_at)),
        other => Err(dead(&other)),
    }
}

/// What create-user is given besides the token.
pub struct SignupForm<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub name: Option<&'a str>,
    pub username: Option<&'a str>,
}

/// native POST /auth/signup/create-user: creates the account the sign-up
/// token was mailed for. The email must be the token's (422, the token
/// kept); the token is used up with the creation, in one transaction
/// (401 on reuse); the address counts as verified.
pub fn create_user(
    cx: &mut Ctx,
    token: &str,
    form: &SignupForm,
    peer: &Peer,
) -> Result<User, Error> {
    create_user_then(cx, token, form, peer, |_, _| Ok(())).map(|(user, ())| user)
}

/// `create_user`, then `then` with the new user in the same transaction
/// (the sign-up page starts the browser's session in it).
pub fn create_user_then<T>(
    cx: &mut Ctx,
    token: &str,
    form: &SignupForm,
    peer: &Peer,
    then: impl FnOnce(&rusqlite::Transaction, &User) -> Result<T, Error>,
) -> Result<(User, T), Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    check_signup_token(cx, token)?;
    refuse_line_breaks("email", form.email)?;
    accounts::check_email("email", form.email)?;
    if let Some(u) = form.username {
        accounts::check_username("username", u)?;
    }
    if let Some(n) = form.name {
        refuse_line_breaks("name", n)?;
    }
    password::check_policy("password", form.password)?;
    let hash = {
        let _permit = cx.app.gate.enter()?;
        password::hash(form.password, cx.app.config.pbkdf2_iterations)?
    };
    cx.write(|tx| {
        let f = match codes::lookup_link(tx, codes::SIGNUP, token, now)? {
            Link::Live(f) => f,
            other => return Err(dead(&other)),
        };
        let (email, tenant) = signup_data(&f)?;
        if !email.eq_ignore_ascii_case(form.email.trim()) {
            return Err(Error::invalid(
                "email",
                "mismatch",
                "email must be the address the sign-up link was sent to",
            ));
        }
        if !codes::consume(tx, &f.hash, now)? {
            return Err(Error::TokenRevoked);
        }
        let new = NewUser {
            email: Some(email),
            username: form.username.map(str::to_string),
            name: form.name.map(str::to_string),
            password_hash: Some(hash),
            role: "user".into(),
            tenant_id: tenant,
            ..NewUser::default()
        };
        let user = accounts::create_user(tx, &new, now)?;
        accounts::mark_email_verified(tx, &user.id, now)?;
        let user = accounts::get_user(tx, &user.id)?
            .ok_or_else(|| Error::Internal("user vanished".into()))?;
        let more = then(tx, &user)?;
        Ok((user, more))
    })
}

/// What fast sign-up is given.
pub struct FastForm<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub email: &'a str,
    pub phone: Option<&'a str>,
}

/// native POST /auth/signup/fast (only when `signup = "open"`): creates the
/// account by username and signs it in. The address is not the account's
/// until the verification link mailed to it is used (`verify_email`):
/// until then nobody can squat an address by signing up with it, and an
/// address that has an account gets an "account exists" mail instead, so
/// the answer never says whether it has one. A taken username is 409.
pub fn fast_signup(
    cx: &mut Ctx,
    client: &Client,
    form: &FastForm,
    peer: &Peer,
) -> Result<Tokens, Error> {
    let now = cx.now();
    if cx.app.config.signup != Signup::Open {
        return Err(Error::Forbidden("Sign-up is not open".into()));
    }
    // A consent client signs people in at the provider only.
    crate::oidc::consent::provider_only(client)?;
    refuse_line_breaks("email", form.email)?;
    accounts::check_email("email", form.email)?;
    accounts::check_username("username", form.username)?;
    if let Some(p) = form.phone {
        refuse_line_breaks("phone", p)?;
    }
    password::check_policy("password", form.password)?;
    cx.app.limiter.take(Family::Login, &peer.ip, now)?;
    let hash = {
        let _permit = cx.app.gate.enter()?;
        password::hash(form.password, cx.app.config.pbkdf2_iterations)?
    };
    let email = form.email.trim().to_string();
    let out = cx.app.mail.clone();
    let base = cx.app.public_url.clone();
    let user = cx.write(|tx| {
        let new = NewUser {
            username: Some(form.username.to_string()),
            phone: form.phone.map(str::to_string),
            password_hash: Some(hash),
            role: "user".into(),
            ..NewUser::default()
        };
        let user = accounts::create_user(tx, &new, now)?;
        let taken = accounts::find_user_by_login(tx, &email)?.is_some();
        send(tx, codes::SIGNUP, &email, true, now, |tx| {
            tx.execute_batch("SAVEPOINT verify")?;
            let token = codes::issue_link(
                tx,
                codes::VERIFY_EMAIL,
                &user.id,
                Some(&user.id),
                Some(&email),
                VERIFY_TTL,
                now,
            )?;
            let link = format!("{base}/auth/verify-email?token={token}");
            let values = [("link", link.as_str()), ("minutes", "1440")];
            queue(
                tx,
                &out,
                Mail {
                    kind: Kind::VerifyEmail,
                    to: &email,
                    values: &values,
                },
                now,
            )?;
            if taken {
                tell_owner_instead(tx, &out, &email, "verify", now)?;
            }
            tx.execute_batch("RELEASE verify")?;
            Ok(())
        })?;
        Ok(user)
    })?;
    let grant = auth::grant_for(&user, Some(client), &["pwd"]);
    auth::issue_tokens(cx, Some(client), &grant, "signup", peer)
}

/// GET /auth/verify-email?token= (ours; the link of the fast sign-up's
/// mail): the address becomes the account's, verified. Used: TokenRevoked;
/// unknown or expired: TokenExpired; taken by another account meanwhile:
/// 409 (the caller holds the mail, so this tells them nothing new).
pub fn verify_email(cx: &mut Ctx, token: &str) -> Result<String, Error> {
    let now = cx.now();
    cx.write(|tx| {
        let f = match codes::lookup_link(tx, codes::VERIFY_EMAIL, token, now)? {
            Link::Live(f) => f,
            other => return Err(dead(&other)),
        };
        let email = f.data.clone().unwrap_or_default();
        if !codes::consume(tx, &f.hash, now)? {
            return Err(Error::TokenRevoked);
        }
        accounts::set_email(tx, &f.user_id, &email, now)?;
        accounts::mark_email_verified(tx, &f.user_id, now)?;
        Ok(email)
    })
}

/// For an address that already has an account: undoes what was written
/// since `savepoint` (the token and its mail, so the work done matched a
/// new address's) and mails the owner that someone tried to sign up.
fn tell_owner_instead(
    tx: &rusqlite::Connection,
    out: &crate::mail::Outgoing,
    email: &str,
    savepoint: &str,
    now: i64,
) -> Result<(), Error> {
    tx.execute_batch(&format!("ROLLBACK TO {savepoint}"))?;
    queue(
        tx,
        out,
        Mail {
            kind: Kind::AccountExists,
            to: email,
            values: &[],
        },
        now,
    )?;
    Ok(())
}
