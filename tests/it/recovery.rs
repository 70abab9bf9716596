//! Disaster recovery, against the real `hallpass` binary run as a process
//! in its own temp directory:
//!
//! - the drill: `hallpass backup` taken in the middle of a refresh load
//!   from several threads, the copy and its key file restored into a new
//!   directory, a second server started on them;
//! - the crash: SIGKILL in the middle of such a load, then a restart on the
//!   same files.
//!
//! Each load thread holds one session and keeps rotating it, recording
//! every token it sent and received, so the chain of each session is known
//! exactly. The database is read directly (read-only, after the server
//! that wrote it has stopped) through `sessions::token_hash`'s rule:
//! a refresh token is stored as the SHA-256 hex of its text.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hallpass::crypto::token_hash;
use hallpass::sessions::GRACE;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::Validation;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::{json, Value};

use crate::cli::{bound_addr, hallpass, run_command, stop};
use crate::support::PASSWORD;

/// Sessions refreshed at once.
const THREADS: usize = 4;

/// A fixed public URL, so that the issuer of the access tokens does not
/// change with the port (as an operator's would not); rate limits raised
/// for a load from one address.
const CONFIG: &str = r#"
public_url = "https://auth.drill.example"
access_log = false

[limits]
login_burst = 1000
login_per_minute = 1000
token_burst = 100000
token_per_minute = 100000
"#;
const ISSUER: &str = "https://auth.drill.example";

/// `hallpass` in `dir`, with the test environment (see `cli::hallpass`)
/// and `dir`'s config file.
fn cmd(dir: &Path) -> Command {
    let mut c = hallpass(dir);
    c.env("HALLPASS_CONFIG", dir.join("hallpass.toml"));
    c
}

/// Runs `hallpass ARGS` in `dir`, which must succeed; its stdout.
fn must(dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut c = cmd(dir);
    c.args(args);
    let (ok, out, err) = run_command(c, stdin);
    assert!(ok, "hallpass {args:?}: {out}{err}");
    out
}

/// `hallpass backup FILE` in `dir`, which must finish within 8 s; its
/// stdout.
fn backup(dir: &Path, file: &str) -> String {
    let mut child = cmd(dir)
        .args(["backup", file])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("hallpass backup did not finish within 8 s under load");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    stdout.into_owned()
}

fn value(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in {out:?}"))
        .to_string()
}

/// A confidential client.
#[derive(Clone)]
struct Client {
    id: String,
    secret: String,
}

/// A database, a client and a user, made with the CLI as an operator
/// would; the client and the user's id.
fn set_up(dir: &Path) -> (Client, String) {
    std::fs::write(dir.join("hallpass.toml"), CONFIG).unwrap();
    must(dir, &["init"], None);
    let out = must(
        dir,
        &[
            "client",
            "add",
            "web",
            "--redirect-url",
            "https://app.example/cb",
        ],
        None,
    );
    let client = Client {
        id: value(&out, "client_id"),
        secret: value(&out, "client_secret"),
    };
    let user = [
        "user",
        "add",
        "ada@example.com",
        "--username",
        "ada",
        "--password-stdin",
    ];
    let out = must(dir, &user, Some(&format!("{PASSWORD}\n")));
    (client, value(&out, "user_id"))
}

/// Gives the database a history: `sessions` earlier sessions of `user`,
/// 20 rotations each, one live token apiece (about 28 MB for 5,000). A
/// database of a few dozen pages is copied by one step of the online
/// backup, which never meets a concurrent write; a real one is not.
fn add_history(db: &Path, user: &str, sessions: u32) {
    let conn = Connection::open(db).unwrap();
    let now = now();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?3)
         INSERT INTO token_families (id, user_id, created_at)
         SELECT 'old-' || i, ?1, ?2 FROM n",
        rusqlite::params![user, now, sessions],
    )
    .unwrap();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2 * 20)
         INSERT INTO refresh_tokens (hash, family_id, parent_hash, created_at, expires_at, used_at)
         SELECT lower(hex(randomblob(32))), 'old-' || (i / 20 + 1), lower(hex(randomblob(32))),
                ?1, ?1 + 2592000, CASE WHEN i % 20 = 19 THEN NULL ELSE ?1 END FROM n",
        rusqlite::params![now, sessions],
    )
    .unwrap();
}

/// `hallpass serve` as a child process.
struct Server {
    child: Option<Child>,
    base: String,
}

