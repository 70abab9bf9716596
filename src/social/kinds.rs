//! What each provider kind means: its default scopes, URLs and quirks, and
//! the routes it answers on. Pure functions, no I/O; `config.rs` applies the
//! defaults when it builds a `Provider` (every URL given in the file wins).

use crate::config::{Provider, ProviderKind};

/// The Graph API version of Facebook's default URLs (v25.0: released
/// February 2026, available until July 2028).
pub const FACEBOOK_GRAPH_VERSION: &str = "v25.0";

/// The kind-specific fields of a `[providers.NAME]` table that shape the
/// defaults (each is only accepted for its kind).
#[derive(Debug, Default, Clone, Copy)]
pub struct KindFields<'a> {
    /// azure: the tenant (default "common").
    pub tenant: Option<&'a str>,
    /// keycloak: the server's base URL.
    pub base_url: Option<&'a str>,
    /// keycloak: the realm.
    pub realm: Option<&'a str>,
    /// cognito: the AWS region (default: the user pool id's prefix).
    pub region: Option<&'a str>,
    /// cognito: the user pool id, e.g. `eu-west-1_AbC`.
    pub user_pool_id: Option<&'a str>,
    /// cognito: the hosted UI domain, e.g. `myapp.auth.eu-west-1.amazoncognito.com`.
    pub domain: Option<&'a str>,
}

/// A kind's defaults, before the file's explicit values are laid over them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Defaults {
    pub scopes: Vec<String>,
    /// None for the plain OAuth 2.0 kinds, and for an OIDC kind whose
    /// issuer cannot be made from the fields given (autha and oidc always).
    pub issuer: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub jwks_url: Option<String>,
    pub emails_url: Option<String>,
    pub pkce: bool,
    pub response_mode: Option<String>,
}

/// Every kind, in the order the documentation lists them.
pub const ALL_KINDS: [ProviderKind; 11] = [
    ProviderKind::Google,
    ProviderKind::Azure,
    ProviderKind::Keycloak,
    ProviderKind::Cognito,
    ProviderKind::Autha,
    ProviderKind::Auth0,
    ProviderKind::Facebook,
    ProviderKind::Instagram,
    ProviderKind::Apple,
    ProviderKind::Github,
    ProviderKind::Oidc,
];

/// The scopes asked for when the file gives none.
pub fn default_scopes(kind: ProviderKind) -> &'static [&'static str] {
    match kind {
        ProviderKind::Google
        | ProviderKind::Azure
        | ProviderKind::Keycloak
        | ProviderKind::Cognito
        | ProviderKind::Autha
        | ProviderKind::Auth0
        | ProviderKind::Oidc => &["openid", "email", "profile"],
        // Apple documents exactly these two; its id_token comes anyway.
        ProviderKind::Apple => &["name", "email"],
        ProviderKind::Facebook => &["email", "public_profile"],
        // Instagram API with Instagram Login (Basic Display's `user_profile`
        // ended on 4 December 2024). It asserts no email.
        ProviderKind::Instagram => &["instagram_business_basic"],
        ProviderKind::Github => &["read:user", "user:email"],
    }
}

/// Whether hallpass sends PKCE (S256) to the provider: all but Instagram,
/// which does not document it.
pub fn default_pkce(kind: ProviderKind) -> bool {
    kind != ProviderKind::Instagram
}

/// The `response_mode` sent upstream: Apple posts its answer (a form POST
/// to the callback), which it requires when asking for name or email.
pub fn response_mode(kind: ProviderKind) -> Option<&'static str> {
    (kind == ProviderKind::Apple).then_some("form_post")
}

