//! Social sign-in (issue 11), driven over HTTP like a browser that does
//! not follow redirects: our start route, the provider's authorize page
//! (tests/it/fakeidp.rs), our callback with the binding cookie, the client's
//! redirect URL with our code, /auth/token, /auth/me. Each kind's quirks
//! (discovery or explicit endpoints, Azure's tenant issuer, Apple's
//! form_post and ES256 client secret, Facebook's and GitHub's user
//! endpoints), failures (slow, down or babbling providers, forged
//! id_tokens, bad state, a missing cookie, consent denied), linking, the
//! second factor, and the login activity.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hallpass::accounts::{self, Client, User};
use hallpass::config::{Config, Flags};
use hallpass::db;
use hallpass::http::{parse_form, percent_encode};
use serde_json::{json, Value};

use crate::fakeidp::{self, FakeIdp, Flavor, Forgery};
use crate::second_factor::{code_at, enable_native};
use crate::support::{Resp, TestServer};

/// hallpass's public URL here: every redirect URI it sends upstream starts
/// with it (https, so the binding cookie is Secure).
pub(crate) const PUBLIC: &str = "https://auth.example.test";
/// The client's registered redirect URL (support::add_client).
const APP: &str = "https://app.example/cb";
/// The app's own state, with characters that need encoding.
const APP_STATE: &str = "app/state 1&x=y";

/// A running hallpass with providers, and one confidential client.
pub(crate) struct World {
    pub(crate) s: TestServer,
    pub(crate) client: Client,
    pub(crate) secret: String,
}

/// Starts hallpass with global `signup` and the `[providers.*]` tables of
/// `providers` (TOML; `{IDP}` is replaced by the fake's base URL), loaded
/// through Config::load as an operator's file would be. The fake's clock
/// becomes the server's.
pub(crate) fn world(idp: &FakeIdp, signup: &str, providers: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hallpass.toml");
    let text = format!(
        "public_url = \"{PUBLIC}\"\nsignup = \"{signup}\"\n\n{}",
        providers.replace("{IDP}", &idp.base)
    );
    std::fs::write(&path, &text).unwrap();
    let flags = Flags {
        config: Some(path),
        ..Flags::default()
    };
    let loaded = Config::load(&flags, &|_| None)
        .unwrap_or_else(|e| panic!("the config does not load: {e:?}\n{text}"));
    let s = TestServer::start_with(|c| {
        c.public_url = loaded.public_url.clone();
        c.signup = loaded.signup;
        c.providers = loaded.providers.clone();
    });
    idp.use_clock(&s.clock);
    let (client, secret) = s.add_client();
    World { s, client, secret }
}

/// A fake OIDC provider expecting hallpass at `callback` (a path).
fn oidc_idp(client_id: &str, secret: &str, callback: &str) -> FakeIdp {
    FakeIdp::start(
        Flavor::Oidc,
        client_id,
        Some(secret),
        &format!("{PUBLIC}{callback}"),
    )
}

/// The usual Google-kind provider on the fake, by discovery.
pub(crate) const GOOGLE: &str = r#"
[providers.google]
client_id = "g-client"
client_secret = "g-secret"
issuer = "{IDP}"
"#;

pub(crate) fn google_idp() -> FakeIdp {
    oidc_idp("g-client", "g-secret", "/auth/google-auth-redirect")
}

/// The decoded query of a URL.
pub(crate) fn query_of(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let q = q.split('#').next().unwrap_or("");
    parse_form(q).into_iter().collect()
}

/// A sign-in begun at our start route.
pub(crate) struct Started {
    /// The provider's authorize URL (our 302's Location).
    pub(crate) location: String,
    /// Our state as sent upstream.
    pub(crate) state: String,
    /// `name=value` of the binding cookie.
    pub(crate) cookie: String,
    /// The whole Set-Cookie value.
    pub(crate) set_cookie: String,
}

pub(crate) fn started(r: &Resp, idp: &FakeIdp) -> Started {
    assert_eq!(r.status, 302, "the start answered {}: {}", r.status, r.body);
    let location = r.header("location").expect("a Location").to_string();
    assert!(
        location.starts_with(&format!("{}/", idp.base)),
        "not to the provider: {location}"
    );
    let set_cookie = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .find(|v| v.starts_with("__Host-hp_oauth_") || v.starts_with("hp_oauth_"))
        .unwrap_or_else(|| panic!("no binding cookie: {:?}", r.headers));
    let cookie = set_cookie.split(';').next().unwrap().trim().to_string();
    let state = query_of(&location)
        .remove("state")
        .expect("a state upstream");
    Started {
        location,
        state,
        cookie,
        set_cookie,
    }
}

/// GET `route` with our client (and the app's state).
fn start(w: &World, idp: &FakeIdp, route: &str) -> Started {
    start_with(w, idp, route, "")
}

/// GET `route` with our client, the app's state and `extra` query pairs.
fn start_with(w: &World, idp: &FakeIdp, route: &str, extra: &str) -> Started {
    let r = w.s.get(&format!(
        "{route}?client_id={}&state={}{extra}",
        percent_encode(&w.client.client_id),
        percent_encode(APP_STATE)
    ));
    started(&r, idp)
}

/// Where the provider sends the browser back to us.
pub(crate) enum Back {
    /// GET this path and query at hallpass.
    Get(String),
    /// POST these fields (form-encoded) to this path at hallpass.
    Post(String, Vec<(String, String)>),
}

/// A client for the fake provider's pages, not following redirects.
fn browser() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// The browser at the provider's authorize URL: the user signs in there
/// and is sent back to us (a 302, or Apple's auto-submitting form).
pub(crate) fn authorize(idp: &FakeIdp, st: &Started) -> Back {
    let mut resp = browser().get(&st.location).call().unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    match status {
        302 => {
            let to = location.unwrap();
            let path = to
                .strip_prefix(PUBLIC)
                .unwrap_or_else(|| panic!("the provider sends the browser to {to}"));
            Back::Get(path.to_string())
        }
        200 => {
            let action = attr_after(&body, "action=\"").expect("a form action");
            let path = action
                .strip_prefix(PUBLIC)
                .unwrap_or_else(|| panic!("the form posts to {action}"))
                .to_string();
            let mut fields = Vec::new();
            let mut rest = body.as_str();
            while let Some(i) = rest.find("<input ") {
                rest = &rest[i + 7..];
                let name = attr_after(rest, "name=\"").unwrap();
                let value = attr_after(rest, "value=\"").unwrap();
                fields.push((name, value));
            }
            Back::Post(path, fields)
        }
        _ => panic!(
            "the provider refused the authorization request: {status} {body}\n{:?}",
            idp.problems()
        ),
    }
}

/// The HTML attribute value after `prefix`, unescaped.
fn attr_after(html: &str, prefix: &str) -> Option<String> {
    let start = html.find(prefix)? + prefix.len();
    let end = html[start..].find('"')? + start;
    Some(fakeidp::html_unescape(&html[start..end]))
}

/// The browser arriving at our callback, with `cookie` (`name=value`).
pub(crate) fn callback(s: &TestServer, back: &Back, cookie: Option<&str>) -> Resp {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(c) = cookie {
        headers.push(("Cookie", c));
    }
    match back {
        Back::Get(path) => s.request("GET", path, &headers, None),
        Back::Post(path, fields) => {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                .collect();
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
            s.request("POST", path, &headers, Some(body.join("&").as_bytes()))
        }
    }
}

/// The query of our final 302 to the client's redirect URL `app`.
fn at(app: &str, r: &Resp) -> HashMap<String, String> {
    assert_eq!(
        r.status, 302,
        "the callback answered {}: {}",
        r.status, r.body
    );
    let loc = r.header("location").unwrap();
    let q = loc
        .strip_prefix(&format!("{app}?"))
        .unwrap_or_else(|| panic!("not to the client's redirect URL: {loc}"));
    parse_form(q).into_iter().collect()
}

