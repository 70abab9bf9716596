//! Forward-auth (issue 14): a reverse proxy (nginx `auth_request`,
//! Traefik `ForwardAuth`, Caddy `forward_auth`) asks, for every request
//! it would pass to an app, whether it may. Core: no HTTP types. The
//! route (`api/forward.rs`) reads the original request from the proxy's
//! headers into a `Target`, finds who is asking (browser session or
//! bearer token) and calls `decide`, which applies the access rules
//! (`rules.rs`) and, when it lets a user through, gives the values of
//! the `Remote-*` headers for the app.
//!
//! * Rules see the normalised path: percent-decoded once, `;` parameters
//!   stripped from each segment, empty segments dropped, query left out;
//!   so `/%61dmin` and `/admin;jsessionid=1/` are `/admin` to a rule, as
//!   they are to the app. What an app may read otherwise than a rule
//!   would is refused (400, which every proxy treats as deny), never
//!   resolved: a `.` or `..` segment (proxies pass them unresolved), an
//!   encoded `/`, `\` or `;`, a `\`, a control character
//!   (`normalize_path`).
//! * The rules are applied to the path as given and to its ASCII
//!   lower-case form, and the stricter decision stands (`decide_with`):
//!   many apps take `/Admin` for `/admin`, so a case variant never
//!   weakens a rule, and a `bypass` never widens by case.
//! * `safe_rd` is the one check of a return URL after sign-in: an
//!   absolute http(s) URL on a host inside `cookie_domain` (or the public
//!   URL's host), nothing a browser could read as another host.

pub mod rules;

use rusqlite::Connection;

use crate::accounts::{self, User};
use crate::error::Error;
pub use rules::{Access, Policy, Rule};

/// The request the proxy asks about.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Upper-case.
    pub method: String,
    /// Lower-case, without port or trailing dot.
    pub host: String,
    /// Normalised (see the module's doc).
    pub path: String,
    /// The original URL, `scheme://host[:port]/path?query`, printable
    /// ASCII: what the sign-in page returns to.
    pub url: String,
}

/// The longest original URL taken.
const MAX_URL: usize = 4096;

impl Target {
    /// From an absolute URL (nginx's `X-Original-URL`, or the CLI) and a
    /// method.
    pub fn from_url(method: &str, url: &str) -> Result<Target, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not an absolute http(s) URL"))?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, uri) = rest.split_at(end);
        Target::from_parts(
            method,
            scheme,
            authority,
            if uri.is_empty() { "/" } else { uri },
        )
    }

    /// From the parts Traefik and Caddy send: `X-Forwarded-Method`,
    /// `-Proto`, `-Host`, `-Uri`.
    pub fn from_parts(method: &str, proto: &str, host: &str, uri: &str) -> Result<Target, String> {
        let method = method.trim().to_ascii_uppercase();
        if method.is_empty() || method.len() > 16 || !method.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(format!("{method:?} is not an HTTP method"));
        }
        let scheme = proto.trim().to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("{proto:?} is not http or https"));
        }
        let (name, _port) =
            split_host(host.trim()).ok_or_else(|| format!("{host:?} is not a host[:port]"))?;
        let uri = if uri.is_empty() { "/" } else { uri };
        if !uri.starts_with('/') {
            return Err(format!("{uri:?} is not a path"));
        }
        let url = format!("{scheme}://{}{uri}", host.trim());
        if url.len() > MAX_URL || !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the URL is too long or has spaces or control characters".into());
        }
        let path = normalize_path(uri).map_err(|why| format!("the path {uri:?} {why}"))?;
        Ok(Target {
            method,
            host: name,
            path,
            url,
        })
    }
}

/// `host[:port]` → (lower-case host without trailing dot, port). None
/// for userinfo, an empty or odd host, or a port that is not 1..=65535.
fn split_host(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u16 = p.parse().ok().filter(|n| *n > 0)?;
            (h, Some(n))
        }
        None => (authority, None),
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host).to_string();
    rules::is_host(&host).then_some((host, port))
}

