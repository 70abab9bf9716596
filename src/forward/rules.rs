//! The access rules (`[access]`, `[[access.rules]]`): what the file says,
//! validated once at start into `Access`, and matched per request.
//!
//! A rule matches a request by its object (host, path, method) and,
//! optionally, its subject (`users`, `groups`). The first rule that
//! matches decides; none matching, `default_policy` does (default deny).
//! A rule that no request could ever reach (an earlier rule without a
//! subject matches everything it would) is refused with its number, as
//! is an unknown policy: both are typos that would silently open or shut
//! an app.

use serde::Deserialize;

use crate::error::Error;

/// What a rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Let the request through without a sign-in (no user headers).
    Bypass,
    /// A signed-in user (any session).
    OneFactor,
    /// A signed-in user whose session has a second factor.
    TwoFactor,
    /// Nobody.
    Deny,
}

impl Policy {
    /// From the file's word.
    pub fn parse(word: &str) -> Result<Policy, String> {
        match word {
            "bypass" => Ok(Policy::Bypass),
            "one_factor" => Ok(Policy::OneFactor),
            "two_factor" => Ok(Policy::TwoFactor),
            "deny" => Ok(Policy::Deny),
            other => Err(format!(
                "unknown policy {other:?}: use bypass, one_factor, two_factor or deny"
            )),
        }
    }

    /// How strict: bypass 0 < one_factor < two_factor < deny 3. Of two
    /// readings of one request, the stricter decides.
    pub fn strictness(self) -> u8 {
        match self {
            Policy::Bypass => 0,
            Policy::OneFactor => 1,
            Policy::TwoFactor => 2,
            Policy::Deny => 3,
        }
    }

    /// The file's word.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Bypass => "bypass",
            Policy::OneFactor => "one_factor",
            Policy::TwoFactor => "two_factor",
            Policy::Deny => "deny",
        }
    }
}

/// A `domain` entry: one host, or every host under a suffix (`*.x.y`
/// matches `a.x.y` and `a.b.x.y`, not `x.y` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    Exact(String),
    /// The suffix without `*.`.
    Under(String),
}

impl Domain {
    fn parse(text: &str) -> Result<Domain, String> {
        let t = text.trim().to_ascii_lowercase();
        let (under, host) = match t.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, t),
        };
        if !is_host(&host) {
            return Err(format!(
                "domain {text:?} is not a host name or \"*.\" and a host name \
                 (letters, digits, '-', '_' and dots; e.g. \"app.home.example\" or \"*.home.example\")"
            ));
        }
        Ok(if under {
            Domain::Under(host)
        } else {
            Domain::Exact(host)
        })
    }

    /// True when `host` (lower-case, without port) is this domain.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Domain::Exact(h) => h == host,
            Domain::Under(s) => is_under(host, s),
        }
    }

    /// True when every host `other` matches, this matches too.
    fn covers(&self, other: &Domain) -> bool {
        match (self, other) {
            (Domain::Exact(a), Domain::Exact(b)) => a == b,
            (Domain::Exact(_), Domain::Under(_)) => false,
            (Domain::Under(s), Domain::Exact(h)) => is_under(h, s),
            (Domain::Under(s), Domain::Under(t)) => t == s || is_under(t, s),
        }
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Domain::Exact(h) => f.write_str(h),
            Domain::Under(s) => write!(f, "*.{s}"),
        }
    }
}

/// True when `host` is a strict subdomain of `suffix`.
fn is_under(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// A lower-case host name (labels of letters, digits, '-', '_'), or an
/// IPv4 address.
pub fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

/// Which paths a rule takes.
#[derive(Debug, Clone)]
pub enum Paths {
    /// Every path.
    All,
    /// These prefixes, by whole segments: `/admin` takes `/admin` and
    /// `/admin/x`, not `/administrator`; a prefix ending in `/` takes
    /// whatever starts with it.
    Prefixes(Vec<String>),
    /// A regular expression over the normalised path (unanchored unless
    /// it says `^`/`$`), kept with its text.
    Regex(String, regex_lite::Regex),
}

impl Paths {
    /// True when `path` (normalised, `forward::normalize_path`: decoded,
    /// no `;` parameters, no empty segments, no query) is one of these.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Paths::All => true,
            Paths::Prefixes(list) => list.iter().any(|p| prefix_takes(p, path)),
            Paths::Regex(_, re) => re.is_match(path),
        }
    }

    fn covers(&self, other: &Paths) -> bool {
        match (self, other) {
            (Paths::All, _) => true,
            (Paths::Prefixes(mine), Paths::Prefixes(theirs)) => theirs
                .iter()
                .all(|t| mine.iter().any(|m| prefix_takes(m, t))),
            (Paths::Regex(a, _), Paths::Regex(b, _)) => a == b,
            _ => false,
        }
    }
}

