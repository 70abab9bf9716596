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

use rusqlite::{Connection, OptionalExtension, Transaction};

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
    /// Browser sessions used since their row was written (web/session.rs),
    /// written by the background thread.
    pub web_seen: crate::web::session::Seen,
    /// The `[web] logo` file, read at start (served at `/assets/logo`).
    pub logo: Option<crate::web::pages::Logo>,
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
            web_seen: crate::web::session::Seen::default(),
            logo: None,
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

/// The master key: `HALLPASS_MASTER_KEY` when set, else the key file.
///
/// A missing key file is created (mode 0600, a fresh random key) only while
/// the database holds nothing sealed: once it does, a new key could never
/// open it (a database restored without its key file), so that is an error
/// that says to restore the file. A key that does not open what the
/// database holds is refused, naming where it came from.
pub fn load_master_key(config: &Config) -> Result<MasterKey, Error> {
    if let Some(key) = read_master_key(config)? {
        verify_master_key(config, &key)?;
        return Ok(key);
    }
    if let Some(sealed) = first_sealed(&config.db)? {
        return Err(missing_key(config, &sealed));
    }
    let key = MasterKey::generate()?;
    write_private(
        &config.master_key_file,
        format!("{}\n", key.to_base64()).as_bytes(),
    )?;
    Ok(key)
}

/// What `load_master_key` checks, creating nothing: for `check-config`.
/// Says where the key is (or will be made).
pub fn check_master_key(config: &Config) -> Result<String, Error> {
    match read_master_key(config)? {
        Some(key) => {
            verify_master_key(config, &key)?;
            Ok(format!("master key: {} (well-formed)", key_origin(config)))
        }
        None => match first_sealed(&config.db)? {
            Some(sealed) => Err(missing_key(config, &sealed)),
            None => {
                key_dir_problem(&config.master_key_file)?;
                Ok(format!(
                    "master key: {} does not exist yet; init or serve will create it",
                    key_origin(config)
                ))
            }
        },
    }
}

/// A key file that `serve` would have to create: its directory must exist
/// and take new files (found by creating and removing a probe file).
fn key_dir_problem(file: &Path) -> Result<(), Error> {
    let file = crate::db::absolute(file);
    let Some(dir) = file.parent() else {
        return Ok(());
    };
    crate::db::can_create_in(dir).map_err(|e| {
        Error::Internal(format!(
            "the master key file {} would be created, but its directory {} cannot take it: {e}{}",
            file.display(),
            dir.display(),
            crate::db::owner_note(dir)
        ))
    })
}

/// Where the key comes from, as messages name it.
fn key_origin(config: &Config) -> String {
    match &config.master_key {
        Some(_) => "HALLPASS_MASTER_KEY".into(),
        None => format!(
            "the key file {}",
            crate::db::absolute(&config.master_key_file).display()
        ),
    }
}

const KEY_FORMAT: &str = "64 hex digits, or 32 bytes in base64 (44 characters)";

/// The configured key, or None when there is no key file; an error for a
/// malformed key or a file that cannot be read. Creates nothing.
fn read_master_key(config: &Config) -> Result<Option<MasterKey>, Error> {
    if let Some(text) = &config.master_key {
        return MasterKey::parse(text).map(Some).map_err(|_| {
            Error::BadRequest(format!(
                "HALLPASS_MASTER_KEY is not a master key: it must be {KEY_FORMAT}"
            ))
        });
    }
    let path = crate::db::absolute(&config.master_key_file);
    match std::fs::read(&path) {
        Ok(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| MasterKey::parse(text).ok())
            .map(Some)
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "the master key file {} does not hold a master key: it must hold {KEY_FORMAT}",
                    path.display()
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(Error::Internal(format!(
                "cannot read the master key file {}: permission denied (hallpass needs read \
                 permission on it for the user it runs as{})",
                path.display(),
                crate::db::owner_note(&path)
            )))
        }
        Err(e) => Err(Error::Internal(format!(
            "cannot read the master key file {}: {e}",
            path.display()
        ))),
    }
}

/// One value the database holds sealed under the master key: what it is,
/// the purpose it was sealed for (as its owner seals it: jwt.rs, totp.rs,
/// mail/outbox.rs, social/flow.rs) and the sealed bytes.
struct Sealed {
    what: &'static str,
    purpose: String,
    bytes: Vec<u8>,
}

/// The first sealed value in the database at `db`, if the file exists and
/// holds one. Opening it needs an existing file: nothing is created.
fn first_sealed(db: &Path) -> Result<Option<Sealed>, Error> {
    if db.as_os_str() == ":memory:" || !db.exists() {
        return Ok(None);
    }
    let conn = crate::db::open_existing(db)?;
    type Row = (&'static str, &'static str, &'static str);
    // (table, query, what): each query gives (purpose, sealed bytes).
    const SEALED: [Row; 4] = [
        (
            "signing_keys",
            "SELECT 'signing-key', sealed_private FROM signing_keys LIMIT 1",
            "signing keys",
        ),
        (
            "totp_factors",
            "SELECT 'totp:' || user_id, sealed_secret FROM totp_factors LIMIT 1",
            "TOTP secrets",
        ),
        (
            "mail_outbox",
            "SELECT 'mail-body:' || id || ':' || to_addr, sealed_body FROM mail_outbox
              WHERE sealed_body IS NOT NULL LIMIT 1",
            "mail bodies",
        ),
        (
            "identities",
            "SELECT 'social-upstream:' || provider || ':' || subject, upstream FROM identities
              WHERE upstream IS NOT NULL LIMIT 1",
            "upstream provider tokens",
        ),
    ];
    for (table, query, what) in SEALED {
        let exists: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        if !exists {
            continue;
        }
        let found = conn
            .query_row(query, [], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))
            .optional()?;
        if let Some((purpose, bytes)) = found {
            return Ok(Some(Sealed {
                what,
                purpose,
                bytes,
            }));
        }
    }
    Ok(None)
}