fn at_app(r: &Resp) -> HashMap<String, String> {
    at(APP, r)
}

/// A whole sign-in through `route`; the query the app receives.
fn sign_in(w: &World, idp: &FakeIdp, route: &str) -> HashMap<String, String> {
    let st = start(w, idp, route);
    let back = authorize(idp, &st);
    at_app(&callback(&w.s, &back, Some(&st.cookie)))
}

/// Asserts a successful sign-in: our code and the app's state.
fn code_of(q: &HashMap<String, String>, idp: &FakeIdp) -> String {
    assert!(
        q.get("error").is_none(),
        "refused: {q:?}; the fake saw {:?}",
        idp.problems()
    );
    assert_eq!(q.get("state").map(String::as_str), Some(APP_STATE));
    q.get("code").expect("a code").clone()
}

/// Asserts a refusal with `error`, the app's state, and no code.
fn refused(q: &HashMap<String, String>, error: &str) {
    assert_eq!(q.get("error").map(String::as_str), Some(error), "{q:?}");
    assert!(q.get("code").is_none(), "a code with an error: {q:?}");
    assert!(
        q.get("error_description").is_some_and(|d| !d.is_empty()),
        "{q:?}"
    );
    assert_eq!(q.get("state").map(String::as_str), Some(APP_STATE));
}

/// Our code for tokens, as any client does.
fn tokens(w: &World, code: &str) -> Value {
    let t = w.s.post(
        "/auth/token",
        &json!({"clientId": w.client.client_id, "code": code}),
    );
    assert_eq!(t.status, 200, "{}", t.body);
    t.json()
}

/// Who the code signed in, according to /auth/me.
fn me(w: &World, code: &str) -> Value {
    let t = tokens(w, code);
    let r = w.s.get_auth("/auth/me", t["accessToken"].as_str().unwrap());
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// A user whose address hallpass has verified (support::add_user's users
/// have not): only such an account is linked by email.
pub(crate) fn verified_user(s: &TestServer, email: &str) -> User {
    let user = s.add_user(email);
    let mut conn = s.conn();
    db::immediate(&mut conn, |tx| {
        accounts::mark_email_verified(tx, &user.id, s.now())
    })
    .unwrap();
    user
}

pub(crate) fn count(s: &TestServer, sql: &str) -> i64 {
    s.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn users(s: &TestServer) -> i64 {
    count(s, "SELECT count(*) FROM users")
}

/// (login_type, outcome, method) of every login_activity row, oldest first.
pub(crate) fn activity(s: &TestServer) -> Vec<(String, String, String)> {
    let conn = s.conn();
    let mut st = conn
        .prepare(
            "SELECT login_type, outcome, COALESCE(json_extract(token_payload, '$.method'), '')
             FROM login_activity ORDER BY login_time, rowid",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The activity rows whose method names `provider`.
pub(crate) fn activity_of(s: &TestServer, provider: &str) -> Vec<(String, String)> {
    activity(s)
        .into_iter()
        .filter(|(_, _, m)| m.contains(provider))
        .map(|(t, o, _)| (t, o))
        .collect()
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_provider_found_by_discovery_signs_a_new_user_in_end_to_end() {
    let idp = google_idp();
    idp.set_identity("g-100", Some("nora@example.com"), json!(true));
    idp.set_name(Some("Nora New"));
    let w = world(&idp, "open", GOOGLE);

    let st = start(&w, &idp, "/auth/google");
    assert!(
        st.location.starts_with(&format!("{}/authorize?", idp.base)),
        "the discovered authorization endpoint: {}",
        st.location
    );
    let q = query_of(&st.location);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "g-client");
    assert_eq!(
        q["redirect_uri"],
        format!("{PUBLIC}/auth/google-auth-redirect")
    );
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    for s in ["openid", "email", "profile"] {
        assert!(scopes.contains(&s), "scope {s} in {:?}", q["scope"]);
    }
    assert!(q["nonce"].len() >= 16, "a nonce: {q:?}");
    assert!(st.state.len() >= 16, "our own random state: {q:?}");
    assert_ne!(st.state, APP_STATE, "the app's state never goes upstream");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43, "S256 of a verifier");

    // The browser-binding cookie: one per sign-in, so that two tabs do
    // not overwrite each other's.
    // Over https it is a __Host- cookie: Secure, Path=/, no Domain, so
    // that no sibling subdomain can plant or shadow it.
    assert!(
        st.cookie.starts_with("__Host-hp_oauth_"),
        "{}",
        st.set_cookie
    );
    let other_tab = start(&w, &idp, "/auth/google");
    assert_ne!(
        st.cookie.split_once('=').unwrap().0,
        other_tab.cookie.split_once('=').unwrap().0
    );
    let attrs: Vec<String> = st
        .set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain=")),
        "{}",
        st.set_cookie
    );
    for want in [
        "httponly",
        "path=/",
        "max-age=600",
        "samesite=lax",
        "secure",
    ] {
        assert!(
            attrs.iter().any(|a| a == want),
            "{want} in {}",
            st.set_cookie
        );
    }

    let back = authorize(&idp, &st);
    let r = callback(&w.s, &back, Some(&st.cookie));
    let (name, _) = st.cookie.split_once('=').unwrap();
    let cleared = r
        .headers
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with(name))
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_else(|| panic!("the binding cookie is not cleared: {:?}", r.headers));
    assert!(cleared.contains("max-age=0"), "{cleared}");
    let out = at_app(&r);
    let code = code_of(&out, &idp);
    let calls = idp.token_calls();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].client_auth == "basic" || calls[0].client_auth == "post",
        "{calls:?}"
    );
    assert!(
        calls[0].form.iter().any(|(k, _)| k == "code_verifier"),
        "PKCE verifier sent: {calls:?}"
    );

    let who = me(&w, &code);
    assert_eq!(who["email"], "nora@example.com");
    assert_eq!(who["name"], "Nora New");
    assert_eq!(who["authClientId"], w.client.num);
    assert_eq!(users(&w.s), 1);

    // Signing in again is the same account, and the discovery document
    // was fetched once.
    let again = sign_in(&w, &idp, "/auth/google");
    let who2 = me(&w, &code_of(&again, &idp));
    assert_eq!(who2["id"], who["id"]);
    assert_eq!(users(&w.s), 1);
    assert_eq!(idp.discovery_fetches(), 1, "discovery is cached");
    let rows = activity_of(&w.s, "google");
    assert_eq!(rows.len(), 2, "{:?}", activity(&w.s));
    assert!(rows
        .iter()
        .all(|(t, o)| (t == "ACCESS" || t == "RELOGIN") && o == "success"));
    assert!(idp.problems().is_empty(), "{:?}", idp.problems());
}

#[test]
fn explicit_endpoints_need_no_discovery_and_start_takes_a_form_post() {
    let idp = oidc_idp("acme-client", "acme-secret", "/auth/oidc/acme/callback");
    idp.serve_discovery(false);
    idp.sign_with("ES256");
    idp.set_identity("acme-7", Some("pat@example.com"), json!("true"));
    let w = world(
        &idp,
        "open",
        r#"
[providers.acme]
kind = "oidc"
client_id = "acme-client"
client_secret = "acme-secret"
issuer = "{IDP}"
authorize_url = "{IDP}/o/authorize"
token_url = "{IDP}/o/token"
userinfo_url = "{IDP}/o/userinfo"
jwks_url = "{IDP}/o/keys"
"#,
    );
    let body = format!(
        "client_id={}&client_secret={}&state={}",
        percent_encode(&w.client.client_id),
        percent_encode(&w.secret),
        percent_encode(APP_STATE)
    );
    let r = w.s.request(
        "POST",
        "/auth/oidc/acme",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    );
    let st = started(&r, &idp);
    assert!(
        st.location
            .starts_with(&format!("{}/o/authorize?", idp.base)),
        "{}",
        st.location
    );
    let back = authorize(&idp, &st);
    let out = at_app(&callback(&w.s, &back, Some(&st.cookie)));
    let who = me(&w, &code_of(&out, &idp));
    assert_eq!(who["email"], "pat@example.com", "\"true\" is verified");
    assert_eq!(idp.discovery_fetches(), 0);
}

