//! Sessions: refresh-token families and auth codes.
//!
//! A sign-in starts a *family*. Its first refresh token is a 256-bit random
//! value stored only as SHA-256. Every use rotates it: the presented token is
//! marked used and a child is issued in the same family. Presenting a token
//! that was already rotated means two parties hold it, so the whole family is
//! revoked (OAuth 2.0 Security BCP, RFC 9700 §4.14.2) — except within
//! `GRACE` seconds of its rotation, where it is honoured once more with a new
//! pair (two browser tabs refreshing at once).
//!
//! Auth codes are single use, bound to the client they were issued to, and
//! live `auth_code_ttl` seconds.
//!
//! Every multi-statement change here takes a `&Transaction`: the caller owns
//! the `BEGIN IMMEDIATE`.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::accounts::{user_cols, user_from_row, User};
use crate::crypto::{random_token, token_hash, uuid_v4};
use crate::error::Error;

/// How long a rotated refresh token may be presented again, in seconds.
pub const GRACE: i64 = 10;

/// Who a session is for and how they proved it.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub user_id: String,
    /// None for dialects without clients (yat, mfa).
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    /// RFC 8176 method references: ["pwd"], ["pwd","otp"], …
    pub amr: Vec<String>,
}

/// A refresh token just issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub family_id: String,
    pub refresh_token: String,
    pub expires_at: i64,
}

/// Starts a family and issues its first refresh token. A family started
/// with `mfa_pending` is a limited session: its access tokens are refused
/// and its refresh token is good only for `complete_second_factor`.
pub fn start_family(
    tx: &Transaction,
    grant: &Grant,
    mfa_pending: bool,
    refresh_ttl: i64,
    now: i64,
) -> Result<Issued, Error> {
    let family_id = uuid_v4()?;
    tx.prepare_cached(
        "INSERT INTO token_families (id, user_id, client_id, amr, aal, mfa_pending, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        family_id,
        grant.user_id,
        grant.client_id,
        serde_json::to_string(&grant.amr)?,
        aal(&grant.amr),
        mfa_pending,
        now
    ])?;
    insert_token(
        tx,
        &family_id,
        None,
        grant.tenant_id.as_deref(),
        refresh_ttl,
        now,
    )
}

/// The assurance level of a set of methods: 2 with a second factor.
fn aal(amr: &[String]) -> i64 {
    if amr.len() > 1 {
        2
    } else {
        1
    }
}

fn insert_token(
    tx: &Transaction,
    family_id: &str,
    parent: Option<&str>,
    tenant_id: Option<&str>,
    ttl: i64,
    now: i64,
) -> Result<Issued, Error> {
    let token = random_token()?;
    tx.prepare_cached(
        "INSERT INTO refresh_tokens (hash, family_id, parent_hash, tenant_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![token_hash(&token), family_id, parent, tenant_id, now, now + ttl])?;
    Ok(Issued {
        family_id: family_id.to_string(),
        refresh_token: token,
        expires_at: now + ttl,
    })
}

/// What a refresh attempt found.
#[derive(Debug)]
pub enum Rotation {
    /// A new pair; `grant` is the session it belongs to.
    Rotated { grant: Grant, issued: Issued },
    /// The token had been rotated already: the family is now revoked.
    ReuseDetected { family_id: String, user_id: String },
}

/// Rotates `token`. `tenant` switches the session to another tenant (the
/// caller checks membership first). Reuse revokes the family and is
/// reported as `ReuseDetected`, so the caller can commit the revocation and
/// then refuse.
pub fn rotate(
    tx: &Transaction,
    token: &str,
    tenant: Option<&str>,
    refresh_ttl: impl Fn(Option<&str>) -> i64,
    now: i64,
) -> Result<Rotation, Error> {
    let hash = token_hash(token);
    let row = tx
        .prepare_cached(
            "SELECT t.family_id, t.tenant_id, t.expires_at, t.used_at, t.grace_used,
                    f.user_id, f.client_id, f.amr, f.revoked_at, f.mfa_pending
               FROM refresh_tokens t JOIN token_families f ON f.id = t.family_id
              WHERE t.hash = ?1",
        )?
        .query_row([&hash], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<i64>>(8)?,
                r.get::<_, bool>(9)?,
            ))
        })
        .optional()?;
    let Some((
        family_id,
        old_tenant,
        expires_at,
        used_at,
        grace_used,
        user_id,
        client_id,
        amr,
        revoked_at,
        mfa_pending,
    )) = row
    else {
        return Err(Error::TokenInvalid);
    };
    if revoked_at.is_some() {
        return Err(Error::TokenRevoked);
    }
    if mfa_pending {
        return Err(Error::MfaRequired);
    }
    if expires_at <= now {
        return Err(Error::TokenExpired);
    }
    match used_at {
        // Marked used below, with the family's other unused tokens.
        None => {}
        Some(used) if now - used <= GRACE && !grace_used => {
            tx.prepare_cached("UPDATE refresh_tokens SET grace_used = 1 WHERE hash = ?1")?
                .execute([&hash])?;
        }
        Some(_) => {
            revoke_family(tx, &family_id, "refresh token reuse", now)?;
            return Ok(Rotation::ReuseDetected { family_id, user_id });
        }
    }
    // The presented token is used now, and so is any other unused token of
    // the family (the child of an earlier presentation inside the grace
    // window): only one chain lives on, and whichever branch comes back
    // after the window is reuse.
    tx.prepare_cached(
        "UPDATE refresh_tokens SET used_at = ?2 WHERE family_id = ?1 AND used_at IS NULL",
    )?
    .execute(params![family_id, now])?;
    let tenant_id = tenant.map(str::to_string).or(old_tenant);
    let ttl = refresh_ttl(client_id.as_deref());
    let issued = insert_token(tx, &family_id, Some(&hash), tenant_id.as_deref(), ttl, now)?;
    Ok(Rotation::Rotated {
        grant: Grant {
            user_id,
            client_id,
            tenant_id,
            amr: serde_json::from_str(&amr).unwrap_or_default(),
        },
        issued,
    })
}