/// The issuer a kind implies from its kind-specific fields; None when the
/// fields it needs are absent (keycloak without base_url or realm, cognito
/// without user_pool_id) or the kind has none (autha, oidc, and the plain
/// OAuth 2.0 kinds).
pub fn default_issuer(kind: ProviderKind, f: &KindFields) -> Option<String> {
    match kind {
        ProviderKind::Google => Some("https://accounts.google.com".into()),
        ProviderKind::Azure => Some(format!(
            "https://login.microsoftonline.com/{}/v2.0",
            f.tenant.unwrap_or("common")
        )),
        ProviderKind::Keycloak => {
            let base = f.base_url?.trim_end_matches('/');
            Some(format!("{base}/realms/{}", f.realm?))
        }
        ProviderKind::Cognito => {
            let pool = f.user_pool_id?;
            let region = match f.region {
                Some(r) => r,
                None => cognito_region(pool)?,
            };
            Some(format!("https://cognito-idp.{region}.amazonaws.com/{pool}"))
        }
        ProviderKind::Apple => Some("https://appleid.apple.com".into()),
        // Auth0's issuer is its tenant domain, with the trailing slash.
        ProviderKind::Auth0 => Some(format!("https://{}/", f.domain?)),
        ProviderKind::Autha
        | ProviderKind::Oidc
        | ProviderKind::Facebook
        | ProviderKind::Instagram
        | ProviderKind::Github => None,
    }
}

/// A Cognito user pool id starts with its region: `eu-west-1_AbC`.
pub fn cognito_region(user_pool_id: &str) -> Option<&str> {
    user_pool_id
        .split_once('_')
        .map(|(r, _)| r)
        .filter(|r| !r.is_empty())
}

/// A kind's defaults. Endpoints left None come from discovery
/// (`{issuer}/.well-known/openid-configuration`) for the OIDC kinds.
pub fn defaults(kind: ProviderKind, f: &KindFields) -> Defaults {
    let s = |v: &str| Some(v.to_string());
    let mut d = Defaults {
        scopes: default_scopes(kind).iter().map(|s| s.to_string()).collect(),
        issuer: default_issuer(kind, f),
        pkce: default_pkce(kind),
        response_mode: response_mode(kind).map(str::to_string),
        ..Defaults::default()
    };
    match kind {
        ProviderKind::Apple => {
            // Apple has no userinfo endpoint: who signed in is in the id_token.
            d.authorize_url = s("https://appleid.apple.com/auth/authorize");
            d.token_url = s("https://appleid.apple.com/auth/token");
            d.jwks_url = s("https://appleid.apple.com/auth/keys");
        }
        ProviderKind::Cognito => {
            if let Some(domain) = f.domain {
                d.authorize_url = Some(format!("https://{domain}/oauth2/authorize"));
                d.token_url = Some(format!("https://{domain}/oauth2/token"));
                d.userinfo_url = Some(format!("https://{domain}/oauth2/userInfo"));
            }
        }
        ProviderKind::Facebook => {
            let v = FACEBOOK_GRAPH_VERSION;
            d.authorize_url = Some(format!("https://www.facebook.com/{v}/dialog/oauth"));
            d.token_url = Some(format!("https://graph.facebook.com/{v}/oauth/access_token"));
            d.userinfo_url = Some(format!(
                "https://graph.facebook.com/{v}/me?fields=id,name,email"
            ));
        }
        ProviderKind::Instagram => {
            d.authorize_url = s("https://www.instagram.com/oauth/authorize");
            d.token_url = s("https://api.instagram.com/oauth/access_token");
            d.userinfo_url = s("https://graph.instagram.com/me?fields=id,username");
        }
        ProviderKind::Github => {
            d.authorize_url = s("https://github.com/login/oauth/authorize");
            d.token_url = s("https://github.com/login/oauth/access_token");
            d.userinfo_url = s("https://api.github.com/user");
            d.emails_url = s("https://api.github.com/user/emails");
        }
        ProviderKind::Google
        | ProviderKind::Azure
        | ProviderKind::Keycloak
        | ProviderKind::Autha
        | ProviderKind::Auth0
        | ProviderKind::Oidc => {}
    }
    d
}

/// True when an OIDC provider needs its discovery document: its
/// authorize, token or JWKS endpoint is not known from the configuration.
/// (A missing userinfo endpoint is also taken from discovery when there is
/// one, but the id_token alone is enough.)
pub fn needs_discovery(p: &Provider) -> bool {
    p.kind.is_oidc() && (p.authorize_url.is_none() || p.token_url.is_none() || p.jwks_url.is_none())
}

