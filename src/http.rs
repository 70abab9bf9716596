//! Our own `Request` and `Response`, so handlers never touch the HTTP engine
//! and tests can build a request by hand. The engine (engine/) is the only
//! body reader (capped at `MAX_BODY`); this is the only JSON field reader
//! and the only responder.

use std::cell::OnceCell;
use std::net::IpAddr;

pub use crate::url::{percent_decode, percent_encode};

use serde_json::{Map, Value};

use crate::config::IpRange;
use crate::error::Error;

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// An HTTP request, read in full.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Upper-case method.
    pub method: String,
    /// The path, percent-decoded, without query and without a trailing slash.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The client's IP (from X-Forwarded-For only behind a trusted proxy).
    pub ip: String,
    /// True when the peer itself is in `trusted_proxies`: only then are
    /// its forwarded headers (X-Forwarded-*, X-Original-URL) believed.
    pub from_trusted_proxy: bool,
    /// The body bytes (at most `MAX_BODY`).
    pub body: Vec<u8>,
    /// The user a handler's bearer check proved (`api::bearer`), for the
    /// access log: set at most once, by the worker, read when the answer
    /// goes back.
    pub user: OnceCell<String>,
}

impl Request {
    /// Builds a request by hand (tests, and the engine).
    pub fn new(method: &str, url: &str) -> Request {
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, q),
            None => (url, ""),
        };
        let mut path = percent_decode(path, false);
        while path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
        Request {
            method: method.to_ascii_uppercase(),
            path,
            query: parse_form(query),
            headers: Vec::new(),
            ip: "127.0.0.1".into(),
            from_trusted_proxy: false,
            body: Vec::new(),
            user: OnceCell::new(),
        }
    }

    /// Sets the client's address from the peer and, behind a trusted
    /// proxy, X-Forwarded-For (the headers must be set first).
    pub fn set_peer(&mut self, peer: IpAddr, trusted_proxies: &[IpRange]) {
        let xff = self.header_all("x-forwarded-for");
        self.ip = client_ip(Some(peer), xff.as_deref(), trusted_proxies);
        self.from_trusted_proxy = trusted_proxies.iter().any(|t| t.contains(peer));
    }

    /// A header's value (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated header, joined with ", " in order.
    pub fn header_all(&self, name: &str) -> Option<String> {
        let v: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!v.is_empty()).then(|| v.join(", "))
    }

    /// The bearer token of the Authorization header.
    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A cookie's value from the Cookie header(s).
    ///
    /// A name sent twice with two values is no cookie at all: a browser
    /// sends both when another host under a shared parent domain (or a
    /// page over plain http) planted one beside ours, and neither can be
    /// told to be ours (cookie tossing: review 14).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.trim());
        let first = values.next()?;
        values.all(|v| v == first).then_some(first)
    }

    /// The User-Agent header.
    pub fn user_agent(&self) -> Option<&str> {
        self.header("user-agent")
    }

    /// The body as a JSON object; malformed JSON or a non-object is a 400
    /// that says what is wrong. An empty body is an empty object.
    pub fn json(&self) -> Result<Json, Error> {
        if self.body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Json(Map::new()));
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(Json(m)),
            Ok(_) => Err(Error::BadRequest(
                "The request body must be a JSON object".into(),
            )),
            Err(e) => Err(Error::BadRequest(format!(
                "Malformed JSON in the request body: {e}"
            ))),
        }
    }

    /// True when the body is a JSON object with this key (route predicates).
    pub fn body_has(&self, key: &str) -> bool {
        self.json().map(|j| j.0.contains_key(key)).unwrap_or(false)
    }
}

/// A JSON object body, read field by field so that every refusal names its
/// field: missing or empty → `required`, wrong type → `type`.
#[derive(Debug, Clone)]
pub struct Json(pub Map<String, Value>);

impl Json {
    /// A required, non-empty string of at most `max` characters.
    pub fn str(&self, field: &str, max: usize) -> Result<String, Error> {
        self.opt_str(field, max)?
            .ok_or_else(|| Error::required(field))
    }

