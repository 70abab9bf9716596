//! Issue 12, "mistakes must not succeed silently", through the real
//! binary: a missing database is refused (only init and serve make one),
//! a database restored without its key file or with the wrong one is
//! refused, permission problems name the path, check-config fails on what
//! serve refuses, a failed start leaves no files, and --version, -V and
//! -h work everywhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cli::{hallpass, run_command};

fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = hallpass(dir);
    cmd.args(args);
    run_command(cmd, None)
}

/// The names in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `dir` as the binary sees it (the current directory is canonical).
fn real(dir: &Path) -> PathBuf {
    dir.canonicalize().unwrap()
}

/// Every command but init and serve, with the arguments it needs.
const NEEDS_A_DATABASE: &[&[&str]] = &[
    &["user", "list"],
    &["user", "add", "ann@example.com", "--no-password"],
    &["user", "show", "ann"],
    &["user", "disable", "ann"],
    &["user", "enable", "ann"],
    &["user", "delete", "ann"],
    &["user", "set-password", "ann", "--password-stdin"],
    &["user", "reset-mfa", "ann"],
    &["user", "enroll-mfa", "ann"],
    &["user", "unlink", "ann", "google"],
    &["client", "add", "web"],
    &["client", "list"],
    &["client", "remove", "c"],
    &["tenant", "add", "acme"],
    &["tenant", "list"],
    &["tenant", "add-user", "acme", "ann"],
    &["apikey", "create", "k", "--tenant", "acme"],
    &["apikey", "list"],
    &["apikey", "revoke", "k"],
    &["keys", "list"],
    &["keys", "rotate"],
    &["mail", "list"],
    &["mail", "retry", "m"],
    &["backup", "copy.db"],
    &["activity"],
];

/// Regression test for issue 12: `hallpass user list` in the wrong
/// directory, or with a mistyped --db, printed nothing, exited 0 and made
/// a new hallpass.db.
#[test]
fn every_command_but_init_and_serve_refuses_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in NEEDS_A_DATABASE {
        // The default path, in the current directory.
        let mut cmd = hallpass(d);
        cmd.env_remove("HALLPASS_DB").args(*args);
        let (ok, _, err) = run_command(cmd, None);
        let want = format!("no database at {}:", real(d).join("hallpass.db").display());
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(&want), "{args:?}: {err}");
        for way in ["--db PATH", "HALLPASS_DB", "--config FILE", "hallpass init"] {
            assert!(err.contains(way), "{args:?} names {way}: {err}");
        }
        // A mistyped --db.
        let mut cmd = hallpass(d);
        cmd.args(*args).args(["--db", "tpyo.db"]);
        let (ok, _, err) = run_command(cmd, None);
        assert!(!ok, "{args:?} --db succeeded");
        let want = format!("no database at {}:", real(d).join("tpyo.db").display());
        assert!(err.contains(&want), "{args:?}: {err}");
        assert_eq!(files(d), Vec::<String>::new(), "{args:?} made a file");
    }
    // init makes one; then the same commands find it.
    let (ok, _, err) = run(d, &["init"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(d, &["user", "list"]);
    assert!(ok && out.is_empty(), "{out}{err}");
}

/// Regression test for issue 12: serve on a database restored without its
/// key file made a new key file, then failed with "wrong master key",
/// leaving the wrong key on disk.
#[test]
fn a_database_restored_without_its_key_file_is_refused_and_no_key_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&new).unwrap();
    let (ok, _, err) = run(&old, &["init"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&old, &["backup", &new.join("h.db").display().to_string()]);
    assert!(ok, "{err}");
    let key = real(&new).join("h.db.key");

    let missing = format!("the master key file {} is missing", key.display());
    for args in [
        &["serve", "--listen", "127.0.0.1:0"][..],
        &["keys", "list"],
        &["keys", "rotate"],
        &["check-config"],
    ] {
        let (ok, _, err) = run(&new, args);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(&missing), "{args:?}: {err}");
        assert!(
            err.contains("holds signing keys")
                && err.contains("restore the key file together with the database"),
            "{args:?}: {err}"
        );
        assert!(!key.exists(), "{args:?} made a key file");
        assert_eq!(files(&new), ["h.db"], "{args:?}");
    }

    // Another database's key: named as the file it came from.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (ok, _, err) = run(&other, &["init"]);
    assert!(ok, "{err}");
    std::fs::copy(other.join("h.db.key"), &key).unwrap();
    let (ok, _, err) = run(&new, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!ok);
    let wrong = format!(
        "the master key from the key file {} does not open the signing keys",
        key.display()
    );
    assert!(err.contains(&wrong), "{err}");
    assert!(err.contains("backed up with this database"), "{err}");

    // A key in the environment: named as HALLPASS_MASTER_KEY.
    let mut cmd = hallpass(&new);
    cmd.args(["keys", "list"])
        .env("HALLPASS_MASTER_KEY", "00".repeat(32));
    let (ok, _, err) = run_command(cmd, None);
    assert!(!ok);
    assert!(
        err.contains("the master key from HALLPASS_MASTER_KEY does not open"),
        "{err}"
    );
    let mut cmd = hallpass(&new);
    cmd.args(["keys", "list"])
        .env("HALLPASS_MASTER_KEY", "not-a-key");
    let (ok, _, err) = run_command(cmd, None);
    assert!(!ok);
    assert!(
        err.contains("HALLPASS_MASTER_KEY is not a master key: it must be 64 hex digits"),
        "{err}"
    );
    std::fs::write(&key, "garbage\n").unwrap();
    let (ok, _, err) = run(&new, &["keys", "list"]);
    assert!(!ok);
    let bad = format!(
        "the master key file {} does not hold a master key",
        key.display()
    );
    assert!(err.contains(&bad), "{err}");

    // Restored with its key file, it opens.
    std::fs::copy(old.join("h.db.key"), &key).unwrap();
    let (ok, out, err) = run(&new, &["keys", "list"]);
    assert!(ok && out.contains("current"), "{out}{err}");
}

