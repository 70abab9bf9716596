//! The HTTP client hallpass uses to talk to identity providers: token
//! exchange, userinfo, JWKS and OpenID Connect discovery, over one ureq
//! agent.
//!
//! Every call is bounded: one global timeout from connect to the last
//! byte of the body, an answer of at most 1 MiB, and no redirect followed
//! (a provider endpoint that redirects is misconfigured, and following it
//! would send codes and secrets somewhere else). TLS is rustls on ring,
//! verified against the webpki roots; plain http is allowed only for a
//! loopback host (`check_url`), for tests and a provider on the same
//! machine. Proxies come from the usual `HTTPS_PROXY`/`NO_PROXY`
//! variables (ureq's default).
//!
//! Statuses are read, not raised: a 4xx/5xx is `FetchError::Status` with
//! the provider's JSON error body when it has one, so the flow can tell
//! `invalid_grant` from an outage.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;
use ureq::http::Response;
use ureq::{Agent, Body};

use crate::crypto::b64;
use crate::url::{origin, percent_encode};

/// The largest answer read from a provider, in bytes.
pub const BODY_CAP: u64 = 1 << 20;

const USER_AGENT: &str = concat!("hallpass/", env!("CARGO_PKG_VERSION"));

/// Why a call to a provider failed.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchError {
    /// No answer: DNS, connect, TLS, or the timeout. The provider is down
    /// or slow (`temporarily_unavailable`).
    Unreachable(String),
    /// A status other than 2xx (redirects included, as they are not
    /// followed), with the body when it parsed as JSON: an OAuth error
    /// answer, typically (`{"error": "invalid_grant"}`).
    Status(u16, Option<Value>),
    /// An answer that is not what a provider sends: not JSON, over
    /// `BODY_CAP`, broken HTTP, or a URL we refuse to call
    /// (`server_error`).
    Malformed(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Unreachable(why) => write!(f, "provider unreachable: {why}"),
            FetchError::Status(code, body) => {
                write!(f, "provider answered {code}")?;
                // The OAuth error code (RFC 6749 §5.2) says what went
                // wrong and carries no secret; its description might
                // echo input, so it is left out.
                let error = body.as_ref().and_then(|b| b.get("error")?.as_str());
                match error {
                    Some(e) if e.len() <= 64 && e.bytes().all(|b| b.is_ascii_graphic()) => {
                        write!(f, " ({e})")
                    }
                    _ => Ok(()),
                }
            }
            FetchError::Malformed(why) => write!(f, "provider answered nonsense: {why}"),
        }
    }
}

impl std::error::Error for FetchError {}

impl From<ureq::Error> for FetchError {
    fn from(e: ureq::Error) -> FetchError {
        use ureq::Error as E;
        match e {
            E::BodyExceedsLimit(_) => FetchError::Malformed("the answer is over 1 MiB".into()),
            E::Timeout(_)
            | E::HostNotFound
            | E::ConnectionFailed
            | E::Io(_)
            | E::Tls(_)
            | E::Pem(_)
            | E::Rustls(_)
            | E::TlsRequired
            | E::ConnectProxyFailed(_)
            | E::BodyStalled => FetchError::Unreachable(e.to_string()),
            other => FetchError::Malformed(other.to_string()),
        }
    }
}

/// Refuses a URL hallpass must not call: anything but `https://`, except
/// `http://` to a loopback host (127.0.0.0/8, `[::1]`, `localhost`). A URL
/// with userinfo (`https://a@b`) is refused too.
pub fn check_url(url: &str) -> Result<(), String> {
    let origin = origin(url).ok_or("not an absolute http(s) URL")?;
    let (scheme, authority) = origin.split_once("://").ok_or("not a URL")?;
    let host = if authority.starts_with('[') {
        authority
            .find(']')
            .and_then(|end| authority.get(..=end))
            .ok_or("bad IPv6 host")?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if scheme == "https" {
        return Ok(());
    }
    let loopback = host == "localhost"
        || host == "[::1]"
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err("http:// is only for loopback hosts; use https://".into())
    }
}

/// `application/x-www-form-urlencoded` for one name or value.
fn form_encode(s: &str) -> String {
    percent_encode(s).replace("%20", "+")
}

/// The client for identity providers. Cheap to clone (the agent and its
/// connection pool are shared).
#[derive(Debug, Clone)]
pub struct Upstream {
    agent: Agent,
}

impl Upstream {
    /// A client whose every call ends within `timeout`.
    pub fn new(timeout: Duration) -> Upstream {
        let config = Agent::config_builder()
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(USER_AGENT)
            .build();
        Upstream {
            agent: Agent::new_with_config(config),
        }
    }

