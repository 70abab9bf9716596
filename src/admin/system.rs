//! The server-wide things: clients, signing keys and the mail outbox.
//! They belong to no tenant, so an actor's reach does not narrow them;
//! the HTTP layer requires their scope (`clients:write`, `keys:write`,
//! `mail:write`).

use serde_json::json;

use super::audit::record;
use super::{Actor, Store};
use crate::accounts::{self, Client, ProviderSettings, Ttls, PROVIDER_SCOPES};
use crate::crypto::MasterKey;
use crate::error::Error;
use crate::jwt::{self, KeySource};
use crate::mail::outbox::{self, Listed, Retried};

/// Every client.
pub fn list_clients(db: &impl Store) -> Result<Vec<Client>, Error> {
    accounts::list_clients(db.conn())
}

/// One client.
pub fn get_client(db: &impl Store, client_id: &str) -> Result<Client, Error> {
    accounts::get_client(db.conn(), client_id)?
        .ok_or_else(|| Error::NotFound(format!("no client {client_id:?}")))
}

/// A client to create.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    pub redirect_urls: Vec<String>,
    pub logout_redirect_url: Option<String>,
    /// No secret (SPAs, mobile apps).
    pub public: bool,
    /// Where RP-initiated logout may return (exact match).
    pub post_logout_redirect_urls: Vec<String>,
    /// The scopes it may ask for; empty: every scope the provider knows.
    pub scopes: Vec<String>,
    /// A person must consent (false: first-party).
    pub consent: bool,
    /// The id_token's algorithm (None: the current key's).
    pub token_alg: Option<String>,
}

/// Changes to a client; None leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ClientUpdate {
    pub name: Option<String>,
    pub redirect_urls: Option<Vec<String>>,
    /// Some(None) removes it.
    pub logout_redirect_url: Option<Option<String>>,
    pub post_logout_redirect_urls: Option<Vec<String>>,
    /// Some(empty): every scope the provider knows.
    pub scopes: Option<Vec<String>>,
    pub consent: Option<bool>,
    /// Some(None): back to the current key's algorithm.
    pub token_alg: Option<Option<String>>,
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.chars().count() > 128 {
        return Err(Error::invalid(
            "name",
            "invalid",
            "name must be 1 to 128 characters",
        ));
    }
    Ok(())
}

/// Checks the provider settings and fills in the default scopes.
fn provider_settings(
    post_logout_redirect_urls: &[String],
    scopes: &[String],
    consent: bool,
    token_alg: Option<&str>,
) -> Result<ProviderSettings, Error> {
    for u in post_logout_redirect_urls {
        check_url("post_logout_redirect_urls", u)?;
    }
    let mut granted: Vec<String> = Vec::new();
    for s in scopes {
        if !PROVIDER_SCOPES.contains(&s.as_str()) {
            return Err(Error::invalid(
                "scopes",
                "invalid",
                format!("unknown scope {s:?}; known: {}", PROVIDER_SCOPES.join(" ")),
            ));
        }
        if !granted.contains(s) {
            granted.push(s.clone());
        }
    }
    if granted.is_empty() {
        granted = PROVIDER_SCOPES.iter().map(|s| s.to_string()).collect();
    }
    // HS256 would make the id_token an HMAC with a secret the client does
    // not hold; EdDSA is left out because few relying parties verify it.
    if let Some(a) = token_alg {
        if !["ES256", "RS256"].contains(&a) {
            return Err(Error::invalid(
                "token_alg",
                "invalid",
                "token_alg must be ES256 or RS256",
            ));
        }
    }
    Ok(ProviderSettings {
        post_logout_redirect_urls: post_logout_redirect_urls.to_vec(),
        scopes: granted,
        consent,
        token_alg: token_alg.map(str::to_string),
    })
}