/// How a test runs the binary where chmod binds it. As root chmod does not
/// stop reads or writes, so the binary runs as `nobody` through setpriv;
/// where that is impossible too, None (the caller skips, saying so).
struct Restricted {
    /// setpriv's arguments, when the binary must change user.
    setpriv: Option<[String; 4]>,
}

impl Restricted {
    fn new(dir: &Path) -> Option<Restricted> {
        if !chmod_binds_us(dir) {
            let ok = Command::new("setpriv")
                .args(Self::args())
                .arg("true")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return None;
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
            return Some(Restricted {
                setpriv: Some(Self::args()),
            });
        }
        Some(Restricted { setpriv: None })
    }

    fn args() -> [String; 4] {
        [
            "--reuid=65534".into(),
            "--regid=65534".into(),
            "--clear-groups".into(),
            "--".into(),
        ]
    }

    fn run(&self, dir: &Path, args: &[&str]) -> (bool, String, String) {
        let mut cmd = match &self.setpriv {
            Some(setpriv) => {
                let mut c = Command::new("setpriv");
                c.args(setpriv).arg(env!("CARGO_BIN_EXE_hallpass"));
                c.current_dir(dir)
                    .env_remove("HALLPASS_MASTER_KEY")
                    .env_remove("HALLPASS_CONFIG")
                    .env("HALLPASS_PBKDF2_ITERATIONS", "1000")
                    .env("HALLPASS_DB", dir.join("h.db"));
                c
            }
            None => hallpass(dir),
        };
        cmd.args(args);
        run_command(cmd, None)
    }
}