    /// GETs a JSON document, with `Authorization: Bearer` when given
    /// (userinfo).
    pub fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Value, FetchError> {
        check_url(url).map_err(FetchError::Malformed)?;
        let mut req = self.agent.get(url).header("Accept", "application/json");
        if let Some(token) = bearer {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        read_json(req.call())
    }

    /// POSTs a form and reads a JSON answer (the token endpoint). `basic`
    /// is `client_secret_basic`: id and secret each form-encoded, then
    /// joined by ':' and base64-encoded (RFC 6749 §2.3.1).
    pub fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Value, FetchError> {
        read_json(self.send_form(url, form, basic)?)
    }

    /// POSTs a form where only the status matters (token revocation,
    /// RFC 7009, and end-session answer 200 with any body or none).
    pub fn post_form_any(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<(), FetchError> {
        let resp = self.send_form(url, form, basic)??;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(FetchError::Status(status, None))
        }
    }

    fn send_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Result<Response<Body>, ureq::Error>, FetchError> {
        check_url(url).map_err(FetchError::Malformed)?;
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = self
            .agent
            .post(url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            let pair = format!("{}:{}", form_encode(id), form_encode(secret));
            req = req.header("Authorization", format!("Basic {}", b64(pair.as_bytes())));
        }
        Ok(req.send(body))
    }
}

/// Reads an answer: a 2xx JSON body, or the error it stands for.
fn read_json(answer: Result<Response<Body>, ureq::Error>) -> Result<Value, FetchError> {
    let mut resp = answer?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().with_config().limit(BODY_CAP).read_to_vec();
    if !(200..300).contains(&status) {
        let json = body.ok().and_then(|b| serde_json::from_slice(&b).ok());
        return Err(FetchError::Status(status, json));
    }
    serde_json::from_slice(&body?)
        .map_err(|_| FetchError::Malformed("the answer is not JSON".into()))
}

/// The parts of an OpenID Provider's metadata (OpenID Connect Discovery
/// 1.0 §3) that the sign-in flow uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The issuer, as the document gives it. Verify id_tokens against
    /// this one: Azure's multi-tenant endpoints answer with the template
    /// `https://login.microsoftonline.com/{tenantid}/v2.0`.
    pub issuer: String,
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: String,
    /// Where codes are exchanged for tokens.
    pub token_endpoint: String,
    /// The userinfo endpoint, when the provider has one.
    pub userinfo_endpoint: Option<String>,
    /// The provider's JWKS.
    pub jwks_uri: String,
    /// RFC 7009 token revocation, when the provider has it.
    pub revocation_endpoint: Option<String>,
    /// RP-initiated logout, when supported.
    pub end_session_endpoint: Option<String>,
    /// PKCE methods supported ("S256", ...); empty when not announced.
    pub code_challenge_methods_supported: Vec<String>,
}

