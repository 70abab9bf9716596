//! Users, tenants, clients and API keys: the tables that say who exists.
//!
//! Emails and usernames are matched case-insensitively (the columns are
//! `COLLATE NOCASE`). Client secrets and API keys are 256-bit random values
//! shown once and stored only as SHA-256; they are compared by hashing the
//! presented value and comparing digests in constant time.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use serde_json::Value;

use crate::crypto::{b64url, ct_eq, random_bytes, random_token, token_hash, uuid_v4};
use crate::error::Error;

/// A user account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub email: Option<String>,
    pub username: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub email_verified_at: Option<i64>,
    pub role: String,
    pub permissions: Vec<String>,
    pub status: String,
    pub default_tenant_id: Option<String>,
    pub recovery_email: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
}

impl User {
    /// True unless the account is disabled.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// True for the server-wide admin role.
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }

    /// What to call the user in messages: username, else email, else id.
    pub fn display_name(&self) -> &str {
        self.username
            .as_deref()
            .or(self.email.as_deref())
            .unwrap_or(&self.id)
    }
}

/// The user columns, in `user_from_row` order (a macro, so that queries
/// are built with `concat!` at compile time).
macro_rules! user_cols {
    () => {
        "id, email, username, phone, name, password_hash, email_verified_at, role, permissions, \
         status, default_tenant_id, recovery_email, created_at, updated_at, last_login_at"
    };
}
pub(crate) use user_cols;

pub(crate) fn user_from_row(r: &Row) -> rusqlite::Result<User> {
    let perms: String = r.get(8)?;
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        username: r.get(2)?,
        phone: r.get(3)?,
        name: r.get(4)?,
        password_hash: r.get(5)?,
        email_verified_at: r.get(6)?,
        role: r.get(7)?,
        permissions: serde_json::from_str(&perms).unwrap_or_default(),
        status: r.get(9)?,
        default_tenant_id: r.get(10)?,
        recovery_email: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        last_login_at: r.get(14)?,
    })
}

/// The user whose email or username is `login` (email wins a tie).
pub fn find_user_by_login(conn: &Connection, login: &str) -> Result<Option<User>, Error> {
    let sql = concat!(
        "SELECT ",
        user_cols!(),
        " FROM users WHERE (email = ?1 OR username = ?1) AND deleted_at IS NULL
          ORDER BY email = ?1 DESC LIMIT 1"
    );
    Ok(conn
        .prepare_cached(sql)?
        .query_row([login.trim()], user_from_row)
        .optional()?)
}

/// The user with this email address (not username).
pub fn find_user_by_email(conn: &Connection, email: &str) -> Result<Option<User>, Error> {
    let sql = concat!(
        "SELECT ",
        user_cols!(),
        " FROM users WHERE email = ?1 AND deleted_at IS NULL"
    );
    Ok(conn
        .prepare_cached(sql)?
        .query_row([email.trim()], user_from_row)
        .optional()?)
}

/// The user with this id.
pub fn get_user(conn: &Connection, id: &str) -> Result<Option<User>, Error> {
    let sql = concat!(
        "SELECT ",
        user_cols!(),
        " FROM users WHERE id = ?1 AND deleted_at IS NULL"
    );
    Ok(conn
        .prepare_cached(sql)?
        .query_row([id], user_from_row)
        .optional()?)
}

/// A user named by id, email or username (the CLI's USER argument).
pub fn find_user(conn: &Connection, ident: &str) -> Result<User, Error> {
    if let Some(u) = get_user(conn, ident)? {
        return Ok(u);
    }
    find_user_by_login(conn, ident)?.ok_or_else(|| Error::NotFound(format!("no user {ident:?}")))
}

