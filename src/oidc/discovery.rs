//! OpenID Connect Discovery 1.0 §3: the provider's metadata, built from
//! the configured issuer and public URL and the current signing key.

use serde_json::{json, Value};

use crate::accounts::PROVIDER_SCOPES;

/// The claims the provider may release (by scope; see token.rs).
pub const CLAIMS: [&str; 19] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "acr",
    "azp",
    "at_hash",
    "sid",
    "name",
    "preferred_username",
    "given_name",
    "family_name",
    "email",
    "email_verified",
    "groups",
];

/// The metadata document. `public_url` is where the endpoints are served;
/// `issuer` is the `iss` of every token (usually the same URL). `algs`:
/// the algorithms id_tokens may be signed with (the current key's).
pub fn document(issuer: &str, public_url: &str, algs: &[&str]) -> Value {
    let base = public_url.trim_end_matches('/');
    let at = |path: &str| format!("{base}{path}");
    let mut claims: Vec<&str> = CLAIMS.to_vec();
    claims.push("role");
    json!({
        "issuer": issuer,
        "authorization_endpoint": at("/oauth2/authorize"),
        "token_endpoint": at("/oauth2/token"),
        "userinfo_endpoint": at("/oauth2/userinfo"),
        "jwks_uri": at("/.well-known/jwks.json"),
        "introspection_endpoint": at("/oauth2/introspect"),
        "revocation_endpoint": at("/oauth2/revoke"),
        "end_session_endpoint": at("/oauth2/end-session"),
        "scopes_supported": PROVIDER_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": claims,
        "acr_values_supported": ["aal1", "aal2"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    })
}
