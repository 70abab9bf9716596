//! A social sign-in, from our client's start to its `?code=`.
//!
//! 1. `start`: checks our client and where it wants the answer, writes an
//!    `oauth_states` row (single use, 10 minutes) and sends the browser to
//!    the provider with our `state`, a `nonce` (OpenID Connect) and a PKCE
//!    challenge. The PKCE verifier and the nonce are derived from the state
//!    under the master key, so the row holds neither. A cookie binds the
//!    sign-in to the browser that started it (login CSRF, RFC 9700 §4.7).
//! 2. `callback`: takes the row (once), exchanges the provider's code,
//!    learns who signed in (a verified id_token, or the provider's user
//!    endpoint), links or creates the user, and issues our auth code in one
//!    transaction with the login_activity row. A TOTP user's code is owed
//!    its second factor, as after a password.
//!
//! Every failure once the state is known goes back to the client's
//! registered redirect URL as `?error=&error_description=` (RFC 6749
//! §4.1.2.1 codes); before that (no or unknown state) it is an error of
//! ours, never a redirect.

use rusqlite::{params, OptionalExtension};
use serde_json::{Map, Value};

use super::fetch::{FetchError, Upstream};
use super::{identities, jose, kinds, State};
use crate::accounts::{self, Client, NewUser, User};
use crate::app::Ctx;
use crate::auth::{self, Peer};
use crate::config::{Provider, ProviderKind, Signup};
use crate::crypto::{b64url, ct_eq, hmac_sha256, random_token, sha256, token_hash};
use crate::error::Error;
use crate::factors;
use crate::limits::Family;
use crate::sessions;
use crate::url::percent_encode;
use crate::web::{
    self,
    signin::{FirstStep, Step},
};

/// How long a started sign-in may take.
const STATE_TTL: i64 = 600;
/// Clock skew allowed on id_token times.
const LEEWAY: i64 = 60;
/// Started sign-ins waiting for their callbacks, at most.
const MAX_PENDING: i64 = 10_000;
/// The longest app `state` we carry.
const MAX_APP_STATE: usize = 512;

/// What our client sends to start a sign-in.
#[derive(Debug, Default)]
pub struct Start<'a> {
    pub client_id: &'a str,
    pub client_secret: Option<&'a str>,
    /// A POST must show the client's secret when it has one; a GET (a
    /// browser following a link) cannot hold one.
    pub secret_required: bool,
    pub redirect_uri: Option<&'a str>,
    pub app_state: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub code_challenge_method: Option<&'a str>,
}

/// What the provider sends back to the callback.
#[derive(Debug, Default)]
pub struct Callback<'a> {
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    pub error: Option<&'a str>,
    /// The value of the start's binding cookie, if the browser sent it.
    pub binding: Option<&'a str>,
    /// Apple's `user` form field (the name, on the first sign-in only).
    pub apple_user: Option<&'a str>,
    /// The browser's session cookie of the pages, if any: a sign-in
    /// started at the sign-in page ends it when the new session starts.
    pub session: Option<&'a str>,
}

/// A redirect and the cookie to set with it.
#[derive(Debug, PartialEq)]
pub struct Redirect {
    pub location: String,
    /// A whole `Set-Cookie` value.
    pub cookie: String,
}

/// The row `start` writes.
struct Pending {
    target: Target,
    binding_hash: String,
    expires_at: i64,
}

/// Where a sign-in's answer goes.
enum Target {
    /// One of our clients: our code to its registered redirect URL.
    App(AppTarget),
    /// The sign-in page: a browser session, then this path on our server.
    Pages { return_to: String },
}

struct AppTarget {
    client_id: String,
    redirect_url: String,
    app_state: Option<String>,
    code_challenge: Option<String>,
}

/// How a sign-in started at the sign-in page ended, for the pages' routes
/// to answer (`Step`: a session, or the second factor owed).
#[derive(Debug)]
pub struct PagesEnd {
    /// The path on our server the browser was going to (checked at the
    /// start, before it was stored).
    pub return_to: String,
    /// The provider's configured name.
    pub provider: String,
    /// Err: why not, as the activity row's outcome (`provider_refused`,
    /// `signup_closed`, `link_refused`, ...).
    pub step: Result<Step, &'static str>,
    /// A whole `Set-Cookie` value clearing the binding cookie, or empty.
    pub cookie: String,
}

/// What a start or a callback answers.
#[derive(Debug)]
pub enum Answer {
    /// To the provider (a start), or to our client's redirect URL.
    Redirect(Redirect),
    /// A sign-in of the sign-in page ended (or could not begin).
    Pages(PagesEnd),
}