/// Every user, oldest first.
pub fn list_users(conn: &Connection) -> Result<Vec<User>, Error> {
    let sql = concat!(
        "SELECT ",
        user_cols!(),
        " FROM users WHERE deleted_at IS NULL ORDER BY created_at, id"
    );
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], user_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One page of users, oldest first, optionally only those whose email,
/// username or name contains `search` (case-insensitive) and only members
/// of `tenant`; with the number of all that match.
pub fn search_users(
    conn: &Connection,
    search: Option<&str>,
    tenant: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<User>, i64), Error> {
    // LIKE's own wildcards in the search text are matched literally.
    let pattern = search.map(|s| {
        let escaped = s
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    const WHERE: &str = "WHERE deleted_at IS NULL
           AND (?1 IS NULL OR email LIKE ?1 ESCAPE '\\' OR username LIKE ?1 ESCAPE '\\'
                OR name LIKE ?1 ESCAPE '\\')
           AND (?2 IS NULL OR id IN (SELECT user_id FROM user_tenants WHERE tenant_id = ?2))";
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM users {WHERE}"))?
        .query_row(params![pattern, tenant], |r| r.get(0))?;
    let sql = format!(
        "SELECT {} FROM users {WHERE} ORDER BY created_at, id LIMIT ?3 OFFSET ?4",
        user_cols!()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![pattern, tenant, limit, offset], user_from_row)?;
    Ok((rows.collect::<Result<Vec<_>, _>>()?, total))
}

/// The roles a user may have server-wide.
pub const ROLES: [&str; 2] = ["user", "admin"];

/// Checks a server-wide role.
pub fn check_role(field: &str, role: &str) -> Result<(), Error> {
    if ROLES.contains(&role) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "invalid",
            format!("{field} must be one of {}", ROLES.join(", ")),
        ))
    }
}

/// Changes a user's username (a Conflict when another user has it as
/// username or email).
pub fn set_username(tx: &Connection, user_id: &str, username: &str, now: i64) -> Result<(), Error> {
    check_username("username", username)?;
    let taken: bool = tx.query_row(
        "SELECT count(*) > 0 FROM users WHERE (email = ?1 OR username = ?1) AND id <> ?2",
        params![username, user_id],
        |r| r.get(0),
    )?;
    if taken {
        return Err(Error::Conflict("Another user has this username".into()));
    }
    tx.execute(
        "UPDATE users SET username = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, username, now],
    )?;
    Ok(())
}

/// Sets a user's display name (trimmed; 1 to 256 characters).
pub fn set_name(tx: &Connection, user_id: &str, name: &str, now: i64) -> Result<(), Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "invalid",
            "name must be 1 to 256 characters, without control characters",
        ));
    }
    tx.execute(
        "UPDATE users SET name = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, name, now],
    )?;
    Ok(())
}

/// Sets a user's server-wide role (`user` or `admin`).
pub fn set_role(tx: &Connection, user_id: &str, role: &str, now: i64) -> Result<(), Error> {
    check_role("role", role)?;
    tx.execute(
        "UPDATE users SET role = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, role, now],
    )?;
    Ok(())
}

/// True when at least one admin exists.
pub fn has_admin(conn: &Connection) -> Result<bool, Error> {
    Ok(conn.query_row(
        "SELECT count(*) > 0 FROM users WHERE role = 'admin' AND deleted_at IS NULL",
        [],
        |r| r.get(0),
    )?)
}

/// What a new user is made of.
#[derive(Debug, Default, Clone)]
pub struct NewUser {
    pub email: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    pub role: String,
    /// Tenant to join (and make the default); None = the "default" tenant.
    pub tenant_id: Option<String>,
    /// The app's own id for the user in that tenant (lagrello).
    pub external_id: Option<String>,
}

/// Checks an email address's shape (RFC 5321 lengths; one `@`, no spaces).
pub fn check_email(field: &str, email: &str) -> Result<(), Error> {
    if is_mailbox(email) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "invalid",
            format!("{field} is not a valid email address"),
        ))
    }
}

/// One plain RFC 5321 mailbox, `local@domain`: a dot-atom local part (no
/// quoted strings) and a domain of dot-separated labels. Nothing that a
/// mail command reading `To:` (sendmail -t) could take for a list, a
/// comment or a second recipient: no `,`, `<`, `>`, `(`, `)`, `"`, `;`,
/// `:`, `\`, whitespace or control character (issue 9 review).
pub fn is_mailbox(email: &str) -> bool {
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let dot_atom = |s: &str, ok: &dyn Fn(char) -> bool| {
        !s.is_empty()
            && s.split('.')
                .all(|part| !part.is_empty() && part.chars().all(ok))
    };
    let label = |c: char| c.is_alphanumeric() || c == '-';
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= 254
        && local.len() <= 64
        && dot_atom(local, &atext)
        && domain.contains('.')
        && dot_atom(domain, &label)
        && domain
            .split('.')
            .all(|l| !l.starts_with('-') && !l.ends_with('-'))
}

