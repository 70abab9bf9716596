//! The authorization endpoint (OpenID Connect Core 1.0 §3.1.2, RFC 6749
//! §4.1.1, RFC 7636, RFC 9207).
//!
//! Order matters. Until the client and its redirect URI are known good,
//! every problem is an error answered to the browser (`Err`), never a
//! redirect: an open redirector is what an attacker wants. After that,
//! problems go back to the client's redirect URI with `error`, `state`
//! and `iss` (§4.1.2.1).
//!
//! The redirect URI is matched exactly against the registered ones (no
//! prefix, no wildcard, no normalisation). Omitting it is allowed only
//! when the client has exactly one.

use crate::accounts::{self, Client};
use crate::app::Ctx;
use crate::crypto::{b64url, ct_eq, hmac_sha256, MasterKey};
use crate::error::Error;
use crate::jwt::Alg;
use crate::oidc::browser::BrowserSession;
use crate::oidc::{consent, oauth_error, split_scope};
use crate::sessions::{self, Binding, Grant};
use crate::url::percent_encode;

/// The parameter that carries "sign in again after this time" through
/// the sign-in page for `prompt=login` and `max_age` (the page returns the
/// browser to the authorize URL, which must not ask again forever).
///
/// Its value is `<time>.<seal>`: an HMAC-SHA256 (key derived from the
/// master key for this purpose alone) over the time and the rest of the
/// request as the return carries it. The browser holds the URL, so an
/// unsealed value (`hallpass_auth_after=0` added to a request to skip
/// the new sign-in), one sealed for another request, or one older than
/// `AUTH_AFTER_TTL` counts as absent: the sign-in is asked for again
/// (review 13). Not bound to the browser session: the sign-in it asks for
/// starts a new one.
pub const AUTH_AFTER: &str = "hallpass_auth_after";

/// How long a sealed `AUTH_AFTER` is good for: a sign-in page left open
/// longer than this asks again.
pub const AUTH_AFTER_TTL: i64 = 3600;

/// What the browser is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 302 to this URL on the client (a code, or an error).
    Redirect(String),
    /// 302 to `/signin?return_to=` this path and query.
    SignIn(String),
    /// 200: the consent page, whose form carries the request back to
    /// `decide`.
    Consent(ConsentAsk),
}

/// What the consent page shows and carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentAsk {
    pub client_id: String,
    /// The app's name, as registered.
    pub client_name: String,
    /// The scopes asked for, in order (`consent::describe` words them).
    pub scopes: Vec<String>,
    /// The authorization request, form-encoded, for a hidden field.
    pub request: String,
    /// Its seal for this browser session, for another hidden field.
    pub seal: String,
}

/// The request's parameters: each at most once (RFC 6749 §3.1).
struct Params<'a>(&'a [(String, String)]);

impl Params<'_> {
    fn get(&self, name: &str) -> Result<Option<&str>, Error> {
        crate::oidc::single(self.0, name)
    }
}

/// Where a client answer goes: the checked redirect URI, with `state` and
/// our `iss` on every answer.
struct Reply<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: &'a str,
}

impl Reply<'_> {
    fn to(&self, pairs: &[(&str, &str)]) -> Outcome {
        let mut url = self.redirect_uri.to_string();
        url.push(if url.contains('?') { '&' } else { '?' });
        let mut all: Vec<(&str, &str)> = pairs.to_vec();
        if let Some(s) = self.state {
            all.push(("state", s));
        }
        all.push(("iss", self.issuer));
        let query: Vec<String> = all
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        url.push_str(&query.join("&"));
        Outcome::Redirect(url)
    }

    fn error(&self, code: &str, description: &str) -> Outcome {
        self.to(&[("error", code), ("error_description", description)])
    }
}