/// Starts a sign-in with `provider`, whose callback is `callback_path`.
pub fn start(
    cx: &mut Ctx,
    provider: &Provider,
    callback_path: &str,
    s: &Start,
    peer: &Peer,
) -> Result<Redirect, Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Token, &peer.ip, now)?;
    let client = if s.secret_required || s.client_secret.is_some_and(|x| !x.is_empty()) {
        accounts::authenticate_client(&cx.conn, s.client_id, s.client_secret)?
    } else {
        accounts::get_client(&cx.conn, s.client_id)?.ok_or(Error::ClientInvalid)?
    };
    // A consent client is the provider's: no sign-in here without the
    // person's consent (oidc/consent.rs).
    crate::oidc::consent::provider_only(&client)?;
    let redirect_url = registered(&client, s.redirect_uri)?;
    if let Some(st) = s.app_state {
        if st.len() > MAX_APP_STATE || st.chars().any(char::is_control) {
            return Err(Error::invalid(
                "state",
                "invalid",
                format!("state must be at most {MAX_APP_STATE} printable characters"),
            ));
        }
    }
    if let Some(c) = s.code_challenge {
        sessions::check_challenge(c, s.code_challenge_method)?;
    }
    let pending = Pending {
        target: Target::App(AppTarget {
            client_id: client.client_id.clone(),
            redirect_url,
            app_state: s.app_state.map(str::to_string),
            code_challenge: s.code_challenge.map(str::to_string),
        }),
        binding_hash: String::new(),
        expires_at: now + STATE_TTL,
    };
    match begin(cx, provider, callback_path, pending, peer)? {
        Answer::Redirect(r) => Ok(r),
        Answer::Pages(_) => Err(Error::Internal(
            "an app's sign-in ended at the pages".into(),
        )),
    }
}

/// Starts a sign-in with `provider` from the sign-in page (a form the
/// caller has checked): the same state row, binding cookie, PKCE and
/// nonce as an app's, answered at the same callback, where it ends in a
/// browser session and `return_to` (a path on this server, which the
/// caller has checked) instead of our code.
pub fn start_pages(
    cx: &mut Ctx,
    provider: &Provider,
    callback_path: &str,
    return_to: &str,
    peer: &Peer,
) -> Result<Answer, Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Token, &peer.ip, now)?;
    let pending = Pending {
        target: Target::Pages {
            return_to: return_to.to_string(),
        },
        binding_hash: String::new(),
        expires_at: now + STATE_TTL,
    };
    begin(cx, provider, callback_path, pending, peer)
}

/// The common start: the provider's endpoints, the state row, and the
/// redirect upstream with its binding cookie.
fn begin(
    cx: &mut Ctx,
    provider: &Provider,
    callback_path: &str,
    pending: Pending,
    peer: &Peer,
) -> Result<Answer, Error> {
    let now = cx.now();
    let state = cx.app.social.state(&provider.name).ok_or_else(|| {
        Error::Internal(format!("provider {} has no runtime state", provider.name))
    })?;
    let authorize = match endpoints(cx, &state, provider, now) {
        Ok(e) => e.authorize,
        Err(f) => {
            if let Some(d) = &f.detail {
                cx.app.log.line(format!("social: {}: {d}", provider.name));
            }
            cx.app.metrics.login(f.outcome);
            auth::record_refusal(cx, None, &provider.name, f.outcome, peer)?;
            return Ok(failure_answer(&pending, provider, &f, String::new()));
        }
    };
    let our_state = random_token()?;
    let binding = random_token()?;
    let (client_id, redirect_url, app_state, code_challenge, return_to) = match &pending.target {
        Target::App(a) => (
            Some(&a.client_id),
            Some(&a.redirect_url),
            a.app_state.as_ref(),
            a.code_challenge.as_ref(),
            None,
        ),
        Target::Pages { return_to } => (None, None, None, None, Some(return_to)),
    };
    cx.write(|tx| {
        // A flood of starts (each a row for 10 minutes) is capped.
        let live: i64 = tx.query_row(
            "SELECT count(*) FROM oauth_states WHERE expires_at > ?1",
            [now],
            |r| r.get(0),
        )?;
        if live >= MAX_PENDING {
            return Err(Error::RateLimited { retry_after: 60 });
        }
        tx.execute(
            "INSERT INTO oauth_states (state_hash, provider, client_id, redirect_url, app_state,
                                       code_challenge, binding_hash, created_at, expires_at,
                                       return_to)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                token_hash(&our_state),
                provider.name,
                client_id,
                redirect_url,
                app_state,
                code_challenge,
                token_hash(&binding),
                now,
                pending.expires_at,
                return_to
            ],
        )?;
        Ok(())
    })?;
    let mut query = vec![
        ("response_type", "code".to_string()),
        ("client_id", provider.client_id.clone()),
        ("redirect_uri", redirect_uri(cx, callback_path)),
        ("scope", provider.scopes.join(" ")),
        ("state", our_state.clone()),
    ];
    if provider.kind.is_oidc() {
        query.push(("nonce", derived(cx, "social-nonce", &our_state)));
    }
    if provider.pkce {
        let verifier = derived(cx, "social-pkce", &our_state);
        query.push(("code_challenge", b64url(&sha256(verifier.as_bytes()))));
        query.push(("code_challenge_method", "S256".to_string()));
    }
    if let Some(mode) = &provider.response_mode {
        query.push(("response_mode", mode.clone()));
    }
    let location = with_query(&authorize, &query);
    let cookie = binding_cookie(cx, provider, callback_path, &our_state, Some(&binding));
    Ok(Answer::Redirect(Redirect { location, cookie }))
}

/// The redirect URL our client asked for, if registered; else its first.
fn registered(client: &Client, asked: Option<&str>) -> Result<String, Error> {
    match asked.filter(|a| !a.is_empty()) {
        Some(a) if client.redirect_urls.iter().any(|u| u == a) => Ok(a.to_string()),
        Some(_) => Err(Error::invalid(
            "redirect_uri",
            "invalid",
            "redirect_uri is not one of the client's registered redirect URLs".to_string(),
        )),
        None => client.redirect_urls.first().cloned().ok_or_else(|| {
            Error::invalid(
                "redirect_uri",
                "required",
                "the client has no registered redirect URL".to_string(),
            )
        }),
    }
}