/// Checks a username: 1..=64 characters, no `@`, no whitespace.
pub fn check_username(field: &str, username: &str) -> Result<(), Error> {
    let n = username.chars().count();
    if n == 0
        || n > 64
        || username.contains('@')
        || username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid(
            field,
            "invalid",
            format!("{field} must be 1 to 64 characters, without spaces or @"),
        ));
    }
    Ok(())
}

/// Creates a user and their tenant membership. Duplicate email or username
/// is a Conflict.
pub fn create_user(tx: &Transaction, new: &NewUser, now: i64) -> Result<User, Error> {
    if let Some(e) = &new.email {
        check_email("email", e)?;
    }
    if let Some(u) = &new.username {
        check_username("username", u)?;
    }
    let taken: bool = tx.query_row(
        "SELECT count(*) > 0 FROM users WHERE email IN (?1, ?2) OR username IN (?1, ?2)",
        params![new.email, new.username],
        |r| r.get(0),
    )?;
    if taken {
        return Err(Error::Conflict(
            "A user with this email or username already exists".into(),
        ));
    }
    let tenant_id = match &new.tenant_id {
        Some(t) => t.clone(),
        None => default_tenant(tx, now)?,
    };
    let id = uuid_v4()?;
    tx.execute(
        "INSERT INTO users (id, email, username, phone, name, password_hash, role, default_tenant_id,
                            created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            id,
            new.email.as_deref().map(str::trim),
            new.username,
            new.phone,
            new.name,
            new.password_hash,
            if new.role.is_empty() { "user" } else { &new.role },
            tenant_id,
            now
        ],
    )?;
    add_to_tenant(tx, &id, &tenant_id, "user", new.external_id.as_deref(), now)?;
    get_user(tx, &id)?.ok_or_else(|| Error::Internal("user vanished after insert".into()))
}

/// Replaces a user's password hash.
pub fn set_password_hash(
    tx: &Connection,
    user_id: &str,
    hash: &str,
    now: i64,
) -> Result<(), Error> {
    tx.prepare_cached("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![user_id, hash, now])?;
    Ok(())
}

/// Replaces a user's password hash only while the stored one is still
/// `verified` (the hash a password change checked the current password
/// against, read before the slow hashing): a compare-and-set in the
/// caller's transaction. False when it has changed meanwhile (a reset, an
/// admin, another change, a sign-in's rehash), and nothing is written.
pub fn replace_password_hash(
    tx: &Connection,
    user_id: &str,
    verified: &str,
    hash: &str,
    now: i64,
) -> Result<bool, Error> {
    Ok(tx
        .prepare_cached(
            "UPDATE users SET password_hash = ?3, updated_at = ?4
              WHERE id = ?1 AND password_hash = ?2 AND deleted_at IS NULL",
        )?
        .execute(params![user_id, verified, hash, now])?
        == 1)
}

/// Sets `active` or `disabled`.
pub fn set_status(tx: &Connection, user_id: &str, status: &str, now: i64) -> Result<(), Error> {
    tx.execute(
        "UPDATE users SET status = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, status, now],
    )?;
    Ok(())
}

/// Records a successful sign-in.
pub fn touch_login(tx: &Connection, user_id: &str, now: i64) -> Result<(), Error> {
    tx.prepare_cached("UPDATE users SET last_login_at = ?2 WHERE id = ?1")?
        .execute(params![user_id, now])?;
    Ok(())
}

/// Deletes a user; their memberships, sessions and codes go with them.
pub fn delete_user(tx: &Connection, user_id: &str) -> Result<(), Error> {
    let n = tx.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
    if n == 0 {
        return Err(Error::NotFound("no such user".into()));
    }
    Ok(())
}

/// A tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub callback_url: Option<String>,
    pub created_at: i64,
}

fn tenant_from_row(r: &Row) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        name: r.get(1)?,
        callback_url: r.get(2)?,
        created_at: r.get(3)?,
    })
}

/// The id of the tenant named "default", creating it on first use.
pub fn default_tenant(tx: &Connection, now: i64) -> Result<String, Error> {
    if let Some(t) = tx
        .query_row("SELECT id FROM tenants WHERE name = 'default'", [], |r| {
            r.get(0)
        })
        .optional()?
    {
        return Ok(t);
    }
    Ok(create_tenant(tx, "default", None, now)?.id)
}

