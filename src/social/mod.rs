//! Social sign-in: hallpass as an OAuth 2.0 / OpenID Connect client of the
//! upstream providers configured in `[providers.NAME]`.
//!
//! `flow.rs` is the sign-in itself (start, callback, linking); `jose.rs`
//! verifies id_tokens and signs Apple's client secret; `fetch.rs` is the
//! HTTP client (ureq, TLS verified, time-limited); `kinds.rs` holds each
//! provider kind's defaults and routes; `identities.rs` the links between
//! a provider's subject and a user. Nothing here knows our HTTP server.
//!
//! This module holds what the flow keeps between requests: per provider,
//! its HTTP agent, the discovery document and the JWKS (cached), and a cap
//! on the sign-ins waiting on providers at once, so that a slow provider
//! holds at most half of the worker pool.

pub mod fetch;
mod flow;
pub mod identities;
pub mod jose;
pub mod kinds;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Provider;

pub use flow::{
    callback, cookie_name, end_upstream, start, start_pages, Answer, Callback, PagesEnd, Redirect,
    Start,
};

/// How long a discovery document is trusted before it is fetched again.
const DISCOVERY_TTL: i64 = 3600;
/// How long a JWKS is used before it is fetched again anyway.
const JWKS_TTL: i64 = 3600;
/// An unknown `kid` refetches the JWKS at most this often.
const JWKS_REFRESH_MIN: i64 = 60;
/// A failed discovery is not tried again for this long.
const DISCOVERY_RETRY: i64 = 30;

/// The providers' runtime state, shared by the workers.
pub struct Social {
    states: HashMap<String, Arc<State>>,
    /// Sign-ins talking to a provider right now, and the most allowed.
    busy: AtomicUsize,
    max_busy: usize,
}

/// One provider's agent and caches. The locks guard only the cached
/// values, never a fetch: a slow provider holds each waiting worker for
/// its own calls alone.
struct State {
    upstream: fetch::Upstream,
    /// The discovery document, when it was fetched.
    discovery: Mutex<Option<(fetch::Discovery, i64)>>,
    /// When discovery last failed: for DISCOVERY_RETRY seconds sign-ins
    /// fail at once instead of each waiting out the timeout.
    discovery_failed: Mutex<Option<(fetch::FetchError, i64)>>,
    /// The JWKS, when it was fetched.
    jwks: Mutex<Option<(Arc<jose::Jwks>, i64)>>,
}

impl Social {
    /// State for `providers`; `workers` bounds the upstream calls at once
    /// (half the pool, at least one).
    pub fn new(providers: &[Provider], workers: usize) -> Social {
        let states = providers
            .iter()
            .map(|p| {
                let state = State {
                    upstream: fetch::Upstream::new(Duration::from_secs(p.timeout_secs)),
                    discovery: Mutex::new(None),
                    discovery_failed: Mutex::new(None),
                    jwks: Mutex::new(None),
                };
                (p.name.clone(), Arc::new(state))
            })
            .collect();
        Social {
            states,
            busy: AtomicUsize::new(0),
            max_busy: (workers / 2).max(1),
        }
    }

    fn state(&self, name: &str) -> Option<Arc<State>> {
        self.states.get(name).cloned()
    }

    /// A slot for talking to a provider, or None when half the workers are
    /// already waiting on providers.
    fn slot(&self) -> Option<Slot<'_>> {
        let prev = self.busy.fetch_add(1, Ordering::AcqRel);
        if prev >= self.max_busy {
            self.busy.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(&self.busy))
    }
}

/// A taken upstream slot; dropping it gives it back.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl State {
    /// The discovery document of `issuer`, cached for an hour.
    fn discovery(&self, issuer: &str, now: i64) -> Result<fetch::Discovery, fetch::FetchError> {
        if let Some((d, at)) = lock(&self.discovery).as_ref() {
            if now - at < DISCOVERY_TTL {
                return Ok(d.clone());
            }
        }
        if let Some((e, at)) = lock(&self.discovery_failed).as_ref() {
            if now - at < DISCOVERY_RETRY {
                return Err(e.clone());
            }
        }
        match fetch::discover(&self.upstream, issuer) {
            Ok(d) => {
                *lock(&self.discovery) = Some((d.clone(), now));
                *lock(&self.discovery_failed) = None;
                Ok(d)
            }
            Err(e) => {
                *lock(&self.discovery_failed) = Some((e.clone(), now));
                Err(e)
            }
        }
    }

    /// The JWKS at `url`: the cached one unless it is old, or `kid` is not
    /// in it and the last fetch is over a minute ago.
    fn jwks(
        &self,
        url: &str,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Arc<jose::Jwks>, fetch::FetchError> {
        if let Some((set, at)) = lock(&self.jwks).as_ref() {
            let fresh = now - at < JWKS_TTL;
            let knows = kid.is_none_or(|k| set.has_kid(k));
            if (fresh && knows) || now - at < JWKS_REFRESH_MIN {
                return Ok(set.clone());
            }
        }
        let doc = self.upstream.get_json(url, None)?;
        let set = Arc::new(jose::Jwks::parse(&doc).map_err(fetch::FetchError::Malformed)?);
        *lock(&self.jwks) = Some((set.clone(), now));
        Ok(set)
    }
}

/// A cache lock; the values are replaced whole, so a poisoned one is used
/// as it is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Deletes started sign-ins that were never finished.
pub fn sweep(tx: &rusqlite::Connection, now: i64) -> Result<usize, crate::error::Error> {
    Ok(tx.execute("DELETE FROM oauth_states WHERE expires_at <= ?1", [now])?)
}