/// The path and query of this authorize request, for the sign-in page to
/// return to; `login` dropped from `prompt` when asked (its other values,
/// `consent` say, still hold after the new sign-in: OpenID Connect Core
/// §3.1.2.1), and, with `after`, a sealed `AUTH_AFTER` of that time.
fn return_to(
    master: &MasterKey,
    params: &[(String, String)],
    drop_login: bool,
    after: Option<i64>,
) -> String {
    let pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != AUTH_AFTER)
        .filter_map(|(k, v)| match k.as_str() {
            "prompt" if drop_login => {
                let rest: Vec<&str> = v
                    .split(' ')
                    .filter(|p| !p.is_empty() && *p != "login")
                    .collect();
                (!rest.is_empty()).then(|| (k.clone(), rest.join(" ")))
            }
            _ => Some((k.clone(), v.clone())),
        })
        .collect();
    let query = consent::carry(&pairs);
    match after {
        Some(t) => {
            let sealed = format!("{t}.{}", after_seal(master, t, &query));
            let sep = if query.is_empty() { "" } else { "&" };
            format!(
                "/oauth2/authorize?{query}{sep}{AUTH_AFTER}={}",
                percent_encode(&sealed)
            )
        }
        None => format!("/oauth2/authorize?{query}"),
    }
}

/// The seal of an `AUTH_AFTER` time for a request's other parameters
/// (`consent::carry`'s text), base64url.
fn after_seal(master: &MasterKey, t: i64, query: &str) -> String {
    let t = t.to_string();
    let mut data = Vec::with_capacity(t.len() + 1 + query.len());
    data.extend_from_slice(t.as_bytes());
    data.push(0);
    data.extend_from_slice(query.as_bytes());
    b64url(&hmac_sha256(&master.derive("oidc auth after"), &data))
}

/// The time of a request's `AUTH_AFTER` value when we sealed it, for this
/// request, less than `AUTH_AFTER_TTL` ago; None otherwise (as if absent).
fn unseal_after(
    master: &MasterKey,
    params: &[(String, String)],
    value: &str,
    now: i64,
) -> Option<i64> {
    let (t, given) = value.split_once('.')?;
    let t: i64 = t.parse().ok()?;
    let rest: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != AUTH_AFTER)
        .cloned()
        .collect();
    let want = after_seal(master, t, &consent::carry(&rest));
    let fresh = t <= now && now - t <= AUTH_AFTER_TTL;
    (ct_eq(want.as_bytes(), given.as_bytes()) && fresh).then_some(t)
}

/// The client and the redirect URI a request names, once both are known
/// good; every problem before that is an `Err`, answered, never redirected.
struct Target {
    client: Client,
    /// The URI answers go to (the one given, or the client's only one).
    redirect_uri: String,
    /// The URI as given (None when left out): the code is bound to it.
    given: Option<String>,
}

fn target(cx: &Ctx, p: &Params) -> Result<Target, Error> {
    let client_id = p
        .get("client_id")?
        .ok_or_else(|| oauth_error("invalid_request", "client_id is required"))?;
    let client = accounts::get_client(&cx.conn, client_id)?
        .ok_or_else(|| oauth_error("invalid_request", "client_id is unknown"))?;
    let given = p.get("redirect_uri")?;
    let redirect_uri = match given {
        Some(u) if client.redirect_urls.iter().any(|r| r == u) => u.to_string(),
        Some(_) => {
            return Err(oauth_error(
                "invalid_request",
                "redirect_uri is not registered for this client",
            ))
        }
        None => match client.redirect_urls.as_slice() {
            [only] => only.clone(),
            _ => {
                return Err(oauth_error(
                    "invalid_request",
                    "redirect_uri is required (the client has more than one, or none)",
                ))
            }
        },
    };
    Ok(Target {
        client,
        redirect_uri,
        given: given.map(str::to_string),
    })
}

