//! Tenants, their members and their API keys. A tenant-confined actor (an
//! API key without `admin`) sees only its own tenant, manages only its
//! members, and makes API keys only for its tenant and with no scope it
//! lacks itself: a key never mints a stronger one.

use serde_json::json;

use super::audit::record;
use super::{visible_user, writable_user, Actor, Store, Who};
use crate::accounts::{self, ApiKey, Membership, Tenant, User};
use crate::error::Error;

/// The tenants the actor may see.
pub fn list(db: &impl Store, actor: &Actor) -> Result<Vec<Tenant>, Error> {
    let all = accounts::list_tenants(db.conn())?;
    Ok(match actor.tenant() {
        None => all,
        Some(own) => all.into_iter().filter(|t| t.id == own).collect(),
    })
}

/// A tenant the actor may see, by id or name.
pub fn get(db: &impl Store, actor: &Actor, ident: &str) -> Result<Tenant, Error> {
    let t = accounts::find_tenant(db.conn(), ident)?
        .ok_or_else(|| Error::NotFound(format!("no tenant {ident:?}")))?;
    match actor.tenant() {
        Some(own) if own != t.id => Err(Error::NotFound(format!("no tenant {ident:?}"))),
        _ => Ok(t),
    }
}

/// Creates a tenant (server-wide: not for a tenant-confined actor).
pub fn create(
    db: &mut impl Store,
    actor: &Actor,
    name: &str,
    callback_url: Option<&str>,
) -> Result<Tenant, Error> {
    actor.require_all("creating a tenant")?;
    let now = db.now();
    db.write(|tx| {
        let t = accounts::create_tenant(tx, name, callback_url, now)?;
        let details = json!({"name": t.name, "callback_url": t.callback_url});
        record(
            tx,
            actor,
            "tenant.create",
            "tenant",
            Some(&t.id),
            details,
            now,
        )?;
        Ok(t)
    })
}

/// A tenant's members with their accounts.
pub fn members(
    db: &impl Store,
    actor: &Actor,
    tenant: &str,
) -> Result<(Tenant, Vec<(Membership, User)>), Error> {
    let t = get(db, actor, tenant)?;
    let mut out = Vec::new();
    for m in accounts::tenant_members(db.conn(), &t.id)? {
        if let Some(u) = accounts::get_user(db.conn(), &m.user_id)? {
            out.push((m, u));
        }
    }
    Ok((t, out))
}

/// Adds a user to a tenant, or changes their role there; returns the
/// membership. A tenant-confined actor can only change the role of its
/// own members (a user it cannot see is NotFound).
pub fn set_member(
    db: &mut impl Store,
    actor: &Actor,
    tenant: &str,
    user: &str,
    role: &str,
) -> Result<Membership, Error> {
    accounts::check_tenant_role("role", role)?;
    let t = get(db, actor, tenant)?;
    // A key confined to a tenant changes only users that are its own
    // alone, and cannot hand out `admin`: that role name reaches the
    // access token's `role` claim, where a server admin's reads the same
    // (issue 10 review).
    let u = if actor.tenant().is_some() {
        if role.eq_ignore_ascii_case("admin") {
            return Err(Error::Forbidden(
                "an API key confined to a tenant cannot give the admin role".into(),
            ));
        }
        writable_user(db.conn(), actor, user)?
    } else {
        visible_user(db.conn(), actor, user)?
    };
    let now = db.now();
    db.write(|tx| {
        let before = accounts::membership(tx, &u.id, &t.id)?;
        let id = accounts::add_to_tenant(tx, &u.id, &t.id, role, None, now)?;
        let details = json!({
            "tenant_id": t.id, "user_id": u.id,
            "role": {"from": before.map(|m| m.role), "to": role},
        });
        record(
            tx,
            actor,
            "membership.set",
            "membership",
            Some(&id),
            details,
            now,
        )?;
        accounts::membership(tx, &u.id, &t.id)?
            .ok_or_else(|| Error::Internal("membership vanished".into()))
    })
}