/// A secret derived from our state: the PKCE verifier or the nonce. 43
/// url-safe characters (RFC 7636 §4.1).
fn derived(cx: &Ctx, purpose: &str, state: &str) -> String {
    b64url(&hmac_sha256(
        &cx.app.master.derive(purpose),
        state.as_bytes(),
    ))
}

/// The redirect URI registered at the provider.
fn redirect_uri(cx: &Ctx, callback_path: &str) -> String {
    format!("{}{callback_path}", cx.app.public_url.trim_end_matches('/'))
}

/// The cookie that binds a sign-in to its browser, or (value None) the
/// header that clears it.
fn binding_cookie(
    cx: &Ctx,
    provider: &Provider,
    callback_path: &str,
    state: &str,
    value: Option<&str>,
) -> String {
    let https = cx.app.public_url.starts_with("https://");
    // A form_post callback is a cross-site POST: only SameSite=None
    // cookies ride on it, and browsers take those only when Secure.
    let same_site = if https && provider.response_mode.as_deref() == Some("form_post") {
        "None"
    } else {
        "Lax"
    };
    let name = cookie_name(state, https);
    let (value, age) = match value {
        Some(v) => (v, STATE_TTL),
        None => ("", 0),
    };
    // Over https the name is `__Host-`: only this host, over TLS, with
    // Path=/, can set it, so a sibling subdomain cannot plant one.
    if https {
        format!("{name}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite={same_site}; Secure")
    } else {
        format!(
            "{name}={value}; Path={callback_path}; Max-Age={age}; HttpOnly; SameSite={same_site}"
        )
    }
}

/// The binding cookie's name for a state: one cookie per sign-in, so two
/// tabs do not overwrite each other's; `__Host-` prefixed over https.
pub fn cookie_name(state: &str, https: bool) -> String {
    let short: String = state
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    let prefix = if https { "__Host-" } else { "" };
    format!("{prefix}hp_oauth_{short}")
}

/// Why a sign-in failed, as the client will read it.
#[derive(Debug)]
pub(crate) struct Failure {
    /// An RFC 6749 §4.1.2.1 error code.
    code: &'static str,
    description: String,
    /// The login_activity outcome.
    outcome: &'static str,
    /// What went wrong on our side, for the log only.
    detail: Option<String>,
}

fn fail(code: &'static str, outcome: &'static str, description: impl Into<String>) -> Failure {
    Failure {
        code,
        description: description.into(),
        outcome,
        detail: None,
    }
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Failure {
        let detail = Some(e.to_string());
        let f = match &e {
            FetchError::Unreachable(_) => fail(
                "temporarily_unavailable",
                "provider_unreachable",
                "The provider could not be reached, or did not answer in time",
            ),
            FetchError::Status(s, _) if *s >= 500 => fail(
                "temporarily_unavailable",
                "provider_error",
                "The provider failed",
            ),
            // Our credentials or set-up, not the user's choice.
            FetchError::Status(_, Some(body))
                if matches!(
                    body.get("error").and_then(Value::as_str),
                    Some("invalid_client" | "unauthorized_client" | "invalid_request")
                ) =>
            {
                fail(
                    "server_error",
                    "provider_misconfigured",
                    "The provider refused hallpass's credentials",
                )
            }
            FetchError::Status(..) => fail(
                "access_denied",
                "provider_refused",
                "The provider refused the sign-in",
            ),
            FetchError::Malformed(_) => fail(
                "server_error",
                "provider_error",
                "The provider's answer could not be read",
            ),
        };
        Failure { detail, ..f }
    }
}

/// A failure's answer: for an app, the 302 to its redirect URL with
/// `?error=`; for the pages, the page's own (`cookie`: the binding
/// cookie's clearing, or empty).
fn failure_answer(p: &Pending, provider: &Provider, f: &Failure, cookie: String) -> Answer {
    match &p.target {
        Target::App(a) => {
            let mut q = vec![
                ("error", f.code.to_string()),
                ("error_description", f.description.clone()),
            ];
            if let Some(s) = &a.app_state {
                q.push(("state", s.clone()));
            }
            Answer::Redirect(Redirect {
                location: with_query(&a.redirect_url, &q),
                cookie,
            })
        }
        Target::Pages { return_to } => Answer::Pages(PagesEnd {
            return_to: return_to.clone(),
            provider: provider.name.clone(),
            step: Err(f.outcome),
            cookie,
        }),
    }
}

/// `base` with `pairs` appended to its query.
fn with_query(base: &str, pairs: &[(&str, String)]) -> String {
    let mut out = base.to_string();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for (k, v) in pairs {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&percent_encode(v));
        sep = '&';
    }
    out
}

/// A provider's endpoints, explicit or discovered.
struct Endpoints {
    issuer: Option<String>,
    authorize: String,
    token: String,
    userinfo: Option<String>,
    jwks: Option<String>,
}