/// The family and user of a refresh token, without using it.
pub fn peek(conn: &Connection, token: &str) -> Result<Option<(String, String)>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT f.id, f.user_id FROM refresh_tokens t JOIN token_families f ON f.id = t.family_id
              WHERE t.hash = ?1",
        )?
        .query_row([token_hash(token)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// A limited session (second factor owed) found by its refresh token.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    pub family_id: String,
    pub user_id: String,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub amr: Vec<String>,
}

/// The limited session whose live refresh token is `token`; None when the
/// token is unknown, used, expired, revoked or not of a limited session.
pub fn limited_session(conn: &Connection, token: &str, now: i64) -> Result<Option<Limited>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT f.id, f.user_id, f.client_id, t.tenant_id, f.amr
               FROM refresh_tokens t JOIN token_families f ON f.id = t.family_id
              WHERE t.hash = ?1 AND t.used_at IS NULL AND t.expires_at > ?2
                AND f.revoked_at IS NULL AND f.mfa_pending = 1",
        )?
        .query_row(params![token_hash(token), now], |r| {
            let amr: String = r.get(4)?;
            Ok(Limited {
                family_id: r.get(0)?,
                user_id: r.get(1)?,
                client_id: r.get(2)?,
                tenant_id: r.get(3)?,
                amr: serde_json::from_str(&amr).unwrap_or_default(),
            })
        })
        .optional()?)
}

/// Makes a limited session a full one now that the second factor was
/// given: its refresh token is used up, the session records `amr`, and a
/// new refresh token with the full lifetime is issued. None when the token
/// was used meanwhile (a race lost).
pub fn promote(
    tx: &Transaction,
    token: &str,
    limited: &Limited,
    amr: &[String],
    refresh_ttl: i64,
    now: i64,
) -> Result<Option<Issued>, Error> {
    let hash = token_hash(token);
    // grace_used: a limited token gets no grace window; presented again,
    // it is reuse, and ends the session.
    let used = tx
        .prepare_cached(
            "UPDATE refresh_tokens SET used_at = ?2, grace_used = 1 WHERE hash = ?1 AND used_at IS NULL",
        )?
        .execute(params![hash, now])?;
    if used != 1 {
        return Ok(None);
    }
    tx.prepare_cached(
        "UPDATE token_families SET mfa_pending = 0, amr = ?2, aal = ?3 WHERE id = ?1 AND mfa_pending = 1",
    )?
    .execute(params![limited.family_id, serde_json::to_string(amr)?, aal(amr)])?;
    insert_token(
        tx,
        &limited.family_id,
        Some(&hash),
        limited.tenant_id.as_deref(),
        refresh_ttl,
        now,
    )
    .map(Some)
}

/// Revokes one family (idempotent).
pub fn revoke_family(
    tx: &Connection,
    family_id: &str,
    reason: &str,
    now: i64,
) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE token_families SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![family_id, now, reason])?;
    Ok(())
}

