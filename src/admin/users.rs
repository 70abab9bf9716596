//! Users and their sessions, as an operator manages them. A user is named
//! by id, email or username (the CLI's USER). Each change checks the
//! actor's reach (`visible_user`, `writable_user`), makes the change and
//! writes its audit row in one transaction; passwords are checked against
//! the policy and hashed before the transaction opens (hashing is slow,
//! and the writer lock must not wait on it).

use serde_json::{json, Map, Value};

use super::audit::record;
use super::{visible_user, writable_user, Actor, Listing, Page, Store};
use crate::accounts::{self, NewUser, User};
use crate::codes;
use crate::crypto::MasterKey;
use crate::error::Error;
use crate::password;
use crate::sessions::{self, Session};
use crate::social::identities::{self, Identity};
use crate::softlock;
use crate::totp::{self, Confirm, Enrollment, State};

/// A page of the users the actor may see, oldest first; `search` matches
/// a part of the email, username or name, case-insensitively.
pub fn list(
    db: &impl Store,
    actor: &Actor,
    search: Option<&str>,
    page: Page,
) -> Result<Listing<User>, Error> {
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    let (items, total) =
        accounts::search_users(db.conn(), search, actor.tenant(), page.limit, page.offset)?;
    Ok(Listing { items, total, page })
}

/// One user the actor may see.
pub fn get(db: &impl Store, actor: &Actor, ident: &str) -> Result<User, Error> {
    visible_user(db.conn(), actor, ident)
}

/// A user as the CLI's `user show` and `GET /admin/users/{id}` give it:
/// the account (never the password hash), the second factor's state,
/// recovery codes left, and the tenants (name and role).
pub fn detail(db: &impl Store, user: &User) -> Result<Value, Error> {
    let conn = db.conn();
    let mut v = accounts::user_json(user);
    v["mfa"] = json!(match totp::state(conn, &user.id, db.now())? {
        State::On => "on",
        State::Pending => "pending",
        State::Off => "off",
    });
    v["recovery_codes_left"] = json!(totp::recovery_left(conn, &user.id)?);
    let mut named = Vec::new();
    for m in accounts::memberships(conn, &user.id)? {
        let name = accounts::find_tenant(conn, &m.tenant_id)?.map(|t| t.name);
        named.push(json!({"tenant_id": m.tenant_id, "name": name, "role": m.role}));
    }
    v["tenants"] = json!(named);
    v["identities"] = json!(identities::of_user(conn, &user.id)?);
    Ok(v)
}

/// A user's links to upstream providers (social sign-in).
pub fn identities(db: &impl Store, actor: &Actor, ident: &str) -> Result<Vec<Identity>, Error> {
    let user = visible_user(db.conn(), actor, ident)?;
    identities::of_user(db.conn(), &user.id)
}

/// Removes a user's link to `provider`: that provider's account no longer
/// signs in as this user (its next sign-in links or signs up afresh).
pub fn unlink(
    db: &mut impl Store,
    actor: &Actor,
    ident: &str,
    provider: &str,
) -> Result<Identity, Error> {
    let user = writable_user(db.conn(), actor, ident)?;
    let now = db.now();
    db.write(|tx| {
        let gone = identities::unlink(tx, &user.id, provider)?;
        let details = json!({"provider": provider, "subject": gone.subject});
        record(
            tx,
            actor,
            "user.unlink",
            "user",
            Some(&user.id),
            details,
            now,
        )?;
        Ok(gone)
    })
}

/// A user to create.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub email: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    /// None: the user cannot sign in with a password.
    pub password: Option<String>,
    /// `user` (default) or `admin`.
    pub role: Option<String>,
    /// A tenant name or id; None = the actor's tenant, or "default".
    pub tenant: Option<String>,
}

/// Creates a user (and their membership). A tenant-confined actor creates
/// users in its own tenant only, and never an admin.
pub fn create(
    db: &mut impl Store,
    actor: &Actor,
    new: NewAccount,
    iterations: u32,
) -> Result<User, Error> {
    if new.email.is_none() && new.username.is_none() {
        return Err(Error::required("email"));
    }
    let role = new.role.unwrap_or_else(|| "user".into());
    accounts::check_role("role", &role)?;
    let tenant_id = match &new.tenant {
        Some(t) => Some(
            accounts::find_tenant(db.conn(), t)?
                .ok_or_else(|| Error::NotFound(format!("no tenant {t:?}")))?
                .id,
        ),
        None => actor.tenant().map(str::to_string),
    };
    if let Some(own) = actor.tenant() {
        if tenant_id.as_deref() != Some(own) {
            return Err(Error::Forbidden(
                "an API key creates users in its own tenant only".into(),
            ));
        }
        if role == "admin" {
            return Err(Error::Forbidden(
                "an API key confined to a tenant cannot create an admin".into(),
            ));
        }
    }
    let password_hash = match &new.password {
        Some(pw) => {
            password::check_policy("password", pw)?;
            Some(password::hash(pw, iterations)?)
        }
        None => None,
    };
    let account = NewUser {
        email: new.email,
        username: new.username,
        name: new.name,
        password_hash,
        role,
        tenant_id,
        ..NewUser::default()
    };
    let now = db.now();
    db.write(|tx| {
        let mut user = accounts::create_user(tx, &account, now)?;
        // A server-wide operator (the CLI, an admin) vouches for the address
        // it types; a tenant-confined key does not, so social sign-in never
        // links by email to an account such a key made (flow.rs).
        if actor.tenant().is_none() && user.email.is_some() {
            accounts::mark_email_verified(tx, &user.id, now)?;
            user.email_verified_at = Some(now);
        }
        let details = json!({
            "email": user.email, "username": user.username, "name": user.name,
            "role": user.role, "tenant_id": user.default_tenant_id,
            "has_password": user.password_hash.is_some(),
        });
        record(
            tx,
            actor,
            "user.create",
            "user",
            Some(&user.id),
            details,
            now,
        )?;
        Ok(user)
    })
}