#[test]
fn azure_checks_its_tenant_issuer_and_never_trusts_the_email() {
    let idp = oidc_idp("az-client", "az-secret", "/auth/azure-oauth-redirect");
    let issuer = idp.set_issuer_path("/contoso/v2.0");
    idp.jwks_with_alg(false);
    idp.set_claim("tid", json!("0b1e0a57-contoso"));
    // Azure's email claim is whatever the tenant's admin typed.
    idp.set_identity("az-oid-1", Some("ann@example.com"), json!(true));
    idp.set_name(Some("Ann Azure"));
    let w = world(
        &idp,
        "open",
        &format!(
            r#"
[providers.azure]
client_id = "az-client"
client_secret = "az-secret"
tenant = "contoso"
issuer = "{issuer}"
"#
        ),
    );
    let ann = verified_user(&w.s, "ann@example.com");
    let st = start(&w, &idp, "/auth/azure");
    assert_eq!(
        query_of(&st.location)["redirect_uri"],
        format!("{PUBLIC}/auth/azure-oauth-redirect")
    );
    let back = authorize(&idp, &st);
    let out = at_app(&callback(&w.s, &back, Some(&st.cookie)));
    let who = me(&w, &code_of(&out, &idp));
    assert_ne!(who["id"], ann.id.as_str(), "never linked by Azure's email");
    assert_ne!(who["email"], "ann@example.com");
    assert_eq!(who["name"], "Ann Azure");

    // A token of another tenant is refused.
    idp.set_token_issuer(&format!("{}/fabrikam/v2.0", idp.base));
    let other = sign_in(&w, &idp, "/auth/azure");
    refused(&other, "access_denied");
}

#[test]
fn azure_common_tenant_takes_the_issuer_of_the_users_own_tenant() {
    // The multi-tenant endpoint (tenant "common", the default): discovery
    // says `.../{tenantid}/v2.0`, each token carries its tenant's issuer
    // and `tid`.
    let idp = oidc_idp("az-client", "az-secret", "/auth/azure-oauth-redirect");
    let issuer = idp.set_issuer_path("/common/v2.0");
    idp.set_discovery_issuer(&format!("{}/{{tenantid}}/v2.0", idp.base));
    let tid = "9188040d-6c67-4c5b-b112-36a304b66dad";
    idp.set_token_issuer(&format!("{}/{tid}/v2.0", idp.base));
    idp.set_claim("tid", json!(tid));
    idp.jwks_with_alg(false);
    let w = world(
        &idp,
        "open",
        &format!(
            r#"
[providers.azure]
client_id = "az-client"
client_secret = "az-secret"
tenant = "common"
issuer = "{issuer}"
"#
        ),
    );
    let out = sign_in(&w, &idp, "/auth/azure");
    code_of(&out, &idp);

    // The issuer must still be that tenant's: a token whose iss names
    // another tenant than its tid is refused.
    idp.set_token_issuer(&format!("{}/someone-else/v2.0", idp.base));
    refused(&sign_in(&w, &idp, "/auth/azure"), "access_denied");

    // The template is Entra ID's alone: an OIDC provider whose discovery
    // says `{tenantid}` would take the tokens of every tenant.
    idp.set_token_issuer(&format!("{}/{tid}/v2.0", idp.base));
    idp.allow_redirect_uri(&format!("{PUBLIC}/auth/oidc/multi/callback"));
    let w = world(
        &idp,
        "open",
        &format!(
            r#"
[providers.multi]
kind = "oidc"
client_id = "az-client"
client_secret = "az-secret"
issuer = "{issuer}"
"#
        ),
    );
    let r = w.s.get(&format!(
        "/auth/oidc/multi?client_id={}&state={}",
        w.client.client_id,
        percent_encode(APP_STATE)
    ));
    let q = if r.header("location").is_some_and(|l| l.starts_with(APP)) {
        at_app(&r)
    } else {
        let st = started(&r, &idp);
        let back = authorize(&idp, &st);
        at_app(&callback(&w.s, &back, Some(&st.cookie)))
    };
    assert!(q.contains_key("error") && !q.contains_key("code"), "{q:?}");
    assert_eq!(users(&w.s), 0);
}

#[test]
fn a_discovery_document_naming_another_issuer_is_not_followed() {
    let idp = google_idp();
    idp.set_discovery_issuer("https://accounts.example.com");
    let w = world(&idp, "open", GOOGLE);
    let r = w.s.get(&format!(
        "/auth/google?client_id={}&state={}",
        w.client.client_id,
        percent_encode(APP_STATE)
    ));
    refused(&at_app(&r), "server_error");
    assert!(idp.authorizations().is_empty());
}

#[test]
fn apple_calls_back_with_a_form_post_and_gets_a_client_secret_signed_with_the_p8_key() {
    let keys = tempfile::tempdir().unwrap();
    let pkcs8 = fakeidp::ec_pkcs8();
    let p8 = keys.path().join("AuthKey_KEY7654321.p8");
    std::fs::write(&p8, fakeidp::pem("PRIVATE KEY", &pkcs8)).unwrap();
    let idp = FakeIdp::start(
        Flavor::Apple,
        "com.example.web",
        None,
        &format!("{PUBLIC}/auth/apple-oauth-redirect"),
    );
    idp.expect_apple_secret("TEAM123456", "KEY7654321", &fakeidp::ec_public(&pkcs8));
    // Apple says "true" as a string.
    idp.set_identity("001234.abcdef.0042", Some("ann@example.com"), json!("true"));
    idp.set_name(Some("Ann Apple"));
    let w = world(
        &idp,
        "invite",
        &format!(
            r#"
[providers.apple]
client_id = "com.example.web"
team_id = "TEAM123456"
key_id = "KEY7654321"
private_key_file = "{}"
signup = true
issuer = "{{IDP}}"
authorize_url = "{{IDP}}/auth/authorize"
token_url = "{{IDP}}/auth/token"
jwks_url = "{{IDP}}/auth/keys"
"#,
            p8.display()
        ),
    );
    let ann = verified_user(&w.s, "ann@example.com");

    let st = start(&w, &idp, "/auth/oauth-apple");
    let q = query_of(&st.location);
    assert_eq!(q["response_mode"], "form_post");
    assert_eq!(
        q["redirect_uri"],
        format!("{PUBLIC}/auth/apple-oauth-redirect")
    );
    assert!(q["scope"].split(' ').any(|s| s == "email"), "{q:?}");
    // Apple's POST comes from appleid.apple.com: a cross-site POST carries
    // the cookie only when it is SameSite=None (and so Secure).
    let lower = st.set_cookie.to_ascii_lowercase();
    assert!(lower.contains("samesite=none"), "{}", st.set_cookie);
    assert!(lower.contains("secure"), "{}", st.set_cookie);

    let back = authorize(&idp, &st);
    let Back::Post(path, fields) = &back else {
        panic!("Apple answers with a form to post")
    };
    assert_eq!(path, "/auth/apple-oauth-redirect");
    assert!(fields.iter().any(|(k, _)| k == "user"), "{fields:?}");
    let out = at_app(&callback(&w.s, &back, Some(&st.cookie)));
    let who = me(&w, &code_of(&out, &idp));
    assert_eq!(
        who["id"],
        ann.id.as_str(),
        "linked by Apple's verified email"
    );

    let calls = idp.token_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].client_auth, "apple_jwt", "{:?}", idp.problems());
    let secret = &idp.apple_secrets()[0];
    assert_eq!(secret["iss"], "TEAM123456");
    assert_eq!(secret["sub"], "com.example.web");

    // A newcomer: the name is only in the first form post's `user` field.
    idp.set_identity(
        "001234.fedcba.0077",
        Some("x7k2@privaterelay.appleid.com"),
        json!("true"),
    );
    idp.set_name(Some("Neil Newton"));
    let st = start(&w, &idp, "/auth/oauth-apple");
    let back = authorize(&idp, &st);
    let out = at_app(&callback(&w.s, &back, Some(&st.cookie)));
    let who = me(&w, &code_of(&out, &idp));
    assert_eq!(who["email"], "x7k2@privaterelay.appleid.com");
    assert_eq!(who["name"], "Neil Newton");
    assert!(idp.problems().is_empty(), "{:?}", idp.problems());
}