/// False when a file with mode 000 can still be read here (root).
fn chmod_binds_us(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("probe");
    std::fs::write(&probe, "x").unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o000)).unwrap();
    let binds = std::fs::read(&probe).is_err();
    std::fs::remove_file(&probe).unwrap();
    binds
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Regression test for issue 12: "attempt to write a readonly database"
/// and "unable to open database file" named neither the path nor the
/// permission.
#[cfg(unix)]
#[test]
fn permission_problems_name_the_path_and_the_permission() {
    let dir = tempfile::tempdir().unwrap();
    let Some(as_user) = Restricted::new(dir.path()) else {
        eprintln!(
            "NOTE: permission_problems_name_the_path_and_the_permission skipped: running as \
             root, where chmod does not bind, and setpriv cannot drop to uid 65534 here"
        );
        return;
    };
    let d = dir.path().join("data");
    std::fs::create_dir(&d).unwrap();
    if as_user.setpriv.is_some() {
        std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
    }
    let (ok, _, err) = as_user.run(&d, &["init"]);
    assert!(ok, "{err}");
    let db = real(&d).join("h.db");
    let needs = "needs read and write permission on it for the user it runs as";

    // The directory: SQLite makes -wal and -shm there.
    chmod(&d, 0o555);
    let (ok, _, err) = as_user.run(&d, &["user", "list"]);
    assert!(!ok);
    let want = format!(
        "cannot create files in {}, the database's directory: permission denied",
        real(&d).display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("needs write permission"), "{err}");
    chmod(&d, 0o755);

    // The database file.
    for (mode, lacks) in [(0o000, "read"), (0o400, "write")] {
        chmod(&db, mode);
        let (ok, _, err) = as_user.run(&d, &["user", "list"]);
        assert!(!ok, "mode {mode:o}");
        let want = format!(
            "cannot {lacks} the database {}: permission denied",
            db.display()
        );
        assert!(err.contains(&want), "{err}");
        assert!(err.contains(needs), "{err}");
    }
    chmod(&db, 0o600);

    // Its -wal and -shm files.
    for (suffix, what) in [
        ("-wal", "the database's write-ahead log"),
        ("-shm", "the database's shared-memory index"),
    ] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        let (ok, _, err) = as_user.run(&d, &["user", "list"]);
        assert!(ok, "{err}");
        std::fs::write(&p, "").unwrap();
        if as_user.setpriv.is_some() {
            std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        }
        chmod(&p, 0o400);
        let (ok, _, err) = as_user.run(&d, &["user", "add", "ann@example.com", "--no-password"]);
        assert!(!ok, "{suffix}");
        let want = format!("cannot write {what} {}: permission denied", p.display());
        assert!(err.contains(&want), "{err}");
        std::fs::remove_file(&p).unwrap();
    }

    // The key file.
    let key = real(&d).join("h.db.key");
    chmod(&key, 0o000);
    let (ok, _, err) = as_user.run(&d, &["keys", "list"]);
    assert!(!ok);
    let want = format!(
        "cannot read the master key file {}: permission denied",
        key.display()
    );
    assert!(err.contains(&want), "{err}");
    chmod(&key, 0o600);
    let (ok, _, err) = as_user.run(&d, &["keys", "list"]);
    assert!(ok, "{err}");

    // A new database in a directory it cannot write: said, nothing made.
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    chmod(&ro, 0o555);
    for args in [&["init"][..], &["serve", "--listen", "127.0.0.1:0"]] {
        let (ok, _, err) = as_user.run(&ro, args);
        assert!(!ok, "{args:?}");
        // The database's directory, or (found first) the key file's.
        let want = format!("cannot create files in {}", real(&ro).display());
        let or = format!("its directory {} cannot take it", real(&ro).display());
        assert!(err.contains(&want) || err.contains(&or), "{args:?}: {err}");
        assert_eq!(files(&ro), Vec::<String>::new());
    }
}

/// Writes `text` as h.toml in `dir`.
fn config(dir: &Path, text: &str) -> String {
    std::fs::write(dir.join("h.toml"), text).unwrap();
    "h.toml".into()
}

