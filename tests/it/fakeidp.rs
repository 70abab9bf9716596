//! An in-process fake identity provider for the social sign-in tests: an
//! OpenID Provider (discovery, JWKS, authorize, token, userinfo) that also
//! speaks GitHub's (`/user`, `/user/emails`) and Facebook's (`/me`) user
//! endpoints and checks Apple's ES256 client secret. It listens on
//! 127.0.0.1:0, one thread per connection, and answers every request with
//! `Connection: close`.
//!
//! It is as strict as the real providers about what hallpass sends it
//! (client authentication, single-use codes, redirect URI, PKCE), and
//! writes every refusal into `problems()` so that a failing test says why.
//! Its id_tokens are signed for real (RS256 and ES256, with ring), with
//! times from the test server's manual clock, and can be forged on demand.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hallpass::http::{parse_form, percent_encode};
use hallpass::Clock;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Map, Value};

/// A revocation or end-session call: its path, Authorization header and form.
pub type SessionEnd = (String, Option<String>, Vec<(String, String)>);

/// Which provider's conventions the fake follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// OpenID Connect: an id_token from /token, /userinfo.
    Oidc,
    /// Apple: OIDC with a form_post callback and an ES256 client secret.
    Apple,
    /// GitHub: plain OAuth 2.0; /token answers form-encoded unless asked
    /// for JSON; /user and /user/emails need a User-Agent.
    Github,
    /// Facebook: plain OAuth 2.0; /me.
    Facebook,
}

/// Ways to spoil the next id_tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Signed by a key the JWKS never had, under a kid it never had.
    UnknownKey,
    /// The current key's kid, signed by another key of the same type.
    SameKidOtherKey,
    /// The RSA key's kid with `alg: ES256`, signed by an EC key.
    AlgOfAnotherKey,
    /// Signed by the key the last `rotate()` removed from the JWKS.
    RetiredKey,
    /// `alg: none`, no signature.
    AlgNone,
    /// `alg: HS256`, the HMAC key being the current key's public JWK.
    HmacWithPublicKey,
    /// Meant for another client.
    WrongAud,
    /// Not the nonce of the authorization request.
    WrongNonce,
    /// No nonce at all.
    NoNonce,
    /// Expired ten minutes ago.
    Expired,
    /// Issued a day in the future.
    IssuedInFuture,
    /// Another issuer.
    WrongIss,
}

impl Forgery {
    pub const ALL: [Forgery; 12] = [
        Forgery::UnknownKey,
        Forgery::SameKidOtherKey,
        Forgery::AlgOfAnotherKey,
        Forgery::RetiredKey,
        Forgery::AlgNone,
        Forgery::HmacWithPublicKey,
        Forgery::WrongAud,
        Forgery::WrongNonce,
        Forgery::NoNonce,
        Forgery::Expired,
        Forgery::IssuedInFuture,
        Forgery::WrongIss,
    ];
}

/// Who signs in at the fake.
#[derive(Debug, Clone)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    /// `true`, `false`, `"true"` (Apple) or null (absent).
    pub email_verified: Value,
    pub name: Option<String>,
    /// More claims for the id_token (Azure's `tid`, ...).
    pub extra: Map<String, Value>,
}

/// One call to the token endpoint, as received.
#[derive(Debug, Clone, Default)]
pub struct TokenCall {
    /// "basic", "post", "apple_jwt" or "none".
    pub client_auth: String,
    pub form: Vec<(String, String)>,
}

/// Apple's client secret check: the public half of the .p8 key.
struct AppleCheck {
    team_id: String,
    key_id: String,
    public_key: Vec<u8>,
}

#[derive(Clone)]
enum Key {
    Rsa {
        kid: String,
        pair: Arc<RsaKeyPair>,
    },
    Ec {
        kid: String,
        pair: Arc<EcdsaKeyPair>,
    },
}

impl Key {
    fn kid(&self) -> &str {
        match self {
            Key::Rsa { kid, .. } | Key::Ec { kid, .. } => kid,
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Key::Rsa { .. } => "RS256",
            Key::Ec { .. } => "ES256",
        }
    }

    fn jwk(&self, with_alg: bool) -> Value {
        let mut v = match self {
            Key::Rsa { kid, pair } => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty": "RSA", "kid": kid, "use": "sig",
                       "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e)})
            }
            Key::Ec { kid, pair } => {
                let p = pair.public_key().as_ref();
                json!({"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256",
                       "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..65])})
            }
        };
        if with_alg {
            v["alg"] = json!(self.alg());
        }
        v
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Key::Rsa { pair, .. } => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .unwrap();
                sig
            }
            Key::Ec { pair, .. } => pair.sign(&rng, msg).unwrap().as_ref().to_vec(),
        }
    }

    fn with_kid(&self, kid: &str) -> Key {
        match self {
            Key::Rsa { pair, .. } => Key::Rsa {
                kid: kid.into(),
                pair: pair.clone(),
            },
            Key::Ec { pair, .. } => Key::Ec {
                kid: kid.into(),
                pair: pair.clone(),
            },
        }
    }
}

/// A fresh P-256 key in PKCS#8 (what an Apple .p8 file holds, in PEM).
pub fn ec_pkcs8() -> Vec<u8> {
    EcdsaKeyPair::generate_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &SystemRandom::new(),
    )
    .unwrap()
    .as_ref()
    .to_vec()
}

/// The uncompressed public point of a P-256 PKCS#8 key.
pub fn ec_public(pkcs8: &[u8]) -> Vec<u8> {
    EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8,
        &SystemRandom::new(),
    )
    .unwrap()
    .public_key()
    .as_ref()
    .to_vec()
}

/// PEM armour, 64 columns.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_der(text: &str) -> Vec<u8> {
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).unwrap()
}