#[test]
fn facebook_signs_in_through_its_user_endpoint() {
    let idp = FakeIdp::start(
        Flavor::Facebook,
        "fb-app",
        Some("fb-secret"),
        &format!("{PUBLIC}/auth/facebook-auth-redirect"),
    );
    idp.set_identity("10158000000000001", Some("ann@example.com"), json!(null));
    idp.set_name(Some("Ann Facebook"));
    let w = world(
        &idp,
        "invite",
        r#"
[providers.facebook]
client_id = "fb-app"
client_secret = "fb-secret"
authorize_url = "{IDP}/v19.0/dialog/authorize"
token_url = "{IDP}/v19.0/oauth/access_token"
userinfo_url = "{IDP}/me?fields=id,name,email"
"#,
    );
    let ann = verified_user(&w.s, "ann@example.com");
    let st = start(&w, &idp, "/auth/facebook");
    assert_eq!(
        query_of(&st.location)["redirect_uri"],
        format!("{PUBLIC}/auth/facebook-auth-redirect")
    );
    let back = authorize(&idp, &st);
    let out = at_app(&callback(&w.s, &back, Some(&st.cookie)));
    let who = me(&w, &code_of(&out, &idp));
    assert_eq!(who["id"], ann.id.as_str(), "Facebook's email is verified");
    assert!(idp.user_calls() >= 1);
    assert!(idp.problems().is_empty(), "{:?}", idp.problems());
}

#[test]
fn github_signs_in_with_its_primary_verified_address_only() {
    let idp = FakeIdp::start(
        Flavor::Github,
        "gh-client",
        Some("gh-secret"),
        &format!("{PUBLIC}/auth/oidc/github/callback"),
    );
    idp.set_identity("583231", Some("ann@example.com"), json!(true));
    idp.set_name(Some("Ann Octo"));
    let w = world(
        &idp,
        "open",
        r#"
[providers.github]
client_id = "gh-client"
client_secret = "gh-secret"
authorize_url = "{IDP}/login/oauth/authorize"
token_url = "{IDP}/login/oauth/access_token"
userinfo_url = "{IDP}/user"
emails_url = "{IDP}/user/emails"
"#,
    );
    let ann = verified_user(&w.s, "ann@example.com");
    let bob = verified_user(&w.s, "bob@example.com");
    let out = sign_in(&w, &idp, "/auth/oidc/github");
    let who = me(&w, &code_of(&out, &idp));
    assert_eq!(who["id"], ann.id.as_str());
    assert!(idp.problems().is_empty(), "{:?}", idp.problems());

    // An unverified primary address links nobody: a new account without it.
    idp.set_identity("777", Some("bob@example.com"), json!(false));
    let out = sign_in(&w, &idp, "/auth/oidc/github");
    let who = me(&w, &code_of(&out, &idp));
    assert_ne!(who["id"], bob.id.as_str());
    assert_ne!(who["email"], "bob@example.com");
    assert_eq!(who["name"], "Ann Octo");
}

#[test]
fn a_slow_or_absent_provider_is_temporarily_unavailable() {
    let idp = oidc_idp("c", "s", "/auth/oidc/slow/callback");
    idp.allow_redirect_uri(&format!("{PUBLIC}/auth/oidc/down/callback"));
    idp.delay_token(Duration::from_secs(4));
    let dead = dead_port();
    let w = world(
        &idp,
        "open",
        &format!(
            r#"
[providers.slow]
kind = "oidc"
client_id = "c"
client_secret = "s"
issuer = "{{IDP}}"
timeout_secs = 1

[providers.down]
kind = "oidc"
client_id = "c"
client_secret = "s"
issuer = "{{IDP}}"
token_url = "http://127.0.0.1:{dead}/token"

[providers.gone]
kind = "oidc"
client_id = "c"
client_secret = "s"
issuer = "http://127.0.0.1:{dead}"
"#
        ),
    );
    let st = start(&w, &idp, "/auth/oidc/slow");
    let back = authorize(&idp, &st);
    let t0 = Instant::now();
    let r = callback(&w.s, &back, Some(&st.cookie));
    let took = t0.elapsed();
    refused(&at_app(&r), "temporarily_unavailable");
    assert!(took < Duration::from_secs(3), "waited {took:?}");

    let down = sign_in(&w, &idp, "/auth/oidc/down");
    refused(&down, "temporarily_unavailable");

    // No discovery document to be had: the start itself sends the app
    // its error.
    let r = w.s.get(&format!(
        "/auth/oidc/gone?client_id={}&state={}",
        w.client.client_id,
        percent_encode(APP_STATE)
    ));
    refused(&at_app(&r), "temporarily_unavailable");
    assert_eq!(users(&w.s), 0);
    let failed = activity(&w.s)
        .into_iter()
        .filter(|(t, _, _)| t == "FAILED")
        .count();
    assert_eq!(failed, 3, "{:?}", activity(&w.s));
}

#[test]
fn nonsense_from_the_token_endpoint_is_a_server_error() {
    let idp = google_idp();
    idp.garbage_token(true);
    let w = world(&idp, "open", GOOGLE);
    refused(&sign_in(&w, &idp, "/auth/google"), "server_error");
    assert_eq!(users(&w.s), 0);
}

#[test]
fn an_email_only_in_userinfo_is_used_and_userinfo_must_be_about_the_same_subject() {
    let idp = google_idp();
    idp.email_in_id_token(false);
    idp.set_identity("g-ann", Some("ann@example.com"), json!(true));
    let w = world(&idp, "invite", GOOGLE);
    let ann = verified_user(&w.s, "ann@example.com");
    let who = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    assert_eq!(who["id"], ann.id.as_str());
    assert!(idp.user_calls() >= 1);

    // /userinfo about someone else is not believed (believed, it would
    // link bob).
    let bob = verified_user(&w.s, "bob@example.com");
    idp.set_identity("g-bob", Some("bob@example.com"), json!(true));
    idp.userinfo_subject(Some("g-someone"));
    refused(&sign_in(&w, &idp, "/auth/google"), "access_denied");
    idp.userinfo_subject(None);
    let who = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    assert_eq!(who["id"], bob.id.as_str());
}

#[test]
fn instagram_signs_in_without_pkce_and_without_an_email() {
    let idp = FakeIdp::start(
        Flavor::Facebook,
        "ig-app",
        Some("ig-secret"),
        &format!("{PUBLIC}/auth/instagram-auth-redirect"),
    );
    idp.set_identity("17841400000000001", None, json!(null));
    idp.set_name(Some("ann.grams"));
    let w = world(
        &idp,
        "open",
        r#"
[providers.instagram]
client_id = "ig-app"
client_secret = "ig-secret"
authorize_url = "{IDP}/oauth/authorize"
token_url = "{IDP}/oauth/access_token"
userinfo_url = "{IDP}/me?fields=id,username"
"#,
    );
    let st = start(&w, &idp, "/auth/instagram");
    let q = query_of(&st.location);
    assert!(!q.contains_key("code_challenge"), "{q:?}");
    assert!(!q.contains_key("nonce"), "{q:?}");
    let back = authorize(&idp, &st);
    let out = at_app(&callback(&w.s, &back, Some(&st.cookie)));
    let who = me(&w, &code_of(&out, &idp));
    assert!(who.get("email").is_none(), "{who}");
    assert_eq!(users(&w.s), 1);
}