/// Regression test for issue 12: check-config accepted `listen =
/// "nonsense"` and a malformed HALLPASS_MASTER_KEY, both of which stop
/// serve.
#[test]
fn check_config_fails_on_what_serve_refuses_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("plain.txt"), "not a program").unwrap();
    std::fs::write(d.join("bad.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
    // (config file, environment, what the error says)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "listen = \"nonsense\"\n",
            &[],
            "listen = \"nonsense\" is not an address to listen on",
        ),
        (
            "",
            &[("HALLPASS_MASTER_KEY", "c2VjcmV0")],
            "HALLPASS_MASTER_KEY is not a master key",
        ),
        (
            "[tokens]\nalgorithm = \"RS256\"\nrsa_key_file = \"missing.pem\"\n",
            &[],
            "tokens.rsa_key_file ",
        ),
        (
            "[tokens]\nalgorithm = \"RS256\"\nrsa_key_file = \"bad.pem\"\n",
            &[],
            "bad.pem",
        ),
        (
            "[mail]\ncommand = [\"no-such-mailer-here\", \"-t\"]\n",
            &[],
            "mail: command \"no-such-mailer-here\" is not found",
        ),
        (
            "[mail]\ncommand = [\"./plain.txt\"]\n",
            &[],
            "exists but is not executable",
        ),
        (
            "public_url = \"https://\"\n",
            &[],
            "public_url must be an http(s) URL with a host",
        ),
        (
            "lisen = \"127.0.0.1:1\"\n",
            &[],
            "line 1: unknown key `lisen` in the top level (did you mean `listen`?)",
        ),
        (
            "[mail]\ncomand = [\"x\"]\n",
            &[],
            "line 2: unknown key `comand` in [mail] (did you mean `command`?)",
        ),
    ];
    let before = files(d);
    for (text, vars, want) in cases {
        let file = config(d, text);
        let mut cmd = hallpass(d);
        cmd.args(["check-config", "--config", &file]);
        for (k, v) in *vars {
            cmd.env(k, v);
        }
        let (ok, _, err) = run_command(cmd, None);
        assert!(!ok, "{text}{vars:?} passed");
        assert!(err.contains(want), "{text}: {err}");
        assert!(!err.contains("parse error"), "{err}");
        let mut after = files(d);
        after.retain(|f| f != "h.toml");
        assert_eq!(after, before, "check-config made a file");
    }
    // Two problems, both said.
    let file = config(
        d,
        "listen = \"nonsense\"\n[mail]\ncommand = [\"no-such-mailer-here\"]\n",
    );
    let (ok, _, err) = run(d, &["check-config", "--config", &file]);
    assert!(!ok);
    assert!(err.contains("2 problems in this configuration"), "{err}");
    // A good one passes and says what it checked.
    let file = config(
        d,
        "[mail]\ncommand = [\"sh\", \"-c\", \"cat >/dev/null\"]\n",
    );
    let (ok, _, err) = run(d, &["check-config", "--config", &file]);
    assert!(ok, "{err}");
    for said in [
        "listen: 127.0.0.1:8080",
        "does not exist yet; init or serve will create it",
        "mail: command ",
    ] {
        assert!(err.contains(said), "{said}: {err}");
    }
}

/// Regression test for issue 12: a serve that fails at its start leaves no
/// new files behind (no empty database, no key file).
#[test]
fn a_serve_that_fails_to_start_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    std::fs::write(
        d.join("h.toml"),
        "[tokens]\nalgorithm = \"RS256\"\nrsa_key_file = \"missing.pem\"\n",
    )
    .unwrap();
    let cases: &[&[&str]] = &[
        &["serve", "--listen", &busy],
        &["serve", "--listen", "nonsense"],
        &["serve", "--listen", "127.0.0.1:0", "--config", "h.toml"],
        &["init", "--config", "h.toml"],
    ];
    for args in cases {
        let (ok, _, err) = run(d, args);
        assert!(!ok, "{args:?} started");
        assert!(
            err.starts_with("hallpass: ") || err.contains("\nhallpass: "),
            "{err}"
        );
        assert_eq!(files(d), ["h.toml"], "{args:?} left files: {err}");
    }
    let (ok, _, err) = run(d, &["serve", "--listen", &busy]);
    assert!(
        !ok && err.contains(&format!("cannot listen on {busy}")),
        "{err}"
    );
}