/// Removes a user from a tenant (not their last one: see
/// `accounts::leave_tenant`).
pub fn remove_member(
    db: &mut impl Store,
    actor: &Actor,
    tenant: &str,
    user: &str,
) -> Result<(), Error> {
    let t = get(db, actor, tenant)?;
    let u = writable_user(db.conn(), actor, user)?;
    let m = accounts::membership(db.conn(), &u.id, &t.id)?
        .ok_or_else(|| Error::NotFound(format!("{user:?} is not a member of {tenant:?}")))?;
    let now = db.now();
    db.write(|tx| {
        accounts::leave_tenant(tx, &m)?;
        let details = json!({"tenant_id": t.id, "user_id": u.id, "role": m.role});
        record(
            tx,
            actor,
            "membership.remove",
            "membership",
            Some(&m.id),
            details,
            now,
        )
    })
}

/// The API keys the actor may see (never the keys themselves).
pub fn list_api_keys(db: &impl Store, actor: &Actor) -> Result<Vec<ApiKey>, Error> {
    let all = accounts::list_api_keys(db.conn())?;
    Ok(match actor.tenant() {
        None => all,
        Some(own) => all.into_iter().filter(|k| k.tenant_id == own).collect(),
    })
}

/// Creates an API key; returns it and its text, which is shown only now.
pub fn create_api_key(
    db: &mut impl Store,
    actor: &Actor,
    name: &str,
    tenant: &str,
    scopes: &[String],
) -> Result<(ApiKey, String), Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(Error::invalid(
            "name",
            "invalid",
            "name must be 1 to 128 characters",
        ));
    }
    let t = get(db, actor, tenant)?;
    if let Who::ApiKey { scopes: own, .. } = &actor.who {
        let admin = own.iter().any(|s| s == "admin");
        if let Some(s) = scopes.iter().find(|s| !admin && !own.contains(s)) {
            return Err(Error::Forbidden(format!(
                "an API key cannot grant the {s} scope, which it lacks"
            )));
        }
    }
    let now = db.now();
    db.write(|tx| {
        let (k, key) = accounts::create_api_key(tx, name, &t.id, scopes, now)?;
        let details = json!({"name": k.name, "tenant_id": k.tenant_id, "scopes": k.scopes});
        record(
            tx,
            actor,
            "apikey.create",
            "api_key",
            Some(&k.id),
            details,
            now,
        )?;
        Ok((k, key))
    })
}

/// Revokes an API key by id.
pub fn revoke_api_key(db: &mut impl Store, actor: &Actor, id: &str) -> Result<(), Error> {
    let k = accounts::get_api_key(db.conn(), id)?
        .filter(|k| actor.tenant().is_none_or(|own| own == k.tenant_id))
        .ok_or_else(|| Error::NotFound(format!("no live API key {id:?}")))?;
    // A key may revoke only keys with no scope it lacks itself, the rule
    // that binds creating one: a weaker key cannot disarm a stronger one.
    if let Who::ApiKey { scopes: own, .. } = &actor.who {
        let admin = own.iter().any(|s| s == "admin");
        if let Some(s) = k.scopes.iter().find(|s| !admin && !own.contains(s)) {
            return Err(Error::Forbidden(format!(
                "an API key cannot revoke a key with the {s} scope, which it lacks"
            )));
        }
    }
    let now = db.now();
    db.write(|tx| {
        accounts::revoke_api_key(tx, &k.id, now)?;
        let details = json!({"name": k.name, "tenant_id": k.tenant_id});
        record(
            tx,
            actor,
            "apikey.revoke",
            "api_key",
            Some(&k.id),
            details,
            now,
        )
    })
}

/// A tenant as the CLI's `--json` and the admin API show it.
pub fn tenant_json(t: &Tenant) -> serde_json::Value {
    json!({"tenant_id": t.id, "name": t.name, "callback_url": t.callback_url, "created_at": t.created_at})
}

/// A membership, with the member's names.
pub fn member_json(m: &Membership, u: &User) -> serde_json::Value {
    json!({
        "user_tenant_id": m.id, "tenant_id": m.tenant_id, "user_id": m.user_id, "role": m.role,
        "external_id": m.external_id, "email": u.email, "username": u.username, "name": u.name,
    })
}

/// An API key as the CLI's `--json` and the admin API show it (never the
/// key or its hash).
pub fn api_key_json(k: &ApiKey) -> serde_json::Value {
    json!({
        "key_id": k.id, "name": k.name, "tenant_id": k.tenant_id, "scopes": k.scopes,
        "created_at": k.created_at, "last_used_at": k.last_used_at, "revoked": k.revoked_at.is_some(),
    })
}