/// True when prefix `p` takes `path` (by whole segments).
fn prefix_takes(p: &str, path: &str) -> bool {
    if p.ends_with('/') {
        path.starts_with(p) || path == &p[..p.len() - 1]
    } else {
        path == p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// A `path` prefix as requests are matched: it starts with `/`, and is its
/// own normal form (`forward::normalize_path`: decoded, no `;`
/// parameters, no empty, `.` or `..` segments), with or without one
/// trailing `/`, and in lower case. Anything else could never match (a
/// request's path never has `%20`, `//` or `;x` once normalised, and one
/// with `..` is refused) or would miss case variants the lower-case
/// reading takes: refused, with the form to write where there is one.
fn check_prefix(p: &str) -> Result<(), String> {
    if !p.starts_with('/') || p.chars().any(char::is_control) {
        return Err(format!(
            "path {p:?} must start with '/' and have no control characters"
        ));
    }
    let n = super::normalize_path(p).map_err(|why| {
        format!("path {p:?} could never match: a request whose path {why} is refused")
    })?;
    let with_slash = format!("{n}/");
    if p != n && (n == "/" || p != with_slash) {
        let write = if p.ends_with('/') && n != "/" {
            with_slash
        } else {
            n
        };
        return Err(format!(
            "path {p:?} could never match: prefixes are matched against the path percent-decoded, \
             without ';' parameters, query or empty segments; write {write:?}"
        ));
    }
    if p.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "path {p:?} has capitals: write {:?} (each path is matched as given and in lower \
             case, and the stricter decision stands, so a lower-case prefix holds for every \
             case of it; a case-sensitive path needs path_regex)",
            p.to_ascii_lowercase()
        ));
    }
    Ok(())
}

/// One rule, validated.
#[derive(Debug, Clone)]
pub struct Rule {
    pub domains: Vec<Domain>,
    pub paths: Paths,
    /// Upper-case; empty = every method. `GET` takes `HEAD` too.
    pub methods: Vec<String>,
    pub policy: Policy,
    /// Usernames, emails or user ids (any case); empty = anyone.
    pub users: Vec<String>,
    /// Group names (any case): the user's tenants and role; empty = any.
    pub groups: Vec<String>,
}

impl Rule {
    /// True when the rule applies only to some users.
    pub fn has_subject(&self) -> bool {
        !self.users.is_empty() || !self.groups.is_empty()
    }

    /// True when host, path and method are this rule's.
    pub fn matches_object(&self, method: &str, host: &str, path: &str) -> bool {
        self.domains.iter().any(|d| d.matches(host))
            && self.paths.matches(path)
            && self.takes_method(method)
    }

