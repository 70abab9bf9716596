//! The `hallpass` binary as operators and scripts use it: the start-up
//! line, the admin commands, check-config, backup, and a graceful stop.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::json;

pub(crate) fn hallpass(dir: &Path) -> Command {
    in_dir(Command::new(env!("CARGO_BIN_EXE_hallpass")), dir)
}

/// A command run in `dir` with the test environment (cheap hashing, the
/// database in `dir`, nothing from the caller's HALLPASS_*).
fn in_dir(mut c: Command, dir: &Path) -> Command {
    c.current_dir(dir)
        .env_remove("HALLPASS_MASTER_KEY")
        .env_remove("HALLPASS_CONFIG")
        .env("HALLPASS_PBKDF2_ITERATIONS", "1000")
        .env("HALLPASS_DB", dir.join("h.db"));
    c
}

fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = hallpass(dir);
    cmd.args(args);
    run_command(cmd, stdin)
}

/// Runs a prepared command with `stdin` on its standard input: whether it
/// succeeded, its stdout and its stderr.
pub(crate) fn run_command(mut cmd: Command, stdin: Option<&str>) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in {out:?}"))
}

/// Starts `serve` on port 0 and reads the bound address from stdout.
fn serve(dir: &Path) -> (Child, String) {
    let mut child = hallpass(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = bound_addr(&mut child);
    (child, addr)
}

/// The address `serve` says it listens on (its first line on stdout).
pub(crate) fn bound_addr(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_string();
    addr
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn an_operator_sets_up_and_signs_in_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, out, err) = run(d, &["init"], None);
    assert!(ok, "{err}");
    assert!(out.contains("database: "), "{out}");
    let (ok, out, err) = run(
        d,
        &["client", "add", "web", "--redirect-url", "https://app/cb"],
        None,
    );
    assert!(ok, "{err}");
    let client_id = value(&out, "client_id").to_string();
    let secret = value(&out, "client_secret").to_string();
    // The listing ends with the client's number (AuthUser's authClientId).
    let (ok, out, _) = run(d, &["client", "list"], None);
    assert!(ok);
    assert_eq!(out.trim(), format!("{client_id}\tweb\tconfidential\t1"));
    let (ok, out, _) = run(d, &["tenant", "add", "acme"], None);
    assert!(ok);
    assert!(!value(&out, "tenant_id").is_empty());
    let (ok, _, err) = run(
        d,
        &[
            "user",
            "add",
            "ada@example.com",
            "--username",
            "ada",
            "--admin",
            "--tenant",
            "acme",
            "--password-stdin",
        ],
        Some("correct-horse-battery-9\n"),
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        d,
        &["user", "add", "bob@example.com", "--password-stdin"],
        Some("password\n"),
    );
    assert!(!ok);
    assert!(err.contains("common"), "{err}");
    let (ok, out, _) = run(d, &["user", "list", "--json"], None);
    assert!(ok);
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["role"], "admin");
    let (ok, out, _) = run(d, &["user", "show", "ada"], None);
    assert!(ok);
    assert!(out.contains("status: active"), "{out}");

    let (mut child, addr) = serve(d);
    let login = agent()
        .post(format!("http://{addr}/auth/login-token"))
        .send_json(json!({"client_id": client_id, "client_secret": secret, "username": "ada", "password": "correct-horse-battery-9"}))
        .unwrap()
        .into_body()
        .read_json::<serde_json::Value>()
        .unwrap();
    let token = login["accessToken"].as_str().unwrap().to_string();
    let me = agent()
        .get(format!("http://{addr}/auth/me"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(me.status(), 200);

    // Disabling from the CLI ends the running session at once.
    let (ok, _, _) = run(d, &["user", "disable", "ada"], None);
    assert!(ok);
    let me = agent()
        .get(format!("http://{addr}/auth/me"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(me.status(), 401);

    // A backup taken while the server runs is a complete database.
    let (ok, out, err) = run(d, &["backup", "copy.db"], None);
    assert!(ok, "{err}");
    assert!(out.contains("copy.db"));
    let copy = rusqlite::Connection::open(d.join("copy.db")).unwrap();
    let n: i64 = copy
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);

    stop(&mut child);
}

#[cfg(unix)]
pub(crate) fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "a graceful stop exits 0: {status:?}");
}

#[cfg(not(unix))]
pub(crate) fn stop(child: &mut Child) {
    let _ = child.kill();
}

#[test]
fn keys_rotate_reaches_a_running_server_and_both_keys_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _, err) = run(d, &["init"], None);
    assert!(ok, "{err}");
    let (ok, out, _) = run(d, &["keys", "list", "--json"], None);
    assert!(ok);
    let before: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(before.as_array().unwrap().len(), 1);
    let (ok, out, _) = run(d, &["keys", "rotate"], None);
    assert!(ok);
    let kid = value(&out, "kid").to_string();
    let (_, out, _) = run(d, &["keys", "list", "--json"], None);
    let after: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(after.as_array().unwrap().len(), 2);
    assert_eq!(after[0]["kid"], kid.as_str());
    assert_eq!(after[0]["current"], true);
}