fn endpoints(cx: &Ctx, state: &State, p: &Provider, now: i64) -> Result<Endpoints, Failure> {
    let discovered = match &p.issuer {
        Some(issuer) if kinds::needs_discovery(p) => {
            let _slot = cx.app.social.slot().ok_or_else(busy)?;
            Some(state.discovery(issuer, now)?)
        }
        _ => None,
    };
    if let (Some(d), Some(configured)) = (&discovered, &p.issuer) {
        if !same_issuer(p.kind, configured, &d.issuer) {
            return Err(Failure {
                detail: Some(format!(
                    "the discovery document names issuer {:?}, not {configured:?}",
                    d.issuer
                )),
                ..fail(
                    "server_error",
                    "provider_misconfigured",
                    "The provider's discovery document is for another issuer",
                )
            });
        }
    }
    // An https issuer's document may not send us (and our client secret)
    // to plain http, loopback or not.
    if let (Some(d), Some(configured)) = (&discovered, &p.issuer) {
        let downgraded = [
            Some(&d.authorization_endpoint),
            Some(&d.token_endpoint),
            Some(&d.jwks_uri),
            d.userinfo_endpoint.as_ref(),
        ]
        .into_iter()
        .flatten()
        .any(|u| !u.starts_with("https://"));
        if configured.starts_with("https://") && downgraded {
            return Err(fail(
                "server_error",
                "provider_misconfigured",
                "The provider's discovery document names a plain-http endpoint",
            ));
        }
    }
    let pick = |own: &Option<String>, found: Option<&String>| own.clone().or(found.cloned());
    let d = discovered.as_ref();
    let authorize = pick(&p.authorize_url, d.map(|d| &d.authorization_endpoint));
    let token = pick(&p.token_url, d.map(|d| &d.token_endpoint));
    let (Some(authorize), Some(token)) = (authorize, token) else {
        return Err(fail(
            "server_error",
            "provider_misconfigured",
            "The provider's endpoints are not known",
        ));
    };
    Ok(Endpoints {
        issuer: d.map(|d| d.issuer.clone()).or_else(|| p.issuer.clone()),
        authorize,
        token,
        userinfo: pick(
            &p.userinfo_url,
            d.and_then(|d| d.userinfo_endpoint.as_ref()),
        ),
        jwks: pick(&p.jwks_url, d.map(|d| &d.jwks_uri)),
    })
}

/// OpenID Connect Discovery §4.3: the document's issuer is the one asked
/// for (a trailing slash aside). Entra ID's multi-tenant endpoints answer
/// with a `{tenantid}` template, filled from each token's `tid`.
fn same_issuer(kind: ProviderKind, configured: &str, found: &str) -> bool {
    let trim = |s: &str| s.trim_end_matches('/').to_string();
    if trim(configured) == trim(found) {
        return true;
    }
    kind == ProviderKind::Azure
        && found.contains("{tenantid}")
        && ["/common/", "/organizations/", "/consumers/"]
            .iter()
            .any(|t| configured.contains(t))
}

fn busy() -> Failure {
    fail(
        "temporarily_unavailable",
        "provider_busy",
        "Too many sign-ins are waiting on providers; try again shortly",
    )
}

/// Finishes a sign-in at `provider`'s callback. Err only before the state
/// is known (no redirect is safe then); every later outcome is a redirect
/// to the app, or for a sign-in started at the sign-in page, the pages'
/// answer (a session, the second factor owed, or why not).
pub fn callback(
    cx: &mut Ctx,
    provider: &Provider,
    callback_path: &str,
    cb: &Callback,
    peer: &Peer,
) -> Result<Answer, Error> {
    let now = cx.now();
    cx.app.limiter.take(Family::Token, &peer.ip, now)?;
    let our_state = cb
        .state
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| Error::BadRequest("state is missing".into()))?;
    let pending = cx.write(|tx| take_state(tx, &provider.name, our_state))?;
    let pending = pending
        .filter(|p| p.expires_at > now)
        .ok_or_else(|| Error::BadRequest("This sign-in is unknown, used or expired".into()))?;
    if let Target::App(a) = &pending.target {
        // The client may have been removed, or the URL unregistered, since.
        let still = accounts::get_client(&cx.conn, &a.client_id)?
            .is_some_and(|c| c.redirect_urls.contains(&a.redirect_url));
        if !still {
            return Err(Error::BadRequest(
                "The client or its redirect URL is no longer registered".into(),
            ));
        }
    }
    let clear = binding_cookie(cx, provider, callback_path, our_state, None);
    let outcome = match &pending.target {
        Target::App(a) => finish_app(
            cx,
            provider,
            callback_path,
            cb,
            our_state,
            &pending,
            a,
            peer,
        )
        .map(|code| {
            let mut q = vec![("code", code)];
            if let Some(s) = &a.app_state {
                q.push(("state", s.clone()));
            }
            Answer::Redirect(Redirect {
                location: with_query(&a.redirect_url, &q),
                cookie: clear.clone(),
            })
        }),
        Target::Pages { return_to } => {
            finish_pages(cx, provider, callback_path, cb, our_state, &pending, peer).map(|step| {
                Answer::Pages(PagesEnd {
                    return_to: return_to.clone(),
                    provider: provider.name.clone(),
                    step: Ok(step),
                    cookie: clear.clone(),
                })
            })
        }
    };
    match outcome {
        Ok(answer) => Ok(answer),
        Err((actor, f)) => {
            if let Some(d) = &f.detail {
                cx.app.log.line(format!("social: {}: {d}", provider.name));
            }
            cx.app.metrics.login(f.outcome);
            auth::record_refusal(cx, actor.as_deref(), &provider.name, f.outcome, peer)?;
            Ok(failure_answer(&pending, provider, &f, clear))
        }
    }
}

