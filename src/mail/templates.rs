//! The text of each kind of mail: a subject, a text part and an HTML part,
//! rendered by minijinja.
//!
//! Why minijinja: the operator can override any template from a directory
//! read at start (`[mail] templates`), so templates are parsed at run time
//! (compile-time engines such as askama cannot do that); it escapes by
//! default in templates whose name ends in `.html`, so a value can never
//! add markup to the HTML part; and it reports a template that does not
//! parse with its name and line, which `serve` and `check-config` show.
//!
//! Every template sees `product`, `public_url`, `to` and the mail's values
//! (names as `Kind` documents them). A name no value is given for is an
//! error, never a blank (strict undefined). A template is checked when it
//! is loaded: it must parse, render with its kind's values, and, for a
//! subject, carry no code or link (subjects are stored in the clear and
//! listed).
//!
//! Override files: `KIND.subject`, `KIND.txt`, `KIND.html` for the kinds
//! of `Kind::ALL` (`magic_link.txt`, `mfa_reset.html`, ...); any subset,
//! the rest stay built in. Other names with those endings are refused (a
//! misspelt kind would otherwise be ignored silently).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::error::Error;

use super::{Kind, Mail};

/// A rendered mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    /// The HTML part (every built-in kind has one).
    pub html: Option<String>,
}

/// The templates in use: the built-ins, with any overrides on top.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

/// The three parts of a mail, as template name suffixes.
const PARTS: [&str; 3] = ["subject", "txt", "html"];

impl Templates {
    /// The built-in templates.
    pub fn builtin() -> Result<Templates, Error> {
        Templates::load(None)
    }

    /// The built-in templates, overridden by the files of `dir` when given.
    /// A file that cannot be read, does not parse, names a value its kind
    /// does not have, or puts a secret in a subject is refused, naming the
    /// file.
    pub fn load(dir: Option<&Path>) -> Result<Templates, Error> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // A text part ends with its newline, as written.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .map_err(|e| Error::Internal(format!("mail templates: {e}")))?;
        env.set_syntax(syntax);
        for kind in Kind::ALL {
            let (subject, text, html) = builtin(kind);
            let html = format!("{HTML_HEAD}{html}{HTML_FOOT}");
            for (part, source) in PARTS
                .into_iter()
                .zip([subject.to_string(), text.into(), html])
            {
                env.add_template_owned(format!("{}.{part}", kind.name()), source)
                    .map_err(|e| Error::Internal(format!("built-in mail template: {e}")))?;
            }
        }
        if let Some(dir) = dir {
            load_dir(&mut env, dir)?;
        }
        let t = Templates { env: Arc::new(env) };
        t.check(dir)?;
        Ok(t)
    }

    /// Renders every template with sample values: catches a name its kind
    /// has no value for, and a code or link in a subject.
    fn check(&self, dir: Option<&Path>) -> Result<(), Error> {
        const LINK: &str = "https://check.invalid/l?token=SAMPLETOKEN";
        const CODE: &str = "SAMPLECODE";
        let values = [
            ("link", LINK),
            ("code", CODE),
            ("minutes", "15"),
            ("part", "1 of 2"),
            ("account", "u-1"),
        ];
        let from = dir
            .map(|d| format!(" in {}", d.display()))
            .unwrap_or_default();
        for kind in Kind::ALL {
            let names = kind.values();
            let vals: Vec<(&str, &str)> = values
                .iter()
                .filter(|(k, _)| names.contains(k))
                .copied()
                .collect();
            let mail = Mail {
                kind,
                to: "someone@check.invalid",
                values: &vals,
            };
            let r = self
                .render(&mail, "hallpass", "https://check.invalid")
                .map_err(|e| match e {
                    Error::Internal(m) => Error::BadRequest(format!("mail templates{from}: {m}")),
                    other => other,
                })?;
            if r.subject.contains("SAMPLETOKEN") || r.subject.contains(CODE) {
                return Err(Error::BadRequest(format!(
                    "mail template {}.subject{from} shows a code or link: subjects are stored \
                     in the clear and listed, so they must not",
                    kind.name()
                )));
            }
        }
        Ok(())
    }

    /// Renders `mail`; a name without a value is an internal error (a
    /// template naming a value its kind does not have).
    pub fn render(&self, mail: &Mail, product: &str, public_url: &str) -> Result<Rendered, Error> {
        let mut ctx: BTreeMap<String, Value> = mail
            .values
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        ctx.insert("product".into(), Value::from(product));
        ctx.insert("public_url".into(), Value::from(public_url));
        ctx.insert("to".into(), Value::from(mail.to));
        let ctx = Value::from(ctx);
        let part = |p: &str| -> Result<String, Error> {
            let name = format!("{}.{p}", mail.kind.name());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| Error::Internal(format!("mail template {name}: {e}")))
        };
        // One line, whatever the template's line breaks.
        let subject = part("subject")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Rendered {
            subject,
            text: part("txt")?,
            html: Some(part("html")?),
        })
    }
}

