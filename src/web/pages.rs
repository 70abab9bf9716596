//! The pages' templates and stylesheet, built into the binary.
//!
//! minijinja, as for mail (mail/templates.rs): it is already a dependency,
//! and it escapes every value in templates whose name ends in `.html`, so
//! a login name or a return_to typed by anyone can never add markup. No
//! HTML is built with format!. The pages extend one layout (`base.html`);
//! none has a script or an inline style (the CSP forbids both).
//!
//! Every page sees `product` (the `[mail] product` setting: one name for
//! the product in mail and on the pages), `title`, and `logo` when `[web]
//! logo` is set (`Logo`, served at `/assets/logo`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use minijinja::{Environment, Value};

use crate::error::Error;

/// The one stylesheet, served at `/assets/hallpass.css`.
pub const STYLESHEET: &str = include_str!("hallpass.css");

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("signin.html", include_str!("templates/signin.html")),
    (
        "second_factor.html",
        include_str!("templates/second_factor.html"),
    ),
    ("signout.html", include_str!("templates/signout.html")),
    ("step_up.html", include_str!("templates/step_up.html")),
    ("code_form.html", include_str!("templates/code_form.html")),
    ("account.html", include_str!("templates/account.html")),
    (
        "account_totp.html",
        include_str!("templates/account_totp.html"),
    ),
    (
        "account_codes.html",
        include_str!("templates/account_codes.html"),
    ),
    ("error.html", include_str!("templates/error.html")),
    ("consent.html", include_str!("templates/consent.html")),
    ("email_form.html", include_str!("templates/email_form.html")),
    ("email_code.html", include_str!("templates/email_code.html")),
    (
        "link_confirm.html",
        include_str!("templates/link_confirm.html"),
    ),
    ("reset.html", include_str!("templates/reset.html")),
    ("signup.html", include_str!("templates/signup.html")),
    ("message.html", include_str!("templates/message.html")),
];

fn env() -> Result<&'static Environment<'static>, Error> {
    static ENV: OnceLock<Result<Environment<'static>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|e| format!("page template {name}: {e}"))?;
        }
        Ok(env)
    })
    .as_ref()
    .map_err(|e| Error::Internal(e.clone()))
}

/// What heads every page: the product's name, and whether a logo is
/// served (`From<&str>`: the name alone).
#[derive(Debug, Clone, Copy)]
pub struct Brand<'a> {
    pub product: &'a str,
    pub logo: bool,
}

impl<'a> From<&'a str> for Brand<'a> {
    fn from(product: &'a str) -> Brand<'a> {
        Brand {
            product,
            logo: false,
        }
    }
}

/// The values a page is rendered with.
#[derive(Debug, Default)]
pub struct Page(BTreeMap<&'static str, Value>);

impl Page {
    /// A page titled `title`, for `brand` (a product name, or a `Brand`).
    pub fn new<'a>(brand: impl Into<Brand<'a>>, title: &str) -> Page {
        let b = brand.into();
        let page = Page::default()
            .set("product", b.product)
            .set("title", title);
        if b.logo {
            page.set("logo", true)
        } else {
            page
        }
    }

    /// Sets a value.
    pub fn set(mut self, key: &'static str, value: impl Into<Value>) -> Page {
        self.0.insert(key, value.into());
        self
    }

    /// Renders template `name` (one of `TEMPLATES`).
    pub fn render(self, name: &str) -> Result<String, Error> {
        let ctx: BTreeMap<String, Value> = self
            .0
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        env()?
            .get_template(name)
            .and_then(|t| t.render(Value::from(ctx)))
            .map_err(|e| Error::Internal(format!("page template {name}: {e}")))
    }
}

/// The largest logo accepted: a page's header image, not a photograph.
pub const LOGO_MAX: u64 = 256 * 1024;

/// The `[web] logo` file, read once at start and served from memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Logo {
    pub bytes: Vec<u8>,
    /// Found from the file's first bytes, not its name.
    pub content_type: &'static str,
}