/// The path rules match: the query dropped, percent-decoded once, each
/// segment's `;` parameters stripped (`/admin;jsessionid=1` is `/admin`,
/// as Tomcat, Spring and Jetty read it), empty segments dropped.
///
/// Refused (Err, the reason), because an app may read it otherwise than a
/// rule would: a `.` or `..` segment, raw or once decoded, with or without
/// parameters (nginx without a URI on `proxy_pass`, and Caddy, pass the
/// path to the app unresolved, so `/private/../public` may reach
/// `/private` there); an encoded `/`, `\` or `;` (`%2F`, `%5C`, `%3B`),
/// raw or once decoded, and any `\` (apps disagree on whether they
/// separate segments); a control character or invalid UTF-8 once
/// decoded. Browsers send none of these.
pub fn normalize_path(uri: &str) -> Result<String, String> {
    let raw = uri.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode_strict(raw)
        .ok_or("has a control character or invalid UTF-8 once percent-decoded")?;
    for text in [raw, decoded.as_str()] {
        let lower = text.to_ascii_lowercase();
        if ["%2f", "%5c", "%3b"].iter().any(|e| lower.contains(e)) {
            return Err(
                "has an encoded '/', '\\' or ';' (%2F, %5C, %3B), which apps read differently"
                    .into(),
            );
        }
    }
    if raw.contains('\\') || decoded.contains('\\') {
        return Err("has a '\\', which some apps read as '/'".into());
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        // Once decoded, no '/' is new (%2F is refused above), so these are
        // the raw path's segments, decoded.
        let bare = seg.split(';').next().unwrap_or("");
        if bare == "." || bare == ".." {
            return Err(
                "has a '.' or '..' segment, which the proxy may pass to the app unresolved".into(),
            );
        }
        if !bare.is_empty() {
            out.push(bare);
        }
    }
    Ok(format!("/{}", out.join("/")))
}

/// Percent-decoding that refuses what a lenient decoder would paper
/// over: invalid UTF-8 and control characters.
fn percent_decode_strict(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let v = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = v {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    let text = String::from_utf8(out).ok()?;
    (!text.chars().any(char::is_control)).then_some(text)
}

/// `url` when a browser may be sent there after sign-in: an absolute
/// http(s) URL, printable ASCII (no spaces, tabs or newlines a browser
/// would strip), no `\` (read as `/`), no `%` or `@` in the authority
/// (userinfo, encoded dots), an optional numeric port, and a host equal
/// to `cookie_domain` or under it, or equal to the public URL's host.
/// Anything else is None: never an open redirect.
pub fn safe_rd<'a>(url: &'a str, cookie_domain: Option<&str>, public_url: &str) -> Option<&'a str> {
    if url.len() > MAX_URL || !url.bytes().all(|b| b.is_ascii_graphic()) || url.contains('\\') {
        return None;
    }
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains(['@', '%']) {
        return None;
    }
    let (host, _) = split_host(authority)?;
    let ours = public_host(public_url).is_some_and(|h| h == host);
    let inside = cookie_domain.is_some_and(|d| {
        let d = d.to_ascii_lowercase();
        host == d || (host.ends_with(&d) && host.as_bytes()[host.len() - d.len() - 1] == b'.')
    });
    (ours || inside).then_some(url)
}

/// The lower-case host (without port) of the public URL.
pub fn public_host(public_url: &str) -> Option<String> {
    let rest = public_url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    split_host(&rest[..end]).map(|(h, _)| h)
}

/// Who asks: a user, and whether their sign-in had a second factor.
#[derive(Debug, Clone)]
pub struct Who {
    pub user: User,
    pub two_factor: bool,
}

impl Who {
    /// From an RFC 8176 `amr` list (a session's or a token's): a second
    /// factor is a TOTP or recovery code.
    pub fn new(user: User, amr: &[String]) -> Who {
        let two_factor = crate::web::signin::has_second_factor(amr);
        Who { user, two_factor }
    }
}

/// The `Remote-*` header values for the app, each safe to send (see
/// `header_value`).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Username, else email, else id.
    pub user: String,
    pub email: String,
    /// The name, else as `user`.
    pub name: String,
    /// Comma-separated.
    pub groups: String,
}

