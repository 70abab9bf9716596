//! The harness every integration test uses: a real server on 127.0.0.1:0
//! with a temp database and a manual clock, started in-process, and a ureq
//! client that reports statuses instead of failing on them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hallpass::accounts::{self, Client, NewUser, User};
use hallpass::config::{Config, Flags};
use hallpass::{app, db, mail, password, Clock, Running};
use rusqlite::Connection;
use serde_json::Value;
use tempfile::TempDir;

/// Password hashing cost in tests (the real default is 600,000).
pub const ITERATIONS: u32 = 1000;
/// A password that passes the policy.
pub const PASSWORD: &str = "mauve-otter-tangent-19";

pub struct TestServer {
    /// Holds the temp directory (database, key file, delivered mail) for
    /// the test's life.
    pub _dir: TempDir,
    pub running: Option<Running>,
    pub base: String,
    pub clock: Clock,
    pub db: PathBuf,
    pub config: Config,
    agent: ureq::Agent,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The mail command of the test servers: each message becomes a file in
/// `dir` (written aside, then renamed, so a reader never sees half).
pub fn mail_command(dir: &Path) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        r#"f=$(mktemp "$0/.m.XXXXXXXX") && cat > "$f" && mv "$f" "$0/$(basename "$f").eml""#.into(),
        dir.display().to_string(),
    ]
}

/// A delivered mail, parsed back from the MIME the command received.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub subject: String,
    /// The text/plain part, line ends as `\n`.
    pub text: String,
    /// The text/html part.
    pub html: String,
    /// Every header, in order, values as sent (raw).
    pub headers: Vec<(String, String)>,
    /// The message as the command read it.
    pub raw: String,
}

impl Delivered {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one delivered message with mail-parser.
pub fn parse_mail(raw: &str) -> Delivered {
    let m = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap_or_else(|| panic!("not a message: {raw}"));
    let headers = m
        .headers_raw()
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    Delivered {
        subject: m.subject().unwrap_or_default().to_string(),
        text: m
            .body_text(0)
            .map(|t| t.replace("\r\n", "\n"))
            .unwrap_or_default(),
        html: m
            .body_html(0)
            .map(|t| t.replace("\r\n", "\n"))
            .unwrap_or_default(),
        headers,
        raw: raw.to_string(),
    }
}

/// Every message delivered into `dir`, by Message-ID (without `<>`).
pub fn delivered_in(dir: &Path) -> Vec<(String, Delivered)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "eml") {
            let m = parse_mail(&std::fs::read_to_string(&p).unwrap());
            let id = m
                .header("Message-ID")
                .unwrap_or_default()
                .trim_matches(['<', '>'])
                .to_string();
            out.push((id, m));
        }
    }
    out
}