/// Every redirect URL is absolute and without a fragment (RFC 6749
/// §3.1.2); any scheme, since native apps use their own (RFC 8252 §7.1).
fn check_url(field: &str, url: &str) -> Result<(), Error> {
    let scheme_ok = url.split_once("://").is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    // Schemes a browser runs rather than visits are never a redirect.
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    let runs = ["javascript", "data", "vbscript", "file"].contains(&scheme.as_str());
    let ok = scheme_ok
        && !runs
        && !url.contains('#')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && url.len() <= 2048;
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "invalid",
            format!("{field} must be absolute URLs without a fragment"),
        ))
    }
}

/// Creates a client; returns it and, for a confidential one, its secret
/// (shown only now).
pub fn create_client(
    db: &mut impl Store,
    actor: &Actor,
    new: &NewClient,
    ttls: Ttls,
) -> Result<(Client, Option<String>), Error> {
    let name = new.name.trim();
    check_name(name)?;
    let settings = provider_settings(
        &new.post_logout_redirect_urls,
        &new.scopes,
        new.consent,
        new.token_alg.as_deref(),
    )?;
    for u in &new.redirect_urls {
        check_url("redirect_urls", u)?;
    }
    if let Some(u) = &new.logout_redirect_url {
        check_url("logout_redirect_url", u)?;
    }
    let now = db.now();
    db.write(|tx| {
        let (c, secret) = accounts::create_client(
            tx,
            name,
            &new.redirect_urls,
            new.logout_redirect_url.as_deref(),
            new.public,
            ttls,
            now,
        )?;
        accounts::set_provider_settings(tx, &c.client_id, &settings)?;
        let c = accounts::get_client(tx, &c.client_id)?
            .ok_or_else(|| Error::Internal("client vanished".into()))?;
        let details = json!({
            "name": c.name, "public": c.is_public(), "redirect_urls": c.redirect_urls,
            "logout_redirect_url": c.logout_redirect_url,
            "post_logout_redirect_urls": c.post_logout_redirect_urls, "scopes": c.scopes,
            "consent": c.consent, "token_alg": c.token_alg,
        });
        record(
            tx,
            actor,
            "client.create",
            "client",
            Some(&c.client_id),
            details,
            now,
        )?;
        Ok((c, secret))
    })
}

/// Changes a client's settings; returns it as it now is. The audit row
/// names the fields changed.
pub fn update_client(
    db: &mut impl Store,
    actor: &Actor,
    client_id: &str,
    change: &ClientUpdate,
) -> Result<Client, Error> {
    let c = get_client(db, client_id)?;
    let name = change.name.as_deref().map(str::trim).unwrap_or(&c.name);
    check_name(name)?;
    let redirect_urls = change.redirect_urls.as_ref().unwrap_or(&c.redirect_urls);
    for u in redirect_urls {
        check_url("redirect_urls", u)?;
    }
    let logout = match &change.logout_redirect_url {
        Some(v) => v.clone(),
        None => c.logout_redirect_url.clone(),
    };
    if let Some(u) = &logout {
        check_url("logout_redirect_url", u)?;
    }
    let settings = provider_settings(
        change
            .post_logout_redirect_urls
            .as_ref()
            .unwrap_or(&c.post_logout_redirect_urls),
        change.scopes.as_ref().unwrap_or(&c.scopes),
        change.consent.unwrap_or(c.consent),
        match &change.token_alg {
            Some(v) => v.as_deref(),
            None => c.token_alg.as_deref(),
        },
    )?;
    let now = db.now();
    db.write(|tx| {
        accounts::update_client_basics(tx, &c.client_id, name, redirect_urls, logout.as_deref())?;
        accounts::set_provider_settings(tx, &c.client_id, &settings)?;
        let updated = accounts::get_client(tx, &c.client_id)?
            .ok_or_else(|| Error::Internal("client vanished".into()))?;
        let mut changed = Vec::new();
        for (field, differs) in [
            ("name", updated.name != c.name),
            ("redirect_urls", updated.redirect_urls != c.redirect_urls),
            (
                "logout_redirect_url",
                updated.logout_redirect_url != c.logout_redirect_url,
            ),
            (
                "post_logout_redirect_urls",
                updated.post_logout_redirect_urls != c.post_logout_redirect_urls,
            ),
            ("scopes", updated.scopes != c.scopes),
            ("consent", updated.consent != c.consent),
            ("token_alg", updated.token_alg != c.token_alg),
        ] {
            if differs {
                changed.push(field);
            }
        }
        record(
            tx,
            actor,
            "client.update",
            "client",
            Some(&c.client_id),
            json!({ "changed": changed }),
            now,
        )?;
        Ok(updated)
    })
}