/// The RSA key of tests/it/fixtures (kid `rsa-1`).
fn fixture_pem() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/rsa-2048.pem"),
    )
    .unwrap()
}

fn new_ec(kid: &str) -> Key {
    let pkcs8 = ec_pkcs8();
    Key::Ec {
        kid: kid.into(),
        pair: Arc::new(
            EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &pkcs8,
                &SystemRandom::new(),
            )
            .unwrap(),
        ),
    }
}

fn rsa(kid: &str, pem_text: &str) -> Key {
    Key::Rsa {
        kid: kid.into(),
        pair: Arc::new(RsaKeyPair::from_pkcs8(&pem_der(pem_text)).unwrap()),
    }
}

fn random_token() -> String {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b).unwrap();
    URL_SAFE_NO_PAD.encode(b)
}

/// What /authorize handed out, waiting at /token.
struct Issued {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    identity: Identity,
    used: bool,
}

struct Inner {
    flavor: Flavor,
    client_id: String,
    client_secret: Option<String>,
    redirect_uris: Vec<String>,
    issuer: String,
    /// The `issuer` of the discovery document, when it differs (Azure's
    /// multi-tenant `{tenantid}` template).
    discovery_issuer: Option<String>,
    /// The `iss` of id_tokens, when it differs from `issuer`.
    token_issuer: Option<String>,
    discovery: bool,
    jwks_alg: bool,
    apple: Option<AppleCheck>,
    clock: Option<Clock>,
    published: Vec<Key>,
    current: Key,
    spare_rsa: Option<Key>,
    retired: Option<Key>,
    generation: u32,
    identity: Identity,
    deny: bool,
    token_delay: Duration,
    token_garbage: bool,
    forgery: Option<Forgery>,
    /// Whether id_tokens carry email and email_verified (else only
    /// /userinfo does, as Authelia's do).
    email_in_id_token: bool,
    /// The `sub` /userinfo answers, when it lies.
    userinfo_subject: Option<String>,
    codes: HashMap<String, Issued>,
    tokens: HashMap<String, Identity>,
    authorizations: Vec<HashMap<String, String>>,
    token_calls: Vec<TokenCall>,
    apple_secrets: Vec<Value>,
    jwks_fetches: usize,
    discovery_fetches: usize,
    user_calls: usize,
    /// Revocation and end-session calls: path, client auth, form.
    session_ends: Vec<SessionEnd>,
    problems: Vec<String>,
}

