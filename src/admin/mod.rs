//! The operations an operator performs on the server, shared by the CLI
//! (`main.rs`) and the admin HTTP API (`api/admin.rs`): users and their
//! sessions (`users.rs`), tenants, memberships and API keys (`tenants.rs`),
//! clients, signing keys and the mail outbox (`system.rs`), and the audit
//! trail every change writes (`audit.rs`).
//!
//! Every change takes an `Actor` (who, from where, how far they reach) and
//! writes its audit row in the transaction that makes the change, so a
//! change that fails or rolls back leaves no row, and no change is made
//! without one. Nothing here knows HTTP: the callers decide who the actor
//! is (a CLI user, an admin bearer, an API key with a scope); this module
//! decides what that actor may touch (`Reach`).

use rusqlite::{Connection, Transaction};

use crate::accounts::{self, ApiKey, User};
use crate::app::Ctx;
use crate::error::Error;

pub mod audit;
pub mod system;
pub mod tenants;
pub mod users;

/// Where changes are read and written: a server worker's `Ctx` (its
/// writer lock and clock) or the CLI's `Local` connection.
pub trait Store {
    /// A connection for reads.
    fn conn(&self) -> &Connection;
    /// Now, in unix seconds.
    fn now(&self) -> i64;
    /// Runs `f` in one `BEGIN IMMEDIATE` transaction.
    fn write<T>(&mut self, f: impl FnOnce(&Transaction) -> Result<T, Error>) -> Result<T, Error>;
}

impl Store for Ctx {
    fn conn(&self) -> &Connection {
        &self.conn
    }
    fn now(&self) -> i64 {
        Ctx::now(self)
    }
    fn write<T>(&mut self, f: impl FnOnce(&Transaction) -> Result<T, Error>) -> Result<T, Error> {
        Ctx::write(self, f)
    }
}

/// The CLI's store: its own connection and the system clock. Another
/// process (a running server) meets SQLite's busy timeout, not our lock.
pub struct Local {
    pub conn: Connection,
}

impl Store for Local {
    fn conn(&self) -> &Connection {
        &self.conn
    }
    fn now(&self) -> i64 {
        crate::clock::system_now()
    }
    fn write<T>(&mut self, f: impl FnOnce(&Transaction) -> Result<T, Error>) -> Result<T, Error> {
        crate::db::immediate(&mut self.conn, f)
    }
}

/// Who makes a change.
#[derive(Debug, Clone, PartialEq)]
pub enum Who {
    /// The CLI, as `user@host` of the operating-system account.
    Cli(String),
    /// A user with the admin role, by id (an admin bearer).
    Admin(String),
    /// An API key, by id (never the key), with its scopes.
    ApiKey { id: String, scopes: Vec<String> },
}

/// How far an actor reaches.
#[derive(Debug, Clone, PartialEq)]
pub enum Reach {
    /// Everything: the CLI, an admin, an API key with the `admin` scope.
    All,
    /// One tenant's users, memberships and API keys (any other API key).
    Tenant(String),
}

/// Who makes a change, from where, and how far they reach.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub who: Who,
    /// The client IP, or "cli".
    pub from: String,
    pub reach: Reach,
}

impl Actor {
    /// The CLI, run by `name` (user@host).
    pub fn cli(name: &str) -> Actor {
        Actor {
            who: Who::Cli(name.to_string()),
            from: "cli".into(),
            reach: Reach::All,
        }
    }

    /// A user with the admin role, calling from `ip`.
    pub fn admin(user: &User, ip: &str) -> Actor {
        Actor {
            who: Who::Admin(user.id.clone()),
            from: ip.to_string(),
            reach: Reach::All,
        }
    }

    /// An API key, calling from `ip`: confined to its tenant unless it
    /// carries the `admin` scope.
    pub fn api_key(key: &ApiKey, ip: &str) -> Actor {
        let reach = if key.has_scope("admin") {
            Reach::All
        } else {
            Reach::Tenant(key.tenant_id.clone())
        };
        Actor {
            who: Who::ApiKey {
                id: key.id.clone(),
                scopes: key.scopes.clone(),
            },
            from: ip.to_string(),
            reach,
        }
    }

    /// The tenant this actor is confined to, if any.
    pub fn tenant(&self) -> Option<&str> {
        match &self.reach {
            Reach::All => None,
            Reach::Tenant(t) => Some(t),
        }
    }

    /// Refuses an actor confined to a tenant (for server-wide changes
    /// such as creating a tenant).
    pub fn require_all(&self, what: &str) -> Result<(), Error> {
        match self.reach {
            Reach::All => Ok(()),
            Reach::Tenant(_) => Err(Error::Forbidden(format!(
                "{what} needs an admin (an API key confined to its tenant cannot)"
            ))),
        }
    }
}

/// A page: at most `limit` items after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    /// The default page size.
    pub const DEFAULT: i64 = 50;
    /// The largest page.
    pub const MAX: i64 = 500;

    /// A page from optional query values; out of range is a 422 naming
    /// the field.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Page, Error> {
        let limit = limit.unwrap_or(Page::DEFAULT);
        if !(1..=Page::MAX).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                "invalid",
                format!("limit must be 1 to {}", Page::MAX),
            ));
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(Error::invalid(
                "offset",
                "invalid",
                "offset must be 0 or more",
            ));
        }
        Ok(Page { limit, offset })
    }
}

impl Default for Page {
    fn default() -> Page {
        Page {
            limit: Page::DEFAULT,
            offset: 0,
        }
    }
}

/// One page of a list and the size of the whole list.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: Page,
}

/// A user the actor may see: anyone for `Reach::All`, else a member of
/// the actor's tenant. Others are NotFound, as if they did not exist.
pub fn visible_user(conn: &Connection, actor: &Actor, ident: &str) -> Result<User, Error> {
    let user = accounts::find_user(conn, ident)?;
    if let Some(t) = actor.tenant() {
        if accounts::membership(conn, &user.id, t)?.is_none() {
            return Err(Error::NotFound(format!("no user {ident:?}")));
        }
    }
    Ok(user)
}

/// A user the actor may change. A tenant-confined actor may change only
/// users who belong to its tenant alone and are not server admins: a
/// password set or a deletion must not reach into another tenant.
pub fn writable_user(conn: &Connection, actor: &Actor, ident: &str) -> Result<User, Error> {
    let user = visible_user(conn, actor, ident)?;
    if let Some(t) = actor.tenant() {
        if user.is_admin() {
            return Err(Error::Forbidden(
                "an API key confined to a tenant cannot change a server admin".into(),
            ));
        }
        let elsewhere = accounts::memberships(conn, &user.id)?
            .iter()
            .any(|m| m.tenant_id != t);
        if elsewhere {
            return Err(Error::Forbidden(
                "this user belongs to other tenants too; only an admin can change them".into(),
            ));
        }
    }
    Ok(user)
}