/// Removes a client and everything issued to it.
pub fn delete_client(db: &mut impl Store, actor: &Actor, client_id: &str) -> Result<(), Error> {
    let c = get_client(db, client_id)?;
    let now = db.now();
    db.write(|tx| {
        accounts::remove_client(tx, &c.client_id)?;
        let details = json!({"name": c.name});
        record(
            tx,
            actor,
            "client.delete",
            "client",
            Some(&c.client_id),
            details,
            now,
        )
    })
}

/// A signing key as `keys list` shows it (never the key).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SigningKey {
    pub kid: String,
    pub alg: &'static str,
    pub current: bool,
    /// For a retired key: when it leaves the JWKS.
    pub published_until: Option<i64>,
}

/// The current signing key and the retired ones still published, read
/// from the database (a rotation by another process shows at once).
pub fn list_keys(db: &impl Store, master: &MasterKey) -> Result<Vec<SigningKey>, Error> {
    let keys = jwt::KeySet::load(db.conn(), master, db.now())?;
    Ok(keys
        .describe()
        .into_iter()
        .map(|(kid, alg, current, published_until)| SigningKey {
            kid,
            alg,
            current,
            published_until,
        })
        .collect())
}

/// Makes a new current signing key; the old one stays published for
/// `keep_secs`. Returns the new kid. (A running server picks it up from
/// the database; the HTTP handler also reloads its own at once.)
pub fn rotate_keys(
    db: &mut impl Store,
    actor: &Actor,
    master: &MasterKey,
    source: &KeySource,
    keep_secs: i64,
) -> Result<String, Error> {
    let now = db.now();
    db.write(|tx| {
        let kid = jwt::rotate_in(tx, master, source, keep_secs, now)?;
        record(
            tx,
            actor,
            "keys.rotate",
            "signing_key",
            Some(&kid),
            json!({}),
            now,
        )?;
        Ok(kid)
    })
}

/// The outbox, newest first: never a body.
pub fn list_mail(db: &impl Store, limit: usize) -> Result<Vec<Listed>, Error> {
    outbox::list(db.conn(), limit)
}

/// Makes a pending mail due now.
pub fn retry_mail(db: &mut impl Store, actor: &Actor, id: &str) -> Result<Retried, Error> {
    let now = db.now();
    db.write(|tx| {
        let r = outbox::retry_now(tx, id, now)?;
        let details = json!({"outcome": match r {
            Retried::Due => "due",
            Retried::InDelivery => "in_delivery",
        }});
        record(tx, actor, "mail.retry", "mail", Some(id), details, now)?;
        Ok(r)
    })
}

/// A client as the CLI's `--json` and the admin API show it (never the
/// secret or its hash).
pub fn client_json(c: &Client) -> serde_json::Value {
    json!({
        "client_id": c.client_id, "num": c.num, "name": c.name, "public": c.is_public(),
        "redirect_urls": c.redirect_urls, "logout_redirect_url": c.logout_redirect_url,
        "access_ttl": c.access_ttl, "refresh_ttl": c.refresh_ttl, "auth_code_ttl": c.auth_code_ttl,
        "post_logout_redirect_urls": c.post_logout_redirect_urls, "scopes": c.scopes,
        "consent": c.consent, "token_alg": c.token_alg,
    })
}