/// Takes (deletes and returns) a started sign-in.
fn take_state(
    tx: &rusqlite::Transaction,
    provider: &str,
    state: &str,
) -> Result<Option<Pending>, Error> {
    Ok(tx
        .query_row(
            "DELETE FROM oauth_states WHERE state_hash = ?1 AND provider = ?2
             RETURNING client_id, redirect_url, app_state, code_challenge, binding_hash,
                       expires_at, return_to",
            params![token_hash(state), provider],
            |r| {
                let client_id: Option<String> = r.get(0)?;
                let redirect_url: Option<String> = r.get(1)?;
                let return_to: Option<String> = r.get(6)?;
                // The table's CHECK makes a row one or the other.
                let target = match (client_id, redirect_url, return_to) {
                    (Some(client_id), Some(redirect_url), _) => Target::App(AppTarget {
                        client_id,
                        redirect_url,
                        app_state: r.get(2)?,
                        code_challenge: r.get(3)?,
                    }),
                    (_, _, return_to) => Target::Pages {
                        return_to: return_to.unwrap_or_default(),
                    },
                };
                Ok(Pending {
                    target,
                    binding_hash: r.get(4)?,
                    expires_at: r.get(5)?,
                })
            },
        )
        .optional()?)
}

/// Who the provider says signed in.
#[derive(Debug, Default)]
struct Person {
    subject: String,
    email: Option<String>,
    verified: bool,
    name: Option<String>,
    /// The provider's refresh (else access) token, kept (sealed) only for
    /// the kinds whose logout route ends the provider's session too.
    upstream: Option<String>,
}

/// The rest of an app's callback: our code; Err carries the user (when
/// known) and why.
#[allow(clippy::too_many_arguments)]
fn finish_app(
    cx: &mut Ctx,
    provider: &Provider,
    callback_path: &str,
    cb: &Callback,
    our_state: &str,
    pending: &Pending,
    app: &AppTarget,
    peer: &Peer,
) -> Result<String, Refusal> {
    let anon = |f: Failure| (None, f);
    let client = accounts::get_client(&cx.conn, &app.client_id)
        .ok()
        .flatten()
        .ok_or_else(|| anon(fail("access_denied", "client_gone", "The client is gone")))?;
    // Made a consent client since the start: refused as the start would.
    if client.consent {
        return Err(anon(fail(
            "access_denied",
            "consent_client",
            "This app must sign people in through /oauth2/authorize",
        )));
    }
    let user = signed_in_user(cx, provider, callback_path, cb, our_state, pending)?;
    let owed = factors::required(cx, &user).map_err(|e| anon(internal(e)))?;
    let grant = auth::grant_for(&user, Some(&client), &["fed"]);
    auth::issue_code(
        cx,
        &client,
        &grant,
        owed,
        app.code_challenge.as_deref(),
        &provider.name,
        peer,
    )
    .map_err(|e| (Some(user.id.clone()), internal(e)))
}

/// The rest of a callback of the sign-in page: what the pages' own first
/// step leads to (`web::signin::after_first_step`: a session, or a TOTP
/// user's pending second factor), logged under the provider's name with
/// amr ["fed"] as in an app's sign-in.
fn finish_pages(
    cx: &mut Ctx,
    provider: &Provider,
    callback_path: &str,
    cb: &Callback,
    our_state: &str,
    pending: &Pending,
    peer: &Peer,
) -> Result<Step, Refusal> {
    let user = signed_in_user(cx, provider, callback_path, cb, our_state, pending)?;
    let first = FirstStep {
        method: provider.name.clone(),
        amr: vec!["fed".into()],
    };
    web::signin::after_first_step(cx, &user, &first, cb.session, peer)
        .map_err(|e| (Some(user.id.clone()), internal(e)))
}

/// Who signed in: the binding cookie checked, the provider's answer
/// exchanged and verified, the user found, linked or created.
fn signed_in_user(
    cx: &mut Ctx,
    provider: &Provider,
    callback_path: &str,
    cb: &Callback,
    our_state: &str,
    pending: &Pending,
) -> Result<User, Refusal> {
    let anon = |f: Failure| (None, f);
    let bound = cb
        .binding
        .is_some_and(|b| ct_eq(token_hash(b).as_bytes(), pending.binding_hash.as_bytes()));
    if !bound {
        return Err(anon(fail(
            "access_denied",
            "unbound_state",
            "This sign-in was started in another browser",
        )));
    }
    if let Some(e) = cb.error {
        let code = match e {
            "temporarily_unavailable" => "temporarily_unavailable",
            "server_error" => "server_error",
            _ => "access_denied",
        };
        return Err(anon(fail(
            code,
            "provider_refused",
            "The sign-in was refused or cancelled at the provider",
        )));
    }
    let code = cb.code.filter(|c| !c.is_empty()).ok_or_else(|| {
        anon(fail(
            "server_error",
            "provider_error",
            "The provider sent no code",
        ))
    })?;
    let person = identify(cx, provider, callback_path, code, our_state, cb).map_err(anon)?;
    let sealed = match &person.upstream {
        Some(t) => Some(
            cx.app
                .master
                .seal(
                    &upstream_purpose(&provider.name, &person.subject),
                    t.as_bytes(),
                )
                .map_err(|e| anon(internal(e)))?,
        ),
        None => None,
    };
    let now = cx.now();
    let signup = provider
        .signup
        .unwrap_or(cx.app.config.signup == Signup::Open);
    // The user, found, linked or created, in one transaction; a refusal
    // rolls it back, so a refused sign-in leaves no link behind.
    let mut refused = None;
    let linked = cx.write(|tx| {
        link_user(tx, provider, &person, sealed.as_deref(), signup, now).map_err(|f| {
            refused = Some(f);
            Error::Internal("sign-in refused; rolled back".into())
        })
    });
    match (linked, refused) {
        (Ok(u), _) => Ok(u),
        (Err(_), Some(r)) => Err(r),
        (Err(e), None) => Err(anon(internal(e))),
    }
}

