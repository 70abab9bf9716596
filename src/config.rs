//! Configuration: built-in defaults < TOML file < `HALLPASS_*` environment
//! variables < command-line flags.
//!
//! Two stages, as in ripgrep: `RawConfig` mirrors the file and only parses;
//! `Config` is the validated, ready-to-use result. Every default is stated
//! next to its field. The names here are a public interface (the README's
//! Configuration section; ARCHITECTURE.md, "Where to add: a setting"): keep
//! them stable.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;
use crate::jwt::Alg;
use crate::social::kinds;

/// The dialects hallpass speaks, in routing order.
pub const ALL_DIALECTS: [&str; 4] = ["native", "yat", "mfa", "lagrello"];

/// Who may sign up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signup {
    /// Only with an admin token or an API key (the default).
    Invite,
    /// Anyone.
    Open,
    /// Nobody.
    Off,
}

/// Per-IP token bucket sizes and refill rates, per endpoint family.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Credential checks (password, codes): bucket size. Default 10.
    pub login_burst: f64,
    /// Credential checks refilled per minute. Default 30.
    pub login_per_minute: f64,
    /// Token refresh and code exchange: bucket size. Default 120.
    pub token_burst: f64,
    /// Token endpoints refilled per minute. Default 600.
    pub token_per_minute: f64,
    /// Failed credential checks that go freely, per account and source,
    /// before the soft lock delays the next attempt. Default 5.
    pub free_failures: u32,
    /// Failed credential checks per account (or typed name) in a rolling
    /// hour, from all sources together, after which only the sources the
    /// account signed in from in the last 30 days may try. Default 30.
    pub account_failures_per_hour: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            login_burst: 10.0,
            login_per_minute: 30.0,
            token_burst: 120.0,
            token_per_minute: 600.0,
            free_failures: 5,
            account_failures_per_hour: 30,
        }
    }
}

/// The connection layer's limits (engine/). The head is capped at
/// 16 KiB and the body at 64 KiB; those are not settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Connections {
    /// Open connections at most; at the cap the longest-idle one is closed
    /// for a new one. Lowered at start to what the open-files limit
    /// allows. Default 1024.
    pub max_connections: usize,
    /// Seconds a request head may take to arrive, which is also how long
    /// a kept-alive connection may sit idle. Default 20.
    pub header_timeout_secs: u64,
    /// Seconds a request body may take to arrive. Default 10.
    pub body_timeout_secs: u64,
}

impl Default for Connections {
    fn default() -> Connections {
        Connections {
            max_connections: 1024,
            header_timeout_secs: 20,
            body_timeout_secs: 10,
        }
    }
}

/// Who may read `/metrics` (`[metrics]`). Default: anyone who reaches the
/// main listener.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsConfig {
    /// A bearer token the scraper must send (`Authorization: Bearer …`);
    /// without it, or with another, 401. Default none (`HALLPASS_METRICS_TOKEN`).
    pub token: Option<String>,
    /// A second listener serving only `/metrics` and `/healthz`; the main
    /// listener then answers 404 for `/metrics`. Default none.
    pub listen: Option<String>,
}

/// The access log (`access_log`): one line per request on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    /// None (`false`).
    Off,
    /// `TIME IP METHOD PATH STATUS DURATIONms USER` (`true`, the default).
    Text,
    /// One JSON object per line, for log shippers (`"json"`).
    Json,
}

impl AccessLog {
    /// From the file's value: true, false, "text", "json" or "off".
    fn parse(v: &toml::Value) -> Result<AccessLog, Error> {
        match v {
            toml::Value::Boolean(true) => Ok(AccessLog::Text),
            toml::Value::Boolean(false) => Ok(AccessLog::Off),
            toml::Value::String(s) if s == "text" => Ok(AccessLog::Text),
            toml::Value::String(s) if s == "json" => Ok(AccessLog::Json),
            toml::Value::String(s) if s == "off" => Ok(AccessLog::Off),
            other => Err(Error::BadRequest(format!(
                "access_log must be true, false, \"text\" or \"json\", not {}",
                match other {
                    toml::Value::String(s) => format!("{s:?}"),
                    v => format!("a value of type {}", v.type_str()),
                }
            ))),
        }
    }

    /// As the file writes it (describe()).
    fn describe(self) -> &'static str {
        match self {
            AccessLog::Off => "false",
            AccessLog::Text => "true",
            AccessLog::Json => "\"json\"",
        }
    }
}

/// A `trusted_proxies` entry: one address (`10.0.0.1`) or a CIDR range
/// (`10.0.0.0/8`, `fd00::/8`), parsed once at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    /// The network's first address, in canonical form (an IPv4-mapped
    /// IPv6 range is stored as the IPv4 range it maps).
    net: IpAddr,
    /// Leading bits that must match: 0..=32 for IPv4, 0..=128 for IPv6.
    prefix: u8,
}

impl IpRange {
    /// Parses `ADDR` or `ADDR/PREFIX`. A range with host bits set
    /// (`10.0.0.1/8`) is refused with the network it probably means, as
    /// Python's `ipaddress` does: silently widening it could trust more
    /// than was meant.
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let t = text.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or a CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{text:?}: the prefix must be 0..={max}")),
            },
        };
        let net = mask(addr, prefix);
        if net != addr {
            return Err(format!(
                "{text:?} has bits set after the /{prefix} prefix; the network is \"{net}/{prefix}\""
            ));
        }
        // ::ffff:a.b.c.d/96+n is the IPv4 range a.b.c.d/n.
        Ok(match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => IpRange {
                    net: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                None => IpRange { net, prefix },
            },
            _ => IpRange { net, prefix },
        })
    }

    /// True when `ip` is in the range. An IPv4-mapped IPv6 address (a
    /// dual-stack listener's view of an IPv4 peer) matches IPv4 ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

/// `addr` with every bit after the first `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

impl std::fmt::Display for IpRange {
    /// As written: a bare address for a single host, else `net/prefix`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let max = if self.net.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}/{}", self.net, self.prefix)
        }
    }
}

/// The kinds of upstream identity provider (`[providers.NAME] kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Google,
    Azure,
    Keycloak,
    Cognito,
    Autha,
    Auth0,
    Facebook,
    Instagram,
    Apple,
    Github,
    Oidc,
}

impl ProviderKind {
    /// The name used in the file, in routes and in messages.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Google => "google",
            ProviderKind::Azure => "azure",
            ProviderKind::Keycloak => "keycloak",
            ProviderKind::Cognito => "cognito",
            ProviderKind::Autha => "autha",
            ProviderKind::Auth0 => "auth0",
            ProviderKind::Facebook => "facebook",
            ProviderKind::Instagram => "instagram",
            ProviderKind::Apple => "apple",
            ProviderKind::Github => "github",
            ProviderKind::Oidc => "oidc",
        }
    }

    /// The kind a name in the file means (exact, lower case).
    pub fn parse(s: &str) -> Option<ProviderKind> {
        kinds::ALL_KINDS.into_iter().find(|k| k.name() == s)
    }

    /// True for the OpenID Connect kinds (an id_token, discovery); false
    /// for Facebook, Instagram and GitHub (plain OAuth 2.0 and a user
    /// endpoint).
    pub fn is_oidc(self) -> bool {
        !matches!(
            self,
            ProviderKind::Facebook | ProviderKind::Instagram | ProviderKind::Github
        )
    }
}

/// One `[providers.NAME]`, kind defaults applied (social/kinds.rs), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    /// `[a-z0-9][a-z0-9_-]{0,31}`; the identities table's provider column.
    pub name: String,
    pub kind: ProviderKind,
    pub client_id: String,
    /// None for apple (hallpass signs one) and for public clients (oidc).
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    /// Some for OIDC kinds unless all four endpoints are explicit.
    pub issuer: Option<String>,
    /// None = from discovery.
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub jwks_url: Option<String>,
    /// github: the verified addresses (`https://api.github.com/user/emails`).
    pub emails_url: Option<String>,
    /// Send S256 PKCE upstream (true except instagram).
    pub pkce: bool,
    /// apple: Some("form_post").
    pub response_mode: Option<String>,
    /// apple only: what its client secret is signed with.
    pub apple: Option<AppleKey>,
    /// Link a first sign-in to the account with the same verified email.
    /// Default true.
    pub link_by_email: bool,
    /// May this provider create users; None follows the global `signup`
    /// ("open" = yes).
    pub signup: Option<bool>,
    /// Seconds each call to the provider may take. Default 10.
    pub timeout_secs: u64,
    /// The sign-in page's button text; None = the kind's brand, or the
    /// configured name (`kinds::label`).
    pub label: Option<String>,
}

/// Sign in with Apple's client secret is an ES256 JWT signed with this key.
#[derive(Debug, Clone, PartialEq)]
pub struct AppleKey {
    pub team_id: String,
    pub key_id: String,
    /// The .p8 file (PKCS#8, PEM) from Apple's developer account.
    pub private_key_file: PathBuf,
}