/// Creates a tenant; a duplicate name is a Conflict.
pub fn create_tenant(
    tx: &Connection,
    name: &str,
    callback_url: Option<&str>,
    now: i64,
) -> Result<Tenant, Error> {
    let name = name.trim();
    if name.is_empty() || name.len() > 128 {
        return Err(Error::invalid(
            "name",
            "invalid",
            "tenant name must be 1 to 128 characters",
        ));
    }
    if find_tenant(tx, name)?.is_some() {
        return Err(Error::Conflict(format!("a tenant named {name:?} exists")));
    }
    let id = uuid_v4()?;
    tx.execute(
        "INSERT INTO tenants (id, name, callback_url, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, name, callback_url, now],
    )?;
    Ok(Tenant {
        id,
        name: name.to_string(),
        callback_url: callback_url.map(str::to_string),
        created_at: now,
    })
}

/// A tenant named by id or name.
pub fn find_tenant(conn: &Connection, ident: &str) -> Result<Option<Tenant>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT id, name, callback_url, created_at FROM tenants WHERE id = ?1 OR name = ?1
              ORDER BY id = ?1 DESC LIMIT 1",
        )?
        .query_row([ident], tenant_from_row)
        .optional()?)
}

/// Every tenant.
pub fn list_tenants(conn: &Connection) -> Result<Vec<Tenant>, Error> {
    let mut stmt = conn.prepare(
        "SELECT id, name, callback_url, created_at FROM tenants ORDER BY created_at, name",
    )?;
    let rows = stmt.query_map([], tenant_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// A user's membership of one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// The `userTenantId`.
    pub id: String,
    pub user_id: String,
    pub tenant_id: String,
    pub role: String,
    pub external_id: Option<String>,
}

fn membership_from_row(r: &Row) -> rusqlite::Result<Membership> {
    Ok(Membership {
        id: r.get(0)?,
        user_id: r.get(1)?,
        tenant_id: r.get(2)?,
        role: r.get(3)?,
        external_id: r.get(4)?,
    })
}

/// Adds a user to a tenant (or updates the role of an existing membership).
pub fn add_to_tenant(
    tx: &Connection,
    user_id: &str,
    tenant_id: &str,
    role: &str,
    external_id: Option<&str>,
    now: i64,
) -> Result<String, Error> {
    if let Some(m) = membership(tx, user_id, tenant_id)? {
        tx.execute(
            "UPDATE user_tenants SET role = ?2 WHERE id = ?1",
            params![m.id, role],
        )?;
        return Ok(m.id);
    }
    let id = uuid_v4()?;
    tx.execute(
        "INSERT INTO user_tenants (id, user_id, tenant_id, role, external_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, user_id, tenant_id, role, external_id, now],
    )?;
    tx.execute(
        "UPDATE users SET default_tenant_id = ?2 WHERE id = ?1 AND default_tenant_id IS NULL",
        params![user_id, tenant_id],
    )?;
    Ok(id)
}

/// The membership of `user_id` in `tenant_id`, if any.
pub fn membership(
    conn: &Connection,
    user_id: &str,
    tenant_id: &str,
) -> Result<Option<Membership>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT id, user_id, tenant_id, role, external_id FROM user_tenants
              WHERE user_id = ?1 AND tenant_id = ?2",
        )?
        .query_row([user_id, tenant_id], membership_from_row)
        .optional()?)
}

/// The member of `tenant_id` whose app-side id is `external_id`.
pub fn member_by_external_id(
    conn: &Connection,
    tenant_id: &str,
    external_id: &str,
) -> Result<Option<Membership>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT id, user_id, tenant_id, role, external_id FROM user_tenants
              WHERE tenant_id = ?1 AND external_id = ?2",
        )?
        .query_row([tenant_id, external_id], membership_from_row)
        .optional()?)
}

/// Removes a membership; the user goes too when it was their last one.
pub fn remove_member(tx: &Connection, m: &Membership) -> Result<(), Error> {
    tx.execute("DELETE FROM user_tenants WHERE id = ?1", [&m.id])?;
    let others: i64 = tx.query_row(
        "SELECT count(*) FROM user_tenants WHERE user_id = ?1",
        [&m.user_id],
        |r| r.get(0),
    )?;
    if others == 0 {
        delete_user(tx, &m.user_id)?;
    }
    Ok(())
}