impl Server {
    /// Starts `serve` in `dir` on a free port and waits until /healthz
    /// answers 200 (its stderr goes to `dir/serve.log`).
    fn start(dir: &Path) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("serve.log"))
            .unwrap();
        let mut child = cmd(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let addr = bound_addr(&mut child);
        // Whatever else it prints must not fill the pipe.
        let mut rest = child.stdout.take().unwrap();
        std::thread::spawn(move || std::io::copy(&mut rest, &mut std::io::sink()));
        let server = Server {
            child: Some(child),
            base: format!("http://{addr}"),
        };
        let a = agent();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match a.get(server.url("/healthz")).call() {
                Ok(r) if r.status() == 200 => break,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                other => panic!("not ready within 10 s: {other:?}"),
            }
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        stop(self.child.as_mut().unwrap());
        self.child = None;
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test leaves no server running.
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// An answer received in full: its status and JSON body (Null if none).
/// Err when the exchange broke off: the client learnt nothing.
fn post(a: &ureq::Agent, url: &str, body: &Value) -> Result<(u16, Value), String> {
    let mut r = a.post(url).send_json(body).map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn me(a: &ureq::Agent, server: &Server, access: &str) -> u16 {
    a.get(server.url("/auth/me"))
        .header("Authorization", &format!("Bearer {access}"))
        .call()
        .unwrap()
        .status()
        .as_u16()
}

fn refresh(a: &ureq::Agent, server: &Server, token: &str) -> (u16, Value) {
    post(
        a,
        &server.url("/auth/token-refresh"),
        &json!({"refreshToken": token}),
    )
    .unwrap()
}

/// The error message of a refused refresh.
fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// A token pair the client holds, and when the request that got it was
/// sent and its answer received.
#[derive(Clone, Debug)]
struct Pair {
    refresh: String,
    access: String,
    sent: Instant,
    received: Instant,
}

/// One session as its client saw it.
#[derive(Debug)]
struct Chain {
    /// Every pair acknowledged with a 200, in order: the sign-in's first;
    /// each later one the answer to refreshing the one before it.
    pairs: Vec<Pair>,
    /// The last request, if its answer never came (the server died): the
    /// last pair's refresh token was sent, the outcome is unknown.
    unanswered: Option<String>,
    /// A refused refresh (status, body): none is expected.
    refused: Option<(u16, Value)>,
}

impl Chain {
    fn last(&self) -> &Pair {
        self.pairs.last().unwrap()
    }
}

fn pair(body: &Value, sent: Instant, received: Instant) -> Pair {
    Pair {
        refresh: body["refreshToken"].as_str().unwrap().to_string(),
        access: body["accessToken"].as_str().unwrap().to_string(),
        sent,
        received,
    }
}

/// Signs in (one at a time: the server hashes only as many passwords at
/// once as it has cores, and answers 429 beyond a short queue).
fn sign_in(base: &str, client: &Client) -> Chain {
    let sent = Instant::now();
    let (status, body) = post(
        &agent(),
        &format!("{base}/auth/login-token"),
        &json!({"client_id": client.id, "client_secret": client.secret,
                "username": "ada", "password": PASSWORD}),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    Chain {
        pairs: vec![pair(&body, sent, Instant::now())],
        unanswered: None,
        refused: None,
    }
}

/// Keeps refreshing the session until `stop`, a refusal, or the server is
/// gone; `done` counts acknowledged refreshes across threads.
fn refresh_load(base: &str, mut chain: Chain, stop: &AtomicBool, done: &AtomicUsize) -> Chain {
    let a = agent();
    let url = format!("{base}/auth/token-refresh");
    while !stop.load(Ordering::SeqCst) {
        let token = chain.last().refresh.clone();
        let sent = Instant::now();
        match post(&a, &url, &json!({ "refreshToken": token })) {
            Ok((200, body)) => {
                chain.pairs.push(pair(&body, sent, Instant::now()));
                done.fetch_add(1, Ordering::SeqCst);
            }
            Ok(refused) => {
                chain.refused = Some(refused);
                break;
            }
            Err(_) => {
                chain.unanswered = Some(token);
                break;
            }
        }
    }
    chain
}

/// Sets the load's stop flag when dropped, so that a failed assertion in
/// a `thread::scope` does not wait forever for the load to end.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits (at most 10 s) until `done` reaches `n`.
fn wait_for(done: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while done.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "the load stalled at {done:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A read-only connection to a database no server is using.
fn look(db: &Path) -> Connection {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn assert_integrity(conn: &Connection) {
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, ["ok"]);
}

/// A refresh token's row: family, parent hash, when it was used.
#[derive(Debug)]
struct Row {
    family: String,
    parent: Option<String>,
    used_at: Option<i64>,
}

fn row(conn: &Connection, token: &str) -> Option<Row> {
    conn.query_row(
        "SELECT family_id, parent_hash, used_at FROM refresh_tokens WHERE hash = ?1",
        [token_hash(token)],
        |r| {
            Ok(Row {
                family: r.get(0)?,
                parent: r.get(1)?,
                used_at: r.get(2)?,
            })
        },
    )
    .optional()
    .unwrap()
}

/// The hashes of the tokens issued by rotating `token`.
fn children(conn: &Connection, token: &str) -> Vec<String> {
    conn.prepare("SELECT hash FROM refresh_tokens WHERE parent_hash = ?1")
        .unwrap()
        .query_map([token_hash(token)], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn revoked(conn: &Connection, family: &str) -> bool {
    conn.query_row(
        "SELECT revoked_at IS NOT NULL FROM token_families WHERE id = ?1",
        [family],
        |r| r.get(0),
    )
    .unwrap()
}

/// Checks that `pairs[..=last]` is one chain in the database: each token
/// present in one family, each rotated into the next (used, and the
/// next's parent), the last one unused unless `last_used`.
fn assert_chain(conn: &Connection, pairs: &[Pair], last_used: bool) {
    let family = row(conn, &pairs[0].refresh)
        .expect("the first token")
        .family;
    for (i, p) in pairs.iter().enumerate() {
        let r = row(conn, &p.refresh)
            .unwrap_or_else(|| panic!("token {i} of {} is unknown", pairs.len()));
        assert_eq!(r.family, family);
        if i > 0 {
            assert_eq!(r.parent, Some(token_hash(&pairs[i - 1].refresh)), "{i}");
        }
        let is_last = i + 1 == pairs.len();
        assert_eq!(
            r.used_at.is_some(),
            !is_last || last_used,
            "token {i} of {}: {r:?}",
            pairs.len()
        );
    }
}

/// Verifies an access token with the jsonwebtoken crate against `jwks`.
fn verify(jwks: &JwkSet, token: &str, client: &Client) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.expect("a kid");
    let jwk = jwks.find(&kid).expect("the kid is in the JWKS");
    let mut v = Validation::new(header.alg);
    v.set_audience(&[&client.id]);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v,
    )
    .unwrap_or_else(|e| panic!("{e}: {token}"));
}

fn now() -> i64 {
    hallpass::clock::system_now()
}

/// The drill. The backup's snapshot is taken at some instant inside the
/// run of `hallpass backup` (SQLite's online backup copies one consistent
/// read transaction, the last one it started); the test knows only that
/// run's bounds, `started` and `ended`. So, for each session:
///
/// - a token whose answer was received before `started` was committed
///   before the snapshot: the copy must hold it;
/// - a token whose request was sent after `ended` was committed after it:
///   the copy must not;
/// - a token in between (the window) may be either, and the copy must hold
///   a prefix of the chain: tokens `0..=L`, all rotated but `L`, which is
///   unused. The copy is consistent where the window is unknown.
///
/// Then, on the restored server: the pre-snapshot access tokens verify
/// against its JWKS and are accepted by /auth/me; `L` refreshes once;
/// `L-1`, already rotated, is reuse (once honoured if still within the
/// GRACE of its rotation) and ends the session; tokens issued by the first
/// server after the snapshot are unknown there.
#[test]
fn a_backup_taken_under_refresh_load_restores_into_a_consistent_server() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let (client, user) = set_up(d1.path());
    add_history(&d1.path().join("h.db"), &user, 5000);
    let s1 = Server::start(d1.path());

    let stop_load = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let (chains, started, ended, out) = std::thread::scope(|sc| {
        let _stop = StopOnDrop(&stop_load);
        let threads: Vec<_> = (0..THREADS)
            .map(|_| sign_in(&s1.base, &client))
            .map(|chain| sc.spawn(|| refresh_load(&s1.base, chain, &stop_load, &done)))
            .collect();
        wait_for(&done, 100);
        let started = Instant::now();
        let out = backup(d1.path(), "copy.db");
        let ended = Instant::now();
        let at = done.load(Ordering::SeqCst);
        wait_for(&done, at + 100);
        stop_load.store(true, Ordering::SeqCst);
        let chains: Vec<Chain> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        (chains, started, ended, out)
    });
    assert!(out.contains("copy.db"), "{out}");
    s1.stop();
    for c in &chains {
        assert!(c.refused.is_none() && c.unanswered.is_none(), "{c:?}");
    }

    // Restore as the README says: the copy and the key file, nothing else.
    std::fs::copy(d1.path().join("copy.db"), d2.path().join("h.db")).unwrap();
    std::fs::copy(d1.path().join("h.db.key"), d2.path().join("h.db.key")).unwrap();
    std::fs::write(d2.path().join("hallpass.toml"), CONFIG).unwrap();

    // What the copy holds, read before a server touches it.
    let mut lasts = Vec::new();
    let (mut window, mut window_in) = (0, 0);
    {
        let conn = look(&d2.path().join("h.db"));
        assert_integrity(&conn);
        for c in &chains {
            let held = c
                .pairs
                .iter()
                .take_while(|p| row(&conn, &p.refresh).is_some())
                .count();
            assert!(held > 0, "the sign-in precedes the backup");
            let last = held - 1;
            for (i, p) in c.pairs.iter().enumerate().skip(held) {
                assert!(row(&conn, &p.refresh).is_none(), "a gap at {i}");
            }
            for (i, p) in c.pairs.iter().enumerate() {
                if p.received < started {
                    assert!(
                        i <= last,
                        "token {i} was acknowledged before the backup began"
                    );
                }
                if p.sent > ended {
                    assert!(i > last, "token {i} was asked for after the backup ended");
                }
                if p.received >= started && p.sent <= ended {
                    window += 1;
                    window_in += usize::from(i <= last);
                }
            }
            assert_chain(&conn, &c.pairs[..=last], false);
            let family = row(&conn, &c.pairs[0].refresh).unwrap().family;
            assert!(!revoked(&conn, &family));
            let used_before = row(&conn, &c.pairs[last.saturating_sub(1)].refresh)
                .unwrap()
                .used_at;
            lasts.push((last, used_before));
        }
    }
    let before = chains.iter().map(|c| c.pairs.len()).sum::<usize>();
    eprintln!(
        "backup drill: {before} pairs issued, backup ran {:?}, {window} in its window \
         ({window_in} of them in the copy)",
        ended - started
    );

    let s2 = Server::start(d2.path());
    let a = agent();
    let jwks: JwkSet = a
        .get(s2.url("/.well-known/jwks.json"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    // Every access token acknowledged before the backup began verifies
    // against the restored server's JWKS, and the restored server takes it.
    let mut checked = 0;
    for c in &chains {
        for p in c.pairs.iter().filter(|p| p.received < started) {
            verify(&jwks, &p.access, &client);
            assert_eq!(me(&a, &s2, &p.access), 200);
            checked += 1;
        }
    }
    assert!(checked >= THREADS);

    for (c, &(last, used_before)) in chains.iter().zip(&lasts) {
        // The last token of the snapshot works there, once.
        let (status, body) = refresh(&a, &s2, &c.pairs[last].refresh);
        assert_eq!(status, 200, "{body}");
        let newest = body["refreshToken"].as_str().unwrap().to_string();
        assert_eq!(me(&a, &s2, body["accessToken"].as_str().unwrap()), 200);
        // The one before it was rotated before the snapshot: reuse. Within
        // GRACE seconds of that rotation it is honoured once more (two
        // tabs); then, or past it, it revokes the session.
        if last > 0 {
            let used = used_before.unwrap();
            let t0 = now();
            let (first, body) = refresh(&a, &s2, &c.pairs[last - 1].refresh);
            let t1 = now();
            match first {
                200 => assert!(t0 - used <= GRACE, "honoured past the grace"),
                401 => {
                    assert!(t1 - used > GRACE, "refused within the grace: {body}");
                    assert_eq!(message(&body), "TokenRevoked");
                }
                s => panic!("{s}: {body}"),
            }
            let (again, body) = refresh(&a, &s2, &c.pairs[last - 1].refresh);
            assert_eq!((again, message(&body)), (401, "TokenRevoked"), "{body}");
            // The session is over: its newest token and its access tokens.
            let (status, body) = refresh(&a, &s2, &newest);
            assert_eq!((status, message(&body)), (401, "TokenRevoked"), "{body}");
            assert_eq!(me(&a, &s2, &c.pairs[last].access), 401);
            // The sign-in's token is known there (revoked, not invalid).
            let (status, body) = refresh(&a, &s2, &c.pairs[0].refresh);
            assert_eq!((status, message(&body)), (401, "TokenRevoked"), "{body}");
        }
        // A token the first server issued after the snapshot is unknown.
        if let Some(p) = c.pairs.get(last + 1) {
            let (status, body) = refresh(&a, &s2, &p.refresh);
            assert_eq!((status, message(&body)), (401, "Token Invalid"), "{body}");
        }
    }
    let metrics = a
        .get(s2.url("/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let reuses = lasts.iter().filter(|(l, _)| *l > 0).count();
    assert!(
        metrics.contains(&format!("hallpass_refresh_reuse_total {reuses}\n")),
        "{metrics}"
    );
    s2.stop();
    assert_integrity(&look(&d2.path().join("h.db")));
}

/// The crash. SIGKILL while every thread is mid-refresh, then a restart on
/// the same files. A refresh is acknowledged only after its transaction
/// commits (batch.rs hands results out after the commit), and a commit in
/// WAL mode is in the OS's hands once written, so a killed process loses
/// nothing it acknowledged. For each session, with `k` its last pair
/// acknowledged with a 200:
///
/// - the restarted server still takes pair `k`'s access token, and
///   refreshing `k`'s refresh token gives 200: it is live, or it was
///   rotated by the request in flight when the server died (committed, its
///   answer lost) and is honoured within GRACE; past GRACE that would be a
///   401 "TokenRevoked", never "Token Invalid";
/// - read from the files afterwards, every acknowledged token is known,
///   each one before `k` rotated into the next (the later acknowledged
///   request), in one family; `PRAGMA integrity_check` is "ok".
#[test]
fn a_server_killed_under_refresh_load_restarts_knowing_every_acknowledged_token() {
    let d = tempfile::tempdir().unwrap();
    let (client, _) = set_up(d.path());
    let s1 = Server::start(d.path());
    let stop_load = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let base = s1.base.clone();
    let chains: Vec<Chain> = std::thread::scope(|sc| {
        let _stop = StopOnDrop(&stop_load);
        let threads: Vec<_> = (0..THREADS)
            .map(|_| sign_in(&base, &client))
            .map(|chain| sc.spawn(|| refresh_load(&base, chain, &stop_load, &done)))
            .collect();
        wait_for(&done, 200);
        s1.kill();
        // Threads stop on the broken exchange; this is only a backstop.
        stop_load.store(true, Ordering::SeqCst);
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for c in &chains {
        assert!(c.refused.is_none(), "{c:?}");
    }
    let acknowledged = chains.iter().map(|c| c.pairs.len()).sum::<usize>();
    let in_flight = chains.iter().filter(|c| c.unanswered.is_some()).count();

    let s2 = Server::start(d.path());
    let a = agent();
    let jwks: JwkSet = a
        .get(s2.url("/.well-known/jwks.json"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    // Per session: the token our check got (None if refused), and the
    // clock around the check.
    let mut checks = Vec::new();
    for c in &chains {
        let last = c.last();
        verify(&jwks, &last.access, &client);
        assert_eq!(me(&a, &s2, &last.access), 200);
        let t0 = now();
        let (status, body) = refresh(&a, &s2, &last.refresh);
        let t1 = now();
        match status {
            200 => checks.push((
                Some(body["refreshToken"].as_str().unwrap().to_string()),
                t0,
                t1,
            )),
            // Only if rotated by a request whose answer was lost, past its
            // grace (checked below).
            401 if c.unanswered.is_some() => {
                assert_eq!(message(&body), "TokenRevoked", "{body}");
                checks.push((None, t0, t1));
            }
            s => panic!("{s}: {body}"),
        }
    }
    s2.stop();

    let conn = look(&d.path().join("h.db"));
    assert_integrity(&conn);
    let mut lost_answers = 0;
    for (c, (newest, t0, t1)) in chains.iter().zip(&checks) {
        assert_chain(&conn, &c.pairs, true);
        let family = row(&conn, &c.pairs[0].refresh).unwrap().family;
        // The last acknowledged token's rotations: ours on the restarted
        // server, and perhaps the one whose answer the kill lost.
        let kids = children(&conn, &c.last().refresh);
        let ours = usize::from(newest.is_some());
        assert!(kids.len() == ours || kids.len() == ours + 1, "{kids:?}");
        if let Some(n) = newest {
            assert!(kids.contains(&token_hash(n)));
            assert!(!revoked(&conn, &family));
        }
        if kids.len() > ours {
            assert!(c.unanswered.is_some(), "a rotation nobody asked for");
            lost_answers += 1;
            let used = row(&conn, &c.last().refresh).unwrap().used_at.unwrap();
            if newest.is_some() {
                assert!(t0 - used <= GRACE, "honoured past the grace");
            } else {
                assert!(t1 - used > GRACE, "refused within the grace");
            }
        }
    }
    eprintln!(
        "crash test: {acknowledged} pairs acknowledged, {in_flight} requests in flight at the \
         kill, {lost_answers} of them committed with the answer lost"
    );
}