#[test]
fn a_provider_refusing_our_own_credentials_is_a_server_error() {
    let idp = google_idp();
    let w = world(
        &idp,
        "open",
        r#"
[providers.google]
client_id = "g-client"
client_secret = "not-the-secret"
issuer = "{IDP}"
"#,
    );
    refused(&sign_in(&w, &idp, "/auth/google"), "server_error");
    assert_eq!(users(&w.s), 0);
}

#[test]
fn a_rotated_signing_key_is_fetched_again() {
    let idp = google_idp();
    let w = world(&idp, "open", GOOGLE);
    let first = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    let fetched = idp.jwks_fetches();
    assert!(fetched >= 1);

    // A while later the provider rotates: the old key leaves its JWKS.
    w.s.advance(3600);
    idp.rotate();
    let after = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    assert_eq!(after["id"], first["id"]);
    assert!(idp.jwks_fetches() > fetched, "the JWKS was fetched again");

    // An EC key rotates as well.
    w.s.advance(3600);
    idp.sign_with("ES256");
    idp.rotate();
    code_of(&sign_in(&w, &idp, "/auth/google"), &idp);

    // The retired key no longer signs anything we accept.
    idp.forge(Some(Forgery::RetiredKey));
    refused(&sign_in(&w, &idp, "/auth/google"), "access_denied");
}

#[test]
fn forged_id_tokens_are_refused_and_create_nobody() {
    let idp = google_idp();
    let w = world(&idp, "open", GOOGLE);
    // An honest sign-in first (the JWKS is cached), then a rotation, so
    // that a retired key exists.
    code_of(&sign_in(&w, &idp, "/auth/google"), &idp);
    w.s.advance(3600);
    idp.rotate();
    code_of(&sign_in(&w, &idp, "/auth/google"), &idp);
    let fetched = idp.jwks_fetches();
    assert_eq!(users(&w.s), 1);

    idp.set_identity("victim", Some("victim@example.com"), json!(true));
    for alg in ["RS256", "ES256"] {
        idp.sign_with(alg);
        for f in Forgery::ALL {
            idp.forge(Some(f));
            let q = sign_in(&w, &idp, "/auth/google");
            assert_eq!(
                q.get("error").map(String::as_str),
                Some("access_denied"),
                "{alg} {f:?}: {q:?}"
            );
            refused(&q, "access_denied");
        }
    }
    assert_eq!(users(&w.s), 1, "nobody was created");
    assert_eq!(count(&w.s, "SELECT count(*) FROM identities"), 1);
    // Unknown kids made the JWKS be fetched at most once more: a forger
    // cannot make us hammer the provider.
    assert!(
        idp.jwks_fetches() <= fetched + 1,
        "{} fetches after {fetched}",
        idp.jwks_fetches()
    );
    let failed = activity_of(&w.s, "google")
        .into_iter()
        .filter(|(t, _)| t == "FAILED")
        .count();
    assert_eq!(failed, 2 * Forgery::ALL.len());

    // And an honest token still works.
    idp.forge(None);
    let who = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    assert_eq!(who["email"], "victim@example.com");
}

/// A 400 native JSON error, no redirect.
fn json_400(r: &Resp) {
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.header("location").is_none(), "{:?}", r.headers);
    assert!(r.json()["error"].is_object(), "{}", r.body);
}

#[test]
fn replayed_expired_and_unknown_states_are_refused_without_a_redirect() {
    let idp = google_idp();
    idp.allow_redirect_uri(&format!("{PUBLIC}/auth/oidc/other/callback"));
    let w = world(
        &idp,
        "open",
        r#"
[providers.google]
client_id = "g-client"
client_secret = "g-secret"
issuer = "{IDP}"

[providers.other]
kind = "oidc"
client_id = "g-client"
client_secret = "g-secret"
issuer = "{IDP}"
"#,
    );
    // Never issued.
    json_400(&w.s.get("/auth/google-auth-redirect?code=abc&state=never-issued-state-1234"));
    json_400(&w.s.get("/auth/google-auth-redirect?code=abc"));

    // Replayed: the second arrival of the same callback.
    let st = start(&w, &idp, "/auth/google");
    let back = authorize(&idp, &st);
    code_of(&at_app(&callback(&w.s, &back, Some(&st.cookie))), &idp);
    json_400(&callback(&w.s, &back, Some(&st.cookie)));

    // Expired: ten minutes.
    let st = start(&w, &idp, "/auth/google");
    let back = authorize(&idp, &st);
    w.s.advance(601);
    json_400(&callback(&w.s, &back, Some(&st.cookie)));

    // Issued for one provider, brought to another's callback: no code.
    let st = start(&w, &idp, "/auth/google");
    let Back::Get(path) = authorize(&idp, &st) else {
        unreachable!()
    };
    let foreign = path.replace("/auth/google-auth-redirect", "/auth/oidc/other/callback");
    let r = callback(&w.s, &Back::Get(foreign), Some(&st.cookie));
    assert!(
        r.status == 400 || r.status == 302,
        "{} {}",
        r.status,
        r.body
    );
    if r.status == 302 {
        refused(&at_app(&r), "access_denied");
    }
    assert_eq!(users(&w.s), 1);
}

#[test]
fn a_callback_without_its_binding_cookie_is_refused() {
    let idp = google_idp();
    let w = world(&idp, "open", GOOGLE);

    let st = start(&w, &idp, "/auth/google");
    let back = authorize(&idp, &st);
    refused(&at_app(&callback(&w.s, &back, None)), "access_denied");

    let st = start(&w, &idp, "/auth/google");
    let back = authorize(&idp, &st);
    let (name, _) = st.cookie.split_once('=').unwrap();
    let tampered = format!("{name}=not-the-value");
    refused(
        &at_app(&callback(&w.s, &back, Some(&tampered))),
        "access_denied",
    );

    // The cookie of another sign-in (another tab, or the attacker's own).
    let mine = start(&w, &idp, "/auth/google");
    let theirs = start(&w, &idp, "/auth/google");
    let back = authorize(&idp, &theirs);
    refused(
        &at_app(&callback(&w.s, &back, Some(&mine.cookie))),
        "access_denied",
    );
    assert_eq!(users(&w.s), 0);
}

#[test]
fn denied_consent_goes_back_to_the_app_with_access_denied_and_its_state() {
    let idp = google_idp();
    idp.deny(true);
    let w = world(&idp, "open", GOOGLE);
    refused(&sign_in(&w, &idp, "/auth/google"), "access_denied");
    assert!(idp.token_calls().is_empty());
    assert_eq!(users(&w.s), 0);
    let rows = activity_of(&w.s, "google");
    assert_eq!(rows.len(), 1, "{:?}", activity(&w.s));
    assert_eq!(rows[0].0, "FAILED");
}

#[test]
fn a_verified_email_links_to_the_existing_account_and_the_link_stays() {
    let idp = google_idp();
    idp.set_identity("g-ann", Some("ann@example.com"), json!(true));
    let w = world(&idp, "invite", GOOGLE);
    let ann = verified_user(&w.s, "ann@example.com");
    let who = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    assert_eq!(who["id"], ann.id.as_str());
    assert_eq!(users(&w.s), 1);

    // An account whose address hallpass never verified is not linked,
    // whatever the provider says: whoever made it may know its password.
    w.s.add_user("unproven@example.com");
    idp.set_identity("g-unproven", Some("unproven@example.com"), json!(true));
    refused(&sign_in(&w, &idp, "/auth/google"), "access_denied");
    assert_eq!(count(&w.s, "SELECT count(*) FROM identities"), 1);
    assert_eq!(users(&w.s), 2);

    // The identity, not the address, names her from now on.
    idp.set_identity("g-ann", Some("ann.new@example.com"), json!(true));
    let who = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    assert_eq!(who["id"], ann.id.as_str());
    assert_eq!(users(&w.s), 2);
}