/// Removes a membership and nothing else; a user's last membership is
/// refused (deleting the user is a separate, explicit act). A user whose
/// default tenant it was gets their oldest remaining one.
pub fn leave_tenant(tx: &Connection, m: &Membership) -> Result<(), Error> {
    let others: i64 = tx.query_row(
        "SELECT count(*) FROM user_tenants WHERE user_id = ?1 AND id <> ?2",
        params![m.user_id, m.id],
        |r| r.get(0),
    )?;
    if others == 0 {
        return Err(Error::Conflict(
            "this is the user's only tenant; delete the user instead".into(),
        ));
    }
    tx.execute("DELETE FROM user_tenants WHERE id = ?1", [&m.id])?;
    tx.execute(
        "UPDATE users SET default_tenant_id =
            (SELECT tenant_id FROM user_tenants WHERE user_id = ?1 ORDER BY created_at LIMIT 1)
          WHERE id = ?1 AND default_tenant_id = ?2",
        params![m.user_id, m.tenant_id],
    )?;
    Ok(())
}

/// Every member of a tenant, oldest first.
pub fn tenant_members(conn: &Connection, tenant_id: &str) -> Result<Vec<Membership>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, user_id, tenant_id, role, external_id FROM user_tenants WHERE tenant_id = ?1
          ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([tenant_id], membership_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Checks a tenant role: 1 to 64 characters, no spaces or control characters.
pub fn check_tenant_role(field: &str, role: &str) -> Result<(), Error> {
    let n = role.chars().count();
    if n == 0 || n > 64 || role.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            field,
            "invalid",
            format!("{field} must be 1 to 64 characters, without spaces"),
        ));
    }
    Ok(())
}

/// The names of a user's tenants with the user's role in each (the
/// OpenID provider's `groups` scope).
pub fn tenant_roles(conn: &Connection, user_id: &str) -> Result<Vec<(String, String)>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.name, m.role FROM user_tenants m JOIN tenants t ON t.id = m.tenant_id
          WHERE m.user_id = ?1 ORDER BY t.name",
    )?;
    let rows = stmt.query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Every membership of a user.
pub fn memberships(conn: &Connection, user_id: &str) -> Result<Vec<Membership>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, user_id, tenant_id, role, external_id FROM user_tenants WHERE user_id = ?1 ORDER BY created_at",
    )?;
    let rows = stmt.query_map([user_id], membership_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// An application that signs users in through hallpass.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub client_id: String,
    /// The client's number (AuthUser's `authClientId`): given at creation,
    /// never changed, never given to another client.
    pub num: i64,
    pub secret_hash: Option<String>,
    pub name: String,
    pub redirect_urls: Vec<String>,
    pub logout_redirect_url: Option<String>,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    pub auth_code_ttl: i64,
    /// Where RP-initiated logout may send the browser (exact match).
    pub post_logout_redirect_urls: Vec<String>,
    /// The scopes the client may ask the OpenID provider for.
    pub scopes: Vec<String>,
    /// A person must consent before the provider answers this client;
    /// false for first-party apps.
    pub consent: bool,
    /// The id_token's JOSE algorithm; None: the current key's.
    pub token_alg: Option<String>,
}

/// The scopes the OpenID provider knows, and a new client's default.
pub const PROVIDER_SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];

/// The client settings only the OpenID provider reads (issue 13).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSettings {
    pub post_logout_redirect_urls: Vec<String>,
    pub scopes: Vec<String>,
    pub consent: bool,
    pub token_alg: Option<String>,
}

impl Client {
    /// A public client has no secret (SPAs, mobile apps).
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }
}

const CLIENT_COLS: &str =
    "client_id, secret_hash, name, redirect_urls, logout_redirect_url, access_ttl, refresh_ttl, auth_code_ttl, num,
     post_logout_redirect_urls, scopes, consent, token_alg";

fn client_from_row(r: &Row) -> rusqlite::Result<Client> {
    let urls: String = r.get(3)?;
    Ok(Client {
        client_id: r.get(0)?,
        secret_hash: r.get(1)?,
        name: r.get(2)?,
        redirect_urls: serde_json::from_str(&urls).unwrap_or_default(),
        logout_redirect_url: r.get(4)?,
        access_ttl: r.get(5)?,
        refresh_ttl: r.get(6)?,
        auth_code_ttl: r.get(7)?,
        num: r.get(8)?,
        post_logout_redirect_urls: serde_json::from_str(&r.get::<_, String>(9)?)
            .unwrap_or_default(),
        scopes: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or_default(),
        consent: r.get(11)?,
        token_alg: r.get(12)?,
    })
}

