//! Running hallpass as a service: the access log (timestamps, JSON lines,
//! the user a bearer proved), trusted proxies given as CIDR ranges, and
//! /metrics behind a token or on a listener of its own. The log tests run
//! the real binary and read its stderr.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use hallpass::config::MetricsConfig;
use serde_json::{json, Value};

use crate::cli::{bound_addr, hallpass, run_command, stop};
use crate::support::TestServer;

const TOKEN: &str = "scrape-0123456789abcdef";

/// `serve` on `listen` with the config file `toml` (in `dir`): the child
/// and its address.
fn serve_with(dir: &Path, toml: &str, listen: &str) -> (Child, String) {
    let file = dir.join("h.toml");
    std::fs::write(&file, toml).unwrap();
    let mut child = hallpass(dir)
        .args(["serve", "--config"])
        .arg(&file)
        .args(["--listen", listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = bound_addr(&mut child);
    (child, addr)
}

/// A client and a user made with the CLI: (client_id, secret, user_id).
fn client_and_user(dir: &Path) -> (String, String, String) {
    let field = |out: &str, key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in {out:?}"))
            .to_string()
    };
    let mut init = hallpass(dir);
    init.arg("init");
    let (ok, _, err) = run_command(init, None);
    assert!(ok, "{err}");
    let mut c = hallpass(dir);
    c.args(["client", "add", "web"]);
    let (ok, out, err) = run_command(c, None);
    assert!(ok, "{err}");
    let mut u = hallpass(dir);
    u.args(["user", "add", "ada@example.com", "--password-stdin"]);
    let (ok, user, err) = run_command(u, Some("correct-horse-battery-9\n"));
    assert!(ok, "{err}");
    (
        field(&out, "client_id"),
        field(&out, "client_secret"),
        field(&user, "user_id"),
    )
}

/// One request over a fresh connection from `from` (a local address, or
/// None for any), the connection closed after it: (status, body).
fn call(
    addr: &str,
    from: Option<&str>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let to: SocketAddr = addr.parse().unwrap();
    let mut c: TcpStream = match from {
        Some(ip) => {
            let from: SocketAddr = SocketAddr::new(ip.parse().unwrap(), 0);
            let sock = socket2::Socket::new(
                socket2::Domain::for_address(to),
                socket2::Type::STREAM,
                None,
            )
            .unwrap();
            sock.bind(&from.into()).unwrap();
            sock.connect(&to.into()).unwrap();
            sock.into()
        }
        None => TcpStream::connect(to).unwrap(),
    };
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    c.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {raw:?}"));
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Signs ada in over HTTP: her access token.
fn sign_in(addr: &str, client_id: &str, secret: &str) -> String {
    let body = json!({"client_id": client_id, "client_secret": secret,
                      "username": "ada@example.com", "password": "correct-horse-battery-9"});
    let (status, answer) = call(
        addr,
        None,
        "POST",
        "/auth/login-token",
        &[("Content-Type", "application/json")],
        &body.to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let v: Value = serde_json::from_str(&answer).unwrap();
    v["accessToken"].as_str().unwrap().to_string()
}

/// Stops the server and returns everything it wrote on stderr.
fn stop_and_read_stderr(child: &mut Child) -> String {
    stop(child);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// True for `YYYY-MM-DDTHH:MM:SSZ`.
fn is_rfc3339_utc(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// The access log's time, between `before` and `after` (same format, so
/// they compare as strings).
fn assert_time_between(t: &str, before: &str, after: &str) {
    assert!(is_rfc3339_utc(t), "{t:?}");
    assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
}

fn now_stamp() -> String {
    hallpass::log::timestamp(hallpass::clock::system_now())
}

#[test]
fn access_log_lines_start_with_a_utc_timestamp_and_end_with_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let (client_id, secret, user_id) = client_and_user(dir.path());
    let before = now_stamp();
    let (mut child, addr) = serve_with(dir.path(), "access_log = true\n", "127.0.0.1:0");
    let token = sign_in(&addr, &client_id, &secret);
    let bearer = format!("Bearer {token}");
    let (status, _) = call(
        &addr,
        None,
        "GET",
        "/auth/me?code=secret-in-query",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(call(&addr, None, "GET", "/healthz", &[], "").0, 200);
    let err = stop_and_read_stderr(&mut child);
    let after = now_stamp();
    assert!(!err.contains("secret-in-query"), "no query string: {err}");
    let me = err
        .lines()
        .find(|l| l.contains(" GET /auth/me "))
        .unwrap_or_else(|| panic!("{err}"));
    let fields: Vec<&str> = me.split(' ').collect();
    assert_eq!(fields.len(), 7, "{me}");
    assert_time_between(fields[0], &before, &after);
    assert_eq!(
        fields[1..5],
        ["127.0.0.1", "GET", "/auth/me", "200"],
        "{me}"
    );
    assert!(fields[5].ends_with("ms"), "{me}");
    assert_eq!(fields[6], user_id, "the user the bearer proved: {me}");
    let health = err.lines().find(|l| l.contains(" /healthz ")).unwrap();
    assert!(health.ends_with(" -"), "no user without a bearer: {health}");
    for line in err.lines().filter(|l| l.contains(" 127.0.0.1 ")) {
        assert!(is_rfc3339_utc(line.split(' ').next().unwrap()), "{line}");
    }
}

#[test]
fn access_log_json_is_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let (client_id, secret, user_id) = client_and_user(dir.path());
    let before = now_stamp();
    let (mut child, addr) = serve_with(dir.path(), "access_log = \"json\"\n", "127.0.0.1:0");
    let token = sign_in(&addr, &client_id, &secret);
    let bearer = format!("Bearer {token}");
    let (status, _) = call(
        &addr,
        None,
        "GET",
        "/auth/me?code=secret-in-query",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200);
    // A bearer that does not verify proves no one.
    let (status, _) = call(
        &addr,
        None,
        "GET",
        "/auth/me",
        &[("Authorization", "Bearer not-a-token")],
        "",
    );
    assert_eq!(status, 401);
    let err = stop_and_read_stderr(&mut child);
    let after = now_stamp();
    let lines: Vec<Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{err}");
    for l in &lines {
        assert_time_between(l["time"].as_str().unwrap(), &before, &after);
        assert_eq!(l["client"], "127.0.0.1");
        assert!(l["duration_ms"].as_f64().unwrap() >= 0.0, "{l}");
    }
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["path"], "/auth/login-token");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["user_id"], Value::Null);
    assert_eq!(lines[1]["method"], "GET");
    assert_eq!(lines[1]["path"], "/auth/me", "no query string");
    assert_eq!(lines[1]["route"], "/auth/me");
    assert_eq!(lines[1]["status"], 200);
    assert_eq!(lines[1]["user_id"], user_id.as_str());
    assert_eq!(lines[2]["status"], 401);
    assert_eq!(lines[2]["user_id"], Value::Null);
    assert!(!err.contains("secret-in-query"));
    assert!(!err.contains(&token), "no token in the log");
}

#[test]
fn forwarded_for_is_believed_from_a_peer_in_a_trusted_range_only() {
    let dir = tempfile::tempdir().unwrap();
    // A dual-stack listener: IPv4 peers arrive as ::ffff:a.b.c.d and must
    // still match the IPv4 range. Without IPv6 here, an IPv4 one.
    let dual = std::net::TcpListener::bind("[::1]:0").is_ok();
    let listen = if dual { "[::]:0" } else { "127.0.0.1:0" };
    let (mut child, addr) = serve_with(
        dir.path(),
        "trusted_proxies = [\"127.0.0.2/31\", \"::/120\"]\n",
        listen,
    );
    let port = addr.rsplit(':').next().unwrap();
    let v4 = format!("127.0.0.1:{port}");
    let xff = [("X-Forwarded-For", "198.51.100.7")];
    // 127.0.0.3 is in 127.0.0.2/31: the header is believed.
    assert_eq!(
        call(&v4, Some("127.0.0.3"), "GET", "/healthz?in", &xff, "").0,
        200
    );
    // 127.0.0.4 is not: the peer is the client.
    assert_eq!(
        call(&v4, Some("127.0.0.4"), "GET", "/healthz?out", &xff, "").0,
        200
    );
    if dual {
        let v6 = format!("[::1]:{port}");
        assert_eq!(
            call(
                &v6,
                Some("::1"),
                "GET",
                "/openapi.json",
                &[("X-Forwarded-For", "2001:db8::9")],
                ""
            )
            .0,
            200
        );
    }
    let err = stop_and_read_stderr(&mut child);
    let healthz: Vec<&str> = err.lines().filter(|l| l.contains(" /healthz ")).collect();
    assert_eq!(healthz.len(), 2, "{err}");
    assert!(
        healthz[0].contains(" 198.51.100.7 GET /healthz 200 "),
        "{err}"
    );
    assert!(healthz[1].contains(" 127.0.0.4 GET /healthz 200 "), "{err}");
    if dual {
        assert!(
            err.contains(" 2001:db8::9 GET /openapi.json 200 "),
            "::1 is in ::/120: {err}"
        );
    }
}

#[test]
fn metrics_with_a_token_answer_401_without_it() {
    let s = TestServer::start_with(|c| {
        c.metrics = MetricsConfig {
            token: Some(TOKEN.into()),
            listen: None,
        }
    });
    let r = s.get("/metrics");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"));
    assert!(!r.body.contains("hallpass_requests_total"));
    let wrong = s.get_auth("/metrics", "scrape-0123456789abcdeX");
    assert_eq!(wrong.status, 401);
    let right = s.get_auth("/metrics", TOKEN);
    assert_eq!(right.status, 200);
    assert!(
        right.body.contains("hallpass_requests_total"),
        "{}",
        right.body
    );
    // The rest of the API is not behind it.
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn a_metrics_listener_serves_metrics_and_health_only() {
    let s = TestServer::start_with(|c| {
        c.metrics = MetricsConfig {
            token: None,
            listen: Some("127.0.0.1:0".into()),
        }
    });
    let side = s.running().metrics_addr.unwrap().to_string();
    assert_ne!(side, s.running().addr.to_string());
    // The main listener no longer serves /metrics, as for any unknown path.
    let main = s.get("/metrics");
    assert_eq!(main.status, 404, "{}", main.body);
    assert_eq!(main.body, s.get("/no-such-route").body);
    assert_eq!(s.get("/healthz").status, 200);
    let (status, body) = call(&side, None, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    assert!(body.contains("hallpass_requests_total"), "{body}");
    // The main listener's requests are counted, the 404 above among them.
    assert!(
        body.contains("hallpass_requests_total{route=\"/metrics\",status=\"404\"} 1"),
        "{body}"
    );
    assert_eq!(call(&side, None, "GET", "/healthz", &[], "").0, 200);
    for path in ["/auth/me", "/.well-known/jwks.json", "/openapi.json"] {
        assert_eq!(call(&side, None, "GET", path, &[], "").0, 404, "{path}");
    }
    let (status, _) = call(&side, None, "POST", "/auth/login-token", &[], "{}");
    assert_eq!(status, 404);
}

#[test]
fn a_metrics_listener_with_a_token_wants_it_too() {
    let s = TestServer::start_with(|c| {
        c.metrics = MetricsConfig {
            token: Some(TOKEN.into()),
            listen: Some("127.0.0.1:0".into()),
        }
    });
    let side = s.running().metrics_addr.unwrap().to_string();
    assert_eq!(call(&side, None, "GET", "/metrics", &[], "").0, 401);
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = call(
        &side,
        None,
        "GET",
        "/metrics",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200, "{body}");
    // Health needs no token (load balancers and systemd probes).
    assert_eq!(call(&side, None, "GET", "/healthz", &[], "").0, 200);
    assert_eq!(s.get_auth("/metrics", TOKEN).status, 404);
}

#[test]
fn serve_says_where_the_metrics_listener_is() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = serve_with(
        dir.path(),
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
        "127.0.0.1:0",
    );
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut side = None;
    for _ in 0..10 {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line.trim().strip_prefix("metrics: listening on http://") {
            side = rest.split(' ').next().map(str::to_string);
            break;
        }
    }
    let side = side.expect("a metrics: listening on line");
    let (status, body) = call(&side, None, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    assert!(body.contains("hallpass_requests_total"));
    stop(&mut child);
}