/// Revokes every family of a user, but `keep`, and ends all their browser
/// sessions (web/session.rs).
pub fn revoke_user_families(
    tx: &Connection,
    user_id: &str,
    keep: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<usize, Error> {
    // The browser sessions of the sign-in pages end with them, every one
    // (`keep` names a token family, never a browser): a disabled user, a
    // new password, sessions ended by an admin.
    crate::web::session::end_user(tx, user_id)?;
    revoke_user_tokens(tx, user_id, keep, reason, now)
}

/// Revokes every token family of a user but `keep`, and no browser
/// session (the account page's "sign out other sessions", which ends the
/// other browsers itself and keeps its own). Returns how many.
pub fn revoke_user_tokens(
    tx: &Connection,
    user_id: &str,
    keep: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<usize, Error> {
    Ok(tx.execute(
        "UPDATE token_families SET revoked_at = ?2, revoked_reason = ?3
          WHERE user_id = ?1 AND revoked_at IS NULL AND id IS NOT ?4",
        params![user_id, now, reason, keep],
    )?)
}

/// Revokes one family of `user_id` (the admin API's "end this session").
/// False when the user has no live family of that id.
pub fn revoke_user_family(
    tx: &Connection,
    user_id: &str,
    family_id: &str,
    reason: &str,
    now: i64,
) -> Result<bool, Error> {
    Ok(tx
        .prepare_cached(
            "UPDATE token_families SET revoked_at = ?3, revoked_reason = ?4
              WHERE id = ?2 AND user_id = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![user_id, family_id, now, reason])?
        == 1)
}

/// Ends what the OpenID provider gave `client_id` for `user_id` (a
/// withdrawn consent, oidc/consent.rs): their provider token families
/// (those with a scope) are revoked and their unused provider codes
/// deleted. The app's native-dialect sessions are not the consent's.
pub fn revoke_provider_grant(
    tx: &Connection,
    user_id: &str,
    client_id: &str,
    reason: &str,
    now: i64,
) -> Result<usize, Error> {
    tx.prepare_cached(
        "DELETE FROM auth_codes
          WHERE user_id = ?1 AND client_id = ?2 AND used_at IS NULL AND scope IS NOT NULL",
    )?
    .execute(params![user_id, client_id])?;
    Ok(tx
        .prepare_cached(
            "UPDATE token_families SET revoked_at = ?3, revoked_reason = ?4
              WHERE user_id = ?1 AND client_id = ?2 AND scope IS NOT NULL
                AND revoked_at IS NULL",
        )?
        .execute(params![user_id, client_id, now, reason])?)
}

/// A live session as an operator sees it: never a token.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Session {
    /// The family id (the access tokens' `sid`).
    pub id: String,
    pub client_id: Option<String>,
    pub amr: Vec<String>,
    pub created_at: i64,
    /// When its refresh token was last rotated (or issued).
    pub last_refreshed_at: i64,
    /// When its live refresh token expires.
    pub expires_at: i64,
}

/// A user's live sessions (not revoked, no second factor owed, holding an
/// unused refresh token that has not expired), newest first.
pub fn live_sessions(conn: &Connection, user_id: &str, now: i64) -> Result<Vec<Session>, Error> {
    let mut st = conn.prepare_cached(
        "SELECT f.id, f.client_id, f.amr, f.created_at, max(t.created_at), max(t.expires_at)
           FROM token_families f JOIN refresh_tokens t ON t.family_id = f.id
          WHERE f.user_id = ?1 AND f.revoked_at IS NULL AND f.mfa_pending = 0
          GROUP BY f.id
         HAVING sum(t.used_at IS NULL AND t.expires_at > ?2) > 0
          ORDER BY f.created_at DESC, f.id",
    )?;
    let rows = st.query_map(params![user_id, now], |r| {
        let amr: String = r.get(2)?;
        Ok(Session {
            id: r.get(0)?,
            client_id: r.get(1)?,
            amr: serde_json::from_str(&amr).unwrap_or_default(),
            created_at: r.get(3)?,
            last_refreshed_at: r.get(4)?,
            expires_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The user of a bearer token, read together with whether its session is
/// live (not revoked, no second factor owed): one statement, so one read transaction (the hot path of
/// every authenticated request).
pub fn session_user(
    conn: &Connection,
    user_id: &str,
    family_id: &str,
) -> Result<Option<(User, bool, bool)>, Error> {
    let sql = concat!(
        "SELECT ",
        user_cols!(),
        ", (SELECT revoked_at IS NULL AND mfa_pending = 0 FROM token_families WHERE id = ?2 AND user_id = ?1),
           (SELECT scope IS NOT NULL FROM token_families WHERE id = ?2 AND user_id = ?1)
           FROM users WHERE id = ?1 AND deleted_at IS NULL"
    );
    Ok(conn
        .prepare_cached(sql)?
        .query_row([user_id, family_id], |r| {
            let live: Option<bool> = r.get(15)?;
            let provider: Option<bool> = r.get(16)?;
            Ok((
                user_from_row(r)?,
                live.unwrap_or(false),
                provider.unwrap_or(false),
            ))
        })
        .optional()?)
}

/// True when the user holds a live session of this client (for RELOGIN).
pub fn has_live_session(
    conn: &Connection,
    user_id: &str,
    client_id: Option<&str>,
    now: i64,
) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM token_families f JOIN refresh_tokens t ON t.family_id = f.id
               WHERE f.user_id = ?1 AND f.client_id IS ?2 AND f.revoked_at IS NULL
                 AND t.used_at IS NULL AND t.expires_at > ?3)",
        )?
        .query_row(params![user_id, client_id, now], |r| r.get(0))?)
}

/// An auth code's contents after redemption.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeGrant {
    pub grant: Grant,
    /// A second factor is still owed: /auth/token refuses the code until
    /// /auth/verify-otp swaps it for one without the debt.
    pub mfa_owed: bool,
    /// How the first step of an owed sign-in was made (`password`, a
    /// provider's name, ...), for the activity row written when it is
    /// settled.
    pub first_method: Option<String>,
    /// The PKCE challenge (RFC 7636, S256) the exchange must answer.
    pub challenge: Option<String>,
}

/// Issues a single-use auth code for a client. `owed_after` is, for a
/// code that still owes a second factor, how its first step was made.
pub fn issue_code(
    tx: &Transaction,
    grant: &Grant,
    client_id: &str,
    owed_after: Option<&str>,
    challenge: Option<&str>,
    ttl: i64,
    now: i64,
) -> Result<String, Error> {
    let code = random_token()?;
    tx.prepare_cached(
        "INSERT INTO auth_codes (hash, client_id, user_id, tenant_id, amr, mfa_owed, code_challenge,
                                 created_at, expires_at, first_method)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        token_hash(&code),
        client_id,
        grant.user_id,
        grant.tenant_id,
        serde_json::to_string(&grant.amr)?,
        owed_after.is_some(),
        challenge,
        now,
        now + ttl,
        owed_after
    ])?;
    Ok(code)
}

