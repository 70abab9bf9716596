//! The text of each kind of mail. Placeholders are `{name}`, filled from
//! the mail's values plus `{product}` and `{public_url}`; the first line of
//! a template is its subject. A subject never carries a link or a code
//! (subjects are stored in the clear and listed).

use crate::error::Error;

use super::{Kind, Mail};

/// A rendered mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    /// The HTML part, when the template has one.
    pub html: Option<String>,
}

/// The templates in use.
#[derive(Debug, Clone, Default)]
pub struct Templates {}

impl Templates {
    /// The built-in templates.
    pub fn builtin() -> Templates {
        Templates {}
    }

    /// Renders `mail`; a placeholder without a value is an internal error
    /// (a template that names a value its kind does not have).
    pub fn render(&self, mail: &Mail, product: &str, public_url: &str) -> Result<Rendered, Error> {
        let source = builtin(mail.kind);
        let fill = |text: &str| -> Result<String, Error> {
            let mut out = String::with_capacity(text.len() + 64);
            let mut rest = text;
            while let Some(start) = rest.find('{') {
                out.push_str(&rest[..start]);
                let after = &rest[start + 1..];
                let Some(end) = after.find('}') else {
                    out.push_str(&rest[start..]);
                    rest = "";
                    break;
                };
                let name = &after[..end];
                let value = match name {
                    "product" => Some(product),
                    "public_url" => Some(public_url),
                    _ => mail
                        .values
                        .iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| *v),
                };
                let value = value.ok_or_else(|| {
                    Error::Internal(format!(
                        "mail template {} names {{{name}}}, which it has no value for",
                        mail.kind.name()
                    ))
                })?;
                out.push_str(value);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Ok(out)
        };
        let (subject, text) = source.split_once('\n').unwrap_or((source, ""));
        Ok(Rendered {
            subject: fill(subject)?,
            text: fill(text.trim_start_matches('\n'))?,
            html: None,
        })
    }
}

fn builtin(kind: Kind) -> &'static str {
    match kind {
        Kind::MagicLink => "Your sign-in link for {product}\n\n\
            Use this link to sign in to {product}:\n\n{link}\n\n\
            It works once, within {minutes} minutes. If you did not ask for it, ignore this message.\n\n\
            {product} at {public_url}\n",
        Kind::SignInCode => "Your sign-in code for {product}\n\n\
            Your sign-in code is: {code}\n\n\
            It works once, within {minutes} minutes. If you did not ask for it, ignore this message.\n\n\
            {product} at {public_url}\n",
        Kind::PasswordReset => "Reset your {product} password\n\n\
            Someone asked to reset the password of your {product} account. To choose a new one, open:\n\n\
            {link}\n\n\
            The link works once, within {minutes} minutes. If this was not you, ignore this message: \
            your password stays as it is.\n\n\
            {product} at {public_url}\n",
        Kind::SignUp => "Finish signing up for {product}\n\n\
            To create your {product} account, open:\n\n{link}\n\n\
            The link works once, within {minutes} minutes. If you did not ask for it, ignore this message.\n\n\
            {product} at {public_url}\n",
        Kind::VerifyEmail => "Confirm your address for {product}\n\n\
            To confirm this address for your {product} account, open:\n\n{link}\n\n\
            The link works once, within {minutes} minutes.\n\n\
            {product} at {public_url}\n",
        Kind::AccountExists => "You already have a {product} account\n\n\
            Someone tried to sign up for {product} with this address, which already has an account. \
            If it was you, sign in instead, or reset your password if you have forgotten it. \
            If it was not you, ignore this message.\n\n\
            {product} at {public_url}\n",
        Kind::MfaReset => "Your two-factor reset code ({part})\n\n\
            Someone asked to turn off two-factor authentication for the {product} account {account}.\n\n\
            Code {part}: {code}\n\n\
            The other code went to the account's other address. Both are needed, within 24 hours.\n\
            If this was not you, ignore this message.\n\n\
            {product} at {public_url}\n",
        Kind::Test => "A test message from {product}\n\n\
            This message was sent by `hallpass mail test` to check the mail command of {product} \
            at {public_url}. It needs no answer.\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_template_fills_with_its_kinds_values() {
        let values = [
            ("link", "https://auth.example/x?token=t"),
            ("code", "123456"),
            ("minutes", "15"),
            ("part", "1 of 2"),
            ("account", "u-1"),
        ];
        for kind in Kind::ALL {
            let r = Templates::builtin()
                .render(
                    &Mail {
                        kind,
                        to: "a@example.com",
                        values: &values,
                    },
                    "hallpass",
                    "https://auth.example",
                )
                .unwrap();
            assert!(!r.subject.contains("token=t") && !r.subject.contains("123456"));
            assert!(r.text.contains("https://auth.example"), "{kind:?}");
            assert!(!r.text.contains('{'), "{kind:?}: {}", r.text);
        }
    }

    #[test]
    fn a_missing_value_is_an_error_not_a_blank() {
        let r = Templates::builtin().render(
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
}