impl Inner {
    fn now(&self) -> i64 {
        match &self.clock {
            Some(c) => c.now(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        }
    }

    fn problem(&mut self, what: String) -> Answer {
        self.problems.push(what.clone());
        Answer::json(
            400,
            json!({"error": "invalid_request", "error_description": what}),
        )
    }
}

/// The fake provider. Dropping it stops its listener.
pub struct FakeIdp {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

impl FakeIdp {
    /// Starts a provider that knows one client, and expects hallpass at
    /// `redirect_uri`. Signs RS256 (the fixture key, kid `rsa-1`) and also
    /// publishes an ES256 key (kid `ec-1`). The issuer is `base`.
    pub fn start(
        flavor: Flavor,
        client_id: &str,
        client_secret: Option<&str>,
        redirect_uri: &str,
    ) -> FakeIdp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let rsa1 = rsa("rsa-1", &fixture_pem());
        let ec1 = new_ec("ec-1");
        let inner = Inner {
            flavor,
            client_id: client_id.into(),
            client_secret: client_secret.map(str::to_string),
            redirect_uris: vec![redirect_uri.into()],
            issuer: base.clone(),
            discovery_issuer: None,
            token_issuer: None,
            discovery: true,
            jwks_alg: true,
            apple: None,
            clock: None,
            published: vec![rsa1.clone(), ec1],
            current: rsa1,
            spare_rsa: Some(rsa("rsa-2", RSA_2)),
            retired: None,
            generation: 1,
            identity: Identity {
                subject: "sub-1".into(),
                email: Some("user@example.com".into()),
                email_verified: json!(true),
                name: Some("Una User".into()),
                extra: Map::new(),
            },
            deny: false,
            token_delay: Duration::ZERO,
            token_garbage: false,
            forgery: None,
            email_in_id_token: true,
            userinfo_subject: None,
            codes: HashMap::new(),
            tokens: HashMap::new(),
            authorizations: Vec::new(),
            token_calls: Vec::new(),
            apple_secrets: Vec::new(),
            jwks_fetches: 0,
            discovery_fetches: 0,
            user_calls: 0,
            session_ends: Vec::new(),
            problems: Vec::new(),
        };
        let inner = Arc::new(Mutex::new(inner));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let inner = inner.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let inner = inner.clone();
                    std::thread::spawn(move || serve(conn, &inner));
                }
            });
        }
        FakeIdp {
            base,
            addr,
            inner,
            stop,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// id_token times follow this clock (the test server's).
    pub fn use_clock(&self, clock: &Clock) {
        self.lock().clock = Some(clock.clone());
    }

    /// Another redirect URI hallpass may use (a second provider on the
    /// same fake).
    pub fn allow_redirect_uri(&self, uri: &str) {
        self.lock().redirect_uris.push(uri.into());
    }

    /// The issuer: discovery at `{issuer}/.well-known/openid-configuration`
    /// and the `iss` of id_tokens. `path` is appended to `base`
    /// (e.g. "/contoso/v2.0"); returns the issuer.
    pub fn set_issuer_path(&self, path: &str) -> String {
        let mut g = self.lock();
        g.issuer = format!("{}{path}", self.base);
        g.issuer.clone()
    }

    /// The `issuer` the discovery document claims, when it differs from the
    /// one in the tokens.
    pub fn set_discovery_issuer(&self, issuer: &str) {
        self.lock().discovery_issuer = Some(issuer.into());
    }

    /// The `iss` of id_tokens, when it differs from the issuer (Azure's
    /// multi-tenant endpoints: each user's own tenant).
    pub fn set_token_issuer(&self, issuer: &str) {
        self.lock().token_issuer = Some(issuer.into());
    }

    /// Whether `/.well-known/openid-configuration` is served (else 404).
    pub fn serve_discovery(&self, on: bool) {
        self.lock().discovery = on;
    }

    /// Whether JWKS entries carry `alg` (Azure's don't).
    pub fn jwks_with_alg(&self, on: bool) {
        self.lock().jwks_alg = on;
    }

    /// Sign id_tokens with the published key of this algorithm.
    pub fn sign_with(&self, alg: &str) {
        let mut g = self.lock();
        let key = g
            .published
            .iter()
            .find(|k| k.alg() == alg)
            .cloned()
            .unwrap_or_else(|| panic!("no published {alg} key"));
        g.current = key;
    }

    /// Replaces the signing key by a new one of the same algorithm under a
    /// new kid; the old one leaves the JWKS. Returns the new kid.
    pub fn rotate(&self) -> String {
        let mut g = self.lock();
        g.generation += 1;
        let old = g.current.clone();
        let new = match &old {
            Key::Rsa { .. } => g.spare_rsa.take().expect("one RSA rotation only"),
            Key::Ec { .. } => new_ec(&format!("ec-{}", g.generation)),
        };
        g.published.retain(|k| k.kid() != old.kid());
        g.published.push(new.clone());
        g.current = new.clone();
        g.retired = Some(old);
        new.kid().to_string()
    }

    /// Check Apple's client secret: an ES256 JWT signed by the key whose
    /// public point is `public_key`.
    pub fn expect_apple_secret(&self, team_id: &str, key_id: &str, public_key: &[u8]) {
        self.lock().apple = Some(AppleCheck {
            team_id: team_id.into(),
            key_id: key_id.into(),
            public_key: public_key.to_vec(),
        });
    }

    /// Who signs in next (at the next /authorize).
    pub fn set_identity(&self, subject: &str, email: Option<&str>, verified: Value) {
        let mut g = self.lock();
        g.identity.subject = subject.into();
        g.identity.email = email.map(str::to_string);
        g.identity.email_verified = verified;
    }

    pub fn set_name(&self, name: Option<&str>) {
        self.lock().identity.name = name.map(str::to_string);
    }

    /// An extra id_token claim.
    pub fn set_claim(&self, name: &str, value: Value) {
        self.lock().identity.extra.insert(name.into(), value);
    }

    /// The user refuses consent at /authorize.
    pub fn deny(&self, on: bool) {
        self.lock().deny = on;
    }

    /// /token waits this long before answering.
    pub fn delay_token(&self, d: Duration) {
        self.lock().token_delay = d;
    }

    /// /token answers 200 with an HTML page.
    pub fn garbage_token(&self, on: bool) {
        self.lock().token_garbage = on;
    }

    /// The next id_tokens are forged this way (None: honest).
    pub fn forge(&self, f: Option<Forgery>) {
        self.lock().forgery = f;
    }

    /// Whether id_tokens carry the email (else /userinfo only).
    pub fn email_in_id_token(&self, on: bool) {
        self.lock().email_in_id_token = on;
    }

    /// /userinfo answers for this subject instead of the signed-in one.
    pub fn userinfo_subject(&self, sub: Option<&str>) {
        self.lock().userinfo_subject = sub.map(str::to_string);
    }

    /// The query of every /authorize request, in order.
    pub fn authorizations(&self) -> Vec<HashMap<String, String>> {
        self.lock().authorizations.clone()
    }

    pub fn token_calls(&self) -> Vec<TokenCall> {
        self.lock().token_calls.clone()
    }

    /// The claims of every Apple client secret that passed the check.
    pub fn apple_secrets(&self) -> Vec<Value> {
        self.lock().apple_secrets.clone()
    }

    pub fn jwks_fetches(&self) -> usize {
        self.lock().jwks_fetches
    }

    pub fn discovery_fetches(&self) -> usize {
        self.lock().discovery_fetches
    }

    /// Calls to /userinfo, /user, /user/emails and /me.
    /// The revocation (`/revoke`) and end-session (`/logout`) calls made:
    /// path, the Authorization header, the form.
    pub fn session_ends(&self) -> Vec<SessionEnd> {
        self.lock().session_ends.clone()
    }

    pub fn user_calls(&self) -> usize {
        self.lock().user_calls
    }

    /// Every request the fake refused, and why.
    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }
}

/// An answer of the fake.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
}

impl Answer {
    fn json(status: u16, v: Value) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
            delay: Duration::ZERO,
        }
    }

    fn redirect(to: String) -> Answer {
        Answer {
            status: 302,
            headers: vec![("Location".into(), to)],
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    fn typed(status: u16, content_type: &str, body: String) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into_bytes(),
            delay: Duration::ZERO,
        }
    }
}

/// One parsed request.
struct Req {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Query and form-encoded body parameters together.
    fn params(&self) -> Vec<(String, String)> {
        let mut all = self.query.clone();
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        {
            all.extend(parse_form(&String::from_utf8_lossy(&self.body)));
        }
        all
    }

    fn bearer(&self) -> Option<String> {
        let h = self.header("authorization")?;
        let (scheme, token) = h.split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
            .then(|| token.trim().to_string())
    }
}