/// What redeeming a code found.
#[derive(Debug)]
pub enum Redemption {
    /// A good code; call `bind_code` with the session it buys.
    Valid(CodeGrant),
    /// A code used before: the session it bought was revoked (RFC 6749
    /// §4.1.2); the caller commits that and refuses.
    Replayed,
}

/// How a redemption treats the code's PKCE challenge (RFC 7636).
#[derive(Debug, Clone, Copy)]
pub enum Pkce<'a> {
    /// The token exchange: a code with a challenge needs its verifier, and
    /// a code without one refuses a verifier (RFC 9700 §2.1.1: that is
    /// the mark of a code injected from another flow).
    Verify(Option<&'a str>),
    /// An internal swap (verify-otp): the challenge passes to the next code.
    CarryOver,
}

/// Checks a PKCE challenge as given at sign-in: the method must be named
/// and be S256 (RFC 7636 makes a missing method mean `plain`, which offers
/// nothing over no PKCE), and the challenge 43 base64url characters.
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), Error> {
    if method != Some("S256") {
        return Err(Error::invalid(
            "code_challenge_method",
            "invalid",
            "code_challenge_method must be S256",
        ));
    }
    let ok = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "code_challenge",
            "invalid",
            "code_challenge must be BASE64URL(SHA-256(code_verifier)): 43 characters",
        ))
    }
}

/// Checks a code's PKCE binding at the token exchange.
fn check_verifier(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), Error> {
    let wrong = |m: &str| Error::invalid("code_verifier", "invalid", m);
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(wrong(
            "code_verifier was sent, but the code was issued without a code_challenge",
        )),
        (Some(_), None) => Err(Error::required("code_verifier")),
        (Some(c), Some(v)) => {
            let shaped = (43..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !shaped {
                return Err(wrong(
                    "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
                ));
            }
            let computed = crate::crypto::b64url(&crate::crypto::sha256(v.as_bytes()));
            if crate::crypto::ct_eq(computed.as_bytes(), c.as_bytes()) {
                Ok(())
            } else {
                Err(wrong(
                    "code_verifier does not match the code_challenge given at sign-in",
                ))
            }
        }
    }
}