    /// An optional string (null, absent and "" are None).
    pub fn opt_str(&self, field: &str, max: usize) -> Result<Option<String>, Error> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) if s.chars().count() > max => Err(Error::invalid(
                field,
                "too_long",
                format!("{field} must be at most {max} characters"),
            )),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Error::invalid(
                field,
                "type",
                format!("{field} must be a string"),
            )),
        }
    }

    /// A required list of strings, each at most `max` characters, at most
    /// `max_items` of them.
    pub fn str_list(
        &self,
        field: &str,
        max_items: usize,
        max: usize,
    ) -> Result<Vec<String>, Error> {
        let wrong = || {
            Error::invalid(
                field,
                "type",
                format!("{field} must be a list of at most {max_items} strings"),
            )
        };
        match self.0.get(field) {
            None | Some(Value::Null) => Err(Error::required(field)),
            Some(Value::Array(items)) if items.len() <= max_items => items
                .iter()
                .map(|v| match v {
                    Value::String(s) if s.chars().count() <= max => Ok(s.clone()),
                    _ => Err(wrong()),
                })
                .collect(),
            Some(_) => Err(wrong()),
        }
    }

    /// A required boolean.
    pub fn bool(&self, field: &str) -> Result<bool, Error> {
        match self.0.get(field) {
            None | Some(Value::Null) => Err(Error::required(field)),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Error::invalid(
                field,
                "type",
                format!("{field} must be a boolean"),
            )),
        }
    }
}

/// The client IP: the peer, or, walking X-Forwarded-For from the right
/// while the hop we stand on is in a trusted proxy's range, the first
/// untrusted hop. A hop that does not parse stops the walk at the proxy
/// (fail closed).
fn client_ip(peer: Option<IpAddr>, xff: Option<&str>, trusted: &[IpRange]) -> String {
    let Some(peer) = peer else {
        return "unknown".into();
    };
    // Canonical forms throughout: on a dual-stack listener an IPv4 proxy
    // arrives as ::ffff:a.b.c.d and must still match its configured
    // a.b.c.d (or 10.0.0.0/8), or every client would be counted as the
    // proxy. IpRange::contains canonicalises too.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|t| t.contains(*ip));
    let mut current = peer;
    let mut hops = xff
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .rev();
    while is_trusted(&current) {
        let Some(hop) = hops.next() else { break };
        let parsed = hop
            .parse::<IpAddr>()
            .ok()
            .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()));
        match parsed {
            Some(ip) => current = ip.to_canonical(),
            None => break,
        }
    }
    current.to_string()
}

