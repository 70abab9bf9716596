//! Outgoing mail: what a capability calls to mail someone, and the parts
//! behind it.
//!
//! * `queue` renders a mail from its template and puts it in the outbox,
//!   inside the caller's transaction (the one that creates the code or
//!   link the mail carries): either both exist or neither does.
//! * `templates.rs`: the subject, text and HTML of each kind of mail
//!   (minijinja; built in, overridable from a directory), filled with the
//!   mail's values; the product name and public URL are in every one.
//! * `outbox.rs`: the `mail_outbox` table (bodies sealed at rest, opened
//!   only for delivery, erased once delivered or given up on), claims and
//!   the retry schedule.
//! * `worker.rs`: the `mail` thread that delivers the outbox.
//! * `message.rs`: the RFC 5322 / MIME message the command reads.
//! * `command.rs`: running the configured command: argv without a shell,
//!   the message on stdin, a timeout after which it is killed.
//!
//! Addresses and values reach a message header only through `queue`, which
//! refuses a CR or LF in any of them (no header injection). Requests never
//! wait on the mailer: `queue` writes a row and wakes the worker.

pub mod command;
pub mod message;
pub mod outbox;
pub mod templates;
pub mod worker;

use std::sync::Arc;

use rusqlite::Connection;

use crate::crypto::MasterKey;
use crate::error::Error;

pub use templates::Templates;
pub use worker::Signal;

/// What a mail is for. Its name is stored in the outbox and shown by
/// `hallpass mail list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sign-in link (yat, lagrello). Values: `link`, `minutes`.
    MagicLink,
    /// A 6-digit sign-in code (native). Values: `code`, `minutes`.
    SignInCode,
    /// A password-reset link. Values: `link`, `minutes`.
    PasswordReset,
    /// A sign-up link. Values: `link`, `minutes`.
    SignUp,
    /// A link that confirms the address. Values: `link`, `minutes`.
    VerifyEmail,
    /// Someone tried to sign up with an address that has an account.
    /// Values: none.
    AccountExists,
    /// One of the two MFA reset codes. Values: `code`, `part` ("1 of 2"),
    /// `account` (the user id on the main address, the main address on
    /// the recovery one).
    MfaReset,
    /// `hallpass mail test`. Values: none.
    Test,
}

impl Kind {
    /// Every kind, in the order templates are listed.
    pub const ALL: [Kind; 8] = [
        Kind::MagicLink,
        Kind::SignInCode,
        Kind::PasswordReset,
        Kind::SignUp,
        Kind::VerifyEmail,
        Kind::AccountExists,
        Kind::MfaReset,
        Kind::Test,
    ];

    /// The names of the values its templates are given (beside
    /// `product`, `public_url` and `to`, which every template has).
    pub fn values(self) -> &'static [&'static str] {
        match self {
            Kind::MagicLink | Kind::PasswordReset | Kind::SignUp | Kind::VerifyEmail => {
                &["link", "minutes"]
            }
            Kind::SignInCode => &["code", "minutes"],
            Kind::MfaReset => &["code", "part", "account"],
            Kind::AccountExists | Kind::Test => &[],
        }
    }

    /// The stored name (also the template file's base name).
    pub fn name(self) -> &'static str {
        match self {
            Kind::MagicLink => "magic_link",
            Kind::SignInCode => "sign_in_code",
            Kind::PasswordReset => "password_reset",
            Kind::SignUp => "sign_up",
            Kind::VerifyEmail => "verify_email",
            Kind::AccountExists => "account_exists",
            Kind::MfaReset => "mfa_reset",
            Kind::Test => "test",
        }
    }
}

/// One mail to queue: its kind, its recipient, and the values its template
/// is filled with (names as `Kind` documents them).
#[derive(Debug, Clone, Copy)]
pub struct Mail<'a> {
    pub kind: Kind,
    pub to: &'a str,
    pub values: &'a [(&'a str, &'a str)],
}

/// What every mail needs from the server.
#[derive(Clone)]
pub struct Outgoing {
    /// Seals bodies at rest.
    pub master: MasterKey,
    /// The product name in every mail ("hallpass" unless configured).
    pub product: String,
    /// The public base URL, in every mail.
    pub public_url: String,
    /// The templates.
    pub templates: Templates,
    /// Wakes the mail worker when a mail is queued.
    pub signal: Arc<Signal>,
}

/// Renders `mail` and queues it in the caller's transaction; returns the
/// outbox id. A CR or LF in the address or any value is refused (422):
/// nothing a user typed can start a header of its own.
pub fn queue(tx: &Connection, out: &Outgoing, mail: &Mail, now: i64) -> Result<String, Error> {
    if has_line_break(mail.to) {
        return Err(Error::invalid(
            "email",
            "invalid",
            "An email address cannot contain a line break",
        ));
    }
    if let Some((name, _)) = mail.values.iter().find(|(_, v)| has_line_break(v)) {
        return Err(Error::invalid(
            name,
            "invalid",
            format!("{name} cannot contain a line break"),
        ));
    }
    let rendered = out.templates.render(mail, &out.product, &out.public_url)?;
    let id = outbox::enqueue(
        tx,
        &out.master,
        &outbox::Message {
            kind: mail.kind.name(),
            to: mail.to,
            subject: &rendered.subject,
            text: &rendered.text,
            html: rendered.html.as_deref(),
        },
        now,
    )?;
    // The worker claims rows through the same writer lock this
    // transaction holds, so it sees the row once it is committed.
    out.signal.notify();
    Ok(id)
}

fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}
