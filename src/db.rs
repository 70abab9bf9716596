//! The SQLite store: opening a connection, the schema and its migrations,
//! and the one way to write several statements atomically.
//!
//! Every connection gets WAL, `synchronous=NORMAL`, `foreign_keys=ON` and a
//! busy timeout. The database file is created with mode 0600 before SQLite
//! opens it (SQLite gives its -wal and -shm files the same mode).
//!
//! `schema.sql` is the whole current schema: an empty file gets it and is
//! stamped with `LATEST`. An older file gets the append-only `MIGRATIONS`
//! after its `user_version`, one transaction each, the version bumped inside
//! it. A file from a newer hallpass is refused and left untouched.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::Error;

/// The whole current schema.
pub const SCHEMA: &str = include_str!("../schema.sql");

/// Migrations from version N to N+1 live at index N-1. Append only.
const MIGRATIONS: &[&str] = &[
    // 1 -> 2: the second factor (TOTP, recovery codes), one-time codes and
    // the mail outbox.
    include_str!("migrations/002_second_factor.sql"),
    // 2 -> 3: mail bodies sealed; plain queued bodies erased (see the file).
    include_str!("migrations/003_sealed_mail.sql"),
    // 3 -> 4: the soft lock per source, the account budget and trusted
    // sources (issue 8).
    include_str!("migrations/004_soft_lock_sources.sql"),
    // 4 -> 5: the per-address mail quota of the emailed flows (issue 9).
    include_str!("migrations/005_emailed_flows.sql"),
    // 5 -> 6: claimed_at, the mail worker's mark on a row it is delivering
    // (issue 9).
    include_str!("migrations/006_mail_delivery.sql"),
    // 6 -> 7: the audit trail of the admin API and the CLI (issue 10).
    include_str!("migrations/007_audit.sql"),
    // 7 -> 8: indexes of the login-activity API (issue 10).
    include_str!("migrations/008_activity.sql"),
    // 8 -> 9: active_days, the rollup of /active-users, with its trigger
    // and backfill.
    include_str!("migrations/009_active_days.sql"),
    // 9 -> 10: social sign-in (identities, oauth_states).
    include_str!("migrations/010_social.sql"),
    // 10 -> 11: clients.num, AuthUser's authClientId (issue 15), and the
    // sequences that give it.
    include_str!("migrations/011_client_numbers.sql"),
    // 11 -> 12: web_sessions, the browsers signed in at the sign-in pages
    // (issue 13).
    include_str!("migrations/012_web_sessions.sql"),
    // 12 -> 13: the OpenID provider's client settings, and the auth-code
    // and session columns it binds (issue 13).
    include_str!("migrations/013_oidc_clients.sql"),
    // 13 -> 14: consents, what people granted apps at the OpenID
    // provider's consent page (issue 13).
    include_str!("migrations/014_consents.sql"),
    // 14 -> 15: oauth_states of sign-ins started at the sign-in page (no
    // client; return_to), issue 13.
    include_str!("migrations/015_web_social.sql"),
];

/// The schema version this build writes.
pub const LATEST: i64 = 1 + MIGRATIONS.len() as i64;

/// Opens (creating with mode 0600 if needed) and configures a connection,
/// without migrating. Only `init` and `serve` create a database; every
/// other command opens with `open_existing`.
pub fn open(path: &Path) -> Result<Connection, Error> {
    create_private(path)?;
    connect(path, true)
}

/// Opens and migrates, creating the file if needed: what `init` and
/// `serve` call once.
pub fn open_and_migrate(path: &Path) -> Result<Connection, Error> {
    look_first(path)?;
    let mut conn = open(path)?;
    migrate(&mut conn).map_err(|e| explain(path, e))?;
    Ok(conn)
}

/// Opens a database that must exist already, without migrating: a command
/// run in the wrong directory, or with a mistyped `--db`, is refused rather
/// than given a new, empty database it would "succeed" in.
pub fn open_existing(path: &Path) -> Result<Connection, Error> {
    // An empty file (`touch typo.db`) is no database either.
    let found = std::fs::metadata(path)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if !is_memory(path) && !found {
        return Err(Error::NotFound(format!(
            "no database at {}: point at yours with --db PATH, HALLPASS_DB=PATH or \
             `db = \"PATH\"` in the config file (--config FILE or HALLPASS_CONFIG); \
             `hallpass init` creates a new one",
            absolute(path).display()
        )));
    }
    look_first(path)?;
    connect(path, false)
}

/// Names a file of the database this process may not read or write,
/// before SQLite opens it (SQLite alone says "unable to open database
/// file" or, for a read-only -wal, nothing until the first write).
fn look_first(path: &Path) -> Result<(), Error> {
    match access_problem(path) {
        Some(problem) if !is_memory(path) => Err(Error::Internal(problem)),
        _ => Ok(()),
    }
}