    /// True when the rule takes `method` (upper-case): every method when
    /// it names none; `HEAD` when it names `GET`, as apps answer HEAD from
    /// their GET handler.
    fn takes_method(&self, method: &str) -> bool {
        self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|m| m == method || (m == "GET" && method == "HEAD"))
    }

    /// True when this user (its names: id, username, email) or one of its
    /// groups is named by the rule (or the rule names nobody).
    pub fn matches_subject(&self, names: &[&str], groups: &[String]) -> bool {
        if !self.has_subject() {
            return true;
        }
        self.users
            .iter()
            .any(|u| names.iter().any(|n| n.eq_ignore_ascii_case(u)))
            || self
                .groups
                .iter()
                .any(|g| groups.iter().any(|h| h.eq_ignore_ascii_case(g)))
    }

    /// True when `self` (earlier, without a subject) matches every request
    /// `later` could, so that `later` is never reached.
    fn shadows(&self, later: &Rule) -> bool {
        !self.has_subject()
            && later
                .domains
                .iter()
                .all(|d| self.domains.iter().any(|m| m.covers(d)))
            && self.paths.covers(&later.paths)
            && (self.methods.is_empty()
                || (!later.methods.is_empty()
                    && later.methods.iter().all(|m| self.takes_method(m))))
    }

    /// One line for check-config and `access test`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "domain {}",
            self.domains
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        match &self.paths {
            Paths::All => {}
            Paths::Prefixes(p) => s.push_str(&format!(", path {}", p.join(", "))),
            Paths::Regex(r, _) => s.push_str(&format!(", path_regex {r:?}")),
        }
        if !self.methods.is_empty() {
            s.push_str(&format!(", methods {}", self.methods.join(", ")));
        }
        if !self.users.is_empty() {
            s.push_str(&format!(", users {}", self.users.join(", ")));
        }
        if !self.groups.is_empty() {
            s.push_str(&format!(", groups {}", self.groups.join(", ")));
        }
        format!("{s}: {}", self.policy.name())
    }

    /// The rule as the file writes it (it parses back).
    fn describe(&self) -> String {
        let q = |s: &str| format!("{s:?}");
        let list = |v: &[String]| {
            format!(
                "[{}]",
                v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
            )
        };
        let domains: Vec<String> = self.domains.iter().map(|d| d.to_string()).collect();
        let mut l = vec![
            "[[access.rules]]".to_string(),
            format!("domain = {}", list(&domains)),
        ];
        match &self.paths {
            Paths::All => {}
            Paths::Prefixes(p) => l.push(format!("path = {}", list(p))),
            Paths::Regex(r, _) => l.push(format!("path_regex = {}", q(r))),
        }
        if !self.methods.is_empty() {
            l.push(format!("methods = {}", list(&self.methods)));
        }
        if !self.users.is_empty() {
            l.push(format!("users = {}", list(&self.users)));
        }
        if !self.groups.is_empty() {
            l.push(format!("groups = {}", list(&self.groups)));
        }
        l.push(format!("policy = {}", q(self.policy.name())));
        l.join("\n")
    }
}

/// The validated `[access]` section.
#[derive(Debug, Clone)]
pub struct Access {
    /// What decides when no rule matches. Default deny.
    pub default_policy: Policy,
    /// In order; the first match wins.
    pub rules: Vec<Rule>,
}

impl Default for Access {
    fn default() -> Access {
        Access {
            default_policy: Policy::Deny,
            rules: Vec::new(),
        }
    }
}

/// One value or a list of them (`domain = "a"` or `domain = ["a", "b"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `[access]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    pub default_policy: Option<String>,
    pub rules: Option<Vec<RawRule>>,
}

/// One `[[access.rules]]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub domain: Option<OneOrMany>,
    pub path: Option<OneOrMany>,
    pub path_regex: Option<String>,
    pub methods: Option<OneOrMany>,
    pub policy: Option<String>,
    pub users: Option<OneOrMany>,
    pub groups: Option<OneOrMany>,
}

/// The methods a rule may name.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

/// The longest `path_regex` accepted.
const MAX_REGEX: usize = 1000;

impl Access {
    /// Validates the file's `[access]`: every rule's fields, then that no
    /// rule is shadowed by an earlier one. Errors name the rule (from 1).
    pub fn from_raw(raw: RawAccess) -> Result<Access, Error> {
        let bad = |m: String| Error::BadRequest(m);
        let default_policy = match raw.default_policy.as_deref() {
            Some(p) => Policy::parse(p).map_err(|e| bad(format!("access.default_policy: {e}")))?,
            None => Policy::Deny,
        };
        let mut rules = Vec::new();
        for (i, r) in raw.rules.unwrap_or_default().into_iter().enumerate() {
            let n = i + 1;
            let rule = Rule::from_raw(r).map_err(|e| bad(format!("access rule {n}: {e}")))?;
            if let Some(j) = rules
                .iter()
                .position(|earlier: &Rule| earlier.shadows(&rule))
            {
                return Err(bad(format!(
                    "access rule {n} ({}) is never reached: rule {} ({}) matches every \
                     request it would; put the narrower rule first",
                    rule.summary(),
                    j + 1,
                    rules[j].summary()
                )));
            }
            rules.push(rule);
        }
        Ok(Access {
            default_policy,
            rules,
        })
    }