/// A failure of ours: the client learns only that, the log learns what.
fn internal(e: Error) -> Failure {
    Failure {
        detail: Some(e.to_string()),
        ..fail("server_error", "error", "The sign-in failed on our side")
    }
}

/// A refusal, and the user it concerns when one was found.
type Refusal = (Option<String>, Failure);

/// Links `person` to a user, or creates one, or says why not; a disabled
/// user is refused here, inside the transaction, so nothing is left linked.
fn link_user(
    tx: &rusqlite::Transaction,
    p: &Provider,
    person: &Person,
    sealed: Option<&[u8]>,
    signup: bool,
    now: i64,
) -> Result<User, Refusal> {
    let user = find_or_create(tx, p, person, sealed, signup, now).map_err(|f| (None, f))?;
    if !user.is_active() {
        return Err((
            Some(user.id.clone()),
            fail("access_denied", "user_inactive", "This account is disabled"),
        ));
    }
    Ok(user)
}

fn find_or_create(
    tx: &rusqlite::Transaction,
    p: &Provider,
    person: &Person,
    sealed: Option<&[u8]>,
    signup: bool,
    now: i64,
) -> Result<User, Failure> {
    let db = internal;
    let email = person.email.as_deref();
    if let Some(id) = identities::user_of(tx, &p.name, &person.subject).map_err(db)? {
        if let Some(user) = accounts::get_user(tx, &id).map_err(db)? {
            identities::touch(tx, &p.name, &person.subject, email, sealed, now).map_err(db)?;
            return Ok(user);
        }
        // Its user was deleted: the subject starts afresh.
        identities::forget(tx, &p.name, &person.subject).map_err(db)?;
    }
    let owner = match email {
        Some(e) => accounts::find_user_by_email(tx, e).map_err(db)?,
        None => None,
    };
    if let Some(owner) = owner {
        // Both sides must have verified the address: an account whose
        // address we never confirmed may have been made by someone else
        // (an admin, a tenant's key) who knows its password, and linking
        // would share it with the address's owner (pre-account takeover).
        let ours_verified = owner.email_verified_at.is_some();
        if person.verified && p.link_by_email && ours_verified {
            let linked =
                identities::link(tx, &p.name, &person.subject, &owner.id, email, sealed, now);
            return match linked {
                Ok(()) => Ok(owner),
                Err(Error::Conflict(_)) => Err(fail(
                    "access_denied",
                    "link_refused",
                    format!(
                        "The account with this email address is already linked to another {} identity",
                        p.name
                    ),
                )),
                Err(e) => Err(db(e)),
            };
        }
        if person.verified {
            return Err(fail(
                "access_denied",
                "link_refused",
                "An account with this email address exists; sign in to it another way",
            ));
        }
    }
    if !signup {
        return Err(fail(
            "access_denied",
            "signup_closed",
            "No account is linked to this identity, and sign-up is closed",
        ));
    }
    // An address the provider did not verify is not given to the new
    // account: it would let anyone claim someone else's address.
    let new = NewUser {
        email: email
            .filter(|_| person.verified)
            .filter(|e| accounts::is_mailbox(e))
            .map(str::to_string),
        name: person.name.clone().filter(|n| !n.trim().is_empty()),
        ..NewUser::default()
    };
    let user = accounts::create_user(tx, &new, now).map_err(db)?;
    if new.email.is_some() {
        accounts::mark_email_verified(tx, &user.id, now).map_err(db)?;
    }
    identities::link(tx, &p.name, &person.subject, &user.id, email, sealed, now).map_err(db)?;
    accounts::get_user(tx, &user.id)
        .map_err(db)?
        .ok_or_else(|| internal(Error::Internal("user vanished".into())))
}

/// Exchanges the code and learns who signed in.
fn identify(
    cx: &Ctx,
    p: &Provider,
    callback_path: &str,
    code: &str,
    our_state: &str,
    cb: &Callback,
) -> Result<Person, Failure> {
    let now = cx.now();
    let state = cx
        .app
        .social
        .state(&p.name)
        .ok_or_else(|| internal(Error::Internal("no provider state".into())))?;
    let ends = endpoints(cx, &state, p, now)?;
    let _slot = cx.app.social.slot().ok_or_else(busy)?;
    let tokens = exchange(
        cx,
        &state.upstream,
        p,
        &ends,
        callback_path,
        code,
        our_state,
    )?;
    let access = tokens.get("access_token").and_then(Value::as_str);
    let upstream = kinds::ends_upstream(p.kind)
        .then(|| text(tokens.get("refresh_token")).or(access.map(str::to_string)))
        .flatten();
    let person = match p.kind {
        ProviderKind::Facebook | ProviderKind::Instagram | ProviderKind::Github => {
            let access = access.ok_or_else(no_token)?;
            plain_oauth_person(&state.upstream, p, &ends, access)
        }
        _ => {
            let id_token = tokens
                .get("id_token")
                .and_then(Value::as_str)
                .ok_or_else(no_token)?;
            let claims = verify(cx, &state, &ends, p, id_token, our_state, now)?;
            let mut person = oidc_person(p, &claims)?;
            if person.email.is_none() {
                if let (Some(url), Some(access)) = (&ends.userinfo, access) {
                    userinfo_email(&state.upstream, p, url, access, &mut person)?;
                }
            }
            if person.name.is_none() {
                person.name = cb.apple_user.and_then(apple_name);
            }
            Ok(person)
        }
    }?;
    Ok(Person { upstream, ..person })
}