/// Decodes `application/x-www-form-urlencoded` pairs.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &Value) -> Response {
        Response::serialize(status, value)
    }

    /// A JSON response from anything serializable (no intermediate Value).
    pub fn serialize<T: serde::Serialize>(status: u16, body: &T) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    /// 200 with a JSON body.
    pub fn ok(value: &Value) -> Response {
        Response::json(200, value)
    }

    /// A response with no body.
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, content_type: &str, body: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into_bytes(),
        }
    }

    /// 302 to `location`.
    pub fn redirect(location: &str) -> Response {
        Response::empty(302).with_header("Location", location)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_sent_twice_with_two_values_is_none() {
        let mut r = Request::new("GET", "/");
        r.headers = vec![("Cookie".into(), "a=1; hallpass=ours; b=2".into())];
        assert_eq!(r.cookie("hallpass"), Some("ours"));
        // The same value twice (two Cookie headers) is still that value.
        r.headers.push(("cookie".into(), "hallpass=ours".into()));
        assert_eq!(r.cookie("hallpass"), Some("ours"));
        // A planted one beside it: neither is believed.
        r.headers = vec![("Cookie".into(), "hallpass=planted; hallpass=ours".into())];
        assert_eq!(r.cookie("hallpass"), None);
        assert_eq!(r.cookie("other"), None);
    }

    #[test]
    fn paths_and_queries_are_decoded_and_trailing_slashes_dropped() {
        let r = Request::new("get", "/auth/me/?a=1&b=x%20y+z&c&d=%ZZ%");
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/auth/me");
        assert_eq!(r.query("b"), Some("x y z"));
        assert_eq!(r.query("c"), Some(""));
        assert_eq!(r.query("d"), Some("%ZZ%"));
    }

    #[test]
    fn json_fields_are_named_when_missing_or_mistyped() {
        let mut r = Request::new("POST", "/x");
        r.body = br#"{"a": 1, "b": "", "c": "ok"}"#.to_vec();
        let j = r.json().unwrap();
        assert_eq!(j.str("c", 10).unwrap(), "ok");
        assert!(matches!(
            j.str("a", 10),
            Err(Error::Validation { code: "type", .. })
        ));
        assert!(matches!(
            j.str("b", 10),
            Err(Error::Validation {
                code: "required",
                ..
            })
        ));
        assert!(matches!(j.str("z", 10), Err(Error::Validation { field, .. }) if field == "z"));
        r.body = b"{nope".to_vec();
        assert!(matches!(r.json(), Err(Error::BadRequest(_))));
        r.body = b"[1]".to_vec();
        assert!(matches!(r.json(), Err(Error::BadRequest(_))));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted = vec![IpRange::parse("10.0.0.1").unwrap()];
        assert_eq!(
            client_ip(Some(proxy), Some("1.2.3.4, 10.0.0.1"), &trusted),
            "1.2.3.4"
        );
        assert_eq!(client_ip(Some(proxy), Some("1.2.3.4"), &[]), "10.0.0.1");
        assert_eq!(
            client_ip(Some(proxy), Some("garbage"), &trusted),
            "10.0.0.1"
        );
        // A dual-stack listener sees the IPv4 proxy as IPv4-mapped IPv6.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(Some(mapped), Some("203.0.113.9"), &trusted),
            "203.0.113.9"
        );
        assert_eq!(client_ip(Some(mapped), None, &[]), "10.0.0.1");
    }

    #[test]
    fn forwarded_for_is_believed_from_peers_in_a_trusted_range() {
        let ranges: Vec<IpRange> = ["10.0.0.0/8", "fd00::/8"]
            .iter()
            .map(|r| IpRange::parse(r).unwrap())
            .collect();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_ip(Some(ip("10.200.3.4")), Some("198.51.100.7"), &ranges),
            "198.51.100.7"
        );
        // Every hop inside the ranges is walked over.
        assert_eq!(
            client_ip(Some(ip("fd12::1")), Some("198.51.100.7, 10.1.1.1"), &ranges),
            "198.51.100.7"
        );
        // Outside: the header is not believed.
        assert_eq!(
            client_ip(Some(ip("11.0.0.1")), Some("198.51.100.7"), &ranges),
            "11.0.0.1"
        );
        assert_eq!(
            client_ip(Some(ip("fe00::1")), Some("198.51.100.7"), &ranges),
            "fe00::1"
        );
        // An IPv4 peer on a dual-stack listener matches the IPv4 range.
        assert_eq!(
            client_ip(Some(ip("::ffff:10.9.9.9")), Some("198.51.100.7"), &ranges),
            "198.51.100.7"
        );
    }

    #[test]
    fn deeply_nested_json_is_a_400_not_a_stack_overflow() {
        let mut r = Request::new("POST", "/x");
        r.body = format!("{{\"a\":{}{}}}", "[".repeat(50_000), "]".repeat(50_000)).into_bytes();
        assert!(matches!(r.json(), Err(Error::BadRequest(_))));
    }

    proptest::proptest! {
        /// Any body at all: a JSON object, or a 400; never a panic.
        #[test]
        fn any_body_decodes_or_is_refused(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let mut r = Request::new("POST", "/x");
            r.body = body;
            if let Ok(j) = r.json() {
                let _ = (j.str("a", 10), j.opt_str("b", 10), j.str_list("c", 3, 5), j.bool("d"));
            }
        }

        /// JSON-shaped bodies of any nesting and types: every field reader
        /// answers Ok or a named refusal.
        #[test]
        fn every_field_reader_names_its_field(text in r#"\{("[a-d]": ?(null|true|1|-2.5e3|"[^"\\]{0,12}"|\[("x"|1|null)?(, ?"y")?\]|\{\}) ?,? ?){0,6}\}"#) {
            let mut r = Request::new("POST", "/x");
            r.body = text.into_bytes();
            if let Ok(j) = r.json() {
                for field in ["a", "b", "c", "d"] {
                    for e in [j.str(field, 4).err(), j.str_list(field, 1, 3).err(), j.bool(field).err()].into_iter().flatten() {
                        proptest::prop_assert!(matches!(&e, Error::Validation { field: f, .. } if f == field), "{e:?}");
                    }
                }
            }
        }
    }
}
