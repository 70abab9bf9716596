//! The pages' templates and stylesheet, built into the binary.
//!
//! minijinja, as for mail (mail/templates.rs): it is already a dependency,
//! and it escapes every value in templates whose name ends in `.html`, so
//! a login name or a return_to typed by anyone can never add markup. No
//! HTML is built with format!. The pages extend one layout (`base.html`);
//! none has a script or an inline style (the CSP forbids both).
//!
//! Every page sees `product` (the `[mail] product` setting: one name for
//! the product in mail and on the pages) and `title`.

use std::collections::BTreeMap;
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

/// The values a page is rendered with.
#[derive(Debug, Default)]
pub struct Page(BTreeMap<&'static str, Value>);

impl Page {
    /// A page titled `title`, for `product`.
    pub fn new(product: &str, title: &str) -> Page {
        Page::default().set("product", product).set("title", title)
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
    }
}