impl Provider {
    /// The `[providers.NAME]` table (it parses back), defaults spelled out,
    /// the client secret masked, endpoints left to discovery as comments.
    pub fn describe(&self) -> String {
        let q = |s: &str| format!("{s:?}");
        let mut l = vec![
            format!("[providers.{}]", self.name),
            format!("kind = {}", q(self.kind.name())),
            format!("client_id = {}", q(&self.client_id)),
        ];
        l.push(match (&self.client_secret, &self.apple) {
            (Some(_), _) => "# client_secret: ********".into(),
            (None, Some(_)) => "# client_secret: signed by hallpass with the key below".into(),
            (None, None) => "# client_secret: unset (a public client)".into(),
        });
        let scopes: Vec<String> = self.scopes.iter().map(|s| q(s)).collect();
        l.push(format!("scopes = [{}]", scopes.join(", ")));
        for (key, v) in [
            ("issuer", &self.issuer),
            ("authorize_url", &self.authorize_url),
            ("token_url", &self.token_url),
            ("userinfo_url", &self.userinfo_url),
            ("jwks_url", &self.jwks_url),
            ("emails_url", &self.emails_url),
        ] {
            match v {
                Some(v) => l.push(format!("{key} = {}", q(v))),
                None if key == "emails_url" || key == "issuer" || !self.kind.is_oidc() => {}
                None if kinds::needs_discovery(self) => l.push(format!("# {key}: from discovery")),
                None => l.push(format!("# {key}: none")),
            }
        }
        l.push(format!("link_by_email = {}", self.link_by_email));
        l.push(match self.signup {
            Some(b) => format!("signup = {b}"),
            None => "# signup: unset, so the global signup (\"open\" = yes)".into(),
        });
        if let Some(a) = &self.apple {
            l.push(format!("team_id = {}", q(&a.team_id)));
            l.push(format!("key_id = {}", q(&a.key_id)));
            l.push(format!(
                "private_key_file = {}",
                q(&a.private_key_file.display().to_string())
            ));
        }
        l.push(format!("timeout_secs = {}", self.timeout_secs));
        l.push(match &self.label {
            Some(t) => format!("label = {}", q(t)),
            None => format!(
                "# label: unset, so the sign-in page's button says {}",
                q(&kinds::label(self))
            ),
        });
        l.push(format!("# pkce: {}", self.pkce));
        if let Some(m) = &self.response_mode {
            l.push(format!("# response_mode: {m}"));
        }
        l.push(String::new());
        l.join("\n")
    }
}

/// The effective, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address. Default `127.0.0.1:8080`; port 0 = any free port.
    pub listen: String,
    /// Database path. Default `./hallpass.db`.
    pub db: PathBuf,
    /// Public base URL for links; default `http://{bound address}`.
    pub public_url: Option<String>,
    /// JWT `iss`; default the public URL.
    pub issuer: Option<String>,
    /// Who may sign up. Default invite.
    pub signup: Signup,
    /// Worker threads, each with its own connection. Default 2 x cores, min 4.
    pub workers: usize,
    /// PBKDF2 iterations. Default 600,000.
    pub pbkdf2_iterations: u32,
    /// Signing algorithm for new keys. Default ES256.
    pub algorithm: Alg,
    /// PKCS#8 RSA private key (DER or PEM) for RS256.
    pub rsa_key_file: Option<PathBuf>,
    /// Access-token lifetime for sign-ins without a client. Default 900 s.
    pub access_ttl: i64,
    /// Refresh-token lifetime (sliding). Default 30 days.
    pub refresh_ttl: i64,
    /// Auth-code lifetime. Default 180 s.
    pub auth_code_ttl: i64,
    /// Rate limits.
    pub limits: Limits,
    /// Connection limits.
    pub connections: Connections,
    /// Who may read `/metrics`, and where.
    pub metrics: MetricsConfig,
    /// Mail command argv; empty = the log mailer.
    pub mail_command: Vec<String>,
    /// Mail sender (`From:`). Default `hallpass <hallpass@localhost>`.
    pub mail_from: String,
    /// The product name in every mail. Default `hallpass`.
    pub mail_product: String,
    /// A directory of template overrides (`KIND.subject`, `KIND.txt`,
    /// `KIND.html`). Default none: the built-in templates.
    pub mail_templates: Option<PathBuf>,
    /// Seconds the mail command may run before it is killed. Default 30.
    pub mail_timeout_secs: u64,
    /// Mail commands running at once at most. Default 2.
    pub mail_concurrency: usize,
    /// Days login_activity rows are kept; 0 keeps them forever. Default 180.
    pub activity_retention_days: i64,
    /// A browser session of the sign-in pages ends after this many seconds
    /// without a request. Default 7 days.
    pub web_session_idle_secs: i64,
    /// ... and this many seconds after its sign-in, whatever. Default 30 days.
    pub web_session_max_secs: i64,
    /// A PNG, SVG, JPEG or WebP file shown at the top of every page (read
    /// at start: `web::pages::Logo::load`). Default none.
    pub web_logo: Option<PathBuf>,
    /// The parent domain the session cookie is scoped to (`Domain=`), so
    /// that one sign-in covers every app under it (forward-auth); the
    /// public URL's host must be inside it. Default none: the cookie is
    /// the sign-in host's alone.
    pub cookie_domain: Option<String>,
    /// The forward-auth access rules (`[access]`, `[[access.rules]]`).
    /// Default: no rules, everything denied.
    pub access: crate::forward::Access,
    /// Enabled dialects.
    pub dialects: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed: addresses or CIDR
    /// ranges. Default none.
    pub trusted_proxies: Vec<IpRange>,
    /// One log line per request on stderr, as text or JSON. Default
    /// text (`true`).
    pub access_log: AccessLog,
    /// Master key text (from `HALLPASS_MASTER_KEY`); None = the key file.
    pub master_key: Option<String>,
    /// Where the master key file lives when no key is given. Default
    /// `{db}.key`.
    pub master_key_file: PathBuf,
    /// Upstream identity providers (`[providers.NAME]`), sorted by name.
    /// Default none.
    pub providers: Vec<Provider>,
}

/// The TOML file, as written. Unknown keys are refused (typos surface).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    db: Option<PathBuf>,
    public_url: Option<String>,
    issuer: Option<String>,
    signup: Option<String>,
    workers: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
    /// true, false, "text" or "json" (AccessLog::parse).
    access_log: Option<toml::Value>,
    master_key_file: Option<PathBuf>,
    password: Option<RawPassword>,
    tokens: Option<RawTokens>,
    limits: Option<RawLimits>,
    connections: Option<RawConnections>,
    metrics: Option<RawMetrics>,
    mail: Option<RawMail>,
    activity: Option<RawActivity>,
    web: Option<RawWeb>,
    access: Option<crate::forward::rules::RawAccess>,
    api: Option<RawApi>,
    providers: Option<BTreeMap<String, RawProvider>>,
}