    /// `[access]` and its rules as the file writes them (they parse back),
    /// each rule under a comment with its number.
    pub fn describe(&self) -> String {
        let mut out = vec![
            "[access]".to_string(),
            format!("default_policy = {:?}", self.default_policy.name()),
        ];
        for (i, r) in self.rules.iter().enumerate() {
            out.push(String::new());
            out.push(format!("# rule {}", i + 1));
            out.push(r.describe());
        }
        out.push(String::new());
        out.join("\n")
    }
}

impl Rule {
    fn from_raw(r: RawRule) -> Result<Rule, String> {
        let domains = r
            .domain
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .iter()
            .map(|d| Domain::parse(d))
            .collect::<Result<Vec<_>, _>>()?;
        if domains.is_empty() {
            return Err("domain is required (a host, or \"*.\" and a host)".into());
        }
        let policy = Policy::parse(
            r.policy
                .as_deref()
                .ok_or("policy is required (bypass, one_factor, two_factor or deny)")?,
        )?;
        let paths = match (r.path.map(OneOrMany::into_vec), r.path_regex) {
            (Some(_), Some(_)) => return Err("give path or path_regex, not both".into()),
            (Some(list), None) => {
                if list.is_empty() {
                    return Err("path is an empty list (leave it out to take every path)".into());
                }
                for p in &list {
                    check_prefix(p)?;
                }
                Paths::Prefixes(list)
            }
            (None, Some(text)) => {
                if text.len() > MAX_REGEX {
                    return Err(format!("path_regex is longer than {MAX_REGEX} characters"));
                }
                let re = regex_lite::Regex::new(&text)
                    .map_err(|e| format!("path_regex {text:?} does not parse: {e}"))?;
                Paths::Regex(text, re)
            }
            (None, None) => Paths::All,
        };
        let methods = r
            .methods
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let up = m.trim().to_ascii_uppercase();
                if METHODS.contains(&up.as_str()) {
                    Ok(up)
                } else {
                    Err(format!(
                        "unknown method {m:?}; known: {}",
                        METHODS.join(", ")
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let names = |v: Option<OneOrMany>, what: &str| -> Result<Vec<String>, String> {
            let v = v.map(OneOrMany::into_vec).unwrap_or_default();
            if v.iter().any(|s| s.trim().is_empty()) {
                return Err(format!("{what} has an empty name"));
            }
            Ok(v)
        };
        let users = names(r.users, "users")?;
        let groups = names(r.groups, "groups")?;
        let rule = Rule {
            domains,
            paths,
            methods,
            policy,
            users,
            groups,
        };
        if rule.policy == Policy::Bypass && rule.has_subject() {
            return Err(
                "a bypass rule lets everyone through without a sign-in, so it cannot name \
                 users or groups (use one_factor for them)"
                    .into(),
            );
        }
        Ok(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Access, String> {
        #[derive(Deserialize)]
        struct File {
            access: RawAccess,
        }
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        Access::from_raw(f.access).map_err(|e| match e {
            Error::BadRequest(m) => m,
            other => other.to_string(),
        })
    }

    #[test]
    fn domains_match_exactly_or_any_subdomain_never_a_lookalike() {
        let d = Domain::parse("*.Home.Example").unwrap();
        assert!(d.matches("app.home.example"));
        assert!(d.matches("a.b.home.example"));
        assert!(!d.matches("home.example"));
        assert!(!d.matches("evilhome.example"));
        assert!(!d.matches("home.example.evil"));
        let e = Domain::parse("app.home.example").unwrap();
        assert!(e.matches("app.home.example") && !e.matches("x.app.home.example"));
        for bad in [
            "", "*", "*.", "a..b", "-a.b", "a b", "a/b", "*x.b", "a.*.b", "ä.b",
        ] {
            assert!(Domain::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_in_normal_form_are_taken() {
        for ok in [
            "/", "/admin", "/static/", "/my docs", "/café", "/100%", "/a.b/.c", "/v1.2",
        ] {
            assert!(check_prefix(ok).is_ok(), "{ok}: {:?}", check_prefix(ok));
        }
    }

    #[test]
    fn path_prefixes_take_whole_segments() {
        let p = Paths::Prefixes(vec!["/admin".into(), "/static/".into()]);
        for yes in ["/admin", "/admin/x", "/static/a.css", "/static"] {
            assert!(p.matches(yes), "{yes}");
        }
        for no in ["/administrator", "/", "/staticx", "/x/admin"] {
            assert!(!p.matches(no), "{no}");
        }
    }

    #[test]
    fn rules_parse_with_one_or_many_values_and_describe_parses_back() {
        let a = parse(
            r#"[access]
default_policy = "one_factor"
[[access.rules]]
domain = "app.home.example"
path = "/public"
policy = "bypass"
[[access.rules]]
domain = ["*.home.example", "home.example"]
path_regex = "^/api/v[0-9]+/"
methods = ["post", "PUT"]
groups = ["admins"]
policy = "two_factor"
"#,
        )
        .unwrap();
        assert_eq!(a.default_policy, Policy::OneFactor);
        assert_eq!(a.rules.len(), 2);
        assert_eq!(a.rules[1].methods, ["POST", "PUT"]);
        let again = parse(&a.describe()).unwrap();
        assert_eq!(again.describe(), a.describe());
        assert!(a.describe().contains("# rule 2"));
        assert_eq!(
            a.rules[1].summary(),
            "domain *.home.example, home.example, path_regex \"^/api/v[0-9]+/\", \
             methods POST, PUT, groups admins: two_factor"
        );
        assert_eq!(parse("[access]\n").unwrap().default_policy, Policy::Deny);
    }

    #[test]
    fn bad_rules_are_refused_with_their_number() {
        let rule = |body: &str| {
            format!("[[access.rules]]\ndomain = \"a.example\"\npolicy = \"deny\"\n[[access.rules]]\n{body}\n")
        };
        for (body, says) in [
            (
                "domain = \"b.example\"\npolicy = \"allow\"",
                "rule 2: unknown policy \"allow\"",
            ),
            ("domain = \"b.example\"", "rule 2: policy is required"),
            ("policy = \"deny\"", "rule 2: domain is required"),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\nmethods = [\"FETCH\"]",
                "unknown method",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"admin\"",
                "must start with '/'",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"/a\"\npath_regex = \"x\"",
                "not both",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath_regex = \"(\"",
                "does not parse",
            ),
            (
                "domain = \"b.example\"\npolicy = \"bypass\"\nusers = [\"ann\"]",
                "cannot name",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\nusers = [\"\"]",
                "empty name",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\ncolour = 1",
                "unknown field",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"/my%20docs\"",
                "rule 2: path \"/my%20docs\" could never match",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"/my%20docs\"",
                "write \"/my docs\"",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = [\"/x\", \"/api//v1/\"]",
                "write \"/api/v1/\"",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"/a/./b\"",
                "rule 2: path \"/a/./b\" could never match: a request whose path has a '.' or '..'",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"/a/../b\"",
                "could never match",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"/a%2Fb\"",
                "could never match",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"/a\\\\b\"",
                "could never match",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"/admin;x\"",
                "write \"/admin\"",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"/admin?x=1\"",
                "write \"/admin\"",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"//\"",
                "write \"/\"",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"/Admin\"",
                "rule 2: path \"/Admin\" has capitals: write \"/admin\"",
            ),
            (
                "domain = \"b.example\"\npolicy = \"deny\"\npath = \"/a\\tb\"",
                "no control characters",
            ),
        ] {
            let e = parse(&format!("[access]\n{}", rule(body))).unwrap_err();
            assert!(e.contains(says), "{body}: {e}");
        }
        let e = parse("[access]\ndefault_policy = \"open\"\n").unwrap_err();
        assert!(
            e.contains("default_policy") && e.contains("unknown policy"),
            "{e}"
        );
    }

    #[test]
    fn a_rule_behind_a_wider_one_is_refused_as_unreachable() {
        let two = |a: &str, b: &str| {
            parse(&format!(
                "[access]\n[[access.rules]]\n{a}\n[[access.rules]]\n{b}\n"
            ))
        };
        let shadowed = [
            // Same domain, every path, then a path.
            (
                "domain = \"a.example\"\npolicy = \"one_factor\"",
                "domain = \"a.example\"\npath = \"/admin\"\npolicy = \"deny\"",
            ),
            // A wildcard, then a host under it.
            (
                "domain = \"*.example\"\npolicy = \"one_factor\"",
                "domain = \"a.b.example\"\npolicy = \"deny\"",
            ),
            (
                "domain = \"*.example\"\npolicy = \"one_factor\"",
                "domain = \"*.b.example\"\npolicy = \"deny\"",
            ),
            // A wider prefix, then a narrower one.
            (
                "domain = \"a.example\"\npath = \"/api\"\npolicy = \"bypass\"",
                "domain = \"a.example\"\npath = [\"/api/admin\", \"/api\"]\npolicy = \"deny\"",
            ),
            // Every method, then some.
            (
                "domain = \"a.example\"\npolicy = \"deny\"",
                "domain = \"a.example\"\nmethods = \"GET\"\npolicy = \"bypass\"",
            ),
            // A subject on the later rule does not save it.
            (
                "domain = \"a.example\"\npolicy = \"one_factor\"",
                "domain = \"a.example\"\nusers = [\"ann\"]\npolicy = \"deny\"",
            ),
            // GET takes HEAD: a GET rule covers a later HEAD rule.
            (
                "domain = \"a.example\"\nmethods = [\"GET\"]\npolicy = \"deny\"",
                "domain = \"a.example\"\nmethods = \"HEAD\"\npolicy = \"bypass\"",
            ),
            // The same regex twice.
            (
                "domain = \"a.example\"\npath_regex = \"^/x\"\npolicy = \"deny\"",
                "domain = \"a.example\"\npath_regex = \"^/x\"\npolicy = \"bypass\"",
            ),
        ];
        for (a, b) in shadowed {
            let e = two(a, b).unwrap_err();
            assert!(
                e.contains("access rule 2") && e.contains("never reached") && e.contains("rule 1"),
                "{a} / {b}: {e}"
            );
        }
        let fine = [
            // The narrower rule first.
            (
                "domain = \"a.example\"\npath = \"/admin\"\npolicy = \"deny\"",
                "domain = \"a.example\"\npolicy = \"one_factor\"",
            ),
            // A subject on the earlier rule: others fall through.
            (
                "domain = \"a.example\"\ngroups = [\"admins\"]\npolicy = \"one_factor\"",
                "domain = \"a.example\"\npolicy = \"deny\"",
            ),
            // Some methods, then all.
            (
                "domain = \"a.example\"\nmethods = \"GET\"\npolicy = \"bypass\"",
                "domain = \"a.example\"\npolicy = \"deny\"",
            ),
            // An exact host does not cover its subdomains.
            (
                "domain = \"example\"\npolicy = \"deny\"",
                "domain = \"*.example\"\npolicy = \"one_factor\"",
            ),
            // A segment prefix does not cover a longer name.
            (
                "domain = \"a.example\"\npath = \"/api\"\npolicy = \"deny\"",
                "domain = \"a.example\"\npath = \"/apix\"\npolicy = \"bypass\"",
            ),
            // HEAD does not take GET.
            (
                "domain = \"a.example\"\nmethods = \"HEAD\"\npolicy = \"bypass\"",
                "domain = \"a.example\"\nmethods = [\"GET\"]\npolicy = \"deny\"",
            ),
            // A regex and a prefix are not compared: kept.
            (
                "domain = \"a.example\"\npath_regex = \"^/x\"\npolicy = \"deny\"",
                "domain = \"a.example\"\npath = \"/x\"\npolicy = \"bypass\"",
            ),
        ];
        for (a, b) in fine {
            assert!(two(a, b).is_ok(), "{a} / {b}: {:?}", two(a, b).err());
        }
    }
}