#[test]
fn an_unverified_email_links_nobody() {
    for verified in [json!(false), json!(null), json!("false")] {
        // Sign-up open: a new account, without the unproven address.
        let idp = google_idp();
        idp.set_identity("g-mallory", Some("ann@example.com"), verified.clone());
        let w = world(&idp, "open", GOOGLE);
        let ann = verified_user(&w.s, "ann@example.com");
        let who = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
        assert_ne!(who["id"], ann.id.as_str(), "{verified}");
        assert_ne!(who["email"], "ann@example.com", "{verified}");
        assert_eq!(users(&w.s), 2);

        // An unverified address nobody has is not kept either.
        idp.set_identity("g-fresh", Some("fresh@example.com"), verified.clone());
        let who = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
        assert!(who.get("email").is_none(), "{verified}: {who}");

        // Sign-up by invitation: refused.
        let idp = google_idp();
        idp.set_identity("g-mallory", Some("ann@example.com"), verified.clone());
        let w = world(&idp, "invite", GOOGLE);
        verified_user(&w.s, "ann@example.com");
        refused(&sign_in(&w, &idp, "/auth/google"), "access_denied");
        assert_eq!(users(&w.s), 1);
        assert_eq!(count(&w.s, "SELECT count(*) FROM identities"), 0);
    }
}

#[test]
fn link_by_email_false_keeps_accounts_apart() {
    let table = r#"
[providers.google]
client_id = "g-client"
client_secret = "g-secret"
issuer = "{IDP}"
link_by_email = false
"#;
    let idp = google_idp();
    idp.set_identity("g-ann", Some("ann@example.com"), json!(true));
    let w = world(&idp, "invite", table);
    verified_user(&w.s, "ann@example.com");
    refused(&sign_in(&w, &idp, "/auth/google"), "access_denied");
    assert_eq!(count(&w.s, "SELECT count(*) FROM identities"), 0);

    // With sign-up open, whatever is made of it, it is not ann's account.
    let idp = google_idp();
    idp.set_identity("g-ann", Some("ann@example.com"), json!(true));
    let w = world(&idp, "open", table);
    let ann = verified_user(&w.s, "ann@example.com");
    let q = sign_in(&w, &idp, "/auth/google");
    if q.contains_key("code") {
        let who = me(&w, &code_of(&q, &idp));
        assert_ne!(who["id"], ann.id.as_str());
    } else {
        refused(&q, "access_denied");
    }
}

#[test]
fn a_generic_oidc_provider_links_by_email_only_when_told_to() {
    // Anyone can run an OpenID provider that says any address is verified:
    // kind oidc links by email only with link_by_email = true.
    let table = |link: &str| {
        format!(
            r#"
[providers.pocket]
kind = "oidc"
client_id = "c"
client_secret = "s"
issuer = "{{IDP}}"
{link}
"#
        )
    };
    let idp = oidc_idp("c", "s", "/auth/oidc/pocket/callback");
    idp.set_identity("p-ann", Some("ann@example.com"), json!(true));
    let w = world(&idp, "open", &table(""));
    verified_user(&w.s, "ann@example.com");
    refused(&sign_in(&w, &idp, "/auth/oidc/pocket"), "access_denied");
    assert_eq!(count(&w.s, "SELECT count(*) FROM identities"), 0);

    let idp = oidc_idp("c", "s", "/auth/oidc/pocket/callback");
    idp.set_identity("p-ann", Some("ann@example.com"), json!(true));
    let w = world(&idp, "open", &table("link_by_email = true"));
    let ann = verified_user(&w.s, "ann@example.com");
    let who = me(&w, &code_of(&sign_in(&w, &idp, "/auth/oidc/pocket"), &idp));
    assert_eq!(who["id"], ann.id.as_str());
}

#[test]
fn a_redirect_url_unregistered_meanwhile_gets_no_redirect() {
    let idp = google_idp();
    let w = world(&idp, "open", GOOGLE);
    let st = start(&w, &idp, "/auth/google");
    let back = authorize(&idp, &st);
    w.s.conn()
        .execute(
            "UPDATE clients SET redirect_urls = '[\"https://app.example/new\"]' WHERE client_id = ?1",
            [&w.client.client_id],
        )
        .unwrap();
    json_400(&callback(&w.s, &back, Some(&st.cookie)));
}

#[test]
fn a_providers_own_signup_overrides_the_global_one() {
    let idp = google_idp();
    idp.set_identity("g-new", Some("new@example.com"), json!(true));
    let w = world(
        &idp,
        "invite",
        r#"
[providers.google]
client_id = "g-client"
client_secret = "g-secret"
issuer = "{IDP}"
signup = true
"#,
    );
    let who = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    assert_eq!(who["email"], "new@example.com");

    let idp = google_idp();
    idp.set_identity("g-new", Some("new@example.com"), json!(true));
    let w = world(
        &idp,
        "open",
        r#"
[providers.google]
client_id = "g-client"
client_secret = "g-secret"
issuer = "{IDP}"
signup = false
"#,
    );
    refused(&sign_in(&w, &idp, "/auth/google"), "access_denied");
    assert_eq!(users(&w.s), 0);
    // Linking an existing account is not a sign-up.
    let ann = verified_user(&w.s, "ann@example.com");
    idp.set_identity("g-ann", Some("ann@example.com"), json!(true));
    let who = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    assert_eq!(who["id"], ann.id.as_str());
}

#[test]
fn a_totp_user_signing_in_through_a_provider_still_owes_the_code() {
    let idp = google_idp();
    idp.set_identity("g-ann", Some("ann@example.com"), json!(true));
    let w = world(&idp, "invite", GOOGLE);
    let ann = verified_user(&w.s, "ann@example.com");
    let totp = enable_native(&w.s, &w.client, &w.secret, &ann);

    let owed = code_of(&sign_in(&w, &idp, "/auth/google"), &idp);
    assert!(
        activity_of(&w.s, "google").is_empty(),
        "no sign-in is logged before the second factor: {:?}",
        activity(&w.s)
    );
    let t = w.s.post(
        "/auth/token",
        &json!({"clientId": w.client.client_id, "code": owed}),
    );
    assert_eq!(t.status, 401, "{}", t.body);

    let v = w.s.post(
        "/auth/verify-otp",
        &json!({"key": "ann", "otp": code_at(&totp, w.s.now()), "code": owed,
                "clientId": w.client.client_id}),
    );
    assert_eq!(v.status, 200, "{}", v.body);
    let fresh = v.json()["code"].as_str().unwrap().to_string();
    let who = me(&w, &fresh);
    assert_eq!(who["id"], ann.id.as_str());
    let rows = activity_of(&w.s, "google");
    assert_eq!(rows.len(), 1, "{:?}", activity(&w.s));
    assert_eq!(rows[0].1, "success");
}

#[test]
fn every_attempt_is_in_the_login_activity_under_the_providers_name() {
    let idp = oidc_idp("c", "s", "/auth/oidc/pocket/callback");
    let w = world(
        &idp,
        "open",
        r#"
[providers.pocket]
kind = "oidc"
client_id = "c"
client_secret = "s"
issuer = "{IDP}"
"#,
    );
    code_of(&sign_in(&w, &idp, "/auth/oidc/pocket"), &idp);
    idp.deny(true);
    refused(&sign_in(&w, &idp, "/auth/oidc/pocket"), "access_denied");
    idp.deny(false);
    idp.forge(Some(Forgery::WrongAud));
    refused(&sign_in(&w, &idp, "/auth/oidc/pocket"), "access_denied");
    let rows = activity_of(&w.s, "pocket");
    assert_eq!(rows.len(), 3, "{:?}", activity(&w.s));
    assert_eq!(rows[0], ("ACCESS".into(), "success".into()));
    assert_eq!(rows[1].0, "FAILED");
    assert_eq!(rows[2].0, "FAILED");
}