/// Refuses a key that does not open what the database holds sealed.
fn verify_master_key(config: &Config, key: &MasterKey) -> Result<(), Error> {
    let Some(sealed) = first_sealed(&config.db)? else {
        return Ok(());
    };
    if key.open(&sealed.purpose, &sealed.bytes).is_ok() {
        return Ok(());
    }
    let fix = match &config.master_key {
        Some(_) => "set HALLPASS_MASTER_KEY to the key backed up with this database",
        None => "restore the key file that was backed up with this database",
    };
    Err(Error::Internal(format!(
        "the master key from {} does not open the {} in {}: it is not the key this \
         database was sealed with; {fix}",
        key_origin(config),
        sealed.what,
        crate::db::absolute(&config.db).display()
    )))
}

fn missing_key(config: &Config, sealed: &Sealed) -> Error {
    Error::Internal(format!(
        "the master key file {} is missing, but the database {} holds {} sealed under \
         a master key: restore the key file together with the database (or set \
         HALLPASS_MASTER_KEY to that key); no new key file was made, as a new key \
         could not open them",
        crate::db::absolute(&config.master_key_file).display(),
        crate::db::absolute(&config.db).display(),
        sealed.what
    ))
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
            let path = crate::db::absolute(path);
            match (e.kind(), path.parent()) {
                (std::io::ErrorKind::PermissionDenied, Some(dir)) => Error::Internal(format!(
                    "cannot create the master key file {}: permission denied: its directory \
                     {} needs write permission for the user hallpass runs as{}",
                    path.display(),
                    dir.display(),
                    crate::db::owner_note(dir)
                )),
                _ => Error::Internal(format!(
                    "cannot create the master key file {}: {e}",
                    path.display()
                )),
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    /// A config for a database in `dir`, its key from the key file beside it.
    fn config(dir: &Path) -> Config {
        let mut c = Config::defaults();
        c.db = dir.join("h.db");
        c.master_key_file = dir.join("h.db.key");
        c
    }

    /// The key opens each kind of sealed value, sealed by its owner: the
    /// purposes `first_sealed` rebuilds are the ones jwt.rs, totp.rs and
    /// mail/outbox.rs seal with.
    #[test]
    fn each_kind_of_sealed_value_tells_the_right_key_from_a_wrong_one() {
        type Seal = fn(&mut Connection, &MasterKey);
        let seal: [(&str, Seal); 3] = [
            ("signing keys", |conn, key| {
                let source = crate::jwt::KeySource::Generate(crate::jwt::Alg::Es256);
                crate::jwt::ensure_current(conn, key, &source, 60, 0).unwrap();
            }),
            ("TOTP secrets", |conn, key| {
                conn.execute(
                    "INSERT INTO users (id, created_at, updated_at) VALUES ('u', 0, 0)",
                    [],
                )
                .unwrap();
                db::immediate(conn, |tx| {
                    crate::totp::enroll(tx, key, "u", "hallpass", "ann", false, 0)
                })
                .unwrap();
            }),
            ("mail bodies", |conn, key| {
                let m = crate::mail::outbox::Message {
                    kind: "test",
                    to: "ann@example.com",
                    subject: "s",
                    text: "t",
                    html: None,
                };
                crate::mail::outbox::enqueue(conn, key, &m, 0).unwrap();
            }),
        ];
        for (what, seal) in seal {
            let dir = tempfile::tempdir().unwrap();
            let c = config(dir.path());
            let mut conn = db::open_and_migrate(&c.db).unwrap();
            assert!(first_sealed(&c.db).unwrap().is_none());
            let right = MasterKey::generate().unwrap();
            seal(&mut conn, &right);
            assert_eq!(first_sealed(&c.db).unwrap().unwrap().what, what);
            verify_master_key(&c, &right).unwrap();
            let err = verify_master_key(&c, &MasterKey::generate().unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(what), "{err}");
            assert!(err.contains("h.db.key"), "{err}");
        }
    }

    #[test]
    fn a_key_file_is_made_only_while_nothing_is_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let mut conn = db::open_and_migrate(&c.db).unwrap();
        let key = load_master_key(&c).unwrap();
        assert!(c.master_key_file.exists());
        let source = crate::jwt::KeySource::Generate(crate::jwt::Alg::Es256);
        crate::jwt::ensure_current(&mut conn, &key, &source, 60, 0).unwrap();
        std::fs::remove_file(&c.master_key_file).unwrap();
        let err = load_master_key(&c).unwrap_err().to_string();
        assert!(err.contains("is missing"), "{err}");
        assert!(!c.master_key_file.exists(), "no new key over sealed values");
        let err = check_master_key(&c).unwrap_err().to_string();
        assert!(err.contains("restore the key file"), "{err}");
    }
}
