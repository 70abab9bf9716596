//! The browser session as the provider uses it: who is signed in at this
//! browser, how and since when. The sign-in pages' own (`web::session`):
//! the `web_sessions` table, the cookie, idle and absolute lifetimes.

pub use crate::web::session::{cookie_name, current, end, BrowserSession, COOKIE};