#[test]
fn the_start_refuses_unknown_clients_and_unregistered_redirects_without_redirecting() {
    let idp = google_idp();
    let w = world(&idp, "open", GOOGLE);
    let no_redirect = |r: &Resp, status: u16| {
        assert_eq!(r.status, status, "{}", r.body);
        assert!(r.header("location").is_none(), "{:?}", r.headers);
    };

    let unknown = w.s.get("/auth/google?client_id=nope");
    no_redirect(&unknown, 401);
    assert_eq!(unknown.json()["error"]["message"], "Client Invalid");
    let wrong = w.s.get(&format!(
        "/auth/google?client_id={}&client_secret=wrong",
        w.client.client_id
    ));
    no_redirect(&wrong, 401);
    let body = format!("client_id={}", percent_encode(&w.client.client_id));
    let unsecret = w.s.request(
        "POST",
        "/auth/google",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    );
    no_redirect(&unsecret, 401);

    let elsewhere = w.s.get(&format!(
        "/auth/google?client_id={}&redirect_uri={}",
        w.client.client_id,
        percent_encode("https://evil.example/cb")
    ));
    no_redirect(&elsewhere, 422);
    let spa = w.s.add_public_client();
    no_redirect(
        &w.s.get(&format!("/auth/google?client_id={}", spa.client_id)),
        422,
    );
    let long = w.s.get(&format!(
        "/auth/google?client_id={}&state={}",
        w.client.client_id,
        "s".repeat(513)
    ));
    assert!(long.header("location").is_none());
    assert!((400..500).contains(&long.status), "{}", long.status);

    no_redirect(
        &w.s.get(&format!("/auth/oidc/nope?client_id={}", w.client.client_id)),
        404,
    );
    no_redirect(
        &w.s.get(&format!("/auth/keycloak?client_id={}", w.client.client_id)),
        404,
    );
    assert!(idp.authorizations().is_empty());
}

#[test]
fn the_redirect_uri_chosen_at_the_start_is_where_the_app_gets_its_code() {
    let idp = google_idp();
    let w = world(&idp, "open", GOOGLE);
    let two: Vec<String> = vec![APP.into(), "https://app.example/second".into()];
    let mut conn = w.s.conn();
    let (client, secret) = db::immediate(&mut conn, |tx| {
        accounts::create_client(
            tx,
            "two",
            &two,
            None,
            false,
            accounts::Ttls::default(),
            w.s.now(),
        )
    })
    .unwrap();
    let w2 = World {
        s: w.s,
        client,
        secret: secret.unwrap(),
    };
    let st = start_with(
        &w2,
        &idp,
        "/auth/google",
        &format!(
            "&redirect_uri={}",
            percent_encode("https://app.example/second")
        ),
    );
    let back = authorize(&idp, &st);
    let q = at(
        "https://app.example/second",
        &callback(&w2.s, &back, Some(&st.cookie)),
    );
    assert!(q.contains_key("code"), "{q:?}");

    // A failure goes there too.
    idp.deny(true);
    let st = start_with(
        &w2,
        &idp,
        "/auth/google",
        &format!(
            "&redirect_uri={}",
            percent_encode("https://app.example/second")
        ),
    );
    let back = authorize(&idp, &st);
    let q = at(
        "https://app.example/second",
        &callback(&w2.s, &back, Some(&st.cookie)),
    );
    refused(&q, "access_denied");
}

#[test]
fn the_apps_own_pkce_challenge_binds_our_code() {
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let idp = google_idp();
    let w = world(&idp, "open", GOOGLE);
    let st = start_with(
        &w,
        &idp,
        "/auth/google",
        &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"),
    );
    assert_ne!(
        query_of(&st.location)["code_challenge"],
        CHALLENGE,
        "the app's challenge is for our code, not the provider's"
    );
    let back = authorize(&idp, &st);
    let code = code_of(&at_app(&callback(&w.s, &back, Some(&st.cookie))), &idp);
    let without = w.s.post(
        "/auth/token",
        &json!({"clientId": w.client.client_id, "code": code}),
    );
    assert_eq!(without.status, 422, "{}", without.body);
    let with = w.s.post(
        "/auth/token",
        &json!({"clientId": w.client.client_id, "code": code, "code_verifier": VERIFIER}),
    );
    assert_eq!(with.status, 200, "{}", with.body);
}

#[test]
fn a_disabled_account_cannot_sign_in_through_its_provider() {
    let idp = google_idp();
    idp.set_identity("g-ann", Some("ann@example.com"), json!(true));
    let w = world(&idp, "open", GOOGLE);
    let ann = verified_user(&w.s, "ann@example.com");
    code_of(&sign_in(&w, &idp, "/auth/google"), &idp);
    w.s.conn()
        .execute(
            "UPDATE users SET status = 'disabled' WHERE id = ?1",
            [&ann.id],
        )
        .unwrap();
    refused(&sign_in(&w, &idp, "/auth/google"), "access_denied");
    assert_eq!(users(&w.s), 1, "and no new account instead");
}

#[test]
fn the_verified_email_matches_whatever_its_case() {
    let idp = google_idp();
    idp.set_identity("g-ann", Some("Ann@Example.COM"), json!(true));
    let w = world(&idp, "invite", GOOGLE);
    let ann = verified_user(&w.s, "ann@example.com");
    let who = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    assert_eq!(who["id"], ann.id.as_str());
}

