//! The state a running server shares between its workers (`App`), and what
//! each worker owns (`Ctx`: its own SQLite connection).
//!
//! Writes go through `Ctx::write`: an in-process writer lock, then
//! `BEGIN IMMEDIATE`. SQLite allows one writer at a time anyway; taking our
//! own lock first means workers queue in a fair mutex instead of spinning in
//! SQLite's busy handler, which keeps refresh throughput high. Other
//! processes (the CLI) still meet the busy timeout.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, Transaction};

use crate::auth::{RotateJob, Rotated};
use crate::batch::Batcher;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::error::Error;
use crate::jwt::{KeySet, VerifyCache};
use crate::limits::{HashGate, RateLimiter};
use crate::log::Logger;
use crate::metrics::Metrics;

/// Shared by every worker.
pub struct App {
    pub config: Config,
    pub clock: Clock,
    /// The public base URL (configured, or from the bound address).
    pub public_url: String,
    /// The JWT `iss`.
    pub issuer: String,
    pub master: MasterKey,
    pub keys: RwLock<Arc<KeySet>>,
    pub verified: VerifyCache,
    pub limiter: RateLimiter,
    pub gate: HashGate,
    pub metrics: Metrics,
    /// What mails need: the sealing key, product name, public URL and
    /// templates.
    pub mail: crate::mail::Outgoing,
    /// The stderr writer for the access log and connection warnings.
    pub log: Arc<Logger>,
    /// A hash of a random password at the configured cost, verified against
    /// when the user is unknown so that both cases cost the same.
    pub dummy_hash: String,
    /// Set when the HTTP engine's I/O thread has died.
    pub listener_error: Mutex<Option<String>>,
    /// Refresh-token rotations, committed in groups (batch.rs).
    pub rotations: Batcher<RotateJob, Rotated>,
    /// GET /openapi.json, built for the enabled dialects on its first
    /// request (not at start: building it costs start-up time, and memory
    /// the allocator keeps, that a server nobody asks for it need not pay).
    pub openapi: std::sync::OnceLock<String>,
    /// The upstream providers' agents and caches (social sign-in).
    pub social: crate::social::Social,
    writer: Mutex<()>,
}

impl App {
    /// Assembles the shared state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        clock: Clock,
        public_url: String,
        issuer: String,
        master: MasterKey,
        keys: KeySet,
        gate: HashGate,
        dummy_hash: String,
        templates: crate::mail::Templates,
    ) -> App {
        let mail = crate::mail::Outgoing {
            master: master.clone(),
            product: config.mail_product.clone(),
            public_url: public_url.clone(),
            templates,
            signal: Arc::default(),
        };
        App {
            social: crate::social::Social::new(&config.providers, config.workers),
            openapi: std::sync::OnceLock::new(),
            limiter: RateLimiter::new(config.limits.clone()),
            config,
            clock,
            public_url,
            issuer,
            master,
            keys: RwLock::new(Arc::new(keys)),
            verified: VerifyCache::default(),
            gate,
            metrics: Metrics::default(),
            log: Arc::new(Logger::start()),
            mail,
            dummy_hash,
            listener_error: Mutex::new(None),
            rotations: Batcher::default(),
            writer: Mutex::new(()),
        }
    }

    /// The current key set.
    pub fn keys(&self) -> Result<Arc<KeySet>, Error> {
        self.keys
            .read()
            .map(|k| k.clone())
            .map_err(|_| Error::Internal("key set lock poisoned".into()))
    }

    /// Records why the listener stopped accepting (the first reason wins).
    pub fn listener_failed(&self, why: String) {
        if let Ok(mut slot) = self.listener_error.lock() {
            slot.get_or_insert(why);
        }
    }

    /// Replaces the key set (after a rotation seen in the database).
    pub fn set_keys(&self, keys: KeySet) {
        if let Ok(mut k) = self.keys.write() {
            *k = Arc::new(keys);
        }
        self.verified.clear();
    }
}

/// One worker's context.
pub struct Ctx {
    pub conn: Connection,
    pub app: Arc<App>,
}

impl Ctx {
    /// Now, from the app's clock.
    pub fn now(&self) -> i64 {
        self.app.clock.now()
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction under the writer lock.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&Transaction) -> Result<T, Error>,
    ) -> Result<T, Error> {
        // The lock guards no data, so a panic elsewhere cannot leave it
        // inconsistent: a poisoned lock is taken as it is.
        let _guard = self.app.writer.lock().unwrap_or_else(|p| p.into_inner());
        crate::db::immediate(&mut self.conn, f)
    }
}

/// The master key: `HALLPASS_MASTER_KEY` when set, else the key file,
/// created (mode 0600) with a fresh random key on first start.
pub fn load_master_key(config: &Config) -> Result<MasterKey, Error> {
    if let Some(text) = &config.master_key {
        return MasterKey::parse(text);
    }
    let path: &Path = &config.master_key_file;
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate()?;
            write_private(path, format!("{}\n", key.to_base64()).as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(Error::Internal(format!(
            "cannot read the master key file {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Error::Internal(format!(
                "cannot create the master key file {}: {e}",
                path.display()
            ))
        })?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> Result<(), Error> {
    std::fs::write(path, data)?;
    Ok(())
}