/// Sets a client's provider settings (after `create_client`, or to
/// change them); the caller has checked them.
pub fn set_provider_settings(
    tx: &Connection,
    client_id: &str,
    s: &ProviderSettings,
) -> Result<(), Error> {
    let n = tx.execute(
        "UPDATE clients SET post_logout_redirect_urls = ?2, scopes = ?3, consent = ?4, token_alg = ?5
          WHERE client_id = ?1",
        params![
            client_id,
            serde_json::to_string(&s.post_logout_redirect_urls)?,
            serde_json::to_string(&s.scopes)?,
            s.consent,
            s.token_alg
        ],
    )?;
    if n == 0 {
        return Err(Error::NotFound(format!("no client {client_id:?}")));
    }
    Ok(())
}

/// Changes a client's name, redirect URLs and logout URL (its id, number,
/// secret and public/confidential kind never change).
pub fn update_client_basics(
    tx: &Connection,
    client_id: &str,
    name: &str,
    redirect_urls: &[String],
    logout_redirect_url: Option<&str>,
) -> Result<(), Error> {
    let n = tx.execute(
        "UPDATE clients SET name = ?2, redirect_urls = ?3, logout_redirect_url = ?4 WHERE client_id = ?1",
        params![
            client_id,
            name,
            serde_json::to_string(redirect_urls)?,
            logout_redirect_url
        ],
    )?;
    if n == 0 {
        return Err(Error::NotFound(format!("no client {client_id:?}")));
    }
    Ok(())
}

/// Lifetimes a new client gets (from the configuration's `[tokens]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ttls {
    pub access: i64,
    pub refresh: i64,
    pub auth_code: i64,
}

impl Default for Ttls {
    fn default() -> Ttls {
        Ttls {
            access: 900,
            refresh: 30 * 86_400,
            auth_code: 180,
        }
    }
}

/// Creates a client; returns it and, for a confidential one, its secret
/// (shown once, stored as SHA-256).
pub fn create_client(
    tx: &Connection,
    name: &str,
    redirect_urls: &[String],
    logout_redirect_url: Option<&str>,
    public: bool,
    ttls: Ttls,
    now: i64,
) -> Result<(Client, Option<String>), Error> {
    // Lowercase base32: letters and digits only, so an id never starts with
    // '-' (which a command line would read as an option) and survives any URL.
    let client_id = base32::encode(
        base32::Alphabet::Rfc4648Lower { padding: false },
        &random_bytes(12)?,
    );
    let secret = if public { None } else { Some(random_token()?) };
    let num = next_client_num(tx)?;
    tx.execute(
        "INSERT INTO clients (client_id, secret_hash, name, redirect_urls, logout_redirect_url,
                              access_ttl, refresh_ttl, auth_code_ttl, created_at, num)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            client_id,
            secret.as_deref().map(token_hash),
            name,
            serde_json::to_string(redirect_urls)?,
            logout_redirect_url,
            ttls.access,
            ttls.refresh,
            ttls.auth_code,
            now,
            num
        ],
    )?;
    let client =
        get_client(tx, &client_id)?.ok_or_else(|| Error::Internal("client vanished".into()))?;
    Ok((client, secret))
}

/// The next client number: one past the last ever given (sequences
/// 'clients'), so a removed client's number is not given again. The
/// largest number in use is a floor, should the counter row be missing.
fn next_client_num(tx: &Connection) -> Result<i64, Error> {
    const SQL: &str = "INSERT INTO sequences (name, last)
         VALUES ('clients', (SELECT coalesce(max(num), 0) + 1 FROM clients))
         ON CONFLICT (name) DO UPDATE
         SET last = max(last, (SELECT coalesce(max(num), 0) FROM clients)) + 1
         RETURNING last";
    Ok(tx.prepare_cached(SQL)?.query_row([], |r| r.get(0))?)
}

/// The client with this id.
pub fn get_client(conn: &Connection, client_id: &str) -> Result<Option<Client>, Error> {
    let sql = format!("SELECT {CLIENT_COLS} FROM clients WHERE client_id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([client_id], client_from_row)
        .optional()?)
}