/// Checks the request, and with a live session issues a code, or asks
/// the person's consent first (a consent client without a grant that
/// covers the scope, or `prompt=consent`).
pub fn authorize(
    cx: &mut Ctx,
    params: &[(String, String)],
    session: Option<&BrowserSession>,
    peer: &crate::auth::Peer,
) -> Result<Outcome, Error> {
    let p = Params(params);
    // 1. The client and its redirect URI: errors are answered, not sent.
    let t = target(cx, &p)?;
    let issuer = cx.app.issuer.clone();
    // A repeated state is itself an error; answered without echoing it.
    let state = p.get("state")?;
    let reply = Reply {
        redirect_uri: &t.redirect_uri,
        state,
        issuer: &issuer,
    };
    match check(cx, &p, &t.client, session)? {
        Err((code, description)) => Ok(reply.error(code, &description)),
        Ok(Checked::SignIn { drop_login, after }) => Ok(Outcome::SignIn(return_to(
            &cx.app.master,
            params,
            drop_login,
            after,
        ))),
        Ok(Checked::Grant(g)) => {
            // First-party clients never ask, prompt=consent included: the
            // operator registered them as trusted (README, "Consent").
            if t.client.consent {
                let asked = g.prompt_consent
                    || !consent::granted(&cx.conn, &g.session.user_id, &t.client.client_id)?
                        .is_some_and(|have| consent::covers(&have, &g.scope));
                if asked && g.prompt_none {
                    // OpenID Connect Core §3.1.2.6.
                    return Ok(reply.error(
                        "consent_required",
                        "the person has not consented to this client's scope",
                    ));
                }
                if asked {
                    let request = consent::carry(params);
                    return Ok(Outcome::Consent(ConsentAsk {
                        client_id: t.client.client_id.clone(),
                        client_name: t.client.name.clone(),
                        scopes: split_scope(&g.scope),
                        seal: consent::seal(&cx.app.master, g.session, &request),
                        request,
                    }));
                }
            }
            issue(cx, &t, &g, &reply, peer, false)
        }
    }
}

/// The person's answer on the consent page. `request` is the carried
/// authorization request and `seal` its seal for this browser session
/// (oidc/consent.rs): a request changed on the way, or shown to another
/// session, is refused (`Forbidden`). The request is then checked again
/// from the start, as if new: an unknown client or unregistered redirect
/// URI is an `Err`, anything else goes back to the client. Allowed, the
/// grant is stored in the transaction that issues the code; denied, the
/// client hears `access_denied`.
pub fn decide(
    cx: &mut Ctx,
    request: &str,
    seal: &str,
    allow: bool,
    session: &BrowserSession,
    peer: &crate::auth::Peer,
) -> Result<Outcome, Error> {
    if !consent::sealed(&cx.app.master, session, request, seal) {
        return Err(Error::Forbidden("the consent form was changed".into()));
    }
    let params = consent::uncarry(request);
    let p = Params(&params);
    let t = target(cx, &p)?;
    let issuer = cx.app.issuer.clone();
    let state = p.get("state")?;
    let reply = Reply {
        redirect_uri: &t.redirect_uri,
        state,
        issuer: &issuer,
    };
    match check(cx, &p, &t.client, Some(session))? {
        Err((code, description)) => Ok(reply.error(code, &description)),
        // The sign-in went stale on the page (max_age): sign in again,
        // then the page asks again.
        Ok(Checked::SignIn { drop_login, after }) => Ok(Outcome::SignIn(return_to(
            &cx.app.master,
            &params,
            drop_login,
            after,
        ))),
        Ok(Checked::Grant(_)) if !allow => {
            Ok(reply.error("access_denied", "the person did not allow this application"))
        }
        Ok(Checked::Grant(g)) => issue(cx, &t, &g, &reply, peer, t.client.consent),
    }
}

/// A code for the checked request, in one transaction with the sign-in's
/// activity row and, when `record_consent`, the person's grant.
fn issue(
    cx: &mut Ctx,
    t: &Target,
    g: &GrantAsk,
    reply: &Reply,
    peer: &crate::auth::Peer,
    record_consent: bool,
) -> Result<Outcome, Error> {
    let user = accounts::get_user(&cx.conn, &g.session.user_id)?;
    let Some(user) = user.filter(|u| u.is_active()) else {
        return Ok(reply.error("access_denied", "the account is not active"));
    };
    let grant = Grant {
        user_id: user.id.clone(),
        client_id: Some(t.client.client_id.clone()),
        tenant_id: user.default_tenant_id.clone(),
        amr: g.session.amr.clone(),
    };
    let binding = Binding {
        redirect_uri: t.given.clone(),
        nonce: g.nonce.clone(),
        scope: Some(g.scope.clone()),
        auth_time: Some(g.session.auth_time),
    };
    let now = cx.now();
    let code = cx.write(|tx| {
        if record_consent {
            consent::grant(tx, &user.id, &t.client.client_id, &g.scope, now)?;
        }
        crate::auth::record_sign_in(tx, &grant, "oidc", peer, now)?;
        sessions::issue_provider_code(
            tx,
            &grant,
            &t.client.client_id,
            g.challenge.as_deref(),
            &binding,
            t.client.auth_code_ttl,
            now,
        )
    })?;
    cx.app.metrics.login("success");
    Ok(reply.to(&[("code", &code)]))
}