fn param(p: &[(String, String)], name: &str) -> Option<String> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn read_request(conn: &TcpStream) -> Option<Req> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), parse_form(q)),
        None => (target, Vec::new()),
    };
    Some(Req {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn serve(mut conn: TcpStream, inner: &Mutex<Inner>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(req) = read_request(&conn) else {
        return;
    };
    let answer = {
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        route(&mut g, &req)
    };
    if !answer.delay.is_zero() {
        std::thread::sleep(answer.delay);
    }
    let mut head = format!("HTTP/1.1 {} X\r\n", answer.status);
    for (k, v) in &answer.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        answer.body.len()
    ));
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&answer.body);
    let _ = conn.flush();
}

fn route(g: &mut Inner, req: &Req) -> Answer {
    let p = req.path.as_str();
    if p.ends_with("/.well-known/openid-configuration") {
        discovery(g, req)
    } else if p.ends_with("/jwks") || p.ends_with("/keys") || p.ends_with("/certs") {
        g.jwks_fetches += 1;
        let with_alg = g.jwks_alg;
        let keys: Vec<Value> = g.published.iter().map(|k| k.jwk(with_alg)).collect();
        Answer::json(200, json!({ "keys": keys }))
    } else if p.ends_with("/authorize") {
        authorize(g, req)
    } else if p.ends_with("/token") || p.ends_with("/access_token") {
        token(g, req)
    } else if p.ends_with("/revoke") || p.ends_with("/logout") {
        let form = parse_form(&String::from_utf8_lossy(&req.body));
        let auth = req.header("authorization").map(str::to_string);
        g.session_ends.push((p.to_string(), auth, form));
        Answer::typed(200, "text/plain", String::new())
    } else if p.ends_with("/userinfo") {
        userinfo(g, req)
    } else if p.ends_with("/user/emails") {
        github_emails(g, req)
    } else if p.ends_with("/user") {
        github_user(g, req)
    } else if p.ends_with("/me") {
        facebook_me(g, req)
    } else {
        Answer::json(404, json!({"error": "not_found"}))
    }
}

fn discovery(g: &mut Inner, req: &Req) -> Answer {
    g.discovery_fetches += 1;
    let base = g.issuer.clone();
    let origin = base.split('/').take(3).collect::<Vec<_>>().join("/");
    let want = format!(
        "{}/.well-known/openid-configuration",
        base.trim_start_matches(&origin)
    );
    if !g.discovery || req.path != want {
        return Answer::json(404, json!({"error": "not_found"}));
    }
    let issuer = g.discovery_issuer.clone().unwrap_or(base);
    Answer::json(
        200,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{origin}/authorize"),
            "token_endpoint": format!("{origin}/token"),
            "userinfo_endpoint": format!("{origin}/userinfo"),
            "jwks_uri": format!("{origin}/jwks"),
            "revocation_endpoint": format!("{origin}/revoke"),
            "end_session_endpoint": format!("{origin}/logout"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "form_post"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified", "name"],
        }),
    )
}

fn authorize(g: &mut Inner, req: &Req) -> Answer {
    let q: HashMap<String, String> = req.query.iter().cloned().collect();
    g.authorizations.push(q.clone());
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if req.method != "GET" {
        return g.problem(format!("authorize: method {}", req.method));
    }
    if get("client_id") != g.client_id {
        return g.problem(format!("authorize: client_id {:?}", get("client_id")));
    }
    let redirect_uri = get("redirect_uri");
    if !g.redirect_uris.contains(&redirect_uri) {
        return g.problem(format!(
            "authorize: redirect_uri {redirect_uri:?}, registered {:?}",
            g.redirect_uris
        ));
    }
    if get("response_type") != "code" {
        return g.problem(format!(
            "authorize: response_type {:?}",
            get("response_type")
        ));
    }
    let state = get("state");
    if state.is_empty() {
        return g.problem("authorize: no state".into());
    }
    let challenge = q.get("code_challenge").cloned();
    if challenge.is_some() && get("code_challenge_method") != "S256" {
        return g.problem(format!(
            "authorize: code_challenge_method {:?}",
            get("code_challenge_method")
        ));
    }
    let form_post = get("response_mode") == "form_post";
    let fields: Vec<(String, String)> = if g.deny {
        vec![
            ("error".into(), "access_denied".into()),
            (
                "error_description".into(),
                "The user denied the request".into(),
            ),
            ("state".into(), state),
        ]
    } else {
        let code = random_token();
        let identity = g.identity.clone();
        g.codes.insert(
            code.clone(),
            Issued {
                client_id: g.client_id.clone(),
                redirect_uri: redirect_uri.clone(),
                nonce: q.get("nonce").cloned(),
                challenge,
                identity,
                used: false,
            },
        );
        let mut f = vec![("code".into(), code), ("state".into(), state)];
        if g.flavor == Flavor::Apple {
            if let Some(name) = &g.identity.name {
                let (first, last) = name.split_once(' ').unwrap_or((name, ""));
                let user = json!({"name": {"firstName": first, "lastName": last},
                                  "email": g.identity.email});
                f.push(("user".into(), user.to_string()));
            }
        }
        f
    };
    if form_post {
        let inputs: String = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\"/>",
                    html_escape(k),
                    html_escape(v)
                )
            })
            .collect();
        Answer::typed(
            200,
            "text/html; charset=utf-8",
            format!(
                "<!DOCTYPE html><html><body onload=\"document.forms[0].submit()\">\
                 <form method=\"post\" action=\"{}\">{inputs}</form></body></html>",
                html_escape(&redirect_uri)
            ),
        )
    } else {
        let query: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        let sep = if redirect_uri.contains('?') { '&' } else { '?' };
        Answer::redirect(format!("{redirect_uri}{sep}{}", query.join("&")))
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Undoes `html_escape` (for the tests reading a form_post page).
pub fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x2F;", "/")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn token(g: &mut Inner, req: &Req) -> Answer {
    let form = if req.method == "POST" || (g.flavor == Flavor::Facebook && req.method == "GET") {
        req.params()
    } else {
        return g.problem(format!("token: method {}", req.method));
    };
    let mut call = TokenCall {
        client_auth: "none".into(),
        form: form.clone(),
    };
    let delay = g.token_delay;
    let answer = token_answer(g, req, &form, &mut call);
    g.token_calls.push(call);
    Answer { delay, ..answer }
}