/// One `[providers.NAME]` table, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scopes: Option<Vec<String>>,
    issuer: Option<String>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    userinfo_url: Option<String>,
    jwks_url: Option<String>,
    /// github only; default `{userinfo_url}/emails` when userinfo_url is
    /// given, else https://api.github.com/user/emails.
    emails_url: Option<String>,
    link_by_email: Option<bool>,
    signup: Option<bool>,
    tenant: Option<String>,
    base_url: Option<String>,
    realm: Option<String>,
    region: Option<String>,
    user_pool_id: Option<String>,
    domain: Option<String>,
    team_id: Option<String>,
    key_id: Option<String>,
    private_key_file: Option<PathBuf>,
    timeout_secs: Option<u64>,
    label: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPassword {
    pbkdf2_iterations: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    algorithm: Option<String>,
    rsa_key_file: Option<PathBuf>,
    access_ttl: Option<i64>,
    refresh_ttl: Option<i64>,
    auth_code_ttl: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    login_burst: Option<f64>,
    login_per_minute: Option<f64>,
    token_burst: Option<f64>,
    token_per_minute: Option<f64>,
    free_failures: Option<u32>,
    account_failures_per_hour: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnections {
    max_connections: Option<usize>,
    header_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    token: Option<String>,
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    command: Option<Vec<String>>,
    from: Option<String>,
    product: Option<String>,
    templates: Option<PathBuf>,
    timeout_secs: Option<u64>,
    concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActivity {
    retention_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    session_idle_secs: Option<i64>,
    session_max_secs: Option<i64>,
    logo: Option<PathBuf>,
    cookie_domain: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    dialects: Option<Vec<String>>,
}

/// Values given on the command line (they win over everything).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--config FILE`
    pub config: Option<PathBuf>,
    /// `--listen ADDR`
    pub listen: Option<String>,
    /// `--db PATH`
    pub db: Option<PathBuf>,
    /// `--public-url URL`
    pub public_url: Option<String>,
    /// `--workers N`
    pub workers: Option<usize>,
}

impl Config {
    /// Defaults only: what `hallpass serve` runs with when nothing is given.
    pub fn defaults() -> Config {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Config {
            listen: "127.0.0.1:8080".into(),
            db: PathBuf::from("./hallpass.db"),
            public_url: None,
            issuer: None,
            signup: Signup::Invite,
            workers: (2 * cores).max(4),
            pbkdf2_iterations: crate::password::DEFAULT_ITERATIONS,
            algorithm: Alg::Es256,
            rsa_key_file: None,
            access_ttl: 900,
            refresh_ttl: 30 * 86_400,
            auth_code_ttl: 180,
            limits: Limits::default(),
            connections: Connections::default(),
            metrics: MetricsConfig::default(),
            mail_command: Vec::new(),
            mail_from: "hallpass <hallpass@localhost>".into(),
            mail_product: "hallpass".into(),
            mail_templates: None,
            mail_timeout_secs: 30,
            mail_concurrency: 2,
            activity_retention_days: 180,
            web_session_idle_secs: 7 * 86_400,
            web_session_max_secs: 30 * 86_400,
            web_logo: None,
            cookie_domain: None,
            access: crate::forward::Access::default(),
            dialects: ALL_DIALECTS.iter().map(|s| s.to_string()).collect(),
            trusted_proxies: Vec::new(),
            access_log: AccessLog::Text,
            master_key: None,
            master_key_file: PathBuf::from("./hallpass.db.key"),
            providers: Vec::new(),
        }
    }

    /// Loads defaults < file < environment < flags. `env` looks a variable
    /// up (std::env::var in the binary; a map in tests).
    pub fn load(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let mut c = Config::defaults();
        let file = flags
            .config
            .clone()
            .or_else(|| env("HALLPASS_CONFIG").map(PathBuf::from));
        let mut key_file_set = false;
        let mut raw_providers = BTreeMap::new();
        if let Some(path) = file {
            let mut raw = read_raw(&path)?;
            key_file_set = raw.master_key_file.is_some();
            raw_providers = raw.providers.take().unwrap_or_default();
            c.apply_raw(raw)?;
        }
        c.apply_env(env)?;
        if let Some(v) = &flags.listen {
            c.listen = v.clone();
        }
        if let Some(v) = &flags.db {
            c.db = v.clone();
        }
        if let Some(v) = &flags.public_url {
            c.public_url = Some(v.clone());
        }
        if let Some(v) = flags.workers {
            c.workers = v;
        }
        if !key_file_set {
            let mut name = c.db.as_os_str().to_owned();
            name.push(".key");
            c.master_key_file = PathBuf::from(name);
        }
        c.validate()?;
        c.providers = build_providers(raw_providers, env)?;
        Ok(c)
    }

    fn apply_raw(&mut self, r: RawConfig) -> Result<(), Error> {
        set(&mut self.listen, r.listen);
        set(&mut self.db, r.db);
        self.public_url = r.public_url.or(self.public_url.take());
        self.issuer = r.issuer.or(self.issuer.take());
        if let Some(s) = r.signup {
            self.signup = parse_signup(&s)?;
        }
        set(&mut self.workers, r.workers);
        if let Some(list) = r.trusted_proxies {
            self.trusted_proxies = list
                .iter()
                .map(|p| {
                    IpRange::parse(p)
                        .map_err(|e| Error::BadRequest(format!("trusted_proxies: {e}")))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = &r.access_log {
            self.access_log = AccessLog::parse(v)?;
        }
        set(&mut self.master_key_file, r.master_key_file);
        if let Some(p) = r.password {
            set(&mut self.pbkdf2_iterations, p.pbkdf2_iterations);
        }
        if let Some(t) = r.tokens {
            if let Some(a) = t.algorithm {
                self.algorithm = parse_alg(&a)?;
            }
            self.rsa_key_file = t.rsa_key_file.or(self.rsa_key_file.take());
            set(&mut self.access_ttl, t.access_ttl);
            set(&mut self.refresh_ttl, t.refresh_ttl);
            set(&mut self.auth_code_ttl, t.auth_code_ttl);
        }
        if let Some(l) = r.limits {
            set(&mut self.limits.login_burst, l.login_burst);
            set(&mut self.limits.login_per_minute, l.login_per_minute);
            set(&mut self.limits.token_burst, l.token_burst);
            set(&mut self.limits.token_per_minute, l.token_per_minute);
            set(&mut self.limits.free_failures, l.free_failures);
            set(
                &mut self.limits.account_failures_per_hour,
                l.account_failures_per_hour,
            );
        }
        if let Some(c) = r.connections {
            set(&mut self.connections.max_connections, c.max_connections);
            set(
                &mut self.connections.header_timeout_secs,
                c.header_timeout_secs,
            );
            set(&mut self.connections.body_timeout_secs, c.body_timeout_secs);
        }
        if let Some(m) = r.metrics {
            self.metrics.token = m.token.or(self.metrics.token.take());
            self.metrics.listen = m.listen.or(self.metrics.listen.take());
        }
        if let Some(m) = r.mail {
            set(&mut self.mail_command, m.command);
            set(&mut self.mail_from, m.from);
            set(&mut self.mail_product, m.product);
            self.mail_templates = m.templates.or(self.mail_templates.take());
            set(&mut self.mail_timeout_secs, m.timeout_secs);
            set(&mut self.mail_concurrency, m.concurrency);
        }
        if let Some(a) = r.activity {
            set(&mut self.activity_retention_days, a.retention_days);
        }
        if let Some(w) = r.web {
            set(&mut self.web_session_idle_secs, w.session_idle_secs);
            set(&mut self.web_session_max_secs, w.session_max_secs);
            self.web_logo = w.logo.or(self.web_logo.take());
            self.cookie_domain = w.cookie_domain.or(self.cookie_domain.take());
        }
        if let Some(a) = r.access {
            self.access = crate::forward::Access::from_raw(a)?;
        }
        if let Some(a) = r.api {
            set(&mut self.dialects, a.dialects);
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Error> {
        if let Some(v) = env("HALLPASS_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = env("HALLPASS_DB") {
            self.db = PathBuf::from(v);
        }
        if let Some(v) = env("HALLPASS_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = env("HALLPASS_ISSUER") {
            self.issuer = Some(v);
        }
        if let Some(v) = env("HALLPASS_SIGNUP") {
            self.signup = parse_signup(&v)?;
        }
        if let Some(v) = env("HALLPASS_WORKERS") {
            self.workers = parse_num("HALLPASS_WORKERS", &v)?;
        }
        if let Some(v) = env("HALLPASS_MAX_CONNECTIONS") {
            self.connections.max_connections = parse_num("HALLPASS_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = env("HALLPASS_PBKDF2_ITERATIONS") {
            self.pbkdf2_iterations = parse_num("HALLPASS_PBKDF2_ITERATIONS", &v)?;
        }
        if let Some(v) = env("HALLPASS_TOKEN_ALGORITHM") {
            self.algorithm = parse_alg(&v)?;
        }
        if let Some(v) = env("HALLPASS_MAIL_COMMAND") {
            self.mail_command = v.split_whitespace().map(str::to_string).collect();
        }
        if let Some(v) = env("HALLPASS_MAIL_FROM") {
            self.mail_from = v;
        }
        if let Some(v) = env("HALLPASS_METRICS_TOKEN") {
            self.metrics.token = Some(v);
        }
        if let Some(v) = env("HALLPASS_MASTER_KEY") {
            self.master_key = Some(v);
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::BadRequest(m));
        if self.workers == 0 || self.workers > 1024 {
            return bad(format!("workers must be 1..=1024, not {}", self.workers));
        }
        if self.pbkdf2_iterations == 0 {
            return bad("pbkdf2_iterations must be at least 1".into());
        }
        if self.pbkdf2_iterations < 100_000 {
            eprintln!(
                "warning: pbkdf2_iterations = {} is below OWASP's advice (600,000); \
                 fine for tests, weak in production",
                self.pbkdf2_iterations
            );
        }
        for (name, v) in [
            ("access_ttl", self.access_ttl),
            ("refresh_ttl", self.refresh_ttl),
            ("auth_code_ttl", self.auth_code_ttl),
        ] {
            if v <= 0 {
                return bad(format!("tokens.{name} must be positive"));
            }
        }
        for d in &self.dialects {
            if !ALL_DIALECTS.contains(&d.as_str()) {
                return bad(format!(
                    "unknown dialect {d:?}; known: {}",
                    ALL_DIALECTS.join(", ")
                ));
            }
        }
        if self.algorithm == Alg::Rs256 && self.rsa_key_file.is_none() {
            return bad("tokens.algorithm = \"RS256\" needs tokens.rsa_key_file".into());
        }
        if let Some(u) = &self.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return bad(format!(
                    "public_url must start with http:// or https://: {u}"
                ));
            }
            // Links in mail and redirects are built on it: a host, and
            // nothing a path cannot follow.
            let host = u
                .split_once("://")
                .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
                .unwrap_or_default();
            if host.is_empty() || u.contains(['?', '#']) || u.chars().any(char::is_whitespace) {
                return bad(format!(
                    "public_url must be an http(s) URL with a host and no query or fragment, \
                     e.g. https://auth.example.com: {u:?}"
                ));
            }
        }
        if let Some(t) = &self.metrics.token {
            // It travels in a header: printable ASCII without spaces.
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return bad(
                    "metrics.token must be at least 16 printable characters without spaces \
                     (e.g. the output of `openssl rand -hex 32`)"
                        .into(),
                );
            }
        }
        if let Some(a) = &self.metrics.listen {
            use std::net::ToSocketAddrs;
            if a.to_socket_addrs()
                .map_or(true, |mut it| it.next().is_none())
            {
                return bad(format!(
                    "metrics.listen: {a:?} is not an address to listen on (e.g. \"127.0.0.1:9090\")"
                ));
            }
            // (Port 0 is any free port: two of them differ.)
            if *a == self.listen && !a.ends_with(":0") {
                return bad(format!("metrics.listen must differ from listen ({a})"));
            }
        }
        let c = &self.connections;
        if c.max_connections == 0 {
            return bad("connections.max_connections must be at least 1".into());
        }
        if !(1..=3600).contains(&c.header_timeout_secs)
            || !(1..=3600).contains(&c.body_timeout_secs)
        {
            return bad(
                "connections: header_timeout_secs and body_timeout_secs must be 1..=3600".into(),
            );
        }
        // They become header text: a line break would start a header.
        for (name, v) in [("from", &self.mail_from), ("product", &self.mail_product)] {
            if v.contains(['\r', '\n']) || v.trim().is_empty() {
                return bad(format!("mail.{name} must be one non-empty line"));
            }
        }
        if !(1..=3600).contains(&self.mail_timeout_secs) {
            return bad("mail.timeout_secs must be 1..=3600".into());
        }
        if !(1..=64).contains(&self.mail_concurrency) {
            return bad("mail.concurrency must be 1..=64".into());
        }
        if !(0..=36_500).contains(&self.activity_retention_days) {
            return bad("activity.retention_days must be 0..=36500 (0 keeps rows forever)".into());
        }
        let (idle, max) = (self.web_session_idle_secs, self.web_session_max_secs);
        if !(60..=366 * 86_400).contains(&max) || !(60..=max).contains(&idle) {
            return bad(format!(
                "web: session_max_secs must be 60..=31622400 and session_idle_secs 60..=session_max_secs \
                 (now {idle} and {max})"
            ));
        }
        if let Some(d) = &self.cookie_domain {
            check_cookie_domain(d, self.public_url.as_deref()).map_err(Error::BadRequest)?;
        }
        let l = &self.limits;
        if l.login_burst < 1.0
            || l.token_burst < 1.0
            || l.login_per_minute <= 0.0
            || l.token_per_minute <= 0.0
        {
            return bad("limits: bursts must be >= 1 and rates > 0".into());
        }
        if l.free_failures < 1 || l.account_failures_per_hour < 1 {
            return bad("limits: free_failures and account_failures_per_hour must be >= 1".into());
        }
        Ok(())
    }

    /// The listen address, resolved as `serve` resolves it before binding
    /// (check-config and serve check it before anything is opened).
    pub fn check_listen(&self) -> Result<(), Error> {
        use std::net::ToSocketAddrs;
        let why = match self.listen.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => "it resolves to no address".to_string(),
            Err(e) => e.to_string(),
        };
        Err(Error::BadRequest(format!(
            "listen = {:?} is not an address to listen on ({why}): give HOST:PORT, e.g. \
             127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080",
            self.listen
        )))
    }

    /// True when `dialect` is switched on.
    pub fn dialect_on(&self, dialect: &str) -> bool {
        self.dialects.iter().any(|d| d == dialect)
    }

    /// The effective configuration as a TOML file (it parses back), with
    /// unset optional keys as comments and secrets masked.
    pub fn describe(&self) -> String {
        let q = |s: &str| format!("{s:?}");
        let list = |v: &[String]| {
            let items: Vec<String> = v.iter().map(|s| q(s)).collect();
            format!("[{}]", items.join(", "))
        };
        let opt = |key: &str, v: &Option<String>, dflt: &str| match v {
            Some(v) => format!("{key} = {}", q(v)),
            None => format!("# {key}: unset, so {dflt}"),
        };
        let l = &self.limits;
        let signup = match self.signup {
            Signup::Invite => "invite",
            Signup::Open => "open",
            Signup::Off => "off",
        };
        let key = match &self.master_key {
            Some(_) => "# master key: ******** (from HALLPASS_MASTER_KEY)".to_string(),
            None => format!(
                "master_key_file = {}",
                q(&self.master_key_file.display().to_string())
            ),
        };
        let rsa = match &self.rsa_key_file {
            Some(p) => format!("rsa_key_file = {}", q(&p.display().to_string())),
            None => "# rsa_key_file: unset".to_string(),
        };
        let mail = if self.mail_command.is_empty() {
            "command = [] # the log mailer (stderr)".to_string()
        } else {
            format!("command = {}", list(&self.mail_command))
        };
        let mut out = [
            format!("listen = {}", q(&self.listen)),
            format!("db = {}", q(&self.db.display().to_string())),
            opt("public_url", &self.public_url, "http://{bound address}"),
            opt("issuer", &self.issuer, "the public URL"),
            format!("signup = {}", q(signup)),
            format!("workers = {}", self.workers),
            format!(
                "trusted_proxies = {}",
                list(
                    &self
                        .trusted_proxies
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                )
            ),
            format!("access_log = {}", self.access_log.describe()),
            key,
            String::new(),
            "[password]".into(),
            format!("pbkdf2_iterations = {}", self.pbkdf2_iterations),
            String::new(),
            "[tokens]".into(),
            format!("algorithm = {}", q(self.algorithm.name())),
            rsa,
            format!("access_ttl = {}", self.access_ttl),
            format!("refresh_ttl = {}", self.refresh_ttl),
            format!("auth_code_ttl = {}", self.auth_code_ttl),
            String::new(),
            "[limits]".into(),
            format!("login_burst = {:?}", l.login_burst),
            format!("login_per_minute = {:?}", l.login_per_minute),
            format!("token_burst = {:?}", l.token_burst),
            format!("token_per_minute = {:?}", l.token_per_minute),
            format!("free_failures = {}", l.free_failures),
            format!(
                "account_failures_per_hour = {}",
                l.account_failures_per_hour
            ),
            String::new(),
            "[connections]".into(),
            format!("max_connections = {}", self.connections.max_connections),
            format!(
                "header_timeout_secs = {}",
                self.connections.header_timeout_secs
            ),
            format!("body_timeout_secs = {}", self.connections.body_timeout_secs),
            String::new(),
            "[metrics]".into(),
            match &self.metrics.token {
                Some(_) => "# token: ******** (a scraper sends it as a bearer)".to_string(),
                None => "# token: unset, so /metrics needs no token".to_string(),
            },
            opt(
                "listen",
                &self.metrics.listen,
                "/metrics is served on the main listener",
            ),
            String::new(),
            "[mail]".into(),
            mail,
            format!("from = {}", q(&self.mail_from)),
            format!("product = {}", q(&self.mail_product)),
            match &self.mail_templates {
                Some(d) => format!("templates = {}", q(&d.display().to_string())),
                None => "# templates: unset, so the built-in templates".to_string(),
            },
            format!("timeout_secs = {}", self.mail_timeout_secs),
            format!("concurrency = {}", self.mail_concurrency),
            String::new(),
            "[activity]".into(),
            format!("retention_days = {}", self.activity_retention_days),
            String::new(),
            "[web]".into(),
            format!("session_idle_secs = {}", self.web_session_idle_secs),
            format!("session_max_secs = {}", self.web_session_max_secs),
            match &self.web_logo {
                Some(f) => format!("logo = {}", q(&f.display().to_string())),
                None => "# logo: unset, so the pages show the product name only".to_string(),
            },
            opt(
                "cookie_domain",
                &self.cookie_domain,
                "the session cookie is the sign-in host's alone",
            ),
            String::new(),
            self.access.describe(),
            "[api]".into(),
            format!("dialects = {}", list(&self.dialects)),
            String::new(),
        ]
        .join("\n");
        for p in &self.providers {
            out.push('\n');
            out.push_str(&p.describe());
        }
        out
    }
}

/// `[web] cookie_domain`: a lower-case domain of at least two labels (a
/// browser refuses a cookie for a bare top-level name, and an IP address
/// has no subdomains), with the public URL's host equal to it or under
/// it (else the sign-in pages could not set the cookie at all).
fn check_cookie_domain(d: &str, public_url: Option<&str>) -> Result<(), String> {
    let looks_like_ip = d.parse::<IpAddr>().is_ok()
        || d.rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if d != d.to_ascii_lowercase()
        || !crate::forward::rules::is_host(d)
        || !d.contains('.')
        || looks_like_ip
    {
        return Err(format!(
            "web.cookie_domain = {d:?} must be a lower-case domain name of two labels or more, \
             without a leading dot, e.g. \"home.example\""
        ));
    }
    let host = public_url.and_then(crate::forward::public_host);
    match host {
        Some(h) if h == d || h.ends_with(&format!(".{d}")) => Ok(()),
        _ => Err(format!(
            "web.cookie_domain = {d:?} needs public_url on a host inside it \
             (e.g. https://auth.{d}); public_url is {}",
            public_url.map_or("unset".to_string(), |u| format!("{u:?}"))
        )),
    }
}

fn read_raw(path: &Path) -> Result<RawConfig, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::BadRequest(format!("cannot read config {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| Error::BadRequest(toml_error(path, &text, &e)))
}

/// A TOML error in the operator's terms: the file and line, and for a key
/// hallpass does not know, "unknown key `x` in [section]" with the nearest
/// known key and the list of them (toml's own words are "unknown field").
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    // The text before the error (a span off a char boundary gives none).
    let before = e.span().and_then(|s| text.get(..s.start));
    let at = match before {
        Some(b) => format!(
            "config {}, line {}",
            path.display(),
            b.matches('\n').count() + 1
        ),
        None => format!("config {}", path.display()),
    };
    let msg = e.message().trim();
    let Some(rest) = msg.strip_prefix("unknown field `") else {
        return format!("{at}: {}", without_value(msg));
    };
    let key = rest.split('`').next().unwrap_or_default();
    // "expected one of `a`, `b`" or "expected `a`": the names in backquotes.
    let known: Vec<&str> = rest
        .split_once("expected")
        .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    // The table the key is in: the last [header] above its line (not the
    // error's own line: an unknown `[[table]]` starts with `[` too).
    let section = before
        .map(|b| b.rsplit_once('\n').map_or("", |(above, _)| above))
        .and_then(|b| {
            b.lines()
                .rev()
                .map(str::trim)
                .find(|l| l.starts_with('['))
                .map(|h| h.split('#').next().unwrap_or(h).trim().to_string())
        })
        .unwrap_or_else(|| "the top level".into());
    let hint = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    let list = if known.is_empty() {
        String::new()
    } else {
        format!("; the keys there are {}", known.join(", "))
    };
    format!("{at}: unknown key `{key}` in {section}{hint}{list}")
}

/// A type error without the value it quotes ("invalid type: string
/// \"hunter2\", expected u32"): the value may be a secret typed in the
/// wrong place, and the message goes to a terminal or a log.
fn without_value(msg: &str) -> String {
    for head in ["invalid type: ", "invalid value: "] {
        let Some(rest) = msg.strip_prefix(head) else {
            continue;
        };
        let Some((found, expected)) = rest.split_once(", expected ") else {
            continue;
        };
        let kind = found.split(['`', '"']).next().unwrap_or_default().trim();
        return format!("{head}{kind} (value not shown), expected {expected}");
    }
    msg.to_string()
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn parse_signup(s: &str) -> Result<Signup, Error> {
    match s {
        "invite" => Ok(Signup::Invite),
        "open" => Ok(Signup::Open),
        "off" => Ok(Signup::Off),
        other => Err(Error::BadRequest(format!(
            "signup must be invite, open or off, not {other:?}"
        ))),
    }
}

fn parse_alg(s: &str) -> Result<Alg, Error> {
    Alg::from_name(s).ok_or_else(|| {
        Error::BadRequest(format!(
            "tokens.algorithm must be ES256, EdDSA, RS256 or HS256, not {s:?}"
        ))
    })
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, Error> {
    v.trim()
        .parse()
        .map_err(|_| Error::BadRequest(format!("{name} must be a number, not {v:?}")))
}

/// Builds every `[providers.NAME]`: the `HALLPASS_PROVIDERS_<NAME>_*`
/// variables over the file, the kind's defaults under both. Every problem
/// of every provider is reported at once, one `; `-separated message.
fn build_providers(
    raw: BTreeMap<String, RawProvider>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Provider>, Error> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut env_names: BTreeMap<String, String> = BTreeMap::new();
    for (name, r) in raw {
        let upper = provider_env_name(&name);
        if let Some(other) = env_names.insert(upper.clone(), name.clone()) {
            problems.push(format!(
                "providers.{name}: its variables (HALLPASS_PROVIDERS_{upper}_*) would also be \
                 providers.{other}'s: rename one"
            ));
            continue;
        }
        match build_provider(&name, r, env) {
            Ok(p) => out.push(p),
            Err(mut m) => problems.append(&mut m),
        }
    }
    if !problems.is_empty() {
        return Err(Error::BadRequest(problems.join("; ")));
    }
    // BTreeMap order is already by name; said, not assumed.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `NAME` in `HALLPASS_PROVIDERS_<NAME>_*`: upper case, '-' -> '_'.
pub fn provider_env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// `[a-z0-9][a-z0-9_-]{0,31}`: it appears in routes, variable names and
/// the identities table.
pub fn valid_provider_name(name: &str) -> bool {
    let b = name.as_bytes();
    let ok = |c: u8, first: bool| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || (!first && (c == b'_' || c == b'-'))
    };
    (1..=32).contains(&b.len()) && ok(b[0], true) && b.iter().skip(1).all(|&c| ok(c, false))
}

/// True for a URL that may be used: https://, or http:// to a loopback
/// host (127.0.0.0/8, ::1, localhost).
fn url_allowed(url: &str) -> Result<(), &'static str> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("has a space or control character");
    }
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("must start with https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not carry a user name or password");
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, _)) => h,
            None => return Err("has a bad host"),
        }
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if https {
        return Ok(());
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err("must be https:// (http:// only for 127.0.0.1, ::1 or localhost)")
    }
}