/// Fields to change; None leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    pub name: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    /// `user` or `admin`.
    pub role: Option<String>,
}

/// Changes a user's name, username, email or role. A new email is
/// unverified. Only an actor reaching everything grants or takes the
/// admin role.
pub fn update(
    db: &mut impl Store,
    actor: &Actor,
    ident: &str,
    patch: &Patch,
) -> Result<User, Error> {
    let user = writable_user(db.conn(), actor, ident)?;
    if patch.role.is_some() {
        actor.require_all("changing a role")?;
    }
    let now = db.now();
    db.write(|tx| {
        let mut changed = Map::new();
        if let Some(n) = &patch.name {
            accounts::set_name(tx, &user.id, n, now)?;
            changed.insert("name".into(), json!({"from": user.name, "to": n.trim()}));
        }
        if let Some(u) = &patch.username {
            accounts::set_username(tx, &user.id, u, now)?;
            changed.insert("username".into(), json!({"from": user.username, "to": u}));
        }
        if let Some(e) = &patch.email {
            accounts::set_email(tx, &user.id, e, now)?;
            // What was mailed to the old address no longer signs in.
            codes::void_user(tx, &user.id, now)?;
            changed.insert("email".into(), json!({"from": user.email, "to": e.trim()}));
        }
        if let Some(r) = &patch.role {
            if r != "admin" {
                keep_an_admin(tx, actor, &user)?;
            }
            accounts::set_role(tx, &user.id, r, now)?;
            changed.insert("role".into(), json!({"from": user.role, "to": r}));
        }
        if !changed.is_empty() {
            let details = Value::Object(changed);
            record(
                tx,
                actor,
                "user.update",
                "user",
                Some(&user.id),
                details,
                now,
            )?;
        }
        accounts::get_user(tx, &user.id)?.ok_or_else(|| Error::NotFound("no such user".into()))
    })
}

/// Refuses (409) to let the HTTP API take away the last active admin (by
/// demotion, disabling or deletion): nobody could then administer the
/// server over HTTP. Inside the change's transaction, so two admins cannot
/// remove each other at once. The CLI may (an operator disabling a
/// compromised sole admin must not be stopped; `user add --admin` makes a
/// new one).
fn keep_an_admin(tx: &rusqlite::Connection, actor: &Actor, user: &User) -> Result<(), Error> {
    if !user.is_admin() || matches!(actor.who, super::Who::Cli(_)) {
        return Ok(());
    }
    let others: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM users WHERE role = 'admin' AND status = 'active' AND deleted_at IS NULL AND id != ?1",
        )?
        .query_row([&user.id], |r| r.get(0))?;
    if others == 0 {
        return Err(Error::Conflict(
            "this is the last active admin; make another user admin first".into(),
        ));
    }
    Ok(())
}

/// Disables a user (ending their sessions, and voiding the codes and
/// links mailed to them) or enables them again.
pub fn set_active(
    db: &mut impl Store,
    actor: &Actor,
    ident: &str,
    active: bool,
) -> Result<User, Error> {
    let user = writable_user(db.conn(), actor, ident)?;
    let now = db.now();
    let status = if active { "active" } else { "disabled" };
    db.write(|tx| {
        if !active {
            keep_an_admin(tx, actor, &user)?;
        }
        accounts::set_status(tx, &user.id, status, now)?;
        if !active {
            sessions::drop_codes(tx, &user.id)?;
            // Links and codes mailed before sign nobody in now.
            codes::void_user(tx, &user.id, now)?;
            sessions::revoke_user_families(tx, &user.id, None, "user disabled", now)?;
        }
        let action = if active {
            "user.enable"
        } else {
            "user.disable"
        };
        let details = json!({"from": user.status, "to": status});
        record(tx, actor, action, "user", Some(&user.id), details, now)?;
        Ok(())
    })?;
    get(&*db, actor, &user.id)
}