/// Every client.
pub fn list_clients(conn: &Connection) -> Result<Vec<Client>, Error> {
    let sql = format!("SELECT {CLIENT_COLS} FROM clients ORDER BY created_at, client_id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], client_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Removes a client and everything issued to it.
pub fn remove_client(tx: &Connection, client_id: &str) -> Result<(), Error> {
    if tx.execute("DELETE FROM clients WHERE client_id = ?1", [client_id])? == 0 {
        return Err(Error::NotFound(format!("no client {client_id:?}")));
    }
    Ok(())
}

/// Checks a client's credentials: a confidential client must present its
/// secret, a public one must present none. Anything else is ClientInvalid.
pub fn authenticate_client(
    conn: &Connection,
    client_id: &str,
    secret: Option<&str>,
) -> Result<Client, Error> {
    let client = get_client(conn, client_id)?.ok_or(Error::ClientInvalid)?;
    let secret = secret.filter(|s| !s.is_empty());
    match (&client.secret_hash, secret) {
        (None, None) => Ok(client),
        (Some(stored), Some(given)) if ct_eq(stored.as_bytes(), token_hash(given).as_bytes()) => {
            Ok(client)
        }
        _ => Err(Error::ClientInvalid),
    }
}

/// A tenant's API key (never the key itself).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    /// True when the key carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// The scopes an API key may carry. `users:*` and `auth:write` act within
/// the key's tenant; the admin API's server-wide scopes (`clients:write`,
/// `tenants:write`, `apikeys:write`, `keys:write`, `mail:write`,
/// `audit:read`) are described in admin/; `admin` is every scope, over
/// every tenant.
pub const SCOPES: [&str; 11] = [
    "users:read",
    "users:write",
    "auth:write",
    "activity:read",
    "clients:write",
    "tenants:write",
    "apikeys:write",
    "keys:write",
    "mail:write",
    "audit:read",
    "admin",
];

fn api_key_from_row(r: &Row) -> rusqlite::Result<ApiKey> {
    let scopes: String = r.get(3)?;
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        tenant_id: r.get(2)?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        created_at: r.get(4)?,
        last_used_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

const API_KEY_COLS: &str = "id, name, tenant_id, scopes, created_at, last_used_at, revoked_at";

/// Creates an API key; returns it and the key text (shown once).
pub fn create_api_key(
    tx: &Connection,
    name: &str,
    tenant_id: &str,
    scopes: &[String],
    now: i64,
) -> Result<(ApiKey, String), Error> {
    for s in scopes {
        if !SCOPES.contains(&s.as_str()) {
            return Err(Error::invalid(
                "scope",
                "invalid",
                format!("unknown scope {s:?}; known: {}", SCOPES.join(", ")),
            ));
        }
    }
    let id = b64url(&random_bytes(9)?);
    let key = format!("hp_{}", random_token()?);
    tx.execute(
        "INSERT INTO api_keys (id, key_hash, name, tenant_id, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, token_hash(&key), name, tenant_id, serde_json::to_string(scopes)?, now],
    )?;
    let sql = format!("SELECT {API_KEY_COLS} FROM api_keys WHERE id = ?1");
    let k = tx.query_row(&sql, [&id], api_key_from_row)?;
    Ok((k, key))
}

/// The live key whose text is `key`; Unauthenticated otherwise.
pub fn authenticate_api_key(conn: &Connection, key: &str) -> Result<ApiKey, Error> {
    let sql =
        format!("SELECT {API_KEY_COLS} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL");
    conn.prepare_cached(&sql)?
        .query_row([token_hash(key)], api_key_from_row)
        .optional()?
        .ok_or(Error::Unauthenticated)
}

/// The API key with this id (live or revoked).
pub fn get_api_key(conn: &Connection, id: &str) -> Result<Option<ApiKey>, Error> {
    let sql = format!("SELECT {API_KEY_COLS} FROM api_keys WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], api_key_from_row)
        .optional()?)
}

/// Every API key (live and revoked).
pub fn list_api_keys(conn: &Connection) -> Result<Vec<ApiKey>, Error> {
    let sql = format!("SELECT {API_KEY_COLS} FROM api_keys ORDER BY created_at, id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], api_key_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Revokes an API key by id.
pub fn revoke_api_key(tx: &Connection, id: &str, now: i64) -> Result<(), Error> {
    if tx.execute(
        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )? == 0
    {
        return Err(Error::NotFound(format!("no live API key {id:?}")));
    }
    Ok(())
}

/// A user as JSON for the CLI's `--json` output (never the password hash).
pub fn user_json(u: &User) -> Value {
    serde_json::json!({
        "id": u.id, "email": u.email, "username": u.username, "name": u.name,
        "phone": u.phone, "role": u.role, "status": u.status,
        "default_tenant_id": u.default_tenant_id, "created_at": u.created_at,
        "last_login_at": u.last_login_at, "has_password": u.password_hash.is_some(),
    })
}

/// Changes a user's email (a Conflict when another user has it); the new
/// address is unverified.
pub fn set_email(tx: &Connection, user_id: &str, email: &str, now: i64) -> Result<(), Error> {
    check_email("email", email)?;
    let taken: bool = tx.query_row(
        "SELECT count(*) > 0 FROM users WHERE (email = ?1 OR username = ?1) AND id <> ?2",
        params![email, user_id],
        |r| r.get(0),
    )?;
    if taken {
        return Err(Error::Conflict("Another user has this email".into()));
    }
    tx.execute(
        "UPDATE users SET email = ?2, email_verified_at = CASE WHEN email = ?2 THEN email_verified_at END,
                          updated_at = ?3 WHERE id = ?1",
        params![user_id, email.trim(), now],
    )?;
    Ok(())
}

/// Notes that an API key was used.
pub fn touch_api_key(tx: &Connection, id: &str, now: i64) -> Result<(), Error> {
    tx.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2 - 60)")?
        .execute(params![id, now])?;
    Ok(())
}

/// Sets a user's display name and recovery address (mfa's PATCH
/// /api/users). The recovery address must be a valid address other than
/// the main one, and once set it can be changed but not cleared.
pub fn update_profile(
    tx: &Connection,
    user: &User,
    name: Option<&str>,
    recovery_email: Option<&str>,
    now: i64,
) -> Result<(), Error> {
    if let Some(r) = recovery_email {
        check_email("recovery_email", r)?;
        if user
            .email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(r.trim()))
        {
            return Err(Error::invalid(
                "recovery_email",
                "same_as_email",
                "recovery_email must differ from the account's email",
            ));
        }
    }
    tx.prepare_cached(
        "UPDATE users SET name = coalesce(?2, name), recovery_email = coalesce(?3, recovery_email),
                          updated_at = ?4
          WHERE id = ?1",
    )?
    .execute(params![
        user.id,
        name.map(str::trim),
        recovery_email.map(str::trim),
        now
    ])?;
    Ok(())
}

/// Marks the user's current address as verified (a link mailed to it was
/// used), keeping the first time it was.
pub fn mark_email_verified(tx: &Connection, user_id: &str, now: i64) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, ?2) WHERE id = ?1",
    )?
    .execute(params![user_id, now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_plain_mailbox_is_an_email_address() {
        for ok in [
            "ada@example.com",
            "a.b+tag@mail.example.co.uk",
            "o'hara@example.ie",
            "x@xn--bcher-kva.example",
        ] {
            assert!(is_mailbox(ok), "{ok}");
        }
        // Each of these reached To: unchanged, and `sendmail -t` read some
        // as other or extra recipients (issue 9 review).
        for bad in [
            "victim@example.com,",
            "root,victim@example.com",
            "x<victim@example.com>",
            "\"a b\"@example.com",
            "a@b@example.com",
            "a..b@example.com",
            ".a@example.com",
            "a@example",
            "a@-example.com",
            "a@example.com (comment)",
            "a;b@example.com",
            "",
        ] {
            assert!(!is_mailbox(bad), "{bad}");
            assert!(check_email("email", bad).is_err());
        }
    }

    #[test]
    fn client_numbers_grow_and_a_removed_clients_number_is_not_given_again() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open_and_migrate(&dir.path().join("h.db")).unwrap();
        let add = |name: &str| {
            create_client(&conn, name, &[], None, true, Ttls::default(), 0)
                .unwrap()
                .0
        };
        let (a, b) = (add("a"), add("b"));
        assert_eq!((a.num, b.num), (1, 2));
        remove_client(&conn, &b.client_id).unwrap();
        assert_eq!(add("c").num, 3);
        assert_eq!(get_client(&conn, &a.client_id).unwrap().unwrap().num, 1);
    }

    #[test]
    fn client_ids_are_letters_and_digits_so_a_command_line_takes_them() {
        // With base64url, one id in 32 started with '-' or '_', and
        // `hallpass client update -xyz…` read it as an option (a CI failure).
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open_and_migrate(&dir.path().join("h.db")).unwrap();
        for i in 0..300 {
            let name = format!("c{i}");
            let (c, _) = create_client(&conn, &name, &[], None, true, Ttls::default(), 0).unwrap();
            assert_eq!(c.client_id.len(), 20, "{}", c.client_id);
            assert!(
                c.client_id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{}",
                c.client_id
            );
        }
    }
}