fn token_answer(
    g: &mut Inner,
    req: &Req,
    form: &[(String, String)],
    call: &mut TokenCall,
) -> Answer {
    if g.token_garbage {
        return Answer::typed(
            200,
            "text/html",
            "<html><body>Gateway says hi</body></html>".into(),
        );
    }
    if param(form, "grant_type").as_deref() != Some("authorization_code") {
        return g.problem(format!("token: grant_type {:?}", param(form, "grant_type")));
    }
    // Client authentication.
    let basic = req.header("authorization").and_then(|h| {
        let b64 = h.strip_prefix("Basic ")?;
        let raw = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
        let (id, secret) = raw.split_once(':')?;
        Some((
            hallpass::http::percent_decode(id, true),
            hallpass::http::percent_decode(secret, true),
        ))
    });
    let (client_id, secret) = match basic {
        Some((id, s)) => {
            if param(form, "client_secret").is_some() {
                return g.problem("token: two client authentication methods".into());
            }
            call.client_auth = "basic".into();
            (id, Some(s))
        }
        None => {
            let s = param(form, "client_secret");
            call.client_auth = if s.is_some() { "post" } else { "none" }.into();
            (param(form, "client_id").unwrap_or_default(), s)
        }
    };
    if client_id != g.client_id {
        g.problems.push(format!("token: client_id {client_id:?}"));
        return Answer::json(401, json!({"error": "invalid_client"}));
    }
    if g.flavor == Flavor::Apple {
        let now = g.now();
        match check_apple_secret(g, secret.as_deref().unwrap_or(""), now) {
            Ok(claims) => {
                call.client_auth = "apple_jwt".into();
                g.apple_secrets.push(claims);
            }
            Err(why) => {
                g.problems
                    .push(format!("token: Apple client secret: {why}"));
                return Answer::json(401, json!({"error": "invalid_client"}));
            }
        }
    } else if secret != g.client_secret {
        g.problems.push(format!(
            "token: client_secret {secret:?} ({})",
            call.client_auth
        ));
        return Answer::json(401, json!({"error": "invalid_client"}));
    }
    // The code: single use, this client, this redirect URI, PKCE.
    let code = param(form, "code").unwrap_or_default();
    let Some(issued) = g.codes.get_mut(&code) else {
        return g.problem(format!("token: unknown code {code:?}"));
    };
    if issued.used {
        return g.problem("token: code used twice".into());
    }
    issued.used = true;
    if issued.client_id != client_id {
        return g.problem("token: code of another client".into());
    }
    if param(form, "redirect_uri").as_deref() != Some(issued.redirect_uri.as_str()) {
        let got = param(form, "redirect_uri");
        return g.problem(format!(
            "token: redirect_uri {got:?} is not the authorization request's"
        ));
    }
    if let Some(challenge) = issued.challenge.clone() {
        let verifier = param(form, "code_verifier").unwrap_or_default();
        let hashed = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            verifier.as_bytes(),
        ));
        if hashed != challenge {
            return g.problem(format!(
                "token: code_verifier {verifier:?} does not match the challenge"
            ));
        }
    }
    let nonce = issued.nonce.clone();
    let identity = issued.identity.clone();
    let access = random_token();
    g.tokens.insert(access.clone(), identity.clone());
    match g.flavor {
        Flavor::Github => {
            let wants_json = req
                .header("accept")
                .is_some_and(|a| a.contains("application/json"));
            if wants_json {
                Answer::json(
                    200,
                    json!({"access_token": access, "token_type": "bearer", "scope": "read:user,user:email"}),
                )
            } else {
                Answer::typed(
                    200,
                    "application/x-www-form-urlencoded; charset=utf-8",
                    format!(
                        "access_token={access}&scope=read%3Auser%2Cuser%3Aemail&token_type=bearer"
                    ),
                )
            }
        }
        Flavor::Facebook => Answer::json(
            200,
            json!({"access_token": access, "token_type": "bearer", "expires_in": 5183944}),
        ),
        Flavor::Oidc | Flavor::Apple => {
            let id_token = id_token(g, &identity, nonce);
            Answer::json(
                200,
                json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600,
                       "refresh_token": format!("rt-{access}"),
                       "id_token": id_token, "scope": "openid email profile"}),
            )
        }
    }
}

fn check_apple_secret(g: &Inner, jwt: &str, now: i64) -> Result<Value, String> {
    let check = g.apple.as_ref().ok_or("no Apple key given to the fake")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("not a JWS: {jwt:?}"));
    }
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string());
    let header: Value = serde_json::from_slice(&decode(parts[0])?).map_err(|e| e.to_string())?;
    if header["alg"] != "ES256" {
        return Err(format!("alg {}", header["alg"]));
    }
    if header["kid"] != check.key_id.as_str() {
        return Err(format!("kid {}", header["kid"]));
    }
    let signed = format!("{}.{}", parts[0], parts[1]);
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &check.public_key)
        .verify(signed.as_bytes(), &decode(parts[2])?)
        .map_err(|_| "bad signature".to_string())?;
    let claims: Value = serde_json::from_slice(&decode(parts[1])?).map_err(|e| e.to_string())?;
    if claims["iss"] != check.team_id.as_str() {
        return Err(format!("iss {}", claims["iss"]));
    }
    if claims["sub"] != g.client_id.as_str() {
        return Err(format!("sub {}", claims["sub"]));
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == "https://appleid.apple.com",
        Value::Array(a) => a.iter().any(|x| x == "https://appleid.apple.com"),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("aud {}", claims["aud"]));
    }
    let iat = claims["iat"].as_i64().ok_or("no iat")?;
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    if iat > now + 60 || exp <= now || exp - iat > 15_777_000 {
        return Err(format!("iat {iat} exp {exp} at {now}"));
    }
    Ok(claims)
}