/// Deletes a user with their sessions, factors and memberships.
pub fn delete(db: &mut impl Store, actor: &Actor, ident: &str) -> Result<User, Error> {
    let user = writable_user(db.conn(), actor, ident)?;
    let now = db.now();
    db.write(|tx| {
        keep_an_admin(tx, actor, &user)?;
        accounts::delete_user(tx, &user.id)?;
        let details = json!({"email": user.email, "username": user.username});
        record(
            tx,
            actor,
            "user.delete",
            "user",
            Some(&user.id),
            details,
            now,
        )
    })?;
    Ok(user)
}

/// Sets a user's password: their sessions end and their soft lock clears.
pub fn set_password(
    db: &mut impl Store,
    actor: &Actor,
    ident: &str,
    new_password: &str,
    iterations: u32,
) -> Result<User, Error> {
    let user = writable_user(db.conn(), actor, ident)?;
    password::check_policy("password", new_password)?;
    let hash = password::hash(new_password, iterations)?;
    let now = db.now();
    db.write(|tx| {
        accounts::set_password_hash(tx, &user.id, &hash, now)?;
        sessions::drop_codes(tx, &user.id)?;
        // Links and codes mailed before die with the old password.
        codes::void_user(tx, &user.id, now)?;
        let ended =
            sessions::revoke_user_families(tx, &user.id, None, "password set by admin", now)?;
        // Every source's count and the account budget.
        softlock::clear_password(tx, &user.id)?;
        let details = json!({"sessions_ended": ended});
        record(
            tx,
            actor,
            "user.set_password",
            "user",
            Some(&user.id),
            details,
            now,
        )
    })?;
    Ok(user)
}

/// Turns a user's second factor off (with its recovery codes); returns
/// the state before.
pub fn reset_mfa(db: &mut impl Store, actor: &Actor, ident: &str) -> Result<(User, State), Error> {
    let user = writable_user(db.conn(), actor, ident)?;
    let now = db.now();
    let before = db.write(|tx| {
        softlock::clear_factor(tx, &user.id)?;
        let before = totp::remove(tx, &user.id, now)?;
        let details = json!({"was": state_name(&before)});
        record(
            tx,
            actor,
            "user.reset_mfa",
            "user",
            Some(&user.id),
            details,
            now,
        )?;
        Ok(before)
    })?;
    Ok((user, before))
}

fn state_name(s: &State) -> &'static str {
    match s {
        State::On => "on",
        State::Pending => "pending",
        State::Off => "off",
    }
}

/// Starts a TOTP enrollment for a user (the CLI's `enroll-mfa`, which
/// shows the secret at the terminal); `confirm_mfa` completes it.
pub fn start_mfa(
    db: &mut impl Store,
    actor: &Actor,
    master: &MasterKey,
    label: &str,
    ident: &str,
) -> Result<(User, Enrollment), Error> {
    let user = writable_user(db.conn(), actor, ident)?;
    let now = db.now();
    let e = db.write(|tx| {
        let e = totp::enroll(tx, master, &user.id, label, user.display_name(), true, now)?;
        record(
            tx,
            actor,
            "user.start_mfa",
            "user",
            Some(&user.id),
            json!({}),
            now,
        )?;
        Ok(e)
    })?;
    Ok((user, e))
}

/// Confirms a pending enrollment with a code; false (and nothing
/// written) when the code is wrong.
pub fn confirm_mfa(
    db: &mut impl Store,
    actor: &Actor,
    master: &MasterKey,
    user: &User,
    code: &str,
) -> Result<bool, Error> {
    totp::check_code_format("code", code)?;
    let now = db.now();
    db.write(|tx| {
        let ok = totp::verify(tx, master, &user.id, code, Confirm::Any, now)?;
        if ok {
            record(
                tx,
                actor,
                "user.confirm_mfa",
                "user",
                Some(&user.id),
                json!({}),
                now,
            )?;
        }
        Ok(ok)
    })
}

/// A user's live sessions, newest first.
pub fn sessions(db: &impl Store, actor: &Actor, ident: &str) -> Result<Vec<Session>, Error> {
    let user = visible_user(db.conn(), actor, ident)?;
    sessions::live_sessions(db.conn(), &user.id, db.now())
}

/// Ends one of a user's sessions (`Some(id)`) or all of them (and their
/// unused auth codes); returns how many ended. An unknown or already
/// ended session id is NotFound.
pub fn end_sessions(
    db: &mut impl Store,
    actor: &Actor,
    ident: &str,
    one: Option<&str>,
) -> Result<usize, Error> {
    let user = writable_user(db.conn(), actor, ident)?;
    let now = db.now();
    db.write(|tx| {
        let ended = match one {
            Some(id) => {
                if !sessions::revoke_user_family(tx, &user.id, id, "ended by an admin", now)? {
                    return Err(Error::NotFound(format!("no live session {id:?}")));
                }
                1
            }
            None => {
                sessions::drop_codes(tx, &user.id)?;
                // A mailed link or code would start a new session.
                codes::void_user(tx, &user.id, now)?;
                sessions::revoke_user_families(tx, &user.id, None, "ended by an admin", now)?
            }
        };
        let details = json!({"session": one, "ended": ended});
        record(
            tx,
            actor,
            "user.end_sessions",
            "user",
            Some(&user.id),
            details,
            now,
        )?;
        Ok(ended)
    })
}