/// The discovery document's URL, for a provider with an issuer.
pub fn discovery_url(p: &Provider) -> Option<String> {
    p.issuer.as_ref().map(|i| {
        format!(
            "{}/.well-known/openid-configuration",
            i.trim_end_matches('/')
        )
    })
}

/// The native start route of a seed kind (GET and POST); None for github
/// and oidc, which answer only on `/auth/oidc/NAME`.
pub fn start_path(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::Google => Some("/auth/google"),
        ProviderKind::Azure => Some("/auth/azure"),
        ProviderKind::Keycloak => Some("/auth/keycloak"),
        ProviderKind::Cognito => Some("/auth/cognito"),
        ProviderKind::Autha => Some("/auth/autha"),
        ProviderKind::Auth0 => Some("/auth/auth0"),
        ProviderKind::Facebook => Some("/auth/facebook"),
        ProviderKind::Instagram => Some("/auth/instagram"),
        ProviderKind::Apple => Some("/auth/oauth-apple"),
        ProviderKind::Github | ProviderKind::Oidc => None,
    }
}

/// The native callback route of a seed kind (GET and POST).
pub fn callback_path(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::Google => Some("/auth/google-auth-redirect"),
        ProviderKind::Azure => Some("/auth/azure-oauth-redirect"),
        ProviderKind::Keycloak => Some("/auth/keycloak-auth-redirect"),
        ProviderKind::Cognito => Some("/auth/cognito-auth-redirect"),
        ProviderKind::Autha => Some("/auth/autha-redirect"),
        ProviderKind::Auth0 => Some("/auth/auth0-auth-redirect"),
        ProviderKind::Facebook => Some("/auth/facebook-auth-redirect"),
        ProviderKind::Instagram => Some("/auth/instagram-auth-redirect"),
        ProviderKind::Apple => Some("/auth/apple-oauth-redirect"),
        ProviderKind::Github | ProviderKind::Oidc => None,
    }
}

/// `/auth/oidc/NAME`: every provider's start route, of any kind.
pub fn oidc_start_path(name: &str) -> String {
    format!("/auth/oidc/{name}")
}

/// A provider's callback path: its kind's seed route when it is that
/// kind's seed provider (`seed`), else `/auth/oidc/NAME/callback`.
pub fn callback_path_for(p: &Provider, seed: bool) -> String {
    match callback_path(p.kind) {
        Some(path) if seed => path.to_string(),
        _ => format!("/auth/oidc/{}/callback", p.name),
    }
}

/// The provider that answers on a seed kind's native routes: the one named
/// exactly like the kind, else the first of that kind by name. None for
/// kinds without native routes (github, oidc) and kinds not configured.
pub fn seed_provider(providers: &[Provider], kind: ProviderKind) -> Option<&Provider> {
    start_path(kind)?;
    providers
        .iter()
        .find(|p| p.kind == kind && p.name == kind.name())
        .or_else(|| {
            providers
                .iter()
                .filter(|p| p.kind == kind)
                .min_by(|a, b| a.name.cmp(&b.name))
        })
}

/// True when the kind has a native logout route that ends the provider's
/// session too (`POST /google/logout`, `/cognito/logout`,
/// `/keycloak/logout`): only then is the provider's token kept.
pub fn ends_upstream(kind: ProviderKind) -> bool {
    matches!(
        kind,
        ProviderKind::Google | ProviderKind::Cognito | ProviderKind::Keycloak
    )
}