impl Logo {
    /// Reads `path`: at most `LOGO_MAX` bytes of PNG, SVG, JPEG or WebP.
    /// The error names the setting, the file and what is wrong.
    pub fn load(path: &Path) -> Result<Logo, Error> {
        let bad = |why: String| {
            Error::BadRequest(format!(
                "web.logo {}: {why}",
                crate::db::absolute(path).display()
            ))
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
        if !meta.is_file() {
            return Err(bad("is not a file".into()));
        }
        if meta.len() > LOGO_MAX {
            return Err(bad(format!(
                "is {} KiB; a logo may be at most {} KiB",
                meta.len().div_ceil(1024),
                LOGO_MAX / 1024
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
        if bytes.len() as u64 > LOGO_MAX {
            return Err(bad(format!(
                "a logo may be at most {} KiB",
                LOGO_MAX / 1024
            )));
        }
        let content_type = image_type(&bytes)
            .ok_or_else(|| bad("is not a PNG, SVG, JPEG or WebP image".into()))?;
        Ok(Logo {
            bytes,
            content_type,
        })
    }
}

/// The media type of an image, from its first bytes.
fn image_type(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if b.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some("image/jpeg");
    }
    if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    // SVG is text: UTF-8 markup with an <svg> element. Whatever it holds,
    // it is served under the pages' CSP (no script) and nosniff.
    let text = std::str::from_utf8(b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b)).ok()?;
    let lower = text.to_ascii_lowercase();
    (lower.trim_start().starts_with('<') && lower.contains("<svg")).then_some("image/svg+xml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_and_values_are_escaped() {
        for (name, _) in TEMPLATES {
            let html = Page::new("hallpass", "T")
                .set("login", "<script>alert(1)</script>")
                .set("return_to", "/x?a=\"b\"")
                .set("message", "<b>m</b>")
                .render(name)
                .unwrap();
            assert!(!html.contains("<script"), "{name}: {html}");
            assert!(!html.contains("style="), "{name}: no inline style");
        }
        let html = Page::new("hallpass", "Sign in")
            .set("login", "<script>alert(1)</script>")
            .render("signin.html")
            .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("/assets/logo"), "no logo unless set");
        let html = Page::new(
            Brand {
                product: "Acme \"SSO\"",
                logo: true,
            },
            "Sign in",
        )
        .render("signin.html")
        .unwrap();
        assert!(
            html.contains(r#"<img class="logo" src="/assets/logo" alt="Acme &quot;SSO&quot;">"#),
            "{html}"
        );
    }

    #[test]
    fn a_logo_is_known_by_its_bytes_and_refused_when_big_or_not_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        for (name, bytes, want) in [
            ("a.png", &b"\x89PNG\r\n\x1a\n...."[..], "image/png"),
            ("a.jpg", &[0xff, 0xd8, 0xff, 0xe0, 0, 0][..], "image/jpeg"),
            ("a.webp", &b"RIFF\x10\0\0\0WEBPVP8 "[..], "image/webp"),
            (
                "a.svg",
                &b"\xef\xbb\xbf<?xml version=\"1.0\"?>\n<SVG xmlns=\"http://www.w3.org/2000/svg\"/>"[..],
                "image/svg+xml",
            ),
        ] {
            let logo = Logo::load(&put(name, bytes)).unwrap();
            assert_eq!(logo.content_type, want, "{name}");
            assert_eq!(logo.bytes, bytes);
        }
        let e = Logo::load(&put("a.gif", b"GIF89a...."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a PNG, SVG, JPEG or WebP image"), "{e}");
        let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
        big.resize(LOGO_MAX as usize + 1, 0);
        let e = Logo::load(&put("big.png", &big)).unwrap_err().to_string();
        assert!(e.contains("at most 256 KiB"), "{e}");
        let e = Logo::load(&dir.path().join("gone.png"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("web.logo") && e.contains("gone.png"), "{e}");
    }
}