fn no_token() -> Failure {
    fail(
        "server_error",
        "provider_error",
        "The provider's token answer lacks a token",
    )
}

/// The token request (RFC 6749 §4.1.3).
fn exchange(
    cx: &Ctx,
    up: &Upstream,
    p: &Provider,
    ends: &Endpoints,
    callback_path: &str,
    code: &str,
    our_state: &str,
) -> Result<Map<String, Value>, Failure> {
    let redirect = redirect_uri(cx, callback_path);
    let verifier = derived(cx, "social-pkce", our_state);
    let apple_secret;
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect),
    ];
    if p.pkce {
        form.push(("code_verifier", &verifier));
    }
    let secret: Option<&str> = match &p.apple {
        Some(key) => {
            let pem = std::fs::read_to_string(&key.private_key_file).map_err(|e| {
                internal(Error::Internal(format!(
                    "cannot read {}: {e}",
                    key.private_key_file.display()
                )))
            })?;
            apple_secret =
                jose::apple_client_secret(&pem, &key.team_id, &key.key_id, &p.client_id, cx.now())
                    .map_err(|e| internal(Error::Internal(format!("Apple client secret: {e}"))))?;
            Some(&apple_secret)
        }
        None => p.client_secret.as_deref(),
    };
    // OpenID providers take HTTP Basic (RFC 6749 §2.3.1 makes it the one
    // every server supports); Apple, Facebook, Instagram and GitHub want
    // the credentials in the form.
    let basic = match (kinds::secret_in_form(p.kind), secret) {
        (false, Some(s)) => Some((p.client_id.as_str(), s)),
        (true, Some(s)) => {
            form.push(("client_id", &p.client_id));
            form.push(("client_secret", s));
            None
        }
        (_, None) => {
            form.push(("client_id", &p.client_id));
            None
        }
    };
    match up.post_form(&ends.token, &form, basic)? {
        Value::Object(m) => Ok(m),
        _ => Err(fail(
            "server_error",
            "provider_error",
            "The provider's token answer is not an object",
        )),
    }
}