#[test]
fn check_config_validates_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("h.toml"),
        "listen = \"0.0.0.0:9000\"\nsignup = \"open\"\n[mail]\ncommand = [\"sh\", \"-c\"]\n",
    )
    .unwrap();
    let out = hallpass(d)
        .args(["check-config", "--config", "h.toml"])
        .env(
            "HALLPASS_MASTER_KEY",
            "0000000000000000000000000000000000000000000000000000000000000001",
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("listen = \"0.0.0.0:9000\""), "{text}");
    assert!(text.contains("signup = \"open\""));
    assert!(text.contains("\"sh\", \"-c\""));
    assert!(!text.contains("0000000000000000000000000000000000000000000000000000000000000001"));
    std::fs::write(d.join("bad.toml"), "[tokens]\nalgorithm = \"none\"\n").unwrap();
    let (ok, _, err) = run(d, &["check-config", "--config", "bad.toml"], None);
    assert!(!ok);
    assert!(err.contains("algorithm"), "{err}");
}

#[test]
fn the_database_and_key_file_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, _) = run(dir.path(), &["init"], None);
    assert!(ok);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["h.db", "h.db.key"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
}

#[test]
fn serve_says_how_to_make_the_first_admin() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(dir.path());
    assert!(addr.starts_with("127.0.0.1:"));
    let r = agent()
        .get(format!("http://{addr}/healthz"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    stop(&mut child);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("user add"), "{err}");
}

#[test]
fn an_admin_enrolls_a_user_in_totp_and_resets_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _, err) = run(d, &["init"], None);
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        d,
        &["user", "add", "ada@example.com", "--password-stdin"],
        Some("correct-horse-battery-9\n"),
    );
    assert!(ok, "{err}");
    let (_, out, _) = run(d, &["user", "show", "ada@example.com"], None);
    assert!(out.contains("mfa: off"), "{out}");

    // enroll-mfa draws the QR code and the secret, then reads a code.
    let mut child = hallpass(d)
        .args(["user", "enroll-mfa", "ada@example.com"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut secret = String::new();
    let mut drawing = 0;
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line.contains('█') || line.contains('▀') || line.contains('▄') {
            drawing += 1;
        }
        if let Some(s) = line.trim_end().strip_prefix("secret: ") {
            secret = s.to_string();
            break;
        }
    }
    assert!(drawing > 10, "a QR code in terminal blocks");
    let raw = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = totp_lite::totp_custom::<totp_lite::Sha1>(30, 6, &raw, now);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{code}").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("two-factor authentication is on"), "{rest}");
    let recovery: Vec<&str> = rest.lines().filter_map(|l| l.strip_prefix("  ")).collect();
    assert_eq!(recovery.len(), 10, "{rest}");

    let (_, out, _) = run(d, &["user", "show", "ada@example.com", "--json"], None);
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["mfa"], "on");
    assert_eq!(shown["recovery_codes_left"], 10);

    let (ok, out, err) = run(d, &["user", "reset-mfa", "ada@example.com"], None);
    assert!(ok, "{err}");
    assert!(out.contains("turned off"), "{out}");
    let (_, out, _) = run(d, &["user", "show", "ada@example.com"], None);
    assert!(out.contains("mfa: off"), "{out}");
    assert!(out.contains("recovery_codes_left: 0"), "{out}");
}

#[cfg(target_os = "linux")]
#[test]
fn serve_keeps_serving_when_descriptors_run_short() {
    // Regression: tiny_http's accept loop ended for good at its first
    // accept error (out of file descriptors), leaving a process that
    // accepted nothing. Now the connection cap is lowered to what the
    // open-files limit allows, says so, and idle connections make room.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = env!("CARGO_BIN_EXE_hallpass");
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(format!(
        "ulimit -n 64 && exec '{bin}' serve --listen 127.0.0.1:0 --workers 4"
    ));
    let mut child = in_dir(sh, d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = bound_addr(&mut child);
    let held: Vec<_> = (0..120)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    let r = agent()
        .get(&format!("http://{addr}/healthz"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(child.try_wait().unwrap().is_none(), "still running");
    drop(held);
    stop(&mut child);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("open-files limit"), "{err}");
    assert!(err.contains("the cap of"), "{err}");
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    // `hallpass user list | head -1`: the reader is gone before the
    // command writes. println! panicked there ("failed printing to stdout").
    let dir = tempfile::tempdir().unwrap();
    let mut init = hallpass(dir.path());
    init.arg("init");
    assert!(run_command(init, None).0);
    assert!(run(dir.path(), &["client", "add", "app"], None).0);
    for args in [
        &["check-config"][..],
        &["client", "list"],
        &["keys", "list"],
    ] {
        let mut c = hallpass(dir.path());
        c.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = c.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