/// What `serve` would meet opening `path`, found without creating anything
/// (for `check-config`): an existing file must open, read and write, and be
/// no newer than this build; a missing one needs a directory to be made in.
pub fn check(path: &Path) -> Result<String, Error> {
    if is_memory(path) {
        return Ok("database: in memory".into());
    }
    let abs = absolute(path);
    if std::fs::symlink_metadata(path).is_ok() {
        let conn = open_existing(path)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| explain(path, e.into()))?;
        if version > LATEST {
            return Err(Error::Internal(format!(
                "the database {} has schema version {version}, newer than this hallpass \
                 ({LATEST}); serve would refuse it",
                abs.display()
            )));
        }
        let upgrade = if version < LATEST && version > 0 {
            format!(", migrated to {LATEST} at the next start")
        } else {
            String::new()
        };
        return Ok(format!(
            "database: {} (schema version {version}{upgrade})",
            abs.display()
        ));
    }
    if let Some(dir) = abs.parent().filter(|d| !d.is_dir()) {
        return Err(Error::Internal(format!(
            "the database's directory {} does not exist",
            dir.display()
        )));
    }
    match directory_problem(path) {
        Some(problem) => Err(Error::Internal(problem)),
        None => Ok(format!(
            "database: {} does not exist yet; init or serve will create it",
            abs.display()
        )),
    }
}

/// True when `path` is SQLite's in-memory database (tests).
fn is_memory(path: &Path) -> bool {
    path.as_os_str() == ":memory:"
}

/// `path` made absolute against the current directory, for messages: the
/// operator sees which file was looked for, wherever the command ran.
pub fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Opens the file (creating it only when `create`) and configures the
/// connection. Permissions are checked first, so that a read-only file is
/// said at once, not at the first write.
fn connect(path: &Path, create: bool) -> Result<Connection, Error> {
    // No look at the files here (see `look_first`): workers connect while
    // other connections of this process hold locks.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | if create || is_memory(path) {
            OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::empty()
        };
    let conn = Connection::open_with_flags(path, flags).map_err(|e| explain(path, e.into()))?;
    configure(&conn).map_err(|e| explain(path, e))?;
    // SQLite opens a file it may not write read-only, without a word.
    if !is_memory(path) && conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        drop(conn);
        return Err(explain(
            path,
            Error::Internal(format!(
                "the database {} is read-only to this process",
                absolute(path).display()
            )),
        ));
    }
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<(), Error> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// An error met while opening `path`, replaced by what is wrong in the
/// operator's terms when a permission explains it (SQLite only says
/// "unable to open database file" or "attempt to write a readonly
/// database"); otherwise the error, with the path.
fn explain(path: &Path, e: Error) -> Error {
    if is_memory(path) {
        return e;
    }
    if let Some(problem) = access_problem(path).or_else(|| directory_problem(path)) {
        return Error::Internal(problem);
    }
    match e {
        Error::Internal(m) if !m.contains(&path.display().to_string()) => {
            Error::Internal(format!("database {}: {m}", absolute(path).display()))
        }
        other => other,
    }
}

/// The database file, or its -wal or -shm file where one exists, that
/// this process may not read or write.
fn access_problem(path: &Path) -> Option<String> {
    let db = absolute(path);
    let mut files = vec![(db.clone(), "the database")];
    for (suffix, what) in [
        ("-wal", "the database's write-ahead log"),
        ("-shm", "the database's shared-memory index"),
    ] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let p = std::path::PathBuf::from(name);
        if p.exists() {
            files.push((p, what));
        }
    }
    for (p, what) in files {
        let lacks = if !may(&p, 0o4) {
            "read"
        } else if !may(&p, 0o2) {
            "write"
        } else {
            continue;
        };
        return Some(format!(
            "cannot {lacks} {what} {}: permission denied (hallpass needs read and write \
             permission on it for the user it runs as{})",
            p.display(),
            owner_note(&p)
        ));
    }
    None
}

/// Whether this process may read (`0o4`) or write (`0o2`) `p`, from its
/// mode, owner and group against the process's effective ids, opening
/// nothing: closing a descriptor of a file drops every POSIX lock the
/// process holds on it, SQLite's included, and a server whose locks on
/// its -shm are gone may have it truncated under its mmap by another
/// process (SIGBUS; found by the backup drill). Root may do anything.
#[cfg(unix)]
fn may(p: &Path, bit: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(p) else {
        return true;
    };
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 {
        return true;
    }
    let mode = m.mode();
    let shift = if m.uid() == uid {
        6
    } else if m.gid() == rustix::process::getegid().as_raw()
        || rustix::process::getgroups()
            .unwrap_or_default()
            .iter()
            .any(|g| g.as_raw() == m.gid())
    {
        3
    } else {
        0
    };
    mode >> shift & bit != 0
}

