//! The mailer: the outbox delivered through the mail command, as MIME
//! parsed back; retries on the test clock; a hanging command killed; a
//! SIGKILLed server delivering after its restart; the `mail` CLI.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hallpass::config::{Config, Flags};
use hallpass::{app, db, mail, Error};
use serde_json::{json, Value};

use crate::support::{delivered_in, mail_command, TestServer};

/// Queues a `test` mail to `to` straight into the server's outbox (its
/// own transaction, as a flow would) and wakes the worker.
fn queue_test_mail(s: &TestServer, to: &str) -> String {
    let mut conn = s.conn();
    let out = &s.running().app.mail;
    db::immediate(&mut conn, |tx| {
        mail::queue(
            tx,
            out,
            &mail::Mail {
                kind: mail::Kind::Test,
                to,
                values: &[],
            },
            s.now(),
        )
    })
    .unwrap()
}

/// (status, attempts, next_attempt_at, last_error, has a body) of a row.
fn row(s: &TestServer, id: &str) -> (String, i64, i64, Option<String>, bool) {
    s.conn()
        .query_row(
            "SELECT status, attempts, next_attempt_at, last_error, sealed_body IS NOT NULL
             FROM mail_outbox WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
}

/// Waits (at most 5 s) until `check` holds for the row.
fn wait_row(
    s: &TestServer,
    id: &str,
    check: impl Fn(&(String, i64, i64, Option<String>, bool)) -> bool,
) -> (String, i64, i64, Option<String>, bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = row(s, id);
        if check(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "row {id} stayed {r:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn metric(s: &TestServer, name: &str) -> i64 {
    let m = s.get("/metrics").body;
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {m}"))
        .parse()
        .unwrap()
}

#[test]
fn mfa_reset_mails_arrive_as_mime_with_both_parts_and_their_bodies_are_erased() {
    let s = TestServer::start();
    let ann = s.add_user("ann@example.com");
    crate::second_factor::enable_mfa_dialect(&s, "ann");
    let asked = Instant::now();
    let r = s.post("/api/user/mfa/reset", &json!({"identifier": "ann"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let main = s.last_mail("ann@example.com");
    let backup = s.last_mail("ann.backup@example.org");
    eprintln!(
        "both reset mails delivered {:?} after the request",
        asked.elapsed()
    );

    for (m, to, part) in [
        (&main, "ann@example.com", "1 of 2"),
        (&backup, "ann.backup@example.org", "2 of 2"),
    ] {
        assert_eq!(m.subject, format!("Your two-factor reset code ({part})"));
        assert_eq!(m.header("To"), Some(to));
        assert_eq!(m.header("From"), Some("hallpass <hallpass@localhost>"));
        assert_eq!(m.header("MIME-Version"), Some("1.0"));
        assert!(m.header("Date").is_some_and(|d| d.ends_with("+0000")));
        assert!(m
            .header("Content-Type")
            .is_some_and(|c| c.starts_with("multipart/alternative")));
        assert!(m
            .raw
            .split("\r\n")
            .all(|l| l.len() <= 998 && !l.contains('\n')));
        assert!(m.text.contains(&s.base), "the public URL is in every mail");
        assert!(m.html.contains("<strong>"), "{}", m.html);
    }
    let code = |m: &crate::support::Delivered, label: &str| {
        let c = m
            .text
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap()
            .trim()
            .to_string();
        assert!(m.html.contains(&c), "the HTML part has the code too");
        c
    };
    let a = code(&main, "Code 1 of 2:");
    let b = code(&backup, "Code 2 of 2:");

    // Delivered: the rows keep who, what and when; the bodies are gone.
    let rows: Vec<(String, Option<Vec<u8>>, i64)> = s
        .conn()
        .prepare("SELECT status, sealed_body, attempts FROM mail_outbox")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        rows,
        vec![("sent".to_string(), None, 1), ("sent".to_string(), None, 1)]
    );
    assert_eq!(metric(&s, "hallpass_mail_sent_total"), 2);

    let done = s.send(
        "PUT",
        &format!("/api/user/mfa/reset/{}", ann.id),
        &json!({"main_email_code": a, "recovery_email_code": b}),
    );
    assert_eq!(done.status, 200, "{}", done.body);
}

#[test]
fn a_command_that_fails_twice_then_succeeds_delivers_once_with_the_tries_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("tries");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; \
         if [ $n -le 2 ]; then echo \"relay refused try $n\" >&2; exit 75; fi; \
         cat > {o}/m.eml",
        c = counter.display(),
        o = out.display()
    );
    let s = TestServer::start_with(|c| c.mail_command = vec!["sh".into(), "-c".into(), script]);
    let id = queue_test_mail(&s, "ann@example.com");
    let t0 = s.now();
    let first = wait_row(&s, &id, |r| r.1 == 1);
    assert_eq!(first.0, "queued");
    assert_eq!(first.2, t0 + 30, "the first retry within 30 s");
    assert!(first.3.as_deref().unwrap().contains("relay refused try 1"));
    assert!(first.3.as_deref().unwrap().contains("75"));
    assert!(first.4, "the body waits for the next try");

    s.advance(29);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(row(&s, &id).1, 1, "not before its time");
    s.advance(1);
    let second = wait_row(&s, &id, |r| r.1 == 2);
    assert_eq!(second.2, s.now() + 60, "then the wait doubles");
    s.advance(60);
    let sent = wait_row(&s, &id, |r| r.0 == "sent");
    assert_eq!(sent.1, 3, "three tries recorded");
    assert_eq!(sent.3, None);
    assert!(!sent.4, "the body is erased");
    let m = crate::support::parse_mail(&std::fs::read_to_string(out.join("m.eml")).unwrap());
    assert_eq!(m.subject, "A test message from hallpass");
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3");

    // Nothing more happens: delivered exactly once.
    s.advance(86_400);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3");
    assert_eq!(metric(&s, "hallpass_mail_retried_total"), 2);
    assert_eq!(metric(&s, "hallpass_mail_sent_total"), 1);
    assert_eq!(metric(&s, "hallpass_mail_pending"), 0);
}

#[test]
fn a_mail_that_never_goes_is_failed_after_24_hours_with_stderr_kept_and_body_erased() {
    let s = TestServer::start_with(|c| {
        c.mail_command = vec!["/nonexistent/sendmail".into(), "-t".into()];
    });
    let id = queue_test_mail(&s, "ann@example.com");
    let mut tries = 0;
    loop {
        tries += 1;
        let r = wait_row(&s, &id, |r| r.1 == tries);
        if r.0 == "failed" {
            assert!(!r.4, "a failed mail's body is erased");
            assert!(r.3.unwrap().contains("cannot run /nonexistent/sendmail"));
            break;
        }
        s.advance(r.2 - s.now());
        assert!(tries < 60);
    }
    assert_eq!(metric(&s, "hallpass_mail_failed_total"), 1);
    assert_eq!(metric(&s, "hallpass_mail_retried_total"), tries - 1);
}

#[test]
fn a_hanging_command_is_killed_at_the_timeout_and_requests_go_on_meanwhile() {
    let s = TestServer::start_with(|c| {
        c.mail_command = vec!["sh".into(), "-c".into(), "exec sleep 30".into()];
        c.mail_timeout_secs = 1;
    });
    let started = Instant::now();
    let id = queue_test_mail(&s, "ann@example.com");
    // While the command hangs, the server answers as usual.
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(s.get("/healthz").status, 200);
        assert!(t.elapsed() < Duration::from_millis(500));
    }
    let r = wait_row(&s, &id, |r| r.1 == 1);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(r.0, "queued", "retried later");
    assert!(r.3.unwrap().contains("was killed"), "why is kept");
}

#[test]
fn a_line_break_in_an_address_or_value_is_refused_before_anything_is_queued() {
    let s = TestServer::start();
    let mut conn = s.conn();
    let out = &s.running().app.mail;
    for (to, values) in [
        ("ann@example.com\r\nBcc: eve@example.net", &[][..]),
        ("ann@example.com\nBcc: eve@example.net", &[][..]),
        (
            "ann@example.com",
            &[("code", "1\r\nBcc: x"), ("minutes", "10")][..],
        ),
    ] {
        let r = db::immediate(&mut conn, |tx| {
            mail::queue(
                tx,
                out,
                &mail::Mail {
                    kind: mail::Kind::SignInCode,
                    to,
                    values,
                },
                s.now(),
            )
        });
        assert!(matches!(r, Err(Error::Validation { .. })), "{r:?}");
    }
    let n: i64 = s
        .conn()
        .query_row("SELECT count(*) FROM mail_outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn the_log_mailer_marks_mail_sent_when_no_command_is_set() {
    let s = TestServer::start_with(|c| c.mail_command.clear());
    let id = queue_test_mail(&s, "dev@example.com");
    let r = wait_row(&s, &id, |r| r.0 == "sent");
    assert!(!r.4);
    assert!(delivered_in(&s.mail_dir()).is_empty());
}

#[test]
fn templates_from_the_directory_and_the_product_name_reach_the_delivered_mail() {
    let s = TestServer::start_with(|c| {
        let dir = c.db.parent().unwrap().join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("test.subject"), "Hello from {{ product }} ✓").unwrap();
        std::fs::write(dir.join("test.html"), "<p>{{ product }} &amp; {{ to }}</p>").unwrap();
        c.mail_templates = Some(dir);
        c.mail_product = "Acme <Sign-in>".into();
    });
    queue_test_mail(&s, "ann@example.com");
    let m = s.last_mail("ann@example.com");
    assert_eq!(m.subject, "Hello from Acme <Sign-in> ✓");
    assert!(
        m.html
            .contains("Acme &lt;Sign-in&gt; &amp; ann@example.com"),
        "{}",
        m.html
    );
    assert!(m.text.contains("Acme <Sign-in>"), "the built-in text part");
}

#[test]
fn a_template_that_does_not_parse_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::test_config(&dir);
    let t = dir.path().join("t");
    std::fs::create_dir(&t).unwrap();
    std::fs::write(t.join("magic_link.txt"), "{% if %}").unwrap();
    c.mail_templates = Some(t);
    let err = hallpass::serve(c, hallpass::Clock::System)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("magic_link.txt"), "{err}");
}

