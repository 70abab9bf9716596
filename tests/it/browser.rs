//! A browser for the page tests: a client that keeps cookies (as a
//! browser does: by name, deleted at Max-Age=0) and never follows a
//! redirect, so each 303 and its cookies are checked. Forms are read back
//! from the HTML (the hidden fields) and posted as
//! application/x-www-form-urlencoded.

use std::cell::RefCell;

use crate::support::{Resp, TestServer};

/// A browser: the server, and a cookie jar.
pub struct Browser<'a> {
    pub s: &'a TestServer,
    jar: RefCell<Vec<(String, String)>>,
}

impl<'a> Browser<'a> {
    pub fn new(s: &'a TestServer) -> Browser<'a> {
        Browser {
            s,
            jar: RefCell::new(Vec::new()),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.jar
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn keep(&self, r: &Resp) {
        for (k, v) in &r.headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = v.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut jar = self.jar.borrow_mut();
            jar.retain(|(n, _)| n != name);
            if !v.contains("Max-Age=0") {
                jar.push((name.to_string(), value.to_string()));
            }
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    pub fn get(&self, path: &str) -> Resp {
        let c = self.cookie_header();
        let r = self.s.request("GET", path, &[("Cookie", &c)], None);
        self.keep(&r);
        r
    }

    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let c = self.cookie_header();
        let r = self.s.request(
            "POST",
            path,
            &[
                ("Cookie", &c),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(body.as_bytes()),
        );
        self.keep(&r);
        r
    }

    /// GET /signin (?return_to) and post the form with this login.
    pub fn sign_in(&self, return_to: Option<&str>, login: &str, password: &str) -> Resp {
        let path = match return_to {
            Some(r) => format!("/signin?return_to={}", enc(r)),
            None => "/signin".into(),
        };
        let page = self.get(&path);
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = field(&page.body, "csrf");
        let rt = field(&page.body, "return_to");
        self.post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("return_to", &rt),
                ("login", login),
                ("password", password),
            ],
        )
    }
}

pub fn enc(s: &str) -> String {
    hallpass::url::percent_encode(s)
}

/// The value of a hidden input, HTML entities decoded.
pub fn field(html: &str, name: &str) -> String {
    let at = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&at)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + at.len();
    let raw = &html[start..start + html[start..].find('"').unwrap()];
    raw.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub fn location(r: &Resp) -> &str {
    r.header("location").unwrap_or("")
}

/// The last Set-Cookie of `name` (the one a browser ends with).
pub fn set_cookie<'r>(r: &'r Resp, name: &str) -> Option<&'r str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .rfind(|v| v.starts_with(&format!("{name}=")))
}

pub fn assert_page_headers(r: &Resp) {
    assert_eq!(
        r.header("content-security-policy"),
        Some(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'"
        ),
        "{r:?}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}