/// The sign-in page's button text for `p`: its `label`, else the brand a
/// person knows for the kinds that are one company's sign-in (Google,
/// Microsoft, Apple, Facebook, Instagram, GitHub), else the configured
/// name (keycloak, cognito, autha, auth0 and oidc are someone's own
/// server, which the operator names).
pub fn label(p: &Provider) -> String {
    if let Some(l) = &p.label {
        return l.clone();
    }
    match p.kind {
        ProviderKind::Google => "Google".into(),
        ProviderKind::Azure => "Microsoft".into(),
        ProviderKind::Apple => "Apple".into(),
        ProviderKind::Facebook => "Facebook".into(),
        ProviderKind::Instagram => "Instagram".into(),
        ProviderKind::Github => "GitHub".into(),
        ProviderKind::Keycloak
        | ProviderKind::Cognito
        | ProviderKind::Autha
        | ProviderKind::Auth0
        | ProviderKind::Oidc => p.name.clone(),
    }
}

/// True when the kind's token endpoint takes the client's credentials in
/// the form (`client_secret_post`): Apple (its signed secret), Facebook,
/// Instagram and GitHub. OpenID providers get HTTP Basic, the method
/// RFC 6749 §2.3.1 makes every server support.
pub fn secret_in_form(kind: ProviderKind) -> bool {
    matches!(
        kind,
        ProviderKind::Apple
            | ProviderKind::Facebook
            | ProviderKind::Instagram
            | ProviderKind::Github
    )
}

/// True when `p` is its kind's seed provider among `providers`.
pub fn is_seed(providers: &[Provider], p: &Provider) -> bool {
    seed_provider(providers, p.kind).is_some_and(|s| s.name == p.name)
}

/// The path of the redirect URI hallpass sends upstream for `p` (the
/// operator registers `public_url` + this path at the provider).
pub fn redirect_path(providers: &[Provider], p: &Provider) -> String {
    callback_path_for(p, is_seed(providers, p))
}

/// The redirect URI itself: `public_url` (without a trailing slash) + path.
pub fn redirect_uri(public_url: &str, providers: &[Provider], p: &Provider) -> String {
    format!(
        "{}{}",
        public_url.trim_end_matches('/'),
        redirect_path(providers, p)
    )
}

/// What `hallpass check-config` says about the providers, one line each
/// (fetches nothing): name and kind, start routes, the exact redirect URI
/// to register, and where an OIDC provider's endpoints come from.
pub fn setup_lines(public_url: Option<&str>, providers: &[Provider]) -> Vec<String> {
    if providers.is_empty() {
        return vec!["providers: none configured".into()];
    }
    let mut l = Vec::new();
    for p in providers {
        l.push(format!("provider {} (kind {})", p.name, p.kind.name()));
        let seed = is_seed(providers, p);
        let mut starts = Vec::new();
        if seed {
            starts.extend(start_path(p.kind));
        }
        let oidc = oidc_start_path(&p.name);
        starts.push(&oidc);
        l.push(format!("  start (GET or POST): {}", starts.join(", ")));
        let path = callback_path_for(p, seed);
        l.push(match public_url {
            Some(base) => format!(
                "  redirect URI to register at the provider: {}{path}",
                base.trim_end_matches('/')
            ),
            None => format!(
                "  redirect URI to register at the provider: public_url is unset, so it would \
                 be http://{{bound address}}{path}; set public_url to hallpass's public https:// \
                 address and register public_url + {path}"
            ),
        });
        l.push(format!("  {}", endpoints_line(p)));
        if p.client_secret.is_none() && p.apple.is_none() {
            l.push("  client: public (no client_secret; PKCE only)".into());
        }
    }
    l
}

fn endpoints_line(p: &Provider) -> String {
    let named = [
        ("authorize_url", &p.authorize_url),
        ("token_url", &p.token_url),
        ("userinfo_url", &p.userinfo_url),
        ("jwks_url", &p.jwks_url),
    ];
    if !p.kind.is_oidc() {
        return "endpoints: OAuth 2.0 (no discovery, no id_token): configured or the kind's defaults"
            .into();
    }
    if !needs_discovery(p) {
        return "endpoints: all known from the configuration (no discovery)".into();
    }
    let from: Vec<&str> = named
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
    match discovery_url(p) {
        Some(url) => format!(
            "endpoints: {} from discovery at {url} (fetched at first use)",
            from.join(", ")
        ),
        None => format!("endpoints: {} unknown (no issuer)", from.join(", ")),
    }
}