/// Fetches `{issuer}/.well-known/openid-configuration` (a trailing slash
/// on `issuer` is dropped first). Fails, as `Malformed`, when a required
/// member is missing or an endpoint is a URL `check_url` refuses.
pub fn discover(up: &Upstream, issuer: &str) -> Result<Discovery, FetchError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc = up.get_json(&url, None)?;
    let bad = |why: String| FetchError::Malformed(format!("discovery: {why}"));
    let text = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_string);
    let endpoint = |name: &str| -> Result<Option<String>, FetchError> {
        match text(name) {
            Some(u) => check_url(&u)
                .map(|()| Some(u))
                .map_err(|why| bad(format!("{name}: {why}"))),
            None => Ok(None),
        }
    };
    let required = |name: &str| endpoint(name)?.ok_or_else(|| bad(format!("no {name}")));
    let issuer = text("issuer")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| bad("no issuer".into()))?;
    Ok(Discovery {
        issuer,
        authorization_endpoint: required("authorization_endpoint")?,
        token_endpoint: required("token_endpoint")?,
        userinfo_endpoint: endpoint("userinfo_endpoint")?,
        jwks_uri: required("jwks_uri")?,
        end_session_endpoint: endpoint("end_session_endpoint")?,
        revocation_endpoint: endpoint("revocation_endpoint")?,
        code_challenge_methods_supported: doc
            .get("code_challenge_methods_supported")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;
    use std::time::Instant;

    /// What the fake provider does with a request.
    #[derive(Clone)]
    enum Act {
        /// Answers these bytes and closes.
        Answer(Vec<u8>),
        /// Reads the request and never answers.
        Hang,
    }

    /// A request as the fake provider read it: the head's lines and the body.
    struct Seen {
        lines: Vec<String>,
        body: String,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<String> {
            self.lines.iter().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        }
    }

    /// A one-thread HTTP/1.1 server on a loopback port that does `act` for
    /// every connection. Returns its base URL and what it saw.
    fn serve(act: Act) -> (String, mpsc::Receiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (act, tx) = (act.clone(), tx.clone());
                thread::spawn(move || handle(conn, act, tx));
            }
        });
        (base, rx)
    }

    fn handle(conn: TcpStream, act: Act, tx: mpsc::Sender<Seen>) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end().to_string();
            if line.is_empty() {
                break;
            }
            lines.push(line);
        }
        let mut seen = Seen {
            lines,
            body: String::new(),
        };
        let len: usize = seen
            .header("content-length")
            .map_or(0, |l| l.parse().unwrap());
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        seen.body = String::from_utf8(body).unwrap();
        let _ = tx.send(seen);
        let mut conn = conn;
        match act {
            Act::Answer(bytes) => {
                // The client may stop reading early (the cap): ignore errors.
                let _ = conn.write_all(&bytes);
            }
            Act::Hang => {
                // Held open until the client gives up and closes.
                let _ = reader.read(&mut [0u8; 1]);
            }
        }
    }

    fn answer(status: &str, content_type: &str, body: &[u8]) -> Act {
        let mut out = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        Act::Answer(out)
    }

    fn json_answer(status: &str, v: &Value) -> Act {
        answer(status, "application/json", v.to_string().as_bytes())
    }

    fn up() -> Upstream {
        Upstream::new(Duration::from_secs(5))
    }

    #[test]
    fn get_json_reads_json_and_sends_accept_bearer_and_user_agent() {
        let (base, seen) = serve(json_answer("200 OK", &json!({"sub": "u1"})));
        let got = up()
            .get_json(&format!("{base}/userinfo"), Some("at-123"))
            .unwrap();
        assert_eq!(got, json!({"sub": "u1"}));
        let s = seen.recv().unwrap();
        assert_eq!(s.lines[0], "GET /userinfo HTTP/1.1");
        assert_eq!(s.header("accept").as_deref(), Some("application/json"));
        assert_eq!(s.header("authorization").as_deref(), Some("Bearer at-123"));
        assert_eq!(
            s.header("user-agent"),
            Some(format!("hallpass/{}", env!("CARGO_PKG_VERSION")))
        );
    }

    #[test]
    fn post_form_encodes_the_form_and_basic_credentials() {
        let (base, seen) = serve(json_answer("200 OK", &json!({"access_token": "x"})));
        let form = [("grant_type", "authorization_code"), ("code", "a b&c=d+é")];
        let got = up()
            .post_form(
                &format!("{base}/token"),
                &form,
                Some(("my client", "p@ss:w+rd/")),
            )
            .unwrap();
        assert_eq!(got["access_token"], "x");
        let s = seen.recv().unwrap();
        assert_eq!(s.lines[0], "POST /token HTTP/1.1");
        assert_eq!(
            s.header("content-type").as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(s.header("accept").as_deref(), Some("application/json"));
        assert_eq!(
            s.body,
            "grant_type=authorization_code&code=a+b%26c%3Dd%2B%C3%A9"
        );
        let basic = s.header("authorization").unwrap();
        let decoded = crate::crypto::b64_decode(basic.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "my+client:p%40ss%3Aw%2Brd%2F"
        );
    }

    #[test]
    fn an_error_status_carries_its_json_body() {
        let err = json!({"error": "invalid_grant", "error_description": "code used"});
        let (base, _seen) = serve(json_answer("400 Bad Request", &err));
        let got = up().post_form(&format!("{base}/token"), &[], None);
        assert_eq!(got, Err(FetchError::Status(400, Some(err))));
        assert_eq!(
            got.unwrap_err().to_string(),
            "provider answered 400 (invalid_grant)"
        );
    }

    #[test]
    fn an_error_status_without_json_has_no_body() {
        let (base, _seen) = serve(answer("502 Bad Gateway", "text/html", b"<h1>down</h1>"));
        assert_eq!(
            up().get_json(&base, None),
            Err(FetchError::Status(502, None))
        );
    }

    #[test]
    fn a_redirect_is_not_followed() {
        let (target, target_seen) = serve(json_answer("200 OK", &json!({})));
        let act = Act::Answer(
            format!("HTTP/1.1 302 Found\r\nLocation: {target}/\r\nContent-Length: 0\r\n\r\n")
                .into_bytes(),
        );
        let (base, _seen) = serve(act);
        assert_eq!(
            up().get_json(&base, None),
            Err(FetchError::Status(302, None))
        );
        assert!(target_seen.try_recv().is_err());
    }

    #[test]
    fn a_2xx_answer_that_is_not_json_is_malformed() {
        let (base, _seen) = serve(answer("200 OK", "text/html", b"<html></html>"));
        assert!(matches!(
            up().get_json(&base, None),
            Err(FetchError::Malformed(_))
        ));
    }

    #[test]
    fn an_answer_over_one_mib_is_malformed() {
        let mut big = b"{\"a\":\"".to_vec();
        big.resize(2 << 20, b'x');
        big.extend_from_slice(b"\"}");
        let (base, _seen) = serve(answer("200 OK", "application/json", &big));
        assert_eq!(
            up().get_json(&base, None),
            Err(FetchError::Malformed("the answer is over 1 MiB".into()))
        );
    }

    #[test]
    fn a_provider_that_never_answers_times_out() {
        let (base, _seen) = serve(Act::Hang);
        let started = Instant::now();
        let got = Upstream::new(Duration::from_millis(300)).get_json(&base, None);
        assert!(matches!(got, Err(FetchError::Unreachable(_))), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(matches!(
            up().get_json(&format!("http://127.0.0.1:{port}/"), None),
            Err(FetchError::Unreachable(_))
        ));
    }

    #[test]
    fn https_speaks_tls_and_a_plain_http_server_fails_it() {
        let (base, _seen) = serve(json_answer("200 OK", &json!({})));
        let url = base.replace("http://", "https://");
        assert!(matches!(
            up().get_json(&url, None),
            Err(FetchError::Unreachable(_))
        ));
    }

    #[test]
    fn check_url_allows_https_and_loopback_http_only() {
        for ok in [
            "https://accounts.google.com",
            "https://idp.example:8443/realms/x",
            "http://127.0.0.1:8080/x",
            "http://127.9.9.9/",
            "http://localhost:3000/cb",
            "http://LOCALHOST/",
            "http://[::1]:8080/x",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://idp.example/",
            "http://10.0.0.1/",
            "http://localhost.evil.example/",
            "http://127.0.0.1.evil.example/",
            "http://[::2]/",
            "http://127.0.0.1@evil.example/",
            "https://a@idp.example/",
            "ftp://idp.example/",
            "https://",
            "https://:443/",
            "/relative",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            up().get_json("http://idp.example/", None),
            Err(FetchError::Malformed(_))
        ));
    }

    fn document(base: &str) -> Value {
        json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "userinfo_endpoint": format!("{base}/userinfo"),
            "jwks_uri": format!("{base}/jwks"),
            "code_challenge_methods_supported": ["plain", "S256"],
        })
    }

    #[test]
    fn discover_reads_the_well_known_document() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let (server, seen) = serve(json_answer("200 OK", &document(&base)));
        let d = discover(&up(), &format!("{server}/")).unwrap();
        assert_eq!(
            seen.recv().unwrap().lines[0],
            "GET /.well-known/openid-configuration HTTP/1.1"
        );
        assert_eq!(d.issuer, base);
        assert_eq!(d.authorization_endpoint, format!("{base}/authorize"));
        assert_eq!(d.token_endpoint, format!("{base}/token"));
        assert_eq!(d.userinfo_endpoint, Some(format!("{base}/userinfo")));
        assert_eq!(d.jwks_uri, format!("{base}/jwks"));
        assert_eq!(d.end_session_endpoint, None);
        assert_eq!(d.code_challenge_methods_supported, ["plain", "S256"]);
    }

    #[test]
    fn discover_refuses_missing_members_and_plain_http_endpoints() {
        let base = "https://idp.example";
        let mut no_token = document(base);
        no_token.as_object_mut().unwrap().remove("token_endpoint");
        let mut http_jwks = document(base);
        http_jwks["jwks_uri"] = json!("http://idp.example/jwks");
        let mut http_userinfo = document(base);
        http_userinfo["userinfo_endpoint"] = json!("http://idp.example/userinfo");
        for doc in [no_token, http_jwks, http_userinfo, json!({"issuer": base})] {
            let (server, _seen) = serve(json_answer("200 OK", &doc));
            assert!(
                matches!(discover(&up(), &server), Err(FetchError::Malformed(_))),
                "{doc}"
            );
        }
        let (server, _seen) = serve(json_answer("404 Not Found", &json!({})));
        assert!(matches!(
            discover(&up(), &server),
            Err(FetchError::Status(404, _))
        ));
    }
}