#[cfg(not(unix))]
fn may(_p: &Path, _bit: u32) -> bool {
    true
}

/// Whether this process may create a file in `dir`: a probe file made
/// (create_new) and removed. For the database's directory (SQLite makes
/// -wal and -shm there) and the master key file's.
pub fn can_create_in(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".hallpass-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The database's directory, when this process may not create files in
/// it: SQLite makes the -wal and -shm files beside the database.
fn directory_problem(path: &Path) -> Option<String> {
    let db = absolute(path);
    let dir = db.parent()?;
    let name = db.file_name()?.to_string_lossy().into_owned();
    match can_create_in(dir) {
        Ok(()) => None,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(format!(
            "cannot create files in {}, the database's directory: permission denied \
             (SQLite keeps {name}-wal and {name}-shm beside the database, so the directory \
             needs write permission for the user hallpass runs as{})",
            dir.display(),
            owner_note(dir)
        )),
        Err(_) => None,
    }
}

/// "; it is owned by uid N, mode 0nnn": what the operator needs to fix a
/// permission (also for the master key file, app.rs).
pub fn owner_note(p: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(p) {
            return format!(
                "; it is owned by uid {}, mode {:04o}",
                m.uid(),
                m.mode() & 0o7777
            );
        }
    }
    let _ = p;
    String::new()
}

#[cfg(unix)]
fn create_private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    if is_memory(path) || path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(|_| ())
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            std::io::ErrorKind::PermissionDenied => {
                Err(Error::Internal(directory_problem(path).unwrap_or_else(
                    || format!("cannot create database {}: {e}", absolute(path).display()),
                )))
            }
            _ => Err(Error::Internal(format!(
                "cannot create database {}: {e}",
                absolute(path).display()
            ))),
        })
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> Result<(), Error> {
    Ok(())
}

/// Creates a new, empty file with mode 0600; refuses if anything (a file,
/// a symlink, even a dangling one) is already at `path`.
pub fn create_new_private(path: &Path) -> Result<(), Error> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map(|_| ()).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::Conflict(format!(
            "{} exists; refusing to overwrite it",
            path.display()
        )),
        _ => Error::Internal(format!("cannot create {}: {e}", path.display())),
    })
}

/// Brings the schema to `LATEST`.
pub fn migrate(conn: &mut Connection) -> Result<(), Error> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > LATEST {
        return Err(Error::Internal(format!(
            "the database has schema version {version}, newer than this hallpass \
             ({LATEST}); refusing to touch it"
        )));
    }
    if version == 0 {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let tables: i64 = tx.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 {
            return Err(Error::Internal(
                "the database has tables but no hallpass schema version; refusing".into(),
            ));
        }
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", LATEST)?;
        tx.commit()?;
        return Ok(());
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize - 1) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", i as i64 + 2)?;
        tx.commit()?;
    }
    Ok(())
}