#[test]
fn a_slow_provider_holds_at_most_half_the_workers() {
    let idp = oidc_idp("c", "s", "/auth/oidc/slow/callback");
    idp.delay_token(Duration::from_secs(4));
    let w = std::sync::Arc::new(world(
        &idp,
        "open",
        r#"
[providers.slow]
kind = "oidc"
client_id = "c"
client_secret = "s"
issuer = "{IDP}"
timeout_secs = 2
"#,
    ));
    assert_eq!(w.s.config.workers, 4);
    verified_user(&w.s, "pw@example.com");
    // Six browsers come back from the provider at once.
    let flows: Vec<(Started, Back)> = (0..6)
        .map(|_| {
            let st = start(&w, &idp, "/auth/oidc/slow");
            let back = authorize(&idp, &st);
            (st, back)
        })
        .collect();
    let waiting: Vec<_> = flows
        .into_iter()
        .map(|(st, back)| {
            let w = w.clone();
            std::thread::spawn(move || at_app(&callback(&w.s, &back, Some(&st.cookie))))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    while idp.token_calls().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no callback reached the provider"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // While some wait on the provider, the server still answers.
    let t0 = Instant::now();
    let health = w.s.get("/healthz");
    assert_eq!(health.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let t = w.s.login_token(&w.client, &w.secret, "pw@example.com");
    assert!(t["accessToken"].is_string(), "{t}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    for h in waiting {
        refused(&h.join().unwrap(), "temporarily_unavailable");
    }
    assert!(idp.token_calls().len() <= 2, "{}", idp.token_calls().len());
}

/// POST /{kind}/logout with a bearer and its refresh token.
fn provider_logout(w: &World, route: &str, t: &Value) -> Resp {
    w.s.send_auth(
        "POST",
        route,
        t["accessToken"].as_str().unwrap(),
        &json!({"refreshToken": t["refreshToken"]}),
    )
}

#[test]
fn google_logout_ends_our_session_and_revokes_the_providers_token() {
    let idp = google_idp();
    idp.set_identity("g-300", Some("lou@example.com"), json!(true));
    let w = world(&idp, "open", GOOGLE);
    let code = code_of(&sign_in(&w, &idp, "/auth/google"), &idp);
    let t = tokens(&w, &code);
    assert_eq!(
        count(
            &w.s,
            "SELECT count(*) FROM identities WHERE upstream IS NOT NULL"
        ),
        1,
        "the provider's token is kept, sealed, for the logout"
    );

    let r = provider_logout(&w, "/google/logout", &t);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["success"], true);
    // Our session is over: its refresh token and access token are refused.
    let again = w.s.post(
        "/auth/token-refresh",
        &json!({"refreshToken": t["refreshToken"]}),
    );
    assert_eq!(again.status, 401, "{}", again.body);
    let me = w.s.get_auth("/auth/me", t["accessToken"].as_str().unwrap());
    assert_eq!(me.status, 401);
    // The provider's token was revoked (RFC 7009) with our credentials,
    // and is no longer kept.
    let ends = idp.session_ends();
    assert_eq!(ends.len(), 1, "{ends:?}");
    let (path, auth, form) = &ends[0];
    assert!(path.ends_with("/revoke"), "{path}");
    assert!(auth.as_deref().is_some_and(|a| a.starts_with("Basic ")));
    let token = form.iter().find(|(k, _)| k == "token").map(|(_, v)| v);
    assert!(token.is_some_and(|t| t.starts_with("rt-")), "{form:?}");
    assert_eq!(
        count(
            &w.s,
            "SELECT count(*) FROM identities WHERE upstream IS NOT NULL"
        ),
        0
    );
    // A second logout has nothing upstream to end.
    let t2 = tokens(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    assert_eq!(provider_logout(&w, "/google/logout", &t2).status, 200);
    assert_eq!(
        idp.session_ends().len(),
        2,
        "a new sign-in keeps a new token"
    );
}

#[test]
fn keycloak_logout_ends_the_sso_session_with_the_refresh_token() {
    let idp = oidc_idp("kc-client", "kc-secret", "/auth/keycloak-auth-redirect");
    idp.set_identity("kc-1", Some("kim@example.com"), json!(true));
    let w = world(
        &idp,
        "open",
        r#"
[providers.keycloak]
client_id = "kc-client"
client_secret = "kc-secret"
issuer = "{IDP}"
"#,
    );
    let t = tokens(&w, &code_of(&sign_in(&w, &idp, "/auth/keycloak"), &idp));
    let r = provider_logout(&w, "/keycloak/logout", &t);
    assert_eq!(r.status, 200, "{}", r.body);
    let ends = idp.session_ends();
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert!(ends[0].0.ends_with("/logout"), "the end-session endpoint");
    assert!(ends[0]
        .2
        .iter()
        .any(|(k, v)| k == "refresh_token" && v.starts_with("rt-")));
    // Without a bearer, nothing happens.
    let anon = w.s.post("/keycloak/logout", &json!({}));
    assert_eq!(anon.status, 401);
}

#[test]
fn a_provider_logout_without_that_provider_is_a_plain_logout() {
    let idp = google_idp();
    let w = world(&idp, "open", GOOGLE);
    w.s.add_user("pat@example.com");
    let login = w.s.post(
        "/auth/login-token",
        &json!({"client_id": w.client.client_id, "client_secret": w.secret,
                "username": "pat@example.com", "password": crate::support::PASSWORD}),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let t = login.json();
    let r = provider_logout(&w, "/cognito/logout", &t);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(idp.session_ends().is_empty());
    let again = w.s.post(
        "/auth/token-refresh",
        &json!({"refreshToken": t["refreshToken"]}),
    );
    assert_eq!(again.status, 401);
}

#[test]
fn auth0_answers_on_its_sourceloop_routes() {
    let idp = oidc_idp("a0-client", "a0-secret", "/auth/auth0-auth-redirect");
    idp.set_identity("auth0|42", Some("ana@example.com"), json!(true));
    let w = world(
        &idp,
        "open",
        r#"
[providers.auth0]
client_id = "a0-client"
client_secret = "a0-secret"
issuer = "{IDP}"
"#,
    );
    let code = code_of(&sign_in(&w, &idp, "/auth/auth0"), &idp);
    assert_eq!(me(&w, &code)["email"], "ana@example.com");
}

#[test]
fn an_admin_lists_and_unlinks_identities_and_the_audit_says_so() {
    let idp = google_idp();
    idp.set_identity("g-500", Some("val@example.com"), json!(true));
    let w = world(&idp, "open", GOOGLE);
    let first = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    let id = first["id"].as_str().unwrap().to_string();

    let root = w.s.add_user("root@example.com");
    w.s.conn()
        .execute("UPDATE users SET role = 'admin' WHERE id = ?1", [&root.id])
        .unwrap();
    let admin = w.s.login_token(&w.client, &w.secret, "root")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();

    let list =
        w.s.get_auth(&format!("/admin/users/{id}/identities"), &admin);
    assert_eq!(list.status, 200, "{}", list.body);
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["provider"], "google");
    assert_eq!(items[0]["subject"], "g-500");
    assert_eq!(items[0]["email"], "val@example.com");
    assert!(
        items[0].get("upstream").is_none(),
        "never the provider's token"
    );
    let shown = w.s.get_auth(&format!("/admin/users/{id}"), &admin);
    assert_eq!(shown.json()["identities"][0]["provider"], "google");

    let del = w.s.send_auth(
        "DELETE",
        &format!("/admin/users/{id}/identities/google"),
        &admin,
        &json!({}),
    );
    assert_eq!(del.status, 200, "{}", del.body);
    let again = w.s.send_auth(
        "DELETE",
        &format!("/admin/users/{id}/identities/google"),
        &admin,
        &json!({}),
    );
    assert_eq!(again.status, 404, "{}", again.body);
    let audit = w.s.get_auth("/admin/audit", &admin).json();
    let unlinks: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user.unlink")
        .collect();
    assert_eq!(unlinks.len(), 1, "{audit}");
    assert_eq!(unlinks[0]["object_id"], id.as_str());

    // The next sign-in links afresh (the address is verified on both
    // sides), to the same account.
    let back = me(&w, &code_of(&sign_in(&w, &idp, "/auth/google"), &idp));
    assert_eq!(back["id"], id.as_str());
    assert_eq!(count(&w.s, "SELECT count(*) FROM identities"), 1);
}

#[test]
fn the_cli_shows_and_unlinks_a_users_identities() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = crate::cli::hallpass(dir.path());
        c.args(args);
        // The password on stdin only for the one command that reads it
        // (the others may exit before a write, a broken pipe).
        let stdin = args
            .contains(&"--password-stdin")
            .then_some("a-long-enough-password-1\n");
        crate::cli::run_command(c, stdin)
    };
    let (ok, _, err) = run(&["init"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["user", "add", "cli@example.com", "--password-stdin"]);
    assert!(ok, "{err}");
    let conn = rusqlite::Connection::open(dir.path().join("h.db")).unwrap();
    conn.execute(
        "INSERT INTO identities (provider, subject, user_id, email, created_at)
         SELECT 'github', '4242', id, email, 0 FROM users WHERE email = 'cli@example.com'",
        [],
    )
    .unwrap();
    let (ok, out, err) = run(&["user", "show", "cli@example.com"]);
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("identities: github (subject 4242, cli@example.com)")),
        "{out}"
    );
    let (ok, out, err) = run(&["user", "unlink", "cli@example.com", "github"]);
    assert!(ok, "{err}");
    assert!(out.contains("unlinked from github (subject 4242)"), "{out}");
    let left: i64 = conn
        .query_row("SELECT count(*) FROM identities", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    let (ok, _, err) = run(&["user", "unlink", "cli@example.com", "github"]);
    assert!(!ok, "a second unlink finds nothing");
    assert!(err.contains("github"), "{err}");
    let audited: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'user.unlink'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1);
}