/// Verifies an id_token against the provider's keys, refetching them once
/// (at most once a minute) for a key it has not seen.
fn verify(
    cx: &Ctx,
    state: &State,
    ends: &Endpoints,
    p: &Provider,
    id_token: &str,
    our_state: &str,
    now: i64,
) -> Result<Map<String, Value>, Failure> {
    let bad = |why: String| {
        cx.app
            .log
            .line(format!("social: {}: id_token refused: {why}", p.name));
        fail(
            "access_denied",
            "bad_id_token",
            "The provider's identity token did not verify",
        )
    };
    let jwks_url = ends.jwks.as_deref().ok_or_else(|| {
        fail(
            "server_error",
            "provider_misconfigured",
            "The provider's keys are not known",
        )
    })?;
    let issuer = ends.issuer.as_deref().ok_or_else(|| {
        fail(
            "server_error",
            "provider_misconfigured",
            "The provider's issuer is not known",
        )
    })?;
    // Only Entra ID's multi-tenant issuer is a template; anywhere else it
    // would accept tokens of every Azure tenant.
    if p.kind != ProviderKind::Azure && issuer.contains("{tenantid}") {
        return Err(fail(
            "server_error",
            "provider_misconfigured",
            "The provider's issuer is a template",
        ));
    }
    let (_, kid) = jose::header(id_token).map_err(bad)?;
    let keys = state.jwks(jwks_url, kid.as_deref(), now)?;
    let nonce = derived(cx, "social-nonce", our_state);
    let expect = jose::Expect {
        issuer,
        audience: &p.client_id,
        nonce: Some(&nonce),
        now,
        leeway: LEEWAY,
    };
    jose::verify_id_token(id_token, &keys, &expect).map_err(bad)
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn truthy(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || matches!(v, Some(Value::String(s)) if s == "true")
}

/// The person an id_token names.
fn oidc_person(p: &Provider, c: &Map<String, Value>) -> Result<Person, Failure> {
    let subject = text(c.get("sub")).ok_or_else(|| {
        fail(
            "access_denied",
            "bad_id_token",
            "The identity token has no subject",
        )
    })?;
    let name = text(c.get("name")).or_else(|| {
        let parts: Vec<String> = [c.get("given_name"), c.get("family_name")]
            .into_iter()
            .filter_map(text)
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    Ok(Person {
        subject,
        email: text(c.get("email")),
        // Entra ID's email claim is whatever the tenant's admin typed
        // (the "nOAuth" flaw): never taken as verified.
        verified: p.kind != ProviderKind::Azure && truthy(c.get("email_verified")),
        name: name.or_else(|| text(c.get("preferred_username"))),
        upstream: None,
    })
}

/// Fills in the email from the userinfo endpoint, whose `sub` must be the
/// id_token's (OpenID Connect Core §5.3.2).
fn userinfo_email(
    up: &Upstream,
    p: &Provider,
    url: &str,
    access: &str,
    person: &mut Person,
) -> Result<(), Failure> {
    let info = up.get_json(url, Some(access))?;
    if text(info.get("sub")).as_deref() != Some(person.subject.as_str()) {
        return Err(fail(
            "access_denied",
            "bad_userinfo",
            "The provider's user information is for someone else",
        ));
    }
    // The address and its flag from the same document; Entra ID's never.
    person.email = text(info.get("email"));
    person.verified = p.kind != ProviderKind::Azure && truthy(info.get("email_verified"));
    if person.name.is_none() {
        person.name = text(info.get("name"));
    }
    Ok(())
}

/// Apple sends the name once, as `user={"name":{"firstName":..,"lastName":..}}`.
fn apple_name(user: &str) -> Option<String> {
    let v: Value = serde_json::from_str(user).ok()?;
    let n = v.get("name")?;
    let parts: Vec<String> = [n.get("firstName"), n.get("lastName")]
        .into_iter()
        .filter_map(text)
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Facebook, Instagram and GitHub: the user endpoint (and GitHub's
/// address list) with the access token.
fn plain_oauth_person(
    up: &Upstream,
    p: &Provider,
    ends: &Endpoints,
    access: &str,
) -> Result<Person, Failure> {
    let url = ends.userinfo.as_deref().ok_or_else(|| {
        fail(
            "server_error",
            "provider_misconfigured",
            "The provider's user endpoint is not known",
        )
    })?;
    let me = up.get_json(url, Some(access))?;
    let subject = text(me.get("id")).ok_or_else(|| {
        fail(
            "server_error",
            "provider_error",
            "The provider's user answer has no id",
        )
    })?;
    let mut person = Person {
        subject,
        name: text(me.get("name"))
            .or_else(|| text(me.get("login")).or_else(|| text(me.get("username")))),
        ..Person::default()
    };
    match p.kind {
        // Facebook only hands out confirmed addresses.
        ProviderKind::Facebook => {
            person.email = text(me.get("email"));
            person.verified = person.email.is_some();
        }
        ProviderKind::Github => {
            if let Some(emails) = &p.emails_url {
                let list = up.get_json(emails, Some(access))?;
                let primary = list.as_array().and_then(|a| {
                    a.iter()
                        .find(|e| truthy(e.get("primary")) && truthy(e.get("verified")))
                });
                if let Some(e) = primary {
                    person.email = text(e.get("email"));
                    person.verified = person.email.is_some();
                }
            }
        }
        _ => {}
    }
    Ok(person)
}

/// What a kept upstream token is sealed for: its provider and subject.
fn upstream_purpose(provider: &str, subject: &str) -> String {
    format!("social-upstream:{provider}:{subject}")
}

/// Ends the provider's own session of a user who signs out through a
/// provider's logout route (native `POST /{kind}/logout`): the token kept
/// from their last sign-in there is revoked (RFC 7009), or for Keycloak
/// used at its end-session endpoint, which ends the whole SSO session.
/// Best effort: our own session is already ended, and a provider that
/// fails is logged, not reported. Returns whether the provider agreed.
pub fn end_upstream(cx: &mut Ctx, kind: ProviderKind, user_id: &str) -> Result<bool, Error> {
    let Some(p) = kinds::seed_provider(&cx.app.config.providers, kind).cloned() else {
        return Ok(false);
    };
    let Some((subject, sealed)) = cx.write(|tx| identities::take_upstream(tx, user_id, &p.name))?
    else {
        return Ok(false);
    };
    let token = cx
        .app
        .master
        .open(&upstream_purpose(&p.name, &subject), &sealed)?;
    let token = String::from_utf8(token).map_err(|_| Error::Internal("upstream token".into()))?;
    let Some(state) = cx.app.social.state(&p.name) else {
        return Ok(false);
    };
    let now = cx.now();
    let Some(_slot) = cx.app.social.slot() else {
        return Ok(false);
    };
    let result = (|| -> Result<(), String> {
        // Cognito's revocation is found from its token endpoint; the
        // others' end-session or revocation endpoint from discovery.
        let d = match &p.issuer {
            Some(issuer) if kind != ProviderKind::Cognito || p.token_url.is_none() => {
                Some(state.discovery(issuer, now).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let secret = p.client_secret.as_deref();
        let basic = secret.map(|s| (p.client_id.as_str(), s));
        let (url, form): (String, Vec<(&str, &str)>) = match kind {
            // Keycloak ends the SSO session given the refresh token.
            ProviderKind::Keycloak => (
                d.as_ref()
                    .and_then(|d| d.end_session_endpoint.clone())
                    .ok_or("no end_session_endpoint")?,
                vec![("refresh_token", token.as_str())],
            ),
            // Cognito's revocation sits beside its token endpoint.
            ProviderKind::Cognito => (
                p.token_url
                    .as_deref()
                    .or(d.as_ref().map(|d| d.token_endpoint.as_str()))
                    .map(|t| t.replace("/oauth2/token", "/oauth2/revoke"))
                    .ok_or("no token endpoint")?,
                vec![("token", token.as_str())],
            ),
            _ => (
                d.as_ref()
                    .and_then(|d| d.revocation_endpoint.clone())
                    .ok_or("no revocation_endpoint")?,
                vec![("token", token.as_str())],
            ),
        };
        state
            .upstream
            .post_form_any(&url, &form, basic)
            .map_err(|e| e.to_string())
    })();
    match result {
        Ok(()) => Ok(true),
        Err(why) => {
            cx.app.log.line(format!(
                "social: {}: ending the provider's session: {why}",
                p.name
            ));
            Ok(false)
        }
    }
}