/// What a well-formed request comes to.
enum Checked<'s> {
    SignIn {
        /// Drop `login` from `prompt` on the way back (it is being done).
        drop_login: bool,
        after: Option<i64>,
    },
    Grant(GrantAsk<'s>),
}

/// A well-formed request from a signed-in browser.
struct GrantAsk<'s> {
    session: &'s BrowserSession,
    scope: String,
    challenge: Option<String>,
    nonce: Option<String>,
    /// `prompt=consent`: ask even when a grant covers the scope.
    prompt_consent: bool,
    /// `prompt=none`: never show a page.
    prompt_none: bool,
}

type Refusal = (&'static str, String);

/// Everything after the redirect URI: Ok(Err(..)) goes back to the client.
fn check<'s>(
    cx: &Ctx,
    p: &Params,
    client: &Client,
    session: Option<&'s BrowserSession>,
) -> Result<Result<Checked<'s>, Refusal>, Error> {
    let refuse = |code: &'static str, m: &str| Ok(Err((code, m.to_string())));
    // A parameter given twice goes back as invalid_request too.
    macro_rules! param {
        ($name:expr) => {
            match p.get($name) {
                Ok(v) => v,
                Err(e) => return refuse("invalid_request", &e.public_message()),
            }
        };
    }
    match param!("response_type") {
        Some("code") => {}
        Some(_) => {
            return refuse(
                "unsupported_response_type",
                "only response_type=code is supported",
            )
        }
        None => return refuse("invalid_request", "response_type is required"),
    }
    for unsupported in ["request", "request_uri"] {
        if param!(unsupported).is_some() {
            let code = if unsupported == "request" {
                "request_not_supported"
            } else {
                "request_uri_not_supported"
            };
            return refuse(code, "request objects are not supported");
        }
    }
    let scopes = split_scope(param!("scope").unwrap_or(""));
    if !scopes.iter().any(|s| s == "openid") {
        return refuse("invalid_scope", "scope must include openid");
    }
    if let Some(s) = scopes.iter().find(|s| !client.scopes.contains(s)) {
        return refuse(
            "invalid_scope",
            &format!("scope {s} is not allowed for this client"),
        );
    }
    let scope = scopes.join(" ");
    let challenge = match (param!("code_challenge"), param!("code_challenge_method")) {
        (Some(c), m) => {
            if let Err(e) = sessions::check_challenge(c, m) {
                return refuse("invalid_request", &e.public_message());
            }
            Some(c.to_string())
        }
        (None, Some(_)) => {
            return refuse(
                "invalid_request",
                "code_challenge_method without code_challenge",
            )
        }
        (None, None) if client.is_public() => {
            return refuse(
                "invalid_request",
                "PKCE (code_challenge, S256) is required for public clients",
            )
        }
        (None, None) => None,
    };
    if let Some(alg) = &client.token_alg {
        let current = cx.app.keys()?.current_alg();
        if Alg::from_name(alg) != Some(current) {
            return refuse(
                "server_error",
                &format!("the client's token_alg {alg} has no signing key on this server"),
            );
        }
    }
    let prompts: Vec<&str> = param!("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if prompts.contains(&"none") && prompts.len() > 1 {
        return refuse("invalid_request", "prompt=none cannot be combined");
    }
    if let Some(s) = prompts
        .iter()
        .find(|s| !["none", "login", "consent", "select_account"].contains(s))
    {
        return refuse("invalid_request", &format!("unknown prompt value {s}"));
    }
    let max_age = match param!("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return refuse(
                    "invalid_request",
                    "max_age must be a whole number of seconds",
                )
            }
        },
    };
    let now = cx.now();
    // Only a value we sealed for this request counts (AUTH_AFTER).
    let after = param!(AUTH_AFTER).and_then(|v| unseal_after(&cx.app.master, p.0, v, now));
    let nonce = param!("nonce").map(str::to_string);
    let none = prompts.contains(&"none");
    let Some(session) = session else {
        if none {
            return refuse("login_required", "no one is signed in");
        }
        // The sign-in about to happen is the fresh one prompt=login and
        // max_age ask for: the return says so, or they would ask again.
        let fresh = prompts.contains(&"login") || max_age.is_some();
        return Ok(Ok(Checked::SignIn {
            drop_login: fresh,
            after: fresh.then_some(now),
        }));
    };
    // prompt=login: sign in again, once (the return carries the time after
    // which the sign-in must be, and the prompt without `login`).
    // Back from the sign-in we asked for, `after` alone decides: max_age
    // (0 included) would otherwise send a browser whose fresh sign-in
    // crossed a second boundary round again (review of issue 13).
    let stale = match after {
        Some(t) => session.auth_time < t,
        None => max_age.is_some_and(|m| m == 0 || now - session.auth_time > m),
    };
    if (prompts.contains(&"login") && after.is_none()) || stale {
        if none {
            return refuse("login_required", "a new sign-in is needed");
        }
        let login = prompts.contains(&"login");
        return Ok(Ok(Checked::SignIn {
            drop_login: login,
            after: Some(after.unwrap_or(now)),
        }));
    }
    Ok(Ok(Checked::Grant(GrantAsk {
        session,
        scope,
        challenge,
        nonce,
        prompt_consent: prompts.contains(&"consent"),
        prompt_none: none,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carry_state_and_iss_and_keep_the_uris_query() {
        let r = Reply {
            redirect_uri: "https://app.example/cb?x=1",
            state: Some("a b"),
            issuer: "https://id.example",
        };
        assert_eq!(
            r.to(&[("code", "c")]),
            Outcome::Redirect(
                "https://app.example/cb?x=1&code=c&state=a%20b&iss=https%3A%2F%2Fid.example".into()
            )
        );
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_sign_in_return_drops_prompt_login_and_adds_the_sealed_time() {
        let m = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let params = pairs(&[
            ("client_id", "c"),
            ("prompt", "login"),
            ("redirect_uri", "https://a/cb"),
        ]);
        let back = return_to(&m, &params, true, Some(5));
        let (query, value) = back.split_once("&hallpass_auth_after=").unwrap();
        assert_eq!(
            query,
            "/oauth2/authorize?client_id=c&redirect_uri=https%3A%2F%2Fa%2Fcb"
        );
        let value = crate::url::percent_decode(value, true);
        assert!(value.starts_with("5."), "{value}");
        let returned = consent::uncarry(back.trim_start_matches("/oauth2/authorize?"));
        assert_eq!(unseal_after(&m, &returned, &value, 5), Some(5));
        assert_eq!(
            unseal_after(&m, &returned, &value, 5 + AUTH_AFTER_TTL),
            Some(5)
        );
    }

    #[test]
    fn an_auth_after_not_sealed_for_this_request_and_now_counts_as_absent() {
        let m = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let params = pairs(&[("client_id", "c"), ("state", "a")]);
        let back = return_to(&m, &params, true, Some(100));
        let returned = consent::uncarry(back.trim_start_matches("/oauth2/authorize?"));
        let value = returned.last().unwrap().1.clone();
        assert_eq!(unseal_after(&m, &returned, &value, 100), Some(100));
        // Unsealed, or another time under the same seal.
        assert_eq!(unseal_after(&m, &returned, "0", 100), None);
        let seal = value.split_once('.').unwrap().1;
        assert_eq!(unseal_after(&m, &returned, &format!("0.{seal}"), 100), None);
        // Another request (state), another key, too old, not yet made.
        let other = pairs(&[("client_id", "c"), ("state", "b")]);
        assert_eq!(unseal_after(&m, &other, &value, 100), None);
        let k = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert_eq!(unseal_after(&k, &returned, &value, 100), None);
        assert_eq!(
            unseal_after(&m, &returned, &value, 101 + AUTH_AFTER_TTL),
            None
        );
        assert_eq!(unseal_after(&m, &returned, &value, 99), None);
    }

    #[test]
    fn the_sign_in_return_keeps_the_other_prompt_values() {
        let m = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let params = pairs(&[("client_id", "c"), ("prompt", "login consent")]);
        assert_eq!(
            return_to(&m, &params, true, None),
            "/oauth2/authorize?client_id=c&prompt=consent"
        );
        assert_eq!(
            return_to(&m, &params, false, None),
            "/oauth2/authorize?client_id=c&prompt=login%20consent"
        );
    }
}