fn load_dir(env: &mut Environment<'static>, dir: &Path) -> Result<(), Error> {
    let bad = |m: String| Error::BadRequest(m);
    let entries = std::fs::read_dir(dir)
        .map_err(|e| bad(format!("mail templates {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| bad(format!("mail templates {}: {e}", dir.display())))?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some((stem, part)) = file.rsplit_once('.') else {
            continue;
        };
        if !PARTS.contains(&part) {
            continue;
        }
        if !Kind::ALL.iter().any(|k| k.name() == stem) {
            let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            return Err(bad(format!(
                "mail template {}: no kind of mail is called {stem:?} (known: {})",
                entry.path().display(),
                known.join(", ")
            )));
        }
        let source = std::fs::read_to_string(entry.path())
            .map_err(|e| bad(format!("mail template {}: {e}", entry.path().display())))?;
        env.add_template_owned(file.to_string(), source)
            .map_err(|e| bad(format!("mail template {}: {e}", entry.path().display())))?;
    }
    Ok(())
}

const HTML_HEAD: &str =
    "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>{{ product }}</title></head>\n\
<body style=\"font-family: sans-serif; line-height: 1.5; color: #222; max-width: 36em;\">\n";
const HTML_FOOT: &str = "<p style=\"color: #666; font-size: 0.9em;\">{{ product }} at \
<a href=\"{{ public_url }}\">{{ public_url }}</a></p>\n</body>\n</html>\n";

/// Subject, text and HTML body of a built-in template.
fn builtin(kind: Kind) -> (&'static str, &'static str, &'static str) {
    match kind {
        Kind::MagicLink => (
            "Your sign-in link for {{ product }}",
            "Use this link to sign in to {{ product }}:\n\n{{ link }}\n\n\
             It works once, within {{ minutes }} minutes. If you did not ask for it, ignore this message.\n\n\
             {{ product }} at {{ public_url }}\n",
            "<p>Use this link to sign in to {{ product }}:</p>\n\
             <p><a href=\"{{ link }}\">Sign in</a></p>\n\
             <p>It works once, within {{ minutes }} minutes. If you did not ask for it, ignore this message.</p>\n",
        ),
        Kind::SignInCode => (
            "Your sign-in code for {{ product }}",
            "Your sign-in code is: {{ code }}\n\n\
             It works once, within {{ minutes }} minutes. If you did not ask for it, ignore this message.\n\n\
             {{ product }} at {{ public_url }}\n",
            "<p>Your sign-in code is:</p>\n\
             <p style=\"font-size: 1.6em; letter-spacing: 0.2em;\"><strong>{{ code }}</strong></p>\n\
             <p>It works once, within {{ minutes }} minutes. If you did not ask for it, ignore this message.</p>\n",
        ),
        Kind::PasswordReset => (
            "Reset your {{ product }} password",
            "Someone asked to reset the password of your {{ product }} account. To choose a new one, open:\n\n\
             {{ link }}\n\n\
             The link works once, within {{ minutes }} minutes. If this was not you, ignore this message: \
             your password stays as it is.\n\n\
             {{ product }} at {{ public_url }}\n",
            "<p>Someone asked to reset the password of your {{ product }} account.</p>\n\
             <p><a href=\"{{ link }}\">Choose a new password</a></p>\n\
             <p>The link works once, within {{ minutes }} minutes. If this was not you, ignore this message: \
             your password stays as it is.</p>\n",
        ),
        Kind::SignUp => (
            "Finish signing up for {{ product }}",
            "To create your {{ product }} account, open:\n\n{{ link }}\n\n\
             The link works once, within {{ minutes }} minutes. If you did not ask for it, ignore this message.\n\n\
             {{ product }} at {{ public_url }}\n",
            "<p>To create your {{ product }} account, open this link:</p>\n\
             <p><a href=\"{{ link }}\">Create my account</a></p>\n\
             <p>The link works once, within {{ minutes }} minutes. If you did not ask for it, ignore this message.</p>\n",
        ),
        Kind::VerifyEmail => (
            "Confirm your address for {{ product }}",
            "To confirm this address for your {{ product }} account, open:\n\n{{ link }}\n\n\
             The link works once, within {{ minutes }} minutes.\n\n\
             {{ product }} at {{ public_url }}\n",
            "<p>To confirm this address for your {{ product }} account, open this link:</p>\n\
             <p><a href=\"{{ link }}\">Confirm my address</a></p>\n\
             <p>The link works once, within {{ minutes }} minutes.</p>\n",
        ),
        Kind::AccountExists => (
            "You already have a {{ product }} account",
            "Someone tried to sign up for {{ product }} with this address, which already has an account. \
             If it was you, sign in instead, or reset your password if you have forgotten it. \
             If it was not you, ignore this message.\n\n\
             {{ product }} at {{ public_url }}\n",
            "<p>Someone tried to sign up for {{ product }} with this address, which already has an account.</p>\n\
             <p>If it was you, <a href=\"{{ public_url }}\">sign in</a> instead, or reset your password if you \
             have forgotten it. If it was not you, ignore this message.</p>\n",
        ),
        Kind::MfaReset => (
            "Your two-factor reset code ({{ part }})",
            "Someone asked to turn off two-factor authentication for the {{ product }} account {{ account }}.\n\n\
             Code {{ part }}: {{ code }}\n\n\
             The other code went to the account's other address. Both are needed, within 24 hours.\n\
             If this was not you, ignore this message.\n\n\
             {{ product }} at {{ public_url }}\n",
            "<p>Someone asked to turn off two-factor authentication for the {{ product }} account {{ account }}.</p>\n\
             <p>Code {{ part }}: <strong>{{ code }}</strong></p>\n\
             <p>The other code went to the account's other address. Both are needed, within 24 hours. \
             If this was not you, ignore this message.</p>\n",
        ),
        Kind::Test => (
            "A test message from {{ product }}",
            "This message was sent by `hallpass mail test` to check the mail command of {{ product }} \
             at {{ public_url }}. It needs no answer.\n",
            "<p>This message was sent by <code>hallpass mail test</code> to check the mail command of \
             {{ product }}. It needs no answer.</p>\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: [(&str, &str); 5] = [
        ("link", "https://auth.example/x?token=t&a=<b>"),
        ("code", "123456"),
        ("minutes", "15"),
        ("part", "1 of 2"),
        ("account", "u-1"),
    ];

    fn mail(kind: Kind) -> Mail<'static> {
        Mail {
            kind,
            to: "a@example.com",
            values: &VALUES,
        }
    }

    #[test]
    fn every_builtin_template_fills_with_its_kinds_values() {
        let t = Templates::builtin().unwrap();
        for kind in Kind::ALL {
            let r = t
                .render(&mail(kind), "Acme Login", "https://auth.example")
                .unwrap();
            assert!(!r.subject.contains("token=t") && !r.subject.contains("123456"));
            assert!(r.text.contains("https://auth.example"), "{kind:?}");
            let html = r.html.unwrap();
            // Escaped as HTML (minijinja writes `/` as `&#x2f;`).
            assert!(html.contains("auth.example"), "{kind:?}");
            assert!(
                r.text.contains("Acme Login") || r.subject.contains("Acme Login"),
                "{kind:?}"
            );
            assert!(!r.text.contains("{{"), "{kind:?}: {}", r.text);
        }
    }

    #[test]
    fn values_are_escaped_in_the_html_part_and_not_in_the_text() {
        let r = Templates::builtin()
            .unwrap()
            .render(&mail(Kind::MagicLink), "A&B", "https://auth.example")
            .unwrap();
        assert!(r.text.contains("token=t&a=<b>"));
        let html = r.html.unwrap();
        assert!(html.contains("token=t&amp;a=&lt;b&gt;"), "{html}");
        assert!(html.contains("A&amp;B") && !html.contains("<b>"));
    }

    #[test]
    fn a_missing_value_is_an_error_not_a_blank() {
        let r = Templates::builtin().unwrap().render(
            &Mail {
                kind: Kind::SignInCode,
                to: "a@example.com",
                values: &[("minutes", "10")],
            },
            "hallpass",
            "https://auth.example",
        );
        assert!(matches!(r, Err(Error::Internal(_))));
    }

    #[test]
    fn files_in_the_directory_override_some_parts_and_the_rest_stay_built_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sign_in_code.txt"),
            "{{ product }} code: {{ code }}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not a template").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t
            .render(&mail(Kind::SignInCode), "Acme", "https://a.example")
            .unwrap();
        assert_eq!(r.text, "Acme code: 123456\n");
        assert_eq!(r.subject, "Your sign-in code for Acme");
        assert!(r.html.unwrap().contains("123456"));
    }

    #[test]
    fn a_bad_override_is_refused_with_its_file_name() {
        let cases = [
            ("magic_link.txt", "{{ link "),              // does not parse
            ("magic_link.html", "{{ code }}"),           // not a value of its kind
            ("sign_in_code.subject", "Code {{ code }}"), // a secret in a subject
            ("magik_link.txt", "{{ link }}"),            // no such kind
        ];
        for (file, source) in cases {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(file), source).unwrap();
            let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
            let name = file.split('.').next().unwrap();
            assert!(err.contains(name), "{file}: {err}");
        }
        assert!(Templates::load(Some(Path::new("/nonexistent/dir"))).is_err());
    }
}