/// A value that becomes part of a URL: letters, digits and `-._~`, nothing
/// that could start a new path segment, query or host.
fn url_part_ok(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
}

fn build_provider(
    name: &str,
    mut r: RawProvider,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Provider, Vec<String>> {
    if !valid_provider_name(name) {
        return Err(vec![format!(
            "providers.{name:?}: a provider name must be 1 to 32 of a-z, 0-9, '_' and '-', \
             starting with a letter or digit"
        )]);
    }
    let var = |field: &str| {
        env(&format!(
            "HALLPASS_PROVIDERS_{}_{field}",
            provider_env_name(name)
        ))
    };
    for (field, slot) in [
        ("CLIENT_ID", &mut r.client_id),
        ("CLIENT_SECRET", &mut r.client_secret),
        ("TEAM_ID", &mut r.team_id),
        ("KEY_ID", &mut r.key_id),
    ] {
        if let Some(v) = var(field) {
            *slot = Some(v);
        }
    }
    if let Some(v) = var("PRIVATE_KEY_FILE") {
        r.private_key_file = Some(PathBuf::from(v));
    }
    // An empty value is an absent one (an empty variable, `client_id = ""`).
    let given = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let kind_text = given(r.kind.take());
    let client_id = given(r.client_id.take());
    let client_secret = given(r.client_secret.take());
    let team_id = given(r.team_id.take());
    let key_id = given(r.key_id.take());
    let private_key_file = r
        .private_key_file
        .take()
        .filter(|p| !p.as_os_str().is_empty());
    let (issuer, authorize_url, token_url, userinfo_url, jwks_url, emails_url) = (
        given(r.issuer.take()),
        given(r.authorize_url.take()),
        given(r.token_url.take()),
        given(r.userinfo_url.take()),
        given(r.jwks_url.take()),
        given(r.emails_url.take()),
    );
    let (tenant, base_url, realm, region, user_pool_id, domain) = (
        given(r.tenant.take()),
        given(r.base_url.take()),
        given(r.realm.take()),
        given(r.region.take()),
        given(r.user_pool_id.take()),
        given(r.domain.take()),
    );

    let mut problems = Vec::new();
    let mut missing: Vec<&str> = Vec::new();
    let kind = match &kind_text {
        Some(k) => match ProviderKind::parse(k) {
            Some(k) => Some(k),
            None => {
                let known: Vec<&str> = kinds::ALL_KINDS.iter().map(|k| k.name()).collect();
                return Err(vec![format!(
                    "providers.{name}: unknown kind {k:?}; known: {}",
                    known.join(", ")
                )]);
            }
        },
        None => ProviderKind::parse(name),
    };
    if kind.is_none() {
        missing.push("kind");
    }
    if client_id.is_none() {
        missing.push("client_id");
    }
    let Some(kind) = kind else {
        return Err(vec![format!(
            "providers.{name}: missing {}",
            missing.join(", ")
        )]);
    };
    let apple = kind == ProviderKind::Apple;
    if client_secret.is_none() && !apple && kind != ProviderKind::Oidc {
        missing.push("client_secret");
    }
    if apple {
        if team_id.is_none() {
            missing.push("team_id");
        }
        if key_id.is_none() {
            missing.push("key_id");
        }
        if private_key_file.is_none() {
            missing.push("private_key_file");
        }
    }
    // An id_token's `iss` is always checked, so every OpenID kind needs
    // its issuer (or what it is made from), even with explicit endpoints.
    let needs_issuer_inputs = issuer.is_none();
    match kind {
        ProviderKind::Keycloak if needs_issuer_inputs => {
            if base_url.is_none() {
                missing.push("base_url");
            }
            if realm.is_none() {
                missing.push("realm");
            }
        }
        ProviderKind::Cognito if needs_issuer_inputs && user_pool_id.is_none() => {
            missing.push("user_pool_id");
        }
        ProviderKind::Auth0 if needs_issuer_inputs && domain.is_none() => {
            missing.push("domain");
        }
        ProviderKind::Autha | ProviderKind::Oidc if needs_issuer_inputs => {
            missing.push("issuer");
        }
        _ => {}
    }
    if !missing.is_empty() {
        problems.push(format!("providers.{name}: missing {}", missing.join(", ")));
    }

    // Fields of another kind are refused: they would be silently ignored.
    let only_for = [
        ("tenant", tenant.is_some(), ProviderKind::Azure),
        ("base_url", base_url.is_some(), ProviderKind::Keycloak),
        ("realm", realm.is_some(), ProviderKind::Keycloak),
        ("region", region.is_some(), ProviderKind::Cognito),
        (
            "user_pool_id",
            user_pool_id.is_some(),
            ProviderKind::Cognito,
        ),
        (
            "domain",
            domain.is_some() && kind != ProviderKind::Auth0,
            ProviderKind::Cognito,
        ),
        ("team_id", team_id.is_some(), ProviderKind::Apple),
        ("key_id", key_id.is_some(), ProviderKind::Apple),
        (
            "private_key_file",
            private_key_file.is_some(),
            ProviderKind::Apple,
        ),
        ("emails_url", emails_url.is_some(), ProviderKind::Github),
    ];
    for (field, set, owner) in only_for {
        if set && kind != owner {
            problems.push(format!(
                "providers.{name}: {field} is only for kind {}",
                owner.name()
            ));
        }
    }
    if apple && client_secret.is_some() {
        problems.push(format!(
            "providers.{name}: apple takes no client_secret (hallpass signs one with \
             team_id, key_id and private_key_file)"
        ));
    }
    if !kind.is_oidc() && (issuer.is_some() || jwks_url.is_some()) {
        problems.push(format!(
            "providers.{name}: {} is plain OAuth 2.0: issuer and jwks_url do not apply",
            kind.name()
        ));
    }
    for (field, v) in [
        ("tenant", &tenant),
        ("realm", &realm),
        ("region", &region),
        ("user_pool_id", &user_pool_id),
        ("domain", &domain),
    ] {
        if let Some(v) = v {
            if !url_part_ok(v) {
                problems.push(format!(
                    "providers.{name}: {field} {v:?} may only have letters, digits and -._~"
                ));
            }
        }
    }
    if kind == ProviderKind::Cognito
        && region.is_none()
        && user_pool_id
            .as_deref()
            .is_some_and(|p| kinds::cognito_region(p).is_none())
    {
        problems.push(format!(
            "providers.{name}: user_pool_id has no region prefix (REGION_ID): give region"
        ));
    }

    let fields = kinds::KindFields {
        tenant: tenant.as_deref(),
        base_url: base_url.as_deref(),
        realm: realm.as_deref(),
        region: region.as_deref(),
        user_pool_id: user_pool_id.as_deref(),
        domain: domain.as_deref(),
    };
    let d = kinds::defaults(kind, &fields);
    let scopes = r.scopes.take().unwrap_or(d.scopes);
    if scopes.is_empty()
        || scopes
            .iter()
            .any(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        problems.push(format!(
            "providers.{name}: scopes must be a non-empty list of words without spaces"
        ));
    } else if kind.is_oidc() && !apple && !scopes.iter().any(|s| s == "openid") {
        problems.push(format!(
            "providers.{name}: scopes must include \"openid\" for kind {}",
            kind.name()
        ));
    }
    let emails_url = match (kind, emails_url, &userinfo_url) {
        (_, Some(e), _) => Some(e),
        // GitHub Enterprise and test servers: the emails beside the user.
        (ProviderKind::Github, None, Some(u)) => {
            Some(format!("{}/emails", u.trim_end_matches('/')))
        }
        _ => d.emails_url,
    };
    let issuer_derived = issuer.is_none() && base_url.is_some();
    let p = Provider {
        name: name.to_string(),
        kind,
        client_id: client_id.unwrap_or_default(),
        client_secret,
        scopes,
        issuer: issuer.or(d.issuer),
        authorize_url: authorize_url.or(d.authorize_url),
        token_url: token_url.or(d.token_url),
        userinfo_url: userinfo_url.or(d.userinfo_url),
        jwks_url: jwks_url.or(d.jwks_url),
        emails_url,
        pkce: d.pkce,
        response_mode: d.response_mode,
        apple: match (team_id, key_id, private_key_file) {
            (Some(team_id), Some(key_id), Some(private_key_file)) if apple => Some(AppleKey {
                team_id,
                key_id,
                private_key_file,
            }),
            _ => None,
        },
        // A generic provider's email_verified is only as good as its
        // set-up (authentik's default mapping long said true for all):
        // linking by email is the operator's explicit choice there.
        link_by_email: r
            .link_by_email
            .unwrap_or(!matches!(kind, ProviderKind::Oidc | ProviderKind::Autha)),
        signup: r.signup,
        timeout_secs: r.timeout_secs.unwrap_or(10),
        label: r.label.take(),
    };
    if !(1..=60).contains(&p.timeout_secs) {
        problems.push(format!("providers.{name}: timeout_secs must be 1..=60"));
    }
    if p.label.as_ref().is_some_and(|l| {
        l.trim().is_empty() || l.chars().count() > 64 || l.chars().any(char::is_control)
    }) {
        problems.push(format!(
            "providers.{name}: label must be 1 to 64 characters on one line"
        ));
    }
    for (field, v) in [
        ("issuer", &p.issuer),
        ("authorize_url", &p.authorize_url),
        ("token_url", &p.token_url),
        ("userinfo_url", &p.userinfo_url),
        ("jwks_url", &p.jwks_url),
        ("emails_url", &p.emails_url),
    ] {
        if let Some(v) = v {
            if let Err(why) = url_allowed(v) {
                let field = if field == "issuer" && issuer_derived {
                    "base_url"
                } else {
                    field
                };
                problems.push(format!("providers.{name}: {field} {v:?} {why}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(p)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn flags_beat_environment_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1\"\ndb = \"file.db\"\nsignup = \"open\"\n[password]\npbkdf2_iterations = 1000\n",
        )
        .unwrap();
        let env: HashMap<&str, &str> =
            [("HALLPASS_DB", "env.db"), ("HALLPASS_SIGNUP", "off")].into();
        let lookup = |k: &str| env.get(k).map(|v| v.to_string());
        let flags = Flags {
            config: Some(file),
            listen: Some("127.0.0.1:0".into()),
            ..Flags::default()
        };
        let c = Config::load(&flags, &lookup).unwrap();
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.db, PathBuf::from("env.db"));
        assert_eq!(c.signup, Signup::Off);
        assert_eq!(c.pbkdf2_iterations, 1000);
        assert_eq!(c.master_key_file, PathBuf::from("env.db.key"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let flags = Flags {
            config: Some(file),
            ..Flags::default()
        };
        let err = Config::load(&flags, &|_| None).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        assert!(
            err.contains("line 1: unknown key `lisen` in the top level (did you mean `listen`?)"),
            "{err}"
        );
        assert!(!err.contains("parse error"), "{err}");
        let err = Config::load(&Flags::default(), &|k| {
            (k == "HALLPASS_SIGNUP").then(|| "maybe".into())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("signup"), "{err}");
    }

    /// Regression test for issue 12: toml's "unknown field" said as an
    /// unknown key, in the table where it was written.
    #[test]
    fn an_unknown_key_is_named_with_its_table_and_the_nearest_known_key() {
        let err =
            load_toml("[mail]\nfrom = \"a@example.com\"\ncomand = [\"x\"]\n", &[]).unwrap_err();
        assert!(
            err.contains("line 3: unknown key `comand` in [mail] (did you mean `command`?)"),
            "{err}"
        );
        assert!(err.contains("the keys there are command, from"), "{err}");
        let err = load_toml(
            "[providers.google] # ours\nclient_id = \"x\"\nsecret = \"y\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("unknown key `secret` in [providers.google]"),
            "{err}"
        );
        let err = load_toml("listen = 5\n", &[]).unwrap_err();
        assert!(err.contains("line 1: invalid type"), "{err}");
    }

    #[test]
    fn an_unknown_table_of_tables_is_named_in_its_own_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\n\n[[acess.rules]]\npolicy = \"deny\"\n",
        )
        .unwrap();
        let err = read_raw(&path).unwrap_err().to_string();
        assert!(
            err.contains("line 3: unknown key `acess` in the top level (did you mean `access`?)"),
            "{err}"
        );
    }

    #[test]
    fn a_type_error_does_not_repeat_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.toml");
        for (text, kind) in [
            (
                "[providers.g]\nkind = \"google\"\nclient_secret = 918273645\n",
                "integer",
            ),
            (
                "listen = \"x\"\n[mail]\nproduct = [\"s3cr3t-value\"]\n",
                "sequence",
            ),
            ("workers = \"s3cr3t-value\"\n", "string"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = read_raw(&path).unwrap_err().to_string();
            assert!(
                !err.contains("918273645") && !err.contains("s3cr3t"),
                "{err}"
            );
            assert!(
                err.contains(&format!("invalid type: {kind} (value not shown), expected")),
                "{err}"
            );
        }
    }

    #[test]
    fn described_configuration_parses_back_to_the_same_values() {
        let c = Config::load(&Flags::default(), &|k| match k {
            "HALLPASS_SIGNUP" => Some("open".into()),
            "HALLPASS_MAIL_COMMAND" => Some("msmtp -t".into()),
            _ => None,
        })
        .unwrap();
        let raw: RawConfig = toml::from_str(&c.describe()).unwrap();
        let mut again = Config::defaults();
        again.apply_raw(raw).unwrap();
        assert_eq!(again.signup, Signup::Open);
        assert_eq!(again.mail_command, vec!["msmtp", "-t"]);
        assert_eq!(again.limits, c.limits);
        assert_eq!(again.db, c.db);
        assert_eq!(again.activity_retention_days, 180);
    }

    #[test]
    fn the_example_file_parses_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hallpass.toml");
        let flags = Flags {
            config: Some(path),
            ..Flags::default()
        };
        let c = Config::load(&flags, &|_| None).unwrap();
        let d = Config::defaults();
        assert_eq!(c.connections, d.connections);
        assert_eq!(c.limits, d.limits);
        assert_eq!(c.activity_retention_days, d.activity_retention_days);
        assert_eq!(c.web_session_idle_secs, d.web_session_idle_secs);
        assert_eq!(c.web_session_max_secs, d.web_session_max_secs);
    }

    #[test]
    fn cookie_domain_must_contain_the_public_url_host_and_access_rules_parse_back() {
        let ok = load_toml(
            "public_url = \"https://auth.home.example\"\n[web]\ncookie_domain = \"home.example\"\n\
             [access]\ndefault_policy = \"one_factor\"\n[[access.rules]]\n\
             domain = \"*.home.example\"\npath = \"/admin\"\npolicy = \"deny\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(ok.cookie_domain.as_deref(), Some("home.example"));
        assert_eq!(ok.access.rules.len(), 1);
        let again = load_toml(&ok.describe(), &[]).unwrap();
        assert_eq!(again.cookie_domain, ok.cookie_domain);
        assert_eq!(again.access.describe(), ok.access.describe());
        assert!(ok.describe().contains("# rule 1\n[[access.rules]]"));
        // The public URL's host itself is inside.
        assert!(load_toml(
            "public_url = \"https://home.example\"\n[web]\ncookie_domain = \"home.example\"\n",
            &[]
        )
        .is_ok());
        for (public, domain, says) in [
            (
                "https://auth.other.example",
                "home.example",
                "needs public_url",
            ),
            (
                "https://evilhome.example",
                "home.example",
                "needs public_url",
            ),
            ("https://auth.example", "example", "two labels"),
            ("https://a.home.example", ".home.example", "two labels"),
            ("https://a.Home.example", "Home.example", "lower-case"),
            ("http://10.0.0.1", "0.0.1", "two labels"),
            ("https://a.home.example", "home.example/x", "two labels"),
        ] {
            let e = load_toml(
                &format!("public_url = {public:?}\n[web]\ncookie_domain = {domain:?}\n"),
                &[],
            )
            .unwrap_err();
            assert!(
                e.contains("cookie_domain") && e.contains(says),
                "{domain}: {e}"
            );
            assert!(!e.contains("  "), "one line, no run of spaces: {e}");
        }
        let e = load_toml("[web]\ncookie_domain = \"home.example\"\n", &[]).unwrap_err();
        assert!(e.contains("public_url is unset"), "{e}");
    }

    #[test]
    fn web_session_lifetimes_are_read_and_bounded() {
        let c = load_toml(
            "[web]\nsession_idle_secs = 3600\nsession_max_secs = 86400\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            (c.web_session_idle_secs, c.web_session_max_secs),
            (3600, 86_400)
        );
        let raw: RawConfig = toml::from_str(&c.describe()).unwrap();
        let mut again = Config::defaults();
        again.apply_raw(raw).unwrap();
        assert_eq!(again.web_session_idle_secs, 3600);
        for bad in [
            "session_idle_secs = 90000\nsession_max_secs = 86400",
            "session_idle_secs = 10",
            "session_max_secs = 0",
        ] {
            let e = load_toml(&format!("[web]\n{bad}\n"), &[]).unwrap_err();
            assert!(e.contains("session_idle_secs"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_master_key_is_masked_when_described() {
        let c = Config::load(&Flags::default(), &|k| {
            (k == "HALLPASS_MASTER_KEY").then(|| "c2VjcmV0c2VjcmV0".into())
        })
        .unwrap();
        let text = c.describe();
        assert!(!text.contains("c2VjcmV0c2VjcmV0"));
        assert!(text.contains("********"));
    }

    /// Loads a config file of `text` with these variables set.
    fn load_toml(text: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.toml");
        std::fs::write(&file, text).unwrap();
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let flags = Flags {
            config: Some(file),
            ..Flags::default()
        };
        Config::load(&flags, &|k| env.get(k).cloned()).map_err(|e| e.to_string())
    }

    fn provider<'a>(c: &'a Config, name: &str) -> &'a Provider {
        c.providers.iter().find(|p| p.name == name).unwrap()
    }

    #[test]
    fn each_kind_gets_its_defaults() {
        let c = load_toml(
            r#"
[providers.google]
client_id = "g"
client_secret = "s"
[providers.azure]
client_id = "a"
client_secret = "s"
[providers.entra]
kind = "azure"
client_id = "a"
client_secret = "s"
tenant = "contoso.onmicrosoft.com"
[providers.keycloak]
client_id = "k"
client_secret = "s"
base_url = "https://kc.example.com/"
realm = "staff"
[providers.cognito]
client_id = "c"
client_secret = "s"
user_pool_id = "eu-west-1_AbC"
domain = "myapp.auth.eu-west-1.amazoncognito.com"
[providers.autha]
client_id = "x"
client_secret = "s"
issuer = "https://auth.gravitalia.com"
[providers.facebook]
client_id = "f"
client_secret = "s"
[providers.instagram]
client_id = "i"
client_secret = "s"
[providers.apple]
client_id = "com.example.web"
team_id = "ABCDE12345"
key_id = "XYZ987"
private_key_file = "/etc/hallpass/AuthKey_XYZ987.p8"
[providers.github]
client_id = "gh"
client_secret = "s"
[providers.authentik]
kind = "oidc"
client_id = "o"
issuer = "https://sso.example.com/application/o/hallpass/"
"#,
            &[],
        )
        .unwrap();
        let names: Vec<&str> = c.providers.iter().map(|p| p.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "sorted by name");

        let oidc_scopes = vec!["openid", "email", "profile"];
        let g = provider(&c, "google");
        assert_eq!(g.kind, ProviderKind::Google);
        assert_eq!(g.scopes, oidc_scopes);
        assert_eq!(g.issuer.as_deref(), Some("https://accounts.google.com"));
        assert_eq!(g.authorize_url, None, "from discovery");
        assert!(g.pkce && g.link_by_email && g.signup.is_none() && g.apple.is_none());
        assert!(kinds::needs_discovery(g));

        let issuer = |n: &str| provider(&c, n).issuer.clone().unwrap();
        assert_eq!(
            issuer("azure"),
            "https://login.microsoftonline.com/common/v2.0"
        );
        assert_eq!(
            issuer("entra"),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
        );
        assert_eq!(issuer("keycloak"), "https://kc.example.com/realms/staff");
        assert_eq!(
            issuer("cognito"),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"
        );
        let cg = provider(&c, "cognito");
        let dom = "https://myapp.auth.eu-west-1.amazoncognito.com/oauth2";
        assert_eq!(cg.authorize_url, Some(format!("{dom}/authorize")));
        assert_eq!(cg.token_url, Some(format!("{dom}/token")));
        assert_eq!(cg.userinfo_url, Some(format!("{dom}/userInfo")));
        assert_eq!(cg.jwks_url, None);
        assert_eq!(issuer("autha"), "https://auth.gravitalia.com");
        let au = provider(&c, "authentik");
        assert_eq!(au.kind, ProviderKind::Oidc);
        assert_eq!(au.client_secret, None, "oidc may be a public client");
        assert_eq!(
            kinds::discovery_url(au).unwrap(),
            "https://sso.example.com/application/o/hallpass/.well-known/openid-configuration"
        );

        let fb = provider(&c, "facebook");
        assert!(!fb.kind.is_oidc());
        assert_eq!(fb.scopes, vec!["email", "public_profile"]);
        assert_eq!(fb.issuer, None);
        assert!(fb
            .token_url
            .as_deref()
            .unwrap()
            .starts_with("https://graph.facebook.com/v"));
        assert!(fb
            .userinfo_url
            .as_deref()
            .unwrap()
            .ends_with("/me?fields=id,name,email"));

        let ig = provider(&c, "instagram");
        assert!(!ig.pkce, "instagram: no PKCE");
        assert_eq!(
            ig.userinfo_url.as_deref(),
            Some("https://graph.instagram.com/me?fields=id,username")
        );

        let ap = provider(&c, "apple");
        assert_eq!(ap.scopes, vec!["name", "email"]);
        assert_eq!(ap.response_mode.as_deref(), Some("form_post"));
        assert_eq!(ap.client_secret, None);
        assert_eq!(ap.issuer.as_deref(), Some("https://appleid.apple.com"));
        assert_eq!(
            ap.jwks_url.as_deref(),
            Some("https://appleid.apple.com/auth/keys")
        );
        assert_eq!(
            ap.apple,
            Some(AppleKey {
                team_id: "ABCDE12345".into(),
                key_id: "XYZ987".into(),
                private_key_file: PathBuf::from("/etc/hallpass/AuthKey_XYZ987.p8"),
            })
        );
        assert!(!kinds::needs_discovery(ap));

        let gh = provider(&c, "github");
        assert_eq!(gh.scopes, vec!["read:user", "user:email"]);
        assert_eq!(
            gh.emails_url.as_deref(),
            Some("https://api.github.com/user/emails")
        );
        assert_eq!(gh.issuer, None);
    }

    #[test]
    fn the_environment_gives_or_overrides_secrets_of_declared_providers() {
        let text = "[providers.my-idp]\nkind = \"oidc\"\nclient_id = \"file-id\"\n\
                    client_secret = \"file-secret\"\nissuer = \"https://idp.example.com\"\n\
                    [providers.github]\nclient_id = \"gh\"\n";
        let c = load_toml(
            text,
            &[
                ("HALLPASS_PROVIDERS_MY_IDP_CLIENT_SECRET", "env-secret"),
                ("HALLPASS_PROVIDERS_MY_IDP_CLIENT_ID", "env-id"),
                ("HALLPASS_PROVIDERS_GITHUB_CLIENT_SECRET", "gh-secret"),
                ("HALLPASS_PROVIDERS_GOOGLE_CLIENT_ID", "undeclared"),
            ],
        )
        .unwrap();
        let p = provider(&c, "my-idp");
        assert_eq!(p.client_secret.as_deref(), Some("env-secret"));
        assert_eq!(p.client_id, "env-id");
        assert_eq!(
            provider(&c, "github").client_secret.as_deref(),
            Some("gh-secret")
        );
        assert_eq!(c.providers.len(), 2, "variables declare no provider");
        // Without the variable, github's secret is missing.
        let err = load_toml(text, &[]).unwrap_err();
        assert!(
            err.contains("providers.github: missing client_secret"),
            "{err}"
        );
        // Apple's key fields from the environment.
        let c = load_toml(
            "[providers.apple]\nclient_id = \"com.example\"\n",
            &[
                ("HALLPASS_PROVIDERS_APPLE_TEAM_ID", "T"),
                ("HALLPASS_PROVIDERS_APPLE_KEY_ID", "K"),
                ("HALLPASS_PROVIDERS_APPLE_PRIVATE_KEY_FILE", "/k.p8"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.providers[0].apple.as_ref().unwrap().private_key_file,
            PathBuf::from("/k.p8")
        );
    }

    #[test]
    fn missing_fields_are_named_together_per_provider() {
        let err = load_toml("[providers.apple]\nclient_id = \"x\"\n", &[]).unwrap_err();
        assert!(
            err.contains("providers.apple: missing team_id, key_id, private_key_file"),
            "{err}"
        );
        let err = load_toml(
            "[providers.corp]\nscopes = [\"openid\"]\n[providers.kc]\nkind = \"keycloak\"\n\
             client_id = \"k\"\nclient_secret = \"\"\nbase_url = \"https://kc.example.com\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("providers.corp: missing kind, client_id"),
            "{err}"
        );
        assert!(
            err.contains("providers.kc: missing client_secret, realm"),
            "{err}"
        );
        let err =
            load_toml("[providers.x]\nkind = \"oidc\"\nclient_id = \"o\"\n", &[]).unwrap_err();
        assert!(err.contains("providers.x: missing issuer"), "{err}");
        let err =
            load_toml("[providers.x]\nkind = \"saml\"\nclient_id = \"o\"\n", &[]).unwrap_err();
        assert!(err.contains("providers.x: unknown kind \"saml\""), "{err}");
        let err = load_toml(
            "[providers.google]\nclient_id = \"g\"\nclient_secert = \"s\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.contains("client_secert"), "{err}");
        let err = load_toml(
            "[providers.google]\nclient_id = \"g\"\nclient_secret = \"s\"\nrealm = \"r\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("providers.google: realm is only for kind keycloak"),
            "{err}"
        );
    }

    #[test]
    fn bad_provider_names_are_refused() {
        for name in ["Google", "-x", "_x", "\"a.b\"", "\"a b\"", &"a".repeat(33)] {
            let text = format!(
                "[providers.{name}]\nkind = \"google\"\nclient_id = \"g\"\nclient_secret = \"s\"\n"
            );
            let err = load_toml(&text, &[]).unwrap_err();
            assert!(err.contains("provider name must be"), "{name}: {err}");
        }
        for name in ["a", "0", "my_idp-2", &"a".repeat(32)] {
            assert!(valid_provider_name(name), "{name}");
        }
        let err = load_toml(
            "[providers.a-b]\nkind = \"oidc\"\nclient_id = \"x\"\nissuer = \"https://i\"\n\
             [providers.a_b]\nkind = \"oidc\"\nclient_id = \"x\"\nissuer = \"https://i\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.contains("HALLPASS_PROVIDERS_A_B_"), "{err}");
    }

    #[test]
    fn http_urls_only_for_loopback_hosts() {
        let with = |field: &str, url: &str| {
            let issuer = if field == "issuer" {
                String::new()
            } else {
                "issuer = \"https://idp.example.com\"\n".to_string()
            };
            load_toml(
                &format!(
                    "[providers.x]\nkind = \"oidc\"\nclient_id = \"o\"\n\
                     {issuer}{field} = \"{url}\"\n"
                ),
                &[],
            )
        };
        for url in [
            "http://idp.example.com",
            "http://127.0.0.1.example.com/",
            "http://localhost.example.com",
            "http://127.0.0.1@evil.example.com/",
            "http://10.0.0.1:8080",
            "ftp://idp.example.com",
            "idp.example.com",
            "https://",
        ] {
            for field in ["issuer", "token_url", "jwks_url"] {
                let err = with(field, url).unwrap_err();
                assert!(
                    err.contains(&format!("providers.x: {field}")),
                    "{url}: {err}"
                );
            }
        }
        for url in [
            "http://127.0.0.1:9000/realms/x",
            "http://127.1.2.3",
            "http://[::1]:8080/x",
            "http://localhost/",
            "http://LOCALHOST:1",
            "https://idp.example.com:8443/x",
        ] {
            let c = with("issuer", url).unwrap();
            assert_eq!(c.providers[0].issuer.as_deref(), Some(url));
        }
        // A keycloak issuer made from base_url is checked, under its name.
        let err = load_toml(
            "[providers.keycloak]\nclient_id = \"k\"\nclient_secret = \"s\"\n\
             base_url = \"http://kc.example.com\"\nrealm = \"r\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.contains("providers.keycloak: base_url"), "{err}");
    }

    #[test]
    fn explicit_urls_override_the_kinds_defaults() {
        let c = load_toml(
            r#"
[providers.google]
client_id = "g"
client_secret = "s"
issuer = "http://127.0.0.1:9000"
authorize_url = "http://127.0.0.1:9000/authorize"
scopes = ["openid", "email"]
link_by_email = false
signup = true
[providers.github]
client_id = "gh"
client_secret = "s"
authorize_url = "http://127.0.0.1:9001/login/oauth/authorize"
userinfo_url = "http://127.0.0.1:9001/api/v3/user"
[providers.facebook]
client_id = "f"
client_secret = "s"
token_url = "http://127.0.0.1:9002/token"
[providers.plain]
kind = "oidc"
client_id = "p"
issuer = "http://127.0.0.1:9003"
authorize_url = "http://127.0.0.1:9003/a"
token_url = "http://127.0.0.1:9003/t"
userinfo_url = "http://127.0.0.1:9003/u"
jwks_url = "http://127.0.0.1:9003/j"
"#,
            &[],
        )
        .unwrap();
        let g = provider(&c, "google");
        assert_eq!(g.issuer.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            g.authorize_url.as_deref(),
            Some("http://127.0.0.1:9000/authorize")
        );
        assert_eq!(g.token_url, None, "the rest from discovery");
        assert_eq!(g.scopes, vec!["openid", "email"]);
        assert!(!g.link_by_email);
        assert_eq!(g.signup, Some(true));
        let gh = provider(&c, "github");
        assert_eq!(
            gh.authorize_url.as_deref(),
            Some("http://127.0.0.1:9001/login/oauth/authorize")
        );
        assert_eq!(
            gh.token_url.as_deref(),
            Some("https://github.com/login/oauth/access_token")
        );
        assert_eq!(
            gh.emails_url.as_deref(),
            Some("http://127.0.0.1:9001/api/v3/user/emails"),
            "emails beside an explicit user endpoint"
        );
        let fb = provider(&c, "facebook");
        assert_eq!(fb.token_url.as_deref(), Some("http://127.0.0.1:9002/token"));
        assert!(fb
            .authorize_url
            .as_deref()
            .unwrap()
            .starts_with("https://www.facebook.com/"));
        let p = provider(&c, "plain");
        assert_eq!(p.issuer.as_deref(), Some("http://127.0.0.1:9003"));
        assert!(
            !kinds::needs_discovery(p),
            "all four endpoints given: no discovery"
        );
    }

    #[test]
    fn auth0_takes_its_issuer_from_the_tenant_domain() {
        let c = load_toml(
            "[providers.auth0]\nclient_id = \"a\"\nclient_secret = \"s\"\ndomain = \"acme.eu.auth0.com\"\n",
            &[],
        )
        .unwrap();
        let p = provider(&c, "auth0");
        assert_eq!(p.kind, ProviderKind::Auth0);
        assert_eq!(p.issuer.as_deref(), Some("https://acme.eu.auth0.com/"));
        let err = load_toml(
            "[providers.auth0]\nclient_id = \"a\"\nclient_secret = \"s\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.contains("providers.auth0: missing domain"), "{err}");
    }

    #[test]
    fn the_seed_provider_is_the_one_named_like_its_kind_else_the_first_by_name() {
        let google = "kind = \"google\"\nclient_id = \"g\"\nclient_secret = \"s\"\n";
        let c = load_toml(
            &format!(
                "[providers.google-b]\n{google}[providers.google-a]\n{google}\
                 [providers.google]\n{google}[providers.github]\nclient_id = \"x\"\n\
                 client_secret = \"s\"\n"
            ),
            &[],
        )
        .unwrap();
        let seed = kinds::seed_provider(&c.providers, ProviderKind::Google).unwrap();
        assert_eq!(seed.name, "google");
        assert_eq!(
            kinds::seed_provider(&c.providers, ProviderKind::Github),
            None
        );
        assert_eq!(
            kinds::seed_provider(&c.providers, ProviderKind::Azure),
            None
        );
        let rest: Vec<Provider> = c
            .providers
            .iter()
            .filter(|p| p.name != "google")
            .cloned()
            .collect();
        let seed = kinds::seed_provider(&rest, ProviderKind::Google).unwrap();
        assert_eq!(seed.name, "google-a");
        assert_eq!(
            kinds::redirect_path(&rest, seed),
            "/auth/google-auth-redirect"
        );
        let b = provider(&c, "google-b");
        assert_eq!(
            kinds::redirect_path(&c.providers, b),
            "/auth/oidc/google-b/callback"
        );
        assert_eq!(
            kinds::callback_path_for(provider(&c, "github"), true),
            "/auth/oidc/github/callback",
            "github has no seed route"
        );
        assert_eq!(
            kinds::redirect_uri("https://auth.example.com/", &c.providers, seed),
            "https://auth.example.com/auth/oidc/google-a/callback"
        );
        let lines = kinds::setup_lines(Some("https://auth.example.com"), &c.providers).join("\n");
        assert!(
            lines.contains("start (GET or POST): /auth/google, /auth/oidc/google\n"),
            "{lines}"
        );
        assert!(
            lines.contains(
                "redirect URI to register at the provider: \
                 https://auth.example.com/auth/google-auth-redirect"
            ),
            "{lines}"
        );
        let lines = kinds::setup_lines(None, &c.providers).join("\n");
        assert!(lines.contains("public_url is unset"), "{lines}");
        assert!(lines.contains("/auth/oidc/google-b/callback"), "{lines}");
    }

    #[test]
    fn providers_are_described_with_secrets_masked_and_parse_back() {
        let text = r#"
[providers.github]
client_id = "gh"
[providers.apple]
client_id = "com.example.web"
team_id = "T"
key_id = "K"
private_key_file = "/k.p8"
[providers.cognito]
client_id = "c"
user_pool_id = "eu-west-1_AbC"
domain = "x.auth.eu-west-1.amazoncognito.com"
"#;
        let vars = [
            ("HALLPASS_PROVIDERS_GITHUB_CLIENT_SECRET", "gh-very-secret"),
            ("HALLPASS_PROVIDERS_COGNITO_CLIENT_SECRET", "cg-very-secret"),
        ];
        let c = load_toml(text, &vars).unwrap();
        let described = c.describe();
        assert!(!described.contains("very-secret"), "{described}");
        assert!(
            described.contains("# client_secret: ********"),
            "{described}"
        );
        // The description, with the secrets from the environment again,
        // loads to the same providers.
        let again = load_toml(&described, &vars).unwrap();
        assert_eq!(again.providers, c.providers);
    }

    #[test]
    fn trusted_proxies_take_addresses_and_cidr_ranges() {
        let c = load_toml(
            r#"trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "fd00::/8", "::ffff:192.168.0.0/112"]"#,
            &[],
        )
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusts = |s: &str| c.trusted_proxies.iter().any(|r| r.contains(ip(s)));
        assert!(trusts("127.0.0.1") && !trusts("127.0.0.2"));
        assert!(trusts("10.255.0.1") && trusts("::ffff:10.1.2.3"));
        assert!(!trusts("11.0.0.1"));
        assert!(trusts("fd12:3456::1") && !trusts("fe80::1"));
        // A mapped IPv6 range is the IPv4 range it maps.
        assert!(trusts("192.168.7.7") && !trusts("192.169.0.1"));
        // describe() writes them back as they parse.
        let again = load_toml(&c.describe(), &[]).unwrap();
        assert_eq!(again.trusted_proxies, c.trusted_proxies);
        assert!(c.describe().contains(
            r#"trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "fd00::/8", "192.168.0.0/16"]"#
        ));
        for (bad, says) in [
            ("10.0.0.1/8", r#"the network is "10.0.0.0/8""#),
            ("10.0.0.0/33", "0..=32"),
            ("fd00::/129", "0..=128"),
            ("proxy.local", "not an IP address or a CIDR range"),
        ] {
            let e = load_toml(&format!("trusted_proxies = [{bad:?}]"), &[]).unwrap_err();
            assert!(
                e.contains("trusted_proxies") && e.contains(says),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn access_log_is_true_false_or_json() {
        for (text, want) in [
            ("", AccessLog::Text),
            ("access_log = true", AccessLog::Text),
            ("access_log = false", AccessLog::Off),
            (r#"access_log = "json""#, AccessLog::Json),
            (r#"access_log = "text""#, AccessLog::Text),
        ] {
            let c = load_toml(text, &[]).unwrap();
            assert_eq!(c.access_log, want, "{text}");
            assert_eq!(load_toml(&c.describe(), &[]).unwrap().access_log, want);
        }
        for bad in [r#"access_log = "yes""#, "access_log = 1"] {
            let e = load_toml(bad, &[]).unwrap_err();
            assert!(
                e.contains(r#"access_log must be true, false, "text" or "json""#),
                "{e}"
            );
        }
    }

    #[test]
    fn metrics_takes_a_token_and_a_listener_of_its_own() {
        let c = load_toml(
            "[metrics]\ntoken = \"0123456789abcdef0123\"\nlisten = \"127.0.0.1:9090\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.metrics.token.as_deref(), Some("0123456789abcdef0123"));
        assert_eq!(c.metrics.listen.as_deref(), Some("127.0.0.1:9090"));
        // The token is never described; the environment gives one too.
        assert!(!c.describe().contains("0123456789abcdef"));
        let env = load_toml("", &[("HALLPASS_METRICS_TOKEN", "fedcba9876543210")]).unwrap();
        assert_eq!(env.metrics.token.as_deref(), Some("fedcba9876543210"));
        assert_eq!(Config::defaults().metrics, MetricsConfig::default());
        for (bad, says) in [
            ("[metrics]\ntoken = \"short\"", "at least 16"),
            (
                "[metrics]\ntoken = \"has a space in it, long\"",
                "without spaces",
            ),
            ("[metrics]\nlisten = \"nonsense\"", "not an address"),
            (
                "listen = \"127.0.0.1:8080\"\n[metrics]\nlisten = \"127.0.0.1:8080\"",
                "must differ",
            ),
        ] {
            let e = load_toml(bad, &[]).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