/// Runs `f` inside `BEGIN IMMEDIATE … COMMIT`; any error rolls back.
pub fn immediate<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction) -> Result<T, Error>,
) -> Result<T, Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_private_and_stamped_with_the_latest_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let conn = open_and_migrate(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(m & 0o777, 0o600);
        }
    }

    #[test]
    fn migrating_twice_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        drop(open_and_migrate(&path).unwrap());
        let mut conn = open(&path).unwrap();
        migrate(&mut conn).unwrap();
    }

    #[test]
    fn a_database_from_a_newer_hallpass_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let conn = open_and_migrate(&path).unwrap();
            conn.pragma_update(None, "user_version", LATEST + 1)
                .unwrap();
        }
        let mut conn = open(&path).unwrap();
        assert!(migrate(&mut conn).is_err());
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST + 1);
    }

    /// The columns and indexes of every table, to compare two schemas.
    fn shape(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let mut st = conn
            .prepare("SELECT type, name, tbl_name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        let rows: Vec<(String, String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        for (kind, name, table) in rows {
            out.push(format!("{kind} {name} on {table}"));
            if kind == "index" {
                let mut cols = conn
                    .prepare("SELECT name FROM pragma_index_info(?1)")
                    .unwrap();
                let c: Vec<String> = cols
                    .query_map([&name], |r| r.get::<_, Option<String>>(0))
                    .unwrap()
                    .map(|r| format!("  ({})", r.unwrap().unwrap_or_default()))
                    .collect();
                out.extend(c);
            }
            if kind == "table" {
                let mut cols = conn
                    .prepare(
                        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)",
                    )
                    .unwrap();
                let c: Vec<String> = cols
                    .query_map([&name], |r| {
                        Ok(format!(
                            "  {} {} {} {:?} {}",
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, i64>(4)?
                        ))
                    })
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect();
                out.extend(c);
            }
        }
        out
    }

    #[test]
    fn a_version_1_database_migrates_to_the_same_shape_as_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let conn = open(&old).unwrap();
            conn.execute_batch(include_str!("../tests/fixtures/schema-v1.sql"))
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES ('t', 'kept', 0)",
                [],
            )
            .unwrap();
        }
        let migrated = open_and_migrate(&old).unwrap();
        let fresh = open_and_migrate(&dir.path().join("new.db")).unwrap();
        assert_eq!(shape(&migrated), shape(&fresh));
        let v: i64 = migrated
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST);
        let kept: String = migrated
            .query_row("SELECT name FROM tenants WHERE id = 't'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, "kept");
    }

    #[test]
    fn a_version_1_file_from_before_the_live_token_index_migrates_too() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let conn = open(&old).unwrap();
            let v1 = include_str!("../tests/fixtures/schema-v1.sql").replace(
                "CREATE INDEX refresh_tokens_live ON refresh_tokens (family_id) WHERE used_at IS NULL;",
                "",
            );
            conn.execute_batch(&v1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let migrated = open_and_migrate(&old).unwrap();
        let fresh = open_and_migrate(&dir.path().join("new.db")).unwrap();
        assert_eq!(shape(&migrated), shape(&fresh));
    }

    /// Issue 15: clients of a version 10 file are numbered in the order
    /// they were created, and the next client gets the number after them.
    #[test]
    fn a_version_10_files_clients_are_numbered_in_creation_order() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let conn = open(&old).unwrap();
            conn.execute_batch(include_str!("../tests/fixtures/schema-v1.sql"))
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            for (id, at) in [("late", 30), ("first", 10), ("second", 20)] {
                conn.execute(
                    "INSERT INTO clients (client_id, name, created_at) VALUES (?1, ?1, ?2)",
                    rusqlite::params![id, at],
                )
                .unwrap();
            }
        }
        let conn = open_and_migrate(&old).unwrap();
        let nums: Vec<(String, i64)> = conn
            .prepare("SELECT client_id, num FROM clients ORDER BY num")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let want = [("first", 1), ("second", 2), ("late", 3)];
        assert_eq!(nums, want.map(|(c, n)| (c.to_string(), n)));
        let next = crate::accounts::create_client(
            &conn,
            "new",
            &[],
            None,
            true,
            crate::accounts::Ttls::default(),
            40,
        )
        .unwrap();
        assert_eq!(next.0.num, 4);
    }

    /// Regression test for issue 8: a version 2 file's plain mail bodies
    /// (and the reset codes they carried) do not survive the upgrade.
    #[test]
    fn a_version_2_file_loses_its_plain_mail_bodies_and_their_reset_codes() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let conn = open(&old).unwrap();
            conn.execute_batch(include_str!("../tests/fixtures/schema-v1.sql"))
                .unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute_batch(
                "INSERT INTO users (id, email, created_at, updated_at) VALUES ('u', 'ann@example.com', 0, 0);
                 INSERT INTO mail_outbox (id, kind, to_addr, subject, body, next_attempt_at, created_at)
                 VALUES ('m', 'mfa_reset', 'ann@example.com', 'Your reset code', 'Code 1 of 2: k7q2x', 5, 5);
                 INSERT INTO one_time_codes (hash, kind, subject, user_id, created_at, expires_at)
                 VALUES ('h1', 'mfa_reset_main', 'u', 'u', 5, 86405),
                        ('h2', 'mfa_login', 'u', 'u', 5, 1805);",
            )
            .unwrap();
        }
        let migrated = open_and_migrate(&old).unwrap();
        let (status, body, error, subject): (String, Option<Vec<u8>>, Option<String>, String) =
            migrated
                .query_row(
                    "SELECT status, sealed_body, last_error, subject FROM mail_outbox WHERE id = 'm'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .unwrap();
        assert_eq!(status, "failed");
        assert_eq!(body, None);
        assert!(error.unwrap().contains("erased"));
        assert_eq!(subject, "Your reset code", "the metadata stays");
        let kinds: Vec<String> = migrated
            .prepare("SELECT kind FROM one_time_codes")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(kinds, ["mfa_login"], "only the reset codes go");
        let fresh = open_and_migrate(&dir.path().join("new.db")).unwrap();
        assert_eq!(shape(&migrated), shape(&fresh));
    }

    #[test]
    fn a_failed_statement_rolls_the_transaction_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_and_migrate(&dir.path().join("h.db")).unwrap();
        let r: Result<(), Error> = immediate(&mut conn, |tx| {
            tx.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES ('t', 'n', 0)",
                [],
            )?;
            Err(Error::Conflict("stop".into()))
        });
        assert!(r.is_err());
        let n: i64 = conn
            .query_row("SELECT count(*) FROM tenants", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