/// Redeems an auth code: it must exist, belong to `client_id` and answer
/// its PKCE challenge; only then is a replay acted on (so whoever holds a
/// stolen code but not the verifier cannot end the session it bought) and
/// the code, if unused and unexpired, used up. A refusal before that
/// changes nothing.
pub fn redeem_code(
    tx: &Transaction,
    code: &str,
    client_id: &str,
    pkce: Pkce,
    now: i64,
) -> Result<Redemption, Error> {
    let hash = token_hash(code);
    let row = tx
        .prepare_cached(
            "SELECT client_id, user_id, tenant_id, amr, mfa_owed, expires_at, used_at, family_id,
                    code_challenge, first_method
               FROM auth_codes WHERE hash = ?1",
        )?
        .query_row([&hash], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })
        .optional()?;
    let Some((
        owner,
        user_id,
        tenant_id,
        amr,
        mfa_owed,
        expires_at,
        used_at,
        family,
        challenge,
        first_method,
    )) = row
    else {
        return Err(Error::CodeExpired);
    };
    if owner != client_id {
        return Err(Error::CodeExpired);
    }
    if let Pkce::Verify(verifier) = pkce {
        check_verifier(challenge.as_deref(), verifier)?;
    }
    if used_at.is_some() {
        if let Some(f) = family {
            revoke_family(tx, &f, "auth code replayed", now)?;
        }
        return Ok(Redemption::Replayed);
    }
    if expires_at <= now {
        return Err(Error::CodeExpired);
    }
    tx.prepare_cached("UPDATE auth_codes SET used_at = ?2 WHERE hash = ?1")?
        .execute(params![hash, now])?;
    Ok(Redemption::Valid(CodeGrant {
        grant: Grant {
            user_id,
            client_id: Some(owner),
            tenant_id,
            amr: serde_json::from_str(&amr).unwrap_or_default(),
        },
        mfa_owed,
        first_method,
        challenge,
    }))
}

/// A live (unused, unexpired) auth code, without using it: its grant and
/// whether a second factor is owed. With `client_id`, only a code of that
/// client (verify-otp's clientId is optional).
pub fn peek_code(
    conn: &Connection,
    code: &str,
    client_id: Option<&str>,
    now: i64,
) -> Result<Option<CodeGrant>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT user_id, tenant_id, amr, mfa_owed, code_challenge, client_id, first_method
               FROM auth_codes
              WHERE hash = ?1 AND client_id = coalesce(?2, client_id)
                AND used_at IS NULL AND expires_at > ?3",
        )?
        .query_row(params![token_hash(code), client_id, now], |r| {
            let amr: String = r.get(2)?;
            Ok(CodeGrant {
                grant: Grant {
                    user_id: r.get(0)?,
                    client_id: Some(r.get(5)?),
                    tenant_id: r.get(1)?,
                    amr: serde_json::from_str(&amr).unwrap_or_default(),
                },
                mfa_owed: r.get(3)?,
                first_method: r.get(6)?,
                challenge: r.get(4)?,
            })
        })
        .optional()?)
}

/// What a code from the OpenID provider's /oauth2/authorize is bound to
/// besides its client and PKCE challenge.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Binding {
    /// The redirect URI the authorize request named (the token request
    /// must repeat it); None when it named none (one registered).
    pub redirect_uri: Option<String>,
    pub nonce: Option<String>,
    /// The scope granted, space-separated. Provider codes always have one;
    /// native codes none.
    pub scope: Option<String>,
    /// When the person signed in (the browser session's auth_time).
    pub auth_time: Option<i64>,
}

/// Issues a provider code: `issue_code`, then its binding (same
/// transaction).
pub fn issue_provider_code(
    tx: &Transaction,
    grant: &Grant,
    client_id: &str,
    challenge: Option<&str>,
    binding: &Binding,
    ttl: i64,
    now: i64,
) -> Result<String, Error> {
    let code = issue_code(tx, grant, client_id, None, challenge, ttl, now)?;
    tx.prepare_cached(
        "UPDATE auth_codes SET redirect_uri = ?2, nonce = ?3, scope = ?4, auth_time = ?5 WHERE hash = ?1",
    )?
    .execute(params![
        token_hash(&code),
        binding.redirect_uri,
        binding.nonce,
        binding.scope,
        binding.auth_time
    ])?;
    Ok(code)
}

