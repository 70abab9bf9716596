// hallpass as an OpenID Provider, driven by node's openid-client (panva,
// npm; pinned in package-lock.json), a relying party nobody here wrote.
//
// usage: node rp.mjs BASE CLIENT_ID CLIENT_SECRET LOGIN PASSWORD REDIRECT POST_LOGOUT
//
// openid-client does discovery, the authorization URL (PKCE S256, state,
// nonce), the callback (state, iss of RFC 9207, code exchange with
// client_secret_post, the id_token's claims and, with non-repudiation checks
// on, its signature against the JWKS of discovery), userinfo, refresh,
// introspection, revocation and the end-session URL. The browser between is
// node's fetch with redirect: "manual" and a tiny cookie jar.
//
// Each step prints "PASS ..." or the process exits non-zero with "FAIL ...".
import * as client from "openid-client";
import { createRequire } from "node:module";

const [base, clientId, clientSecret, login, password, redirectUri, postLogout] =
  process.argv.slice(2);
const version = createRequire(import.meta.url)("openid-client/package.json").version;

function fail(what, detail = "") {
  console.log(`FAIL ${what}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  process.exit(1);
}
function ok(what) {
  console.log(`PASS ${what}`);
}
function check(cond, what, detail) {
  if (!cond) fail(what, detail);
}

// ------------------------------------------------------------- browser

/** One host's cookies: name -> value (the pages' cookies are all Path=/). */
const jar = new Map();
function keep(res) {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(";");
    const eq = pair.indexOf("=");
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const gone = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a)) ||
      attrs.some((a) => /^\s*expires\s*=/i.test(a) && Date.parse(a.split("=")[1]) < Date.now());
    if (gone || value === "") jar.delete(name);
    else jar.set(name, value);
  }
}
async function browse(url, form) {
  const headers = { "user-agent": "hallpass-interop-browser" };
  if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
  const init = { redirect: "manual", headers };
  if (form) {
    init.method = "POST";
    init.body = new URLSearchParams(form);
  }
  const res = await fetch(url, init);
  keep(res);
  const body = await res.text();
  const loc = res.headers.get("location");
  return { status: res.status, location: loc && new URL(loc, url).href, body };
}
function redirected(r, what, statuses = [302, 303]) {
  if (!statuses.includes(r.status) || !r.location) fail(what, `${r.status} ${r.location} ${r.body.slice(0, 500)}`);
  return r.location;
}
/** The named inputs of the form posting to `action`. */
function formOf(page, action) {
  const forms = page.split(/<form\b/i).slice(1);
  for (const f of forms) {
    const act = (f.match(/^[^>]*\baction="([^"]*)"/i) || [])[1];
    if (act !== action) continue;
    const fields = {};
    for (const m of f.split(/<\/form>/i)[0].matchAll(/<input\b[^>]*>/gi)) {
      const name = (m[0].match(/\bname="([^"]*)"/i) || [])[1];
      const value = (m[0].match(/\bvalue="([^"]*)"/i) || [])[1] || "";
      if (name) fields[name] = unescape(value);
    }
    return fields;
  }
  fail(`no form posting to ${action}`, page.slice(0, 1000));
}
function unescape(s) {
  return s.replace(/&quot;/g, '"').replace(/&#x27;|&#39;/g, "'").replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">").replace(/&#x2f;|&#47;/gi, "/").replace(/&amp;/g, "&");
}

// ------------------------------------------------------------- the flow

const config = await client.discovery(new URL(base), clientId, clientSecret,
  client.ClientSecretPost(clientSecret),
  { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] });
const md = config.serverMetadata();
check(md.issuer === base, "discovery issuer", md.issuer);
check(md.code_challenge_methods_supported?.includes("S256"), "discovery S256", md);
ok(`discovery (openid-client ${version}, node ${process.version}): issuer ${md.issuer}`);

const codeVerifier = client.randomPKCECodeVerifier();
const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
const nonce = client.randomNonce();
const state = client.randomState();
const authUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: "openid profile email offline_access",
  code_challenge: codeChallenge,
  code_challenge_method: "S256",
  nonce,
  state,
});

let r = await browse(authUrl.href);
const toSignin = redirected(r, "authorize without a session");
check(new URL(toSignin).pathname === "/signin", "authorize sends to /signin", toSignin);
r = await browse(toSignin);
check(r.status === 200, "GET /signin", `${r.status} ${r.body.slice(0, 300)}`);
const fields = formOf(r.body, "/signin");
check(fields.csrf && fields.return_to?.startsWith("/oauth2/authorize?"), "the sign-in form's csrf and return_to", fields);
check([...jar.keys()].some((k) => k.includes("csrf")), "the CSRF cookie", [...jar.keys()]);
ok("authorize -> /signin: form with csrf, return_to and the CSRF cookie");
r = await browse(new URL("/signin", base).href, { ...fields, login, password });
const back = redirected(r, "POST /signin", [303]);
check(new URL(back).pathname === "/oauth2/authorize", "sign-in returns to authorize", back);
r = await browse(back);
const callback = redirected(r, "authorize with a session");
check(callback.startsWith(redirectUri + "?"), "authorize answers the redirect URI", callback);
ok("POST /signin -> 303 authorize -> 302 the redirect URI");

// openid-client checks state, iss (the server says it sends it), the code
// exchange's answer, and the id_token (signature, iss, aud, exp, iat, nonce).
const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: codeVerifier,
  expectedNonce: nonce,
  expectedState: state,
  idTokenExpected: true,
}).catch((e) => fail("openid-client's authorizationCodeGrant", `${e.name} ${e.code} ${e.message} ${JSON.stringify(e.cause ?? "")}`));
const claims = tokens.claims();
check(claims?.sub && claims.nonce === nonce && (claims.aud === clientId || claims.aud?.includes?.(clientId)),
  "id_token claims", claims);
check(tokens.refresh_token, "a refresh token for offline_access", tokens);
ok(`openid-client: code exchanged, id_token validated (signature, iss, aud, nonce), sub ${claims.sub}`);

// A callback whose state is not the one sent is refused by the library.
await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: codeVerifier, expectedNonce: nonce, expectedState: "another-state",
}).then(() => fail("openid-client accepted another state"), (e) => {
  check(/state/i.test(`${e.message} ${e.cause?.message}`), "the state mismatch is what openid-client refuses", `${e.code} ${e.message} ${e.cause?.message}`);
});
ok("openid-client refuses the callback under another state");

const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
  .catch((e) => fail("userinfo", e.message));
check(info.email === login && info.email_verified !== undefined, "userinfo email", info);
ok(`userinfo: ${JSON.stringify(info)}`);

const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  .catch((e) => fail("refresh", `${e.code} ${e.message} ${JSON.stringify(e.cause ?? "")}`));
check(refreshed.access_token && refreshed.access_token !== tokens.access_token, "refresh: new access token", refreshed);
check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, "refresh: rotated refresh token", refreshed);
if (refreshed.id_token) check(refreshed.claims().sub === claims.sub, "the refreshed id_token's sub", refreshed.claims());
const info2 = await client.fetchUserInfo(config, refreshed.access_token, claims.sub)
  .catch((e) => fail("userinfo with the refreshed access token", e.message));
check(info2.sub === claims.sub, "userinfo after refresh", info2);
ok("refresh: new access token, rotated refresh token, userinfo with it");

let intro = await client.tokenIntrospection(config, refreshed.access_token)
  .catch((e) => fail("introspection", e.message));
check(intro.active === true && intro.client_id === clientId && intro.sub === claims.sub, "introspection: active", intro);
await client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: "refresh_token" })
  .catch((e) => fail("revocation", e.message));
intro = await client.tokenIntrospection(config, refreshed.access_token)
  .catch((e) => fail("introspection after revocation", e.message));
check(intro.active === false, "introspection after revocation: inactive", intro);
ok("introspect (active) -> revoke (client_secret_post) -> introspect (inactive)");

// The signature is checked: with the browser's session still on, a second
// authorization, whose id_token's signature is altered on its way back, must
// be refused by openid-client.
{
  const v2 = client.randomPKCECodeVerifier();
  const n2 = client.randomNonce();
  const s2 = client.randomState();
  const url2 = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: "openid email", nonce: n2, state: s2,
    code_challenge: await client.calculatePKCECodeChallenge(v2), code_challenge_method: "S256",
  });
  const cb2 = redirected(await browse(url2.href), "authorize with the session still on");
  check(cb2.startsWith(redirectUri + "?") && new URL(cb2).searchParams.get("code"), "a second code, no sign-in", cb2);
  config[client.customFetch] = async (url, options) => {
    const res = await fetch(url, options);
    if (String(url) !== md.token_endpoint) return res;
    const body = await res.json();
    const [h, p, sig] = body.id_token.split(".");
    const bytes = Buffer.from(sig, "base64url");
    bytes[0] ^= 1;
    body.id_token = [h, p, bytes.toString("base64url")].join(".");
    return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
  };
  await client.authorizationCodeGrant(config, new URL(cb2), {
    pkceCodeVerifier: v2, expectedNonce: n2, expectedState: s2, idTokenExpected: true,
  }).then(() => fail("openid-client accepted an id_token with an altered signature"), (e) => {
    check(/signature/i.test(`${e.message} ${e.cause?.message}`), "a bad signature is what openid-client refuses",
      `${e.code} ${e.message} ${e.cause?.message}`);
  });
  delete config[client.customFetch];
  ok("openid-client verifies the id_token's signature (an altered one is refused)");
}

const logoutState = client.randomState();
const endUrl = client.buildEndSessionUrl(config, {
  id_token_hint: tokens.id_token,
  post_logout_redirect_uri: postLogout,
  state: logoutState,
});
r = await browse(endUrl.href);
const out = redirected(r, "end session");
check(out.split("?")[0] === postLogout && new URL(out).searchParams.get("state") === logoutState,
  "end session returns to the post-logout URI with state", out);
check(![...jar.keys()].some((k) => /^(__Host-)?hallpass$/.test(k)), "end session clears the session cookie", [...jar.keys()]);
ok("end session (openid-client's URL): back to the post-logout URI with state, cookie cleared");

console.log(`oidc rp (openid-client ${version}): all passed`);