#[test]
fn version_and_short_help_work_on_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let version = format!("hallpass {}\n", env!("CARGO_PKG_VERSION"));
    for args in [
        &["--version"][..],
        &["-V"],
        &["serve", "--version"],
        &["user", "-V"],
    ] {
        let (ok, out, err) = run(d, args);
        assert!(ok, "{args:?}: {err}");
        assert_eq!(out, version, "{args:?}");
    }
    // Every command and subcommand, found from the help itself.
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        let with = |flag: &str| {
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push(flag);
            run(d, &args)
        };
        let (ok, long, err) = with("--help");
        assert!(ok, "{path:?} --help: {err}");
        let (ok, short, err) = with("-h");
        assert!(ok, "{path:?} -h: {err}");
        assert_eq!(short, long, "{path:?}");
        assert!(long.starts_with("Usage: hallpass"), "{long}");
        seen += 1;
        if let Some((_, commands)) = long.split_once("Commands:\n") {
            // "  name   What it does", continued on deeper-indented lines.
            let names = commands
                .lines()
                .take_while(|l| l.starts_with("  "))
                .filter(|l| !l.starts_with("   "));
            for line in names {
                let name = line.split_whitespace().next().unwrap().to_string();
                let mut next = path.clone();
                next.push(name);
                todo.push(next);
            }
        }
    }
    assert!(seen > 30, "{seen} commands");
    assert_eq!(files(d), Vec::<String>::new(), "help made a file");

    // A -h given as an option's value stays a value.
    let (ok, _, err) = run(d, &["init"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        d,
        &[
            "user",
            "add",
            "ann@example.com",
            "--name",
            "-h",
            "--no-password",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, _) = run(d, &["user", "show", "ann@example.com"]);
    assert!(ok && out.contains("name: -h"), "{out}");
}

#[test]
fn review_fixes_empty_files_version_flags_key_directories_and_racing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An empty file is no database (`touch typo.db`).
    std::fs::write(d.join("typo.db"), b"").unwrap();
    let (ok, _, err) = run(d, &["user", "list", "--db", "typo.db"]);
    assert!(!ok && err.contains("no database at"), "{err}");
    assert_eq!(std::fs::metadata(d.join("typo.db")).unwrap().len(), 0);
    // -V as a value is not a version request: the real error is shown.
    let (ok, out, err) = run(d, &["user", "add", "--name", "-V"]);
    assert!(!ok, "{out}");
    assert!(!out.contains("hallpass 0."), "{out}");
    assert!(err.contains("email") || out.contains("email"), "{out}{err}");
    // A key file whose directory cannot take it fails check-config.
    let cfg = config(d, "master_key_file = \"/nonexistent-dir/k\"\n");
    let (ok, _, err) = run(d, &["check-config", "--config", &cfg]);
    assert!(!ok, "{err}");
    assert!(err.contains("/nonexistent-dir"), "{err}");
    // Two starts at once on one port and one new database: the one that
    // cannot bind removes nothing the other made.
    let fresh = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let start = || {
        hallpass(fresh.path())
            .args(["serve", "--listen", &listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (start(), start());
    let ended = |c: &mut std::process::Child| c.try_wait().unwrap().is_some();
    let t0 = std::time::Instant::now();
    while !(ended(&mut a) || ended(&mut b)) && t0.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The loser may stop at its preflight, before the winner has made its
    // files: wait (while the winner runs) until they are there.
    let want =
        |n: &Vec<String>| n.contains(&"h.db".to_string()) && n.contains(&"h.db.key".to_string());
    let mut names = files(fresh.path());
    loop {
        let both_ended = ended(&mut a) && ended(&mut b);
        if want(&names) || both_ended || t0.elapsed().as_secs() >= 10 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        names = files(fresh.path());
    }
    for c in [&mut a, &mut b] {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(
        names.contains(&"h.db".to_string()) && names.contains(&"h.db.key".to_string()),
        "the running server's files are all there: {names:?}"
    );
}