/// A code's provider binding, whatever its state (None for an unknown
/// code); read before `redeem_code` uses it up.
pub fn code_binding(conn: &Connection, code: &str) -> Result<Option<Binding>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT redirect_uri, nonce, scope, auth_time FROM auth_codes WHERE hash = ?1",
        )?
        .query_row([token_hash(code)], |r| {
            Ok(Binding {
                redirect_uri: r.get(0)?,
                nonce: r.get(1)?,
                scope: r.get(2)?,
                auth_time: r.get(3)?,
            })
        })
        .optional()?)
}

/// Marks a session as the provider's: the scope granted and the sign-in
/// time (read by userinfo, introspection and refreshed id_tokens).
pub fn set_family_scope(
    tx: &Connection,
    family_id: &str,
    scope: &str,
    auth_time: Option<i64>,
) -> Result<(), Error> {
    tx.prepare_cached("UPDATE token_families SET scope = ?2, auth_time = ?3 WHERE id = ?1")?
        .execute(params![family_id, scope, auth_time])?;
    Ok(())
}

/// A session as the provider sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub id: String,
    pub user_id: String,
    pub client_id: Option<String>,
    /// None for a session that did not come from the provider.
    pub scope: Option<String>,
    pub auth_time: Option<i64>,
    pub amr: Vec<String>,
    /// Not revoked, no second factor owed.
    pub live: bool,
}

const FAMILY_COLS: &str =
    "f.id, f.user_id, f.client_id, f.scope, f.auth_time, f.amr, f.revoked_at IS NULL AND f.mfa_pending = 0";

fn family_from_row(r: &rusqlite::Row) -> rusqlite::Result<Family> {
    let amr: String = r.get(5)?;
    Ok(Family {
        id: r.get(0)?,
        user_id: r.get(1)?,
        client_id: r.get(2)?,
        scope: r.get(3)?,
        auth_time: r.get(4)?,
        amr: serde_json::from_str(&amr).unwrap_or_default(),
        live: r.get(6)?,
    })
}

/// The session of this id.
pub fn family(conn: &Connection, family_id: &str) -> Result<Option<Family>, Error> {
    let sql = format!("SELECT {FAMILY_COLS} FROM token_families f WHERE f.id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([family_id], family_from_row)
        .optional()?)
}

/// The session of a refresh token, and whether the token itself may still
/// be presented (unused and unexpired); without using it.
pub fn refresh_family(
    conn: &Connection,
    token: &str,
    now: i64,
) -> Result<Option<(Family, bool, i64)>, Error> {
    let sql = format!(
        "SELECT {FAMILY_COLS}, t.used_at IS NULL AND t.expires_at > ?2, t.expires_at
           FROM refresh_tokens t JOIN token_families f ON f.id = t.family_id WHERE t.hash = ?1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![token_hash(token), now], |r| {
            Ok((family_from_row(r)?, r.get(7)?, r.get(8)?))
        })
        .optional()?)
}

/// Records the session a code bought, for replay revocation.
pub fn bind_code(tx: &Transaction, code: &str, family_id: &str) -> Result<(), Error> {
    tx.prepare_cached("UPDATE auth_codes SET family_id = ?2 WHERE hash = ?1")?
        .execute(params![token_hash(code), family_id])?;
    Ok(())
}

/// Deletes a user's unused auth codes (password change, disable).
pub fn drop_codes(tx: &Connection, user_id: &str) -> Result<(), Error> {
    tx.prepare_cached("DELETE FROM auth_codes WHERE user_id = ?1 AND used_at IS NULL")?
        .execute([user_id])?;
    Ok(())
}

/// Deletes expired codes and long-dead tokens (the sweeper).
pub fn sweep(tx: &Connection, now: i64) -> Result<usize, Error> {
    let mut n = tx.execute("DELETE FROM auth_codes WHERE expires_at < ?1", [now - 3600])?;
    n += tx.execute(
        "DELETE FROM refresh_tokens WHERE expires_at < ?1",
        [now - 86_400],
    )?;
    n += tx.execute(
        "DELETE FROM token_families WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = token_families.id)
           AND created_at < ?1",
        [now - 86_400],
    )?;
    Ok(n)
}