/// What the proxy is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// 200 with the user's headers.
    Allow(Identity),
    /// 200 without a sign-in, no user headers.
    Bypass,
    /// Send the browser to sign in.
    NeedSignIn,
    /// Signed in, but this needs a second factor: send to the step-up.
    NeedSecondFactor,
    /// 403.
    Deny,
}

/// The decision and the rule that made it (None: the default policy).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Index into `Access::rules`.
    pub rule: Option<usize>,
    pub policy: Policy,
    pub decision: Decision,
    /// True when the path's lower-case form decided (it was stricter than
    /// the path as given).
    pub lower_case: bool,
}

/// The user's groups: the names of their tenants, and their role
/// (`admin`, `user`, ...), as the OpenID Provider's `groups` and `role`
/// claims give them.
pub fn groups(conn: &Connection, user: &User) -> Result<Vec<String>, Error> {
    let mut g: Vec<String> = accounts::tenant_roles(conn, &user.id)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    if !g.iter().any(|n| n == &user.role) {
        g.push(user.role.clone());
    }
    Ok(g)
}

/// Applies the rules to `target` for `who` (None: anonymous). A rule with
/// users or groups whose object matches asks an anonymous request to sign
/// in (it may be theirs); for a signed-in user who is not named, it is
/// passed over.
pub fn decide(
    conn: &Connection,
    access: &Access,
    target: &Target,
    who: Option<&Who>,
) -> Result<Verdict, Error> {
    let groups = match who {
        Some(w) => groups(conn, &w.user)?,
        None => Vec::new(),
    };
    Ok(decide_with(access, target, who, &groups))
}

/// `decide` with the groups already read: the rules applied to the path
/// as given and, when it has capitals, to its ASCII lower-case form; the
/// stricter verdict stands (deny > two_factor > one_factor > bypass, the
/// default counting as its policy; on a tie, the path as given). Many
/// apps take `/Admin` for `/admin`: a rule on `/admin` then holds for
/// every case of it, and a `bypass` on `/public` never widens to
/// `/PUBLIC` when something stricter holds there.
pub fn decide_with(
    access: &Access,
    target: &Target,
    who: Option<&Who>,
    groups: &[String],
) -> Verdict {
    let given = decide_on(access, target, &target.path, who, groups);
    let lower = target.path.to_ascii_lowercase();
    if lower == target.path {
        return given;
    }
    let folded = decide_on(access, target, &lower, who, groups);
    if folded.policy.strictness() > given.policy.strictness() {
        Verdict {
            lower_case: true,
            ..folded
        }
    } else {
        given
    }
}

/// The first matching rule's verdict for `path` (the target's, or its
/// lower-case form).
fn decide_on(
    access: &Access,
    target: &Target,
    path: &str,
    who: Option<&Who>,
    groups: &[String],
) -> Verdict {
    for (i, rule) in access.rules.iter().enumerate() {
        if !rule.matches_object(&target.method, &target.host, path) {
            continue;
        }
        if rule.has_subject() {
            let Some(w) = who else {
                return Verdict {
                    rule: Some(i),
                    policy: rule.policy,
                    decision: Decision::NeedSignIn,
                    lower_case: false,
                };
            };
            let u = &w.user;
            let mut names = vec![u.id.as_str()];
            names.extend(u.username.as_deref());
            names.extend(u.email.as_deref());
            if !rule.matches_subject(&names, groups) {
                continue;
            }
        }
        return Verdict {
            rule: Some(i),
            policy: rule.policy,
            decision: apply(rule.policy, who, groups),
            lower_case: false,
        };
    }
    Verdict {
        rule: None,
        policy: access.default_policy,
        decision: apply(access.default_policy, who, groups),
        lower_case: false,
    }
}

fn apply(policy: Policy, who: Option<&Who>, groups: &[String]) -> Decision {
    match (policy, who) {
        (Policy::Bypass, _) => Decision::Bypass,
        (Policy::Deny, _) => Decision::Deny,
        (_, None) => Decision::NeedSignIn,
        (Policy::TwoFactor, Some(w)) if !w.two_factor => Decision::NeedSecondFactor,
        (_, Some(w)) => Decision::Allow(identity(&w.user, groups)),
    }
}

