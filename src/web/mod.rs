//! The sign-in pages: server-rendered HTML for people at a browser, on the
//! same core as the APIs (one user, one soft lock, one second-factor rule,
//! one activity log).
//!
//! * `session.rs`: browser sessions (the `web_sessions` table), their
//!   cookie, the CSRF tokens of the forms. What the OpenID Provider reads.
//! * `signin.rs`: the flows behind the forms: password, second factor,
//!   sign-out, each through `auth`/`factors` and logged with method "web".
//! * `account.rs`: the account page's flows: password change, two-factor
//!   authentication on and off, new recovery codes, recent sign-ins,
//!   signing out other sessions.
//! * `emailed.rs`: the emailed flows (sign-in link, sign-in code,
//!   forgot/reset password, sign-up) over emailed.rs and signup.rs.
//! * `pages.rs`: the templates (`templates/*.html`, minijinja with HTML
//!   escaping, built into the binary) and the stylesheet.
//!
//! The routes are in `api/web/` (one file per group of pages), as thin as
//! the other dialects'.

pub mod account;
pub mod emailed;
pub mod pages;
pub mod session;
pub mod signin;