// --- the binary ----------------------------------------------------------

/// `hallpass serve` on port 0 with `config`, its stdout piped.
fn serve(dir: &Path, config: &Path) -> std::process::Child {
    crate::cli::hallpass(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env_remove("HALLPASS_MAIL_COMMAND")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `hallpass ARGS --config FILE`; (success, stdout, stderr).
fn run(dir: &Path, config: &Path, args: &[&str]) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hallpass"));
    c.current_dir(dir)
        .env_remove("HALLPASS_MASTER_KEY")
        .env_remove("HALLPASS_CONFIG")
        .env_remove("HALLPASS_MAIL_COMMAND")
        .env("HALLPASS_PBKDF2_ITERATIONS", "1000")
        .env("HALLPASS_DB", dir.join("h.db"))
        .args(args)
        .arg("--config")
        .arg(config);
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(path: &Path, command: &[String], extra: &str) {
    let argv: Vec<String> = command.iter().map(|a| format!("{a:?}")).collect();
    std::fs::write(
        path,
        format!("[mail]\ncommand = [{}]\n{extra}", argv.join(", ")),
    )
    .unwrap();
}

/// Queues a test mail into the database of `dir` as a server would.
fn queue_offline(dir: &Path, to: &str) -> String {
    let mut cfg = Config::load(&Flags::default(), &|_| None).unwrap();
    cfg.db = dir.join("h.db");
    cfg.master_key_file = dir.join("h.db.key");
    let mut conn = db::open_and_migrate(&cfg.db).unwrap();
    let out = mail::Outgoing {
        master: app::load_master_key(&cfg).unwrap(),
        product: "hallpass".into(),
        public_url: "http://127.0.0.1:1".into(),
        templates: mail::Templates::builtin().unwrap(),
        signal: Arc::default(),
    };
    db::immediate(&mut conn, |tx| {
        mail::queue(
            tx,
            &out,
            &mail::Mail {
                kind: mail::Kind::Test,
                to,
                values: &[],
            },
            hallpass::clock::system_now(),
        )
    })
    .unwrap()
}

fn list_json(dir: &Path, config: &Path) -> Vec<Value> {
    let (ok, out, err) = run(dir, config, &["mail", "list", "--json"]);
    assert!(ok, "{err}");
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn mail_list_retry_and_test_on_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let boxdir = d.join("box");
    std::fs::create_dir(&boxdir).unwrap();
    let good = d.join("good.toml");
    write_config(&good, &mail_command(&boxdir), "product = \"Acme\"\n");

    // mail test: runs the command now and says so.
    let (ok, out, err) = run(d, &good, &["mail", "test", "ops@example.com"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("exit: 0"), "{out}");
    let got = delivered_in(&boxdir);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.subject, "A test message from Acme");
    assert_eq!(got[0].1.header("To"), Some("ops@example.com"));

    let bad = d.join("bad.toml");
    write_config(
        &bad,
        &[
            "sh".into(),
            "-c".into(),
            "echo 'no relay configured' >&2; exit 4".into(),
        ],
        "",
    );
    let (ok, out, err) = run(d, &bad, &["mail", "test", "ops@example.com"]);
    assert!(!ok);
    assert!(
        out.contains("exit: 4") && out.contains("no relay configured"),
        "{out}"
    );
    assert!(err.contains("not sent"), "{err}");
    let (ok, _, err) = run(d, &good, &["mail", "test", "ops@example.com\r\nBcc: x@y"]);
    assert!(!ok && err.contains("not an email address"), "{err}");

    // check-config: the command is found, or not (then it fails: issue 12).
    let (ok, _, err) = run(d, &good, &["check-config"]);
    assert!(ok && err.contains("is executable"), "{err}");
    let missing = d.join("missing.toml");
    write_config(&missing, &["/nonexistent/sendmail".into()], "");
    let (ok, _, err) = run(d, &missing, &["check-config"]);
    assert!(
        !ok && err.contains("error: mail: command") && err.contains("not found"),
        "{err}"
    );

    // list and retry.
    let id = queue_offline(d, "ann@example.com");
    let rows = list_json(d, &good);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["status"], "pending");
    assert_eq!(rows[0]["kind"], "test");
    assert_eq!(rows[0]["to"], "ann@example.com");
    assert_eq!(rows[0]["attempts"], 0);
    assert!(rows[0].get("body").is_none() && rows[0].get("text").is_none());
    let (ok, out, _) = run(d, &good, &["mail", "list"]);
    assert!(ok && out.contains(&id) && out.contains("pending"), "{out}");
    let (ok, out, err) = run(d, &good, &["mail", "retry", &id]);
    assert!(ok && out.contains("due now"), "{out}{err}");
    let (ok, _, err) = run(d, &good, &["mail", "retry", "no-such-id"]);
    assert!(!ok && err.contains("no mail"), "{err}");
}

#[test]
fn mail_pending_when_the_server_is_sigkilled_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let boxdir = d.join("box");
    std::fs::create_dir(&boxdir).unwrap();
    let id = queue_offline(d, "ann@example.com");

    // First run: the command hangs (it records its pid), so the mail is
    // mid-delivery when the server is killed.
    let hanging = d.join("hang.toml");
    write_config(
        &hanging,
        &[
            "sh".into(),
            "-c".into(),
            format!("echo $$ > {}/pid; exec sleep 60", d.display()),
        ],
        "",
    );
    let mut server = serve(d, &hanging);
    crate::cli::bound_addr(&mut server);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.join("pid").exists() || std::fs::read_to_string(d.join("pid")).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    let pid = std::fs::read_to_string(d.join("pid")).unwrap();
    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
    let rows = list_json(d, &hanging);
    assert_eq!(rows[0]["status"], "sending", "claimed when the server died");

    // Restart with a working command: delivered once, at once.
    let good = d.join("good.toml");
    write_config(&good, &mail_command(&boxdir), "");
    let mut server = serve(d, &good);
    crate::cli::bound_addr(&mut server);
    let deadline = Instant::now() + Duration::from_secs(5);
    let delivered = loop {
        let got = delivered_in(&boxdir);
        if !got.is_empty() {
            break got;
        }
        assert!(Instant::now() < deadline, "not delivered after the restart");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].0.starts_with(&format!("{id}@")));
    // The file is there as the command exits; the row is marked just after.
    while list_json(d, &good)[0]["status"] != "sent" {
        assert!(Instant::now() < deadline, "not marked sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(list_json(d, &good)[0]["attempts"], 1, "one try recorded");
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let mut err = String::new();
    let _ = server.wait();
    if let Some(e) = server.stderr.take() {
        for line in BufReader::new(e).lines().map_while(Result::ok) {
            err.push_str(&line);
        }
    }
    assert!(!err.contains("panicked"), "{err}");
}