fn identity(u: &User, groups: &[String]) -> Identity {
    let user = u.display_name();
    Identity {
        user: header_value(user),
        email: header_value(u.email.as_deref().unwrap_or("")),
        name: header_value(u.name.as_deref().unwrap_or(user)),
        groups: groups
            .iter()
            .map(|g| header_value(g).replace(',', "%2C"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// A value safe in a header: printable ASCII and spaces as they are;
/// `%`, control characters (never a CR or LF) and anything beyond ASCII
/// percent-encoded as UTF-8 (a name such as "Zoë" arrives as `Zo%C3%AB`;
/// an app percent-decodes it).
pub fn header_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if (c == ' ' || c.is_ascii_graphic()) && c != '%' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_as_the_app_would_read_them() {
        for (raw, want) in [
            ("/", "/"),
            ("", "/"),
            ("/admin?x=1", "/admin"),
            ("/admin?x=/../y", "/admin"),
            ("/%61dmin", "/admin"),
            ("//admin//x/", "/admin/x"),
            ("/a/b#frag", "/a/b"),
            ("/admin;jsessionid=1/users", "/admin/users"),
            ("/admin;/users;a=b;c", "/admin/users"),
            ("/;x/admin", "/admin"),
            ("/a.b/.c/..d/...", "/a.b/.c/..d/..."),
            ("/my%20docs", "/my docs"),
            ("/caf%C3%A9", "/café"),
            ("/100%", "/100%"),
            ("/a%252e%252e", "/a%2e%2e"),
            ("/PRIVATE", "/PRIVATE"),
        ] {
            assert_eq!(normalize_path(raw).as_deref(), Ok(want), "{raw}");
        }
        for (bad, says) in [
            ("/private/../public", "'..' segment"),
            ("/private/..", "'..' segment"),
            ("/../etc", "'..' segment"),
            ("/a/./b", "'..' segment"),
            ("/.", "'..' segment"),
            ("/private/%2e%2e/public", "'..' segment"),
            ("/private/%2E./public", "'..' segment"),
            ("/private/.%2e", "'..' segment"),
            ("/private/%2e/public", "'..' segment"),
            ("/private/..;/public", "'..' segment"),
            ("/private/..;x=1/public", "'..' segment"),
            ("/private/.;/public", "'..' segment"),
            ("/private/..%2Fpublic", "encoded"),
            ("/private%2f..%2fpublic", "encoded"),
            ("/a%2Fb", "encoded"),
            ("/a%5Cb", "encoded"),
            ("/a%5cb", "encoded"),
            ("/admin%3B/x", "encoded"),
            ("/a%252Fb", "encoded"),
            ("/a%255c", "encoded"),
            ("/private\\..\\public", "'\\'"),
            ("/a\\b", "'\\'"),
            ("/a%00b", "control"),
            ("/a%0Ab", "control"),
            ("/%FF", "UTF-8"),
            ("/%C0%AE%C0%AE/x", "UTF-8"),
            ("/a\u{7f}", "control"),
        ] {
            let e = normalize_path(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    fn access(text: &str) -> Access {
        #[derive(serde::Deserialize)]
        struct File {
            access: rules::RawAccess,
        }
        let f: File = toml::from_str(&format!("[access]\n{text}")).unwrap();
        Access::from_raw(f.access).unwrap()
    }

    fn user(name: &str) -> User {
        User {
            id: format!("id-{name}"),
            email: Some(format!("{name}@example.com")),
            username: Some(name.into()),
            phone: None,
            name: None,
            password_hash: None,
            email_verified_at: None,
            role: "user".into(),
            permissions: Vec::new(),
            status: "active".into(),
            default_tenant_id: None,
            recovery_email: None,
            created_at: 0,
            updated_at: 0,
            last_login_at: None,
        }
    }

    /// (rule number from 1 or 0 for the default, decision, lower_case).
    fn verdict(a: &Access, method: &str, path: &str, who: Option<&Who>) -> (usize, Decision, bool) {
        let t = Target::from_parts(method, "https", "app.example", path).unwrap();
        let groups = vec!["user".to_string()];
        let v = decide_with(a, &t, who, if who.is_some() { &groups } else { &[] });
        (v.rule.map_or(0, |i| i + 1), v.decision, v.lower_case)
    }

    #[test]
    fn a_case_variant_or_parameter_never_weakens_a_rule() {
        let a = access(
            "default_policy = \"one_factor\"\n\
             [[access.rules]]\ndomain = \"app.example\"\npath = \"/admin\"\npolicy = \"deny\"\n\
             [[access.rules]]\ndomain = \"app.example\"\npath = \"/public\"\npolicy = \"bypass\"\n\
             [[access.rules]]\ndomain = \"app.example\"\npath_regex = \"(?i)^/static/\"\n\
             policy = \"bypass\"\n",
        );
        for path in [
            "/admin",
            "/ADMIN",
            "/Admin/users",
            "/admin;jsessionid=1/users",
            "/aDmIn;x/",
            "/%41dmin",
        ] {
            assert_eq!(verdict(&a, "GET", path, None).1, Decision::Deny, "{path}");
        }
        assert!(
            verdict(&a, "GET", "/Admin", None).2,
            "the lower-case form decided"
        );
        assert!(!verdict(&a, "GET", "/admin", None).2);
        // A bypass on /public does not widen to /PUBLIC: the default
        // (one_factor) is stricter there, so it stands.
        assert_eq!(
            verdict(&a, "GET", "/public/x", None),
            (2, Decision::Bypass, false)
        );
        assert_eq!(
            verdict(&a, "GET", "/public;v=1", None),
            (2, Decision::Bypass, false)
        );
        assert_eq!(
            verdict(&a, "GET", "/PUBLIC/x", None),
            (0, Decision::NeedSignIn, false),
            "the path as given (no rule, one_factor) is stricter than bypass"
        );
        // A regex written for both cases lets both through.
        assert_eq!(
            verdict(&a, "GET", "/Static/a.css", None).1,
            Decision::Bypass
        );
        // Signed in: the same stricter reading.
        let w = Who::new(user("ann"), &["pwd".to_string()]);
        assert_eq!(verdict(&a, "GET", "/Admin", Some(&w)).1, Decision::Deny);
        assert!(matches!(
            verdict(&a, "GET", "/Other", Some(&w)).1,
            Decision::Allow(_)
        ));

        // two_factor beats one_factor; a subject rule for someone else
        // falls through in both readings.
        let a = access(
            "default_policy = \"deny\"\n\
             [[access.rules]]\ndomain = \"app.example\"\npath = \"/vault\"\nusers = [\"bob\"]\n\
             policy = \"one_factor\"\n\
             [[access.rules]]\ndomain = \"app.example\"\npath = \"/vault\"\npolicy = \"two_factor\"\n\
             [[access.rules]]\ndomain = \"app.example\"\npolicy = \"one_factor\"\n",
        );
        assert_eq!(
            verdict(&a, "GET", "/VAULT", Some(&w)),
            (2, Decision::NeedSecondFactor, true)
        );
        // bob: one_factor both ways (rule 3 as given, his rule 1 in lower
        // case); a tie keeps the path as given.
        let bob = Who::new(user("bob"), &["pwd".to_string()]);
        assert!(matches!(
            verdict(&a, "GET", "/Vault", Some(&bob)),
            (3, Decision::Allow(_), false)
        ));
        assert!(matches!(
            verdict(&a, "GET", "/vault", Some(&bob)),
            (1, Decision::Allow(_), false)
        ));
        let ann2 = Who::new(user("ann"), &["pwd".to_string(), "otp".to_string()]);
        assert!(matches!(
            verdict(&a, "GET", "/Vault/x", Some(&ann2)),
            (2, Decision::Allow(_), true)
        ));
    }

    #[test]
    fn a_get_rule_takes_head_too() {
        let a = access(
            "[[access.rules]]\ndomain = \"app.example\"\nmethods = [\"GET\"]\npolicy = \"bypass\"\n\
             [[access.rules]]\ndomain = \"app.example\"\nmethods = [\"HEAD\", \"POST\"]\n\
             policy = \"one_factor\"\n",
        );
        assert_eq!(verdict(&a, "GET", "/x", None).0, 1);
        assert_eq!(verdict(&a, "HEAD", "/x", None).0, 1);
        assert_eq!(verdict(&a, "POST", "/x", None).0, 2);
        assert_eq!(
            verdict(&a, "OPTIONS", "/x", None),
            (0, Decision::Deny, false)
        );
    }

    #[test]
    fn targets_come_from_urls_or_forwarded_parts() {
        let t = Target::from_url("get", "https://App.Home.Example:8443/x//Y;p?q=/../1").unwrap();
        assert_eq!(t.method, "GET");
        assert_eq!(t.host, "app.home.example");
        assert_eq!(t.path, "/x/Y");
        assert_eq!(t.url, "https://App.Home.Example:8443/x//Y;p?q=/../1");
        let t = Target::from_parts("POST", "http", "app.home.example.", "").unwrap();
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("app.home.example", "/")
        );
        assert_eq!(t.url, "http://app.home.example./");
        for (m, p, h, u) in [
            ("GET", "ftp", "a.example", "/"),
            ("GET", "http", "user@a.example", "/"),
            ("GET", "http", "a.example:0", "/"),
            ("GET", "http", "a.example:99999", "/"),
            ("GET", "http", "a example", "/"),
            ("GET", "http", "a.example", "x"),
            ("GET", "http", "a.example", "/a b"),
            ("GET", "http", "a.example", "/a\r\nSet-Cookie: x"),
            ("GET", "http", "a.example", "/x/../y"),
            ("GET", "http", "a.example", "/x/..%2Fy"),
            ("G3T", "http", "a.example", "/"),
            ("", "http", "a.example", "/"),
        ] {
            assert!(Target::from_parts(m, p, h, u).is_err(), "{m} {p} {h} {u}");
        }
        assert!(Target::from_url("GET", "a.example/x").is_err());
    }

    #[test]
    fn rd_is_accepted_only_inside_the_cookie_domain() {
        let pu = "https://auth.home.example";
        let d = Some("home.example");
        for ok in [
            "https://app.home.example/x?y=1",
            "http://app.home.example",
            "https://home.example/",
            "https://a.b.home.example:8443/p",
            "HTTPS://APP.HOME.EXAMPLE/",
            "https://app.home.example//evil.example",
            "https://app.home.example./x",
        ] {
            assert_eq!(safe_rd(ok, d, pu), Some(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "https://home.example.evil.example/",
            "https://evilhome.example/",
            "https://app.home.example@evil.example/",
            "https://evil.example#@app.home.example",
            "https://evil.example?.home.example",
            "https://evil.example\\.home.example/",
            "https://app.home.example\\@evil.example/",
            "//app.home.example/",
            "/relative",
            "javascript://app.home.example/%0Aalert(1)",
            "ftp://app.home.example/",
            "https://app.home.example:/",
            "https://app.home.example:0/",
            "https://app.home.example:65536/",
            "https://app.home.example:80:80/",
            "https://app%2Ehome.example/",
            "https://evil.example%2F.home.example/",
            "https://app.home.example /",
            " https://app.home.example/",
            "https://app.home.example/\t",
            "https://xn--pple-43d.home.exampl/",
            "https://аpp.home.example/",
            "https:///app.home.example",
            "https://[::1]/",
            "",
        ] {
            assert_eq!(safe_rd(bad, d, pu), None, "{bad:?}");
        }
        // IDN in its ASCII form is a host like any other.
        assert!(safe_rd("https://xn--pple-43d.home.example/", d, pu).is_some());
        // Without a cookie domain: the public URL's host only.
        assert!(safe_rd("https://auth.home.example/account", None, pu).is_some());
        assert!(safe_rd("https://app.home.example/", None, pu).is_none());
    }

    #[test]
    fn header_values_never_carry_a_line_break() {
        assert_eq!(header_value("Ann Lee"), "Ann Lee");
        assert_eq!(header_value("Zoë"), "Zo%C3%AB");
        assert_eq!(header_value("a\r\nX-Evil: 1"), "a%0D%0AX-Evil: 1");
        assert_eq!(header_value("100%"), "100%25");
    }
}