fn jws(header: &Value, claims: &Value, key: &Key) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn id_token(g: &mut Inner, who: &Identity, nonce: Option<String>) -> String {
    let now = g.now();
    let iss = g.token_issuer.clone().unwrap_or_else(|| g.issuer.clone());
    let mut claims = json!({
        "iss": iss,
        "aud": g.client_id,
        "sub": who.subject,
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
    });
    if let Some(n) = &nonce {
        claims["nonce"] = json!(n);
    }
    if let (Some(e), true) = (&who.email, g.email_in_id_token) {
        claims["email"] = json!(e);
        if !who.email_verified.is_null() {
            claims["email_verified"] = who.email_verified.clone();
        }
    }
    // Apple's id_token never has the name: it comes once, in the form
    // post's `user` field.
    if let (Some(n), false) = (&who.name, g.flavor == Flavor::Apple) {
        claims["name"] = json!(n);
    }
    for (k, v) in &who.extra {
        claims[k] = v.clone();
    }
    let current = g.current.clone();
    let header = |k: &Key| json!({"alg": k.alg(), "kid": k.kid(), "typ": "JWT"});
    match g.forgery {
        None => jws(&header(&current), &claims, &current),
        Some(Forgery::UnknownKey) => {
            g.generation += 1;
            let k = new_ec(&format!("unknown-{}", g.generation));
            jws(&header(&k), &claims, &k)
        }
        Some(Forgery::SameKidOtherKey) => {
            let other = match &current {
                Key::Rsa { kid, .. } if kid == "rsa-1" => rsa(kid, RSA_2),
                Key::Rsa { kid, .. } => rsa(kid, &fixture_pem()),
                Key::Ec { kid, .. } => new_ec(kid),
            };
            jws(&header(&other), &claims, &other)
        }
        Some(Forgery::AlgOfAnotherKey) => {
            let rsa_kid = g
                .published
                .iter()
                .find(|k| k.alg() == "RS256")
                .map(|k| k.kid().to_string())
                .unwrap_or_else(|| "rsa-1".into());
            let ec = g
                .published
                .iter()
                .find(|k| k.alg() == "ES256")
                .cloned()
                .unwrap_or_else(|| new_ec("x"));
            let k = ec.with_kid(&rsa_kid);
            jws(&header(&k), &claims, &k)
        }
        Some(Forgery::RetiredKey) => {
            let k = g
                .retired
                .clone()
                .expect("RetiredKey needs a rotate() first");
            jws(&header(&k), &claims, &k)
        }
        Some(Forgery::AlgNone) => {
            let h = json!({"alg": "none", "kid": current.kid(), "typ": "JWT"});
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(h.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            )
        }
        Some(Forgery::HmacWithPublicKey) => {
            let h = json!({"alg": "HS256", "kid": current.kid(), "typ": "JWT"});
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(h.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let secret = current.jwk(true).to_string();
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
            let tag = ring::hmac::sign(&key, input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
        }
        Some(Forgery::WrongAud) => {
            claims["aud"] = json!("someone-else");
            jws(&header(&current), &claims, &current)
        }
        Some(Forgery::WrongNonce) => {
            claims["nonce"] = json!("not-the-nonce");
            jws(&header(&current), &claims, &current)
        }
        Some(Forgery::NoNonce) => {
            claims.as_object_mut().unwrap().remove("nonce");
            jws(&header(&current), &claims, &current)
        }
        Some(Forgery::Expired) => {
            claims["iat"] = json!(now - 4200);
            claims["auth_time"] = json!(now - 4200);
            claims["exp"] = json!(now - 600);
            jws(&header(&current), &claims, &current)
        }
        Some(Forgery::IssuedInFuture) => {
            claims["iat"] = json!(now + 86_400);
            claims["exp"] = json!(now + 90_000);
            jws(&header(&current), &claims, &current)
        }
        Some(Forgery::WrongIss) => {
            claims["iss"] = json!("https://evil.example");
            jws(&header(&current), &claims, &current)
        }
    }
}

/// The identity behind a bearer token (header or `access_token` query).
fn who(g: &mut Inner, req: &Req) -> Result<Identity, Answer> {
    g.user_calls += 1;
    let token = req.bearer().or_else(|| param(&req.query, "access_token"));
    match token.and_then(|t| g.tokens.get(&t).cloned()) {
        Some(i) => Ok(i),
        None => {
            g.problems
                .push(format!("{}: no valid access token", req.path));
            Err(Answer::json(401, json!({"error": "invalid_token"})))
        }
    }
}

fn userinfo(g: &mut Inner, req: &Req) -> Answer {
    let i = match who(g, req) {
        Ok(i) => i,
        Err(a) => return a,
    };
    let sub = g.userinfo_subject.clone().unwrap_or(i.subject);
    let mut v = json!({ "sub": sub });
    if let Some(e) = &i.email {
        v["email"] = json!(e);
    }
    if !i.email_verified.is_null() {
        v["email_verified"] = i.email_verified.clone();
    }
    if let Some(n) = &i.name {
        v["name"] = json!(n);
    }
    Answer::json(200, v)
}

fn github_gate(g: &mut Inner, req: &Req) -> Result<Identity, Answer> {
    if req.header("user-agent").is_none_or(str::is_empty) {
        // GitHub's API refuses requests without a User-Agent.
        g.problems.push(format!("{}: no User-Agent", req.path));
        return Err(Answer::json(
            403,
            json!({"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"}),
        ));
    }
    who(g, req)
}

fn github_user(g: &mut Inner, req: &Req) -> Answer {
    let i = match github_gate(g, req) {
        Ok(i) => i,
        Err(a) => return a,
    };
    let id: Value = i
        .subject
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| json!(i.subject));
    // The public profile address: GitHub gives it whether or not verified,
    // and often null; the emails endpoint is the one to trust.
    Answer::json(
        200,
        json!({"login": "octocat", "id": id, "node_id": "MDQ6VXNlcjE=", "type": "User",
               "name": i.name, "email": i.email}),
    )
}

fn github_emails(g: &mut Inner, req: &Req) -> Answer {
    let i = match github_gate(g, req) {
        Ok(i) => i,
        Err(a) => return a,
    };
    let mut list = vec![json!({"email": "someone-else@users.noreply.github.com",
                               "primary": false, "verified": true, "visibility": null})];
    if let Some(e) = &i.email {
        list.push(json!({"email": e, "primary": true,
                         "verified": i.email_verified == json!(true), "visibility": "public"}));
    }
    Answer::json(200, Value::Array(list))
}

fn facebook_me(g: &mut Inner, req: &Req) -> Answer {
    let i = match who(g, req) {
        Ok(i) => i,
        Err(a) => return a,
    };
    // Without `fields`, the Graph API gives id and name only.
    let fields = param(&req.query, "fields");
    let mut v = json!({"id": i.subject, "name": i.name});
    let wants_email = fields.is_some_and(|f| f.split(',').any(|x| x.trim() == "email"));
    if let (true, Some(e)) = (wants_email, &i.email) {
        v["email"] = json!(e);
    }
    Answer::json(200, v)
}

/// A second RSA key (2048 bits, PKCS#8), for rotation and forgery.
const RSA_2: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDodok9fAfL4Bu6\n\
/qfw5Oe57UNKzVHt4dze1DwE8z2blVnqaokC2KNHH9BrJuEtGPM/zFZy/3FhmLzZ\n\
NM2cHF9ro9UD/FsPPUE5cWHjsFwbOWO9fDegLVYeDYMyEOFJqHUVSVGPb29A6eXL\n\
IPt1H9olk7QuCnkCYdeIlyEbm7DuLH/j6b3C8MWNh1LcpD+dVBcxjzsjSlYDU1XO\n\
MoW5x0po+QNUXw9fifU40vGQjoaC7Foukwj/PGkHVmhux1g1hC73GnFvLP7vzIlS\n\
efxwIQPG0WJE2B2S2DUYw7LWwUArnyK1Vr+lkiQvIFURteEsFWSdyYde3YN1HxAT\n\
9CnjdoYnAgMBAAECggEAaMMa4HGoFdI+zQv85YxTfjAWFnznglw6rNVa4yQ3zIkH\n\
R6SRcI3vL5t/0vpnmmpXHZZaE2NZVpF98ilgzAzhV+IymqQ86WZCob+eTP1q1P4N\n\
HBUCAJbN66dNS9/dl9NqSJiNQCYJLmj6nYuUp1ked7bUCbfAhzlO6Air7ARDPWJG\n\
dkklcKoqxQNYKAS7sytaFUmnHrgwykB6RGFiEnYLRGD5e0KfJjs7kaMiaRNg7v9w\n\
6iqP9Q3mh1KK9kPmSi7rAla5XcHs5jYft+m2VwZmfHBcVmbZXakPBYYI7vZUZQQe\n\
pvl7tkIH+hbqksgi2nDFwozuMewTfPOUvHLgqrCGoQKBgQD/mDZNfxWZe/H2ypEE\n\
9xPRVmyaaKe7g8rNBF1om0DiqC5Kphm1V2V0n0EIPp9vIQWkywDUb6Qty7Tr28B4\n\
m0nfDryVuauBB7nuL4UlotJhHlan9VoPMo6X4QtY3iZMEvn4eWHK5AC0zw4MK+zR\n\
RfJxT3lBVlOpIvUSyjj/YjM1twKBgQDo1O5a6w8jyhvWV6s8l4HDgX8S5YLx2OUT\n\
Hf+rC5OS5+PDeFBN2KhfyziU9Kd4XtsIsFP2LJxndlGuSP9T55o1r4sqsYQjcNTH\n\
sChrEtmpG7eyvK12M64TSKXKPCZ3Jgy0DK6hFJ/CvXDM0oUIWmQGkA1M85Gq4eq8\n\
QQ7gpIezEQKBgCIv++N1wi/bckvuYGNnoRD5HGGy6eyc/j1Z/hyF17H5iOeXPA0T\n\
eZCV1J8DsVOt+RFHzf6cSDuP6c06gY4gR0s8r2Dfit8hZ29Cj+6uzrEK29BvcvJh\n\
cs1B3sCuRjUavLDNm5UF1kpY/6oFHhIH5xvc430nzNzsvhcbUXBndC4VAoGBAKbs\n\
KWpjRTpqZqS3u5s4H58Tkw/wHX3X+vtGsYpmRUm4GDGGa0Q0RRpQbuNTt1Dz6GKF\n\
T9yYxRTj3dFuoib8TzGYBdT46XwjI1l6cK+7FvNHXN62qEGq8Wz/02R21TjsvYTD\n\
5tqzF4qdGGavsxJ3A2k1E2QM5200hH6swcbKDkORAoGAB3by1SNT9wt6b8qpDDBH\n\
zVLkyNLjI8hdnEoOwiHZ3muoKSBPQr5iryhVHiIYtCpmpYw4rr/vQ8zc9BMtciwP\n\
hTSvkP+DxpXnAfphYdaRACJ+CgWOhQlqlWn0z0xpmFqscn108nPjor9rHB/hBbTS\n\
yKkT80wsSiYGKnLhwd8U8CI=\n\
-----END PRIVATE KEY-----\n\
";

/// The fake checked against independent code (ureq and jsonwebtoken), so
/// that a failing social test is about hallpass, not about the fake.
mod selftest {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const RP: &str = "https://rp.example/cb";

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into()
    }

    /// Authorizes at the fake; returns the code.
    fn code(idp: &FakeIdp) -> String {
        let url = format!(
            "{}/authorize?response_type=code&client_id=c&redirect_uri={}&state=st&nonce=n-1\
             &code_challenge={CHALLENGE}&code_challenge_method=S256&scope=openid",
            idp.base,
            percent_encode(RP)
        );
        let r = agent().get(&url).call().unwrap();
        assert_eq!(r.status(), 302, "{:?}", idp.problems());
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let q: HashMap<String, String> = parse_form(loc.split_once('?').unwrap().1)
            .into_iter()
            .collect();
        assert_eq!(q["state"], "st");
        q["code"].clone()
    }

    /// The token endpoint's answer (status, JSON).
    fn exchange(idp: &FakeIdp, code: &str, secret: &str) -> (u16, Value) {
        let mut r = agent()
            .post(&format!("{}/token", idp.base))
            .header(
                "Authorization",
                &format!("Basic {}", STANDARD.encode(format!("c:{secret}"))),
            )
            .send_form([
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", RP),
                ("code_verifier", VERIFIER),
            ])
            .unwrap();
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Verifies an id_token with jsonwebtoken against the fake's JWKS.
    fn verify(idp: &FakeIdp, token: &str) -> Result<Value, String> {
        use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
        let header = decode_header(token).map_err(|e| e.to_string())?;
        let jwks: Value = agent()
            .get(&format!("{}/jwks", idp.base))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        let kid = header.kid.clone().unwrap_or_default();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .ok_or(format!("kid {kid} not in the JWKS"))?;
        let s = |f: &str| jwk[f].as_str().unwrap().to_string();
        let (key, alg) = match jwk["kty"].as_str().unwrap() {
            "RSA" => (
                DecodingKey::from_rsa_components(&s("n"), &s("e")).unwrap(),
                Algorithm::RS256,
            ),
            _ => (
                DecodingKey::from_ec_components(&s("x"), &s("y")).unwrap(),
                Algorithm::ES256,
            ),
        };
        let mut v = Validation::new(alg);
        v.set_audience(&["c"]);
        v.set_issuer(&[idp.base.as_str()]);
        decode::<Value>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_fakes_id_tokens_verify_with_an_independent_library_and_forgeries_do_not() {
        let idp = FakeIdp::start(Flavor::Oidc, "c", Some("s"), RP);
        for alg in ["RS256", "ES256"] {
            idp.sign_with(alg);
            let (status, t) = exchange(&idp, &code(&idp), "s");
            assert_eq!(status, 200, "{t} {:?}", idp.problems());
            let claims = verify(&idp, t["id_token"].as_str().unwrap()).unwrap();
            assert_eq!(claims["nonce"], "n-1");
            assert_eq!(claims["sub"], "sub-1");
            assert_eq!(claims["email_verified"], true);
        }
        // Single use, right secret, right verifier.
        let c = code(&idp);
        assert_eq!(exchange(&idp, &c, "wrong").0, 401);
        let c = code(&idp);
        assert_eq!(exchange(&idp, &c, "s").0, 200);
        assert_eq!(exchange(&idp, &c, "s").0, 400);

        // Signature forgeries fail an honest verifier.
        idp.sign_with("RS256");
        idp.rotate();
        for f in [
            Forgery::UnknownKey,
            Forgery::SameKidOtherKey,
            Forgery::AlgOfAnotherKey,
            Forgery::RetiredKey,
            Forgery::AlgNone,
            Forgery::HmacWithPublicKey,
            Forgery::WrongAud,
            Forgery::Expired,
            Forgery::WrongIss,
        ] {
            idp.forge(Some(f));
            let (_, t) = exchange(&idp, &code(&idp), "s");
            let token = t["id_token"].as_str().unwrap();
            assert!(verify(&idp, token).is_err(), "{f:?} verified");
        }
        idp.forge(None);
        let (_, t) = exchange(&idp, &code(&idp), "s");
        verify(&idp, t["id_token"].as_str().unwrap()).unwrap();
    }

    #[test]
    fn the_fake_checks_apples_client_secret() {
        use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
        let idp = FakeIdp::start(Flavor::Apple, "c", None, RP);
        let pkcs8 = ec_pkcs8();
        idp.expect_apple_secret("TEAM", "KID", &ec_public(&pkcs8));
        let key = EncodingKey::from_ec_pem(pem("PRIVATE KEY", &pkcs8).as_bytes()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let secret = |kid: &str, aud: &str| {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = Some(kid.into());
            encode(
                &h,
                &json!({"iss": "TEAM", "sub": "c", "aud": aud, "iat": now, "exp": now + 600}),
                &key,
            )
            .unwrap()
        };
        let post = |s: &str| {
            agent()
                .post(&format!("{}/token", idp.base))
                .send_form([
                    ("grant_type", "authorization_code"),
                    ("code", code(&idp).as_str()),
                    ("redirect_uri", RP),
                    ("code_verifier", VERIFIER),
                    ("client_id", "c"),
                    ("client_secret", s),
                ])
                .unwrap()
                .status()
                .as_u16()
        };
        assert_eq!(post(&secret("KID", "https://appleid.apple.com")), 200);
        assert_eq!(post(&secret("OTHER", "https://appleid.apple.com")), 401);
        assert_eq!(post(&secret("KID", "https://example.com")), 401);
        assert_eq!(post("plain-secret"), 401);
    }
}