/// A test configuration: temp paths, port 0, cheap hashing, no access log,
/// mail delivered into files in `{dir}/mail`.
pub fn test_config(dir: &TempDir) -> Config {
    let mut c = Config::load(&Flags::default(), &|_| None).unwrap();
    c.listen = "127.0.0.1:0".into();
    c.db = dir.path().join("hallpass.db");
    c.master_key_file = dir.path().join("hallpass.db.key");
    c.pbkdf2_iterations = ITERATIONS;
    c.workers = 4;
    c.access_log = hallpass::config::AccessLog::Off;
    let mail = dir.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    c.mail_command = mail_command(&mail);
    c
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(&dir);
        tweak(&mut config);
        let db = config.db.clone();
        let clock = Clock::manual(hallpass::clock::system_now());
        let running = hallpass::serve(config.clone(), clock.clone()).unwrap();
        let base = format!("http://{}", running.addr);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        TestServer {
            _dir: dir,
            running: Some(running),
            base,
            clock,
            db,
            config,
            agent,
        }
    }

    /// Stops the server gracefully and starts it again on the same files
    /// and clock (a new port).
    pub fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
        let running = hallpass::serve(self.config.clone(), self.clock.clone()).unwrap();
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    /// The running server.
    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    /// Moves the server's clock forward (and wakes the mail worker, so
    /// that mail due at the new time goes at once).
    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
        if let Some(r) = &self.running {
            r.app.mail.signal.notify();
        }
    }

    /// Where the test mail command writes messages.
    pub fn mail_dir(&self) -> PathBuf {
        self._dir.path().join("mail")
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A connection to the server's database.
    pub fn conn(&self) -> Connection {
        db::open(&self.db).unwrap()
    }

    /// A worker's context on the running server's own `App` (its clock,
    /// limits, writer lock) with a connection of its own: for a test that
    /// calls a core flow directly, to put the database between a flow's
    /// read and its write into a state no request can reach on cue.
    pub fn ctx(&self) -> app::Ctx {
        app::Ctx {
            conn: self.conn(),
            app: self.running().app.clone(),
        }
    }

    /// The id of the newest outbox row for `to`.
    pub fn newest_mail_id(&self, to: &str) -> String {
        self.conn()
            .query_row(
                "SELECT id FROM mail_outbox WHERE to_addr = ?1
                 ORDER BY created_at DESC, rowid DESC LIMIT 1",
                [to],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("no mail to {to}: {e}"))
    }

    /// Waits (at most 5 s) until the newest mail to `to` is delivered, and
    /// returns it parsed from the MIME the mail command received.
    pub fn last_mail(&self, to: &str) -> Delivered {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let id = self.newest_mail_id(to);
            let (status, error): (String, Option<String>) = self
                .conn()
                .query_row(
                    "SELECT status, last_error FROM mail_outbox WHERE id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            if status == "sent" {
                let found = delivered_in(&self.mail_dir())
                    .into_iter()
                    .find(|(mid, _)| mid.starts_with(&format!("{id}@")));
                if let Some((_, m)) = found {
                    return m;
                }
            }
            if std::time::Instant::now() > deadline {
                panic!("the mail to {to} was not delivered within 5 s: {status} ({error:?})");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The text part of the newest mail to `to`, once delivered (waits at
    /// most 5 s), parsed from the delivered MIME.
    pub fn outbox_body(&self, to: &str) -> String {
        self.last_mail(to).text
    }

    /// The text of the newest message to `to` while it is still queued,
    /// opened from the outbox the way the mail worker opens it (for tests
    /// of the outbox at rest, whose server's mail command fails).
    pub fn queued_body(&self, to: &str) -> String {
        let conn = self.conn();
        let id = self.newest_mail_id(to);
        let master = app::load_master_key(&self.config).unwrap();
        mail::outbox::open_queued(&conn, &master, &id)
            .unwrap()
            .unwrap_or_else(|| panic!("the mail to {to} is not queued"))
            .text
    }

    /// Adds a user with `PASSWORD` (username = the part before the @).
    pub fn add_user(&self, email: &str) -> User {
        let mut conn = self.conn();
        let new = NewUser {
            email: Some(email.into()),
            username: email.split('@').next().map(str::to_string),
            name: Some("Test User".into()),
            password_hash: Some(password::hash(PASSWORD, ITERATIONS).unwrap()),
            role: "user".into(),
            ..NewUser::default()
        };
        db::immediate(&mut conn, |tx| accounts::create_user(tx, &new, self.now())).unwrap()
    }

    /// Adds a confidential client; returns it and its secret.
    pub fn add_client(&self) -> (Client, String) {
        let mut conn = self.conn();
        let urls = vec!["https://app.example/cb".to_string()];
        let (c, s) = db::immediate(&mut conn, |tx| {
            accounts::create_client(
                tx,
                "web",
                &urls,
                Some("https://app.example/bye"),
                false,
                accounts::Ttls::default(),
                self.now(),
            )
        })
        .unwrap();
        (c, s.unwrap())
    }

    /// Adds a public client.
    pub fn add_public_client(&self) -> Client {
        let mut conn = self.conn();
        db::immediate(&mut conn, |tx| {
            accounts::create_client(
                tx,
                "spa",
                &[],
                None,
                true,
                accounts::Ttls::default(),
                self.now(),
            )
        })
        .unwrap()
        .0
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(body.unwrap_or_default().to_vec()).unwrap();
        let mut resp = self.agent.run(req).unwrap();
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], None)
    }

    pub fn get_auth(&self, path: &str, token: &str) -> Resp {
        self.request(
            "GET",
            path,
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
    }

    pub fn send(&self, method: &str, path: &str, body: &Value) -> Resp {
        let bytes = serde_json::to_vec(body).unwrap();
        self.request(
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(&bytes),
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, body)
    }

    pub fn send_auth(&self, method: &str, path: &str, token: &str, body: &Value) -> Resp {
        let bytes = serde_json::to_vec(body).unwrap();
        let auth = format!("Bearer {token}");
        self.request(
            method,
            path,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            Some(&bytes),
        )
    }

    /// POSTs JSON from `source`, a loopback address such as 127.0.0.2, so
    /// that the server sees another client IP (ureq cannot bind a source
    /// address): a socket bound with socket2, one hand-written HTTP/1.1
    /// request, the connection closed after the answer.
    pub fn post_from(&self, source: &str, path: &str, body: &Value) -> Resp {
        use std::io::{Read, Write};
        let addr = self.running().addr;
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let from: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
        sock.bind(&from.into()).unwrap();
        sock.connect(&addr.into()).unwrap();
        let mut stream: std::net::TcpStream = sock.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let bytes = serde_json::to_vec(body).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            bytes.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&bytes).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        // The server answers with a Content-Length (from_data), never chunked.
        assert!(
            !headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")),
            "a chunked answer: {text}"
        );
        Resp {
            status,
            headers,
            body: body.to_string(),
        }
    }

    /// Signs in through POST /auth/login-token and returns the TokenResponse.
    pub fn login_token(&self, client: &Client, secret: &str, username: &str) -> Value {
        let r = self.post(
            "/auth/login-token",
            &serde_json::json!({"client_id": client.client_id, "client_secret": secret,
                                "username": username, "password": PASSWORD}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// Counts login_activity rows of one type.
    pub fn activity(&self, login_type: &str) -> i64 {
        self.conn()
            .query_row(
                "SELECT count(*) FROM login_activity WHERE login_type = ?1",
                [login_type],
                |r| r.get(0),
            )
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}
