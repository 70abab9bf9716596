"""hallpass as an OpenID Provider, driven by a relying party nobody here
wrote: Python's authlib (PyPI), its framework-free OAuth 2.0 / OpenID
Connect client (authlib.integrations.base_client over requests), the same
pieces its Flask and Django clients are made of.

usage: oidc_rp.py setup BIN STATE   before the server starts
       oidc_rp.py run BASE STATE    against it
  BIN    the hallpass binary (HALLPASS_DB names the database)
  STATE  a JSON file setup writes and run reads
  BASE   the running server, http://127.0.0.1:PORT

setup makes the clients and users with the CLI: a confidential client
(client_secret_basic), a public one (PKCE, no secret), users rp-ada
(password) and rp-tom (TOTP on, enrolled through `hallpass user enroll-mfa`
with oathtool's code). It runs before `hallpass serve` (see run.sh for why
it once had to).

authlib does discovery, the authorization URL (PKCE S256, state, nonce),
the code exchange, the id_token's validation (signature against the JWKS of
discovery, iss, aud, exp, nonce, at_hash), userinfo, refresh, introspection,
revocation and the end-session URL. The browser between is a requests
session that keeps cookies and never follows a redirect: authorize -> 302
/signin -> the form (csrf hidden field and cookie) -> 303 authorize -> 302 to
the redirect URI with code, state and iss.

Each step prints "PASS ..." or exits non-zero with "FAIL ...".
"""
import html.parser
import json
import subprocess
import sys
import time
import urllib.parse

import authlib
import requests
from authlib.integrations.base_client import BaseApp
from authlib.integrations.base_client import FrameworkIntegration
from authlib.integrations.base_client import OAuth2Mixin
from authlib.integrations.base_client import OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session

mode, arg, state_file = sys.argv[1:4]
bin_ = arg if mode == "setup" else None
base = arg if mode == "run" else None
PASSWORD = "correct-horse-battery-9"
REDIRECT = "http://127.0.0.1:9/rp/callback"      # registered; never fetched
LOGGED_OUT = "http://127.0.0.1:9/rp/signed-out"  # registered post-logout URI
SCOPE = "openid profile email groups offline_access"


def fail(what, detail=""):
    sys.exit(f"FAIL {what}: {detail}")


def ok(what):
    print(f"PASS {what}", flush=True)


def check(cond, what, detail=""):
    if not cond:
        fail(what, detail)


# ---------------------------------------------------------------- the CLI

def cli(*args, stdin=None):
    r = subprocess.run([bin_, *args], input=stdin, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        fail(f"hallpass {' '.join(args)}", r.stderr)
    return r.stdout


def field(out, name):
    for line in out.splitlines():
        if line.startswith(name + ": "):
            return line.split(": ", 1)[1].strip()
    fail(f"no {name} in the CLI's answer", out)


def oathtool(secret, at):
    """The code an authenticator app shows at unix time `at`."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    return subprocess.run(["oathtool", "--totp", "-b", "--now", stamp, secret],
                          check=True, capture_output=True, text=True).stdout.strip()


def enroll_totp(user):
    """`hallpass user enroll-mfa USER`: reads the secret it prints, answers
    its prompt with oathtool's code. Returns the secret and the time step
    spent (a code of that step is not good again)."""
    p = subprocess.Popen([bin_, "user", "enroll-mfa", user], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    secret = None
    for line in p.stdout:
        if line.startswith("secret: "):
            secret = line.split(": ", 1)[1].strip()
        if line.startswith("uri: "):
            break
    check(secret, "enroll-mfa printed a secret")
    now = int(time.time())
    p.stdin.write(oathtool(secret, now) + "\n")
    p.stdin.close()
    rest = p.stdout.read()
    err = p.stderr.read()
    check(p.wait(timeout=30) == 0, f"hallpass user enroll-mfa {user}", rest + err)
    return secret, now // 30


# ---------------------------------------------------------------- authlib

class NoFramework(FrameworkIntegration):
    """authlib's clients keep tokens through a web framework; this one keeps
    them in the test's own variables."""

    def update_token(self, token, refresh_token=None, access_token=None):
        pass


class RP(OAuth2Mixin, OpenIDMixin, BaseApp):
    """What authlib's Flask client is, less Flask."""
    client_cls = OAuth2Session


def relying_party(client_id, client_secret, auth_method):
    return RP(NoFramework("hallpass"), name="hallpass",
              client_id=client_id, client_secret=client_secret,
              server_metadata_url=base + "/.well-known/openid-configuration",
              client_kwargs={"scope": SCOPE,
                             "code_challenge_method": "S256",
                             "token_endpoint_auth_method": auth_method})


def session_for(rp):
    """authlib's OAuth2Session, with the client's credentials and the
    discovered endpoints, for the calls the app object has no method for."""
    return rp._get_oauth_client(**rp.load_server_metadata())


# ---------------------------------------------------------------- browser

class Forms(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""),
                               "method": (a.get("method") or "get").lower(),
                               "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def form_of(page, action):
    p = Forms()
    p.feed(page)
    for f in p.forms:
        if f["action"] == action:
            return f
    fail(f"no form posting to {action}", page[:1000])


def browser():
    s = requests.Session()
    s.headers["User-Agent"] = "hallpass-interop-browser"
    return s


def get(b, url):
    return b.get(url, allow_redirects=False, timeout=15)


def post(b, url, form):
    return b.post(url, data=form, allow_redirects=False, timeout=15)


def redirect(r, what, status=(302, 303)):
    if r.status_code not in status or "Location" not in r.headers:
        fail(what, f"{r.status_code} {r.headers.get('Location')} {r.text[:500]}")
    return urllib.parse.urljoin(r.url, r.headers["Location"])


def query(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def sign_in(b, auth_url, login, totp_secret=None, spent_step=None):
    """The browser part: authorize -> /signin -> (second factor) ->
    authorize -> the redirect URI. Returns the callback URL."""
    r = get(b, auth_url)
    to_signin = redirect(r, "authorize without a session sends to sign in")
    check(urllib.parse.urlsplit(to_signin).path == "/signin",
          "authorize without a session sends to /signin", to_signin)
    ok(f"authorize (no session) -> {r.status_code} /signin")

    r = get(b, to_signin)
    check(r.status_code == 200, "GET /signin", f"{r.status_code} {r.text[:300]}")
    f = form_of(r.text, "/signin")
    check(f["method"] == "post" and f["fields"].get("csrf"), "the sign-in form has a csrf field", f)
    check(f["fields"].get("return_to", "").startswith("/oauth2/authorize?"),
          "the sign-in form returns to the authorize request", f["fields"])
    check(any("csrf" in c.name for c in b.cookies), "GET /signin sets the CSRF cookie",
          [c.name for c in b.cookies])
    ok("GET /signin: form with csrf, return_to and the CSRF cookie")

    fields = dict(f["fields"], login=login, password=PASSWORD)
    r = post(b, urllib.parse.urljoin(to_signin, f["action"]), fields)
    nxt = redirect(r, "POST /signin", status=(303,))

    if totp_secret:
        check(urllib.parse.urlsplit(nxt).path == "/signin/second-factor",
              "a TOTP user goes to the second factor", nxt)
        r = get(b, nxt)
        check(r.status_code == 200, "GET /signin/second-factor", f"{r.status_code} {r.text[:300]}")
        f2 = form_of(r.text, "/signin/second-factor")
        check(f2["fields"].get("csrf"), "the second-factor form has a csrf field", f2)
        # A code of a step after the one enroll-mfa spent (no replay).
        now = int(time.time())
        at = max(now, (spent_step + 1) * 30)
        code = oathtool(totp_secret, at)
        r = post(b, urllib.parse.urljoin(nxt, f2["action"]), dict(f2["fields"], code=code))
        nxt = redirect(r, "POST /signin/second-factor with oathtool's code", status=(303,))
        ok("second factor: oathtool's code accepted (303)")

    check(urllib.parse.urlsplit(nxt).path == "/oauth2/authorize",
          "the sign-in returns to authorize", nxt)
    ok(f"POST {'second factor' if totp_secret else '/signin'} -> 303 back to authorize")
    r = get(b, nxt)
    callback = redirect(r, "authorize with a session", status=(302, 303))
    check(callback.startswith(REDIRECT + "?"), "authorize answers the redirect URI", callback)
    return callback


def code_flow(rp, login, totp_secret=None, spent_step=None, b=None):
    """One whole sign-in; returns (browser, token, id_token claims, nonce)."""
    b = b or browser()
    md = rp.load_server_metadata()
    issuer = md["issuer"]
    auth = rp.create_authorization_url(redirect_uri=REDIRECT)
    q = query(auth["url"])
    check(q.get("code_challenge_method") == "S256" and q.get("code_challenge"),
          "authlib asks with PKCE S256", q)
    check(q.get("nonce") and q.get("state"), "authlib sends state and nonce", q)

    callback = sign_in(b, auth["url"], login, totp_secret, spent_step)
    cq = query(callback)
    check("code" in cq, "the callback has a code", callback)
    check(cq.get("state") == auth["state"], "the callback echoes state", cq)
    check(cq.get("iss") == issuer, "the callback carries iss (RFC 9207)", cq)
    ok(f"authorize -> 302 {REDIRECT} with code, state and iss")

    token = rp.fetch_access_token(redirect_uri=REDIRECT, code=cq["code"],
                                  code_verifier=auth["code_verifier"])
    check(token.get("token_type", "").lower() == "bearer", "token_type Bearer", token)
    check(token.get("id_token") and token.get("access_token"), "id_token and access_token", token)
    check(token.get("refresh_token"), "a refresh token for offline_access", token)
    ok("authlib exchanged the code (PKCE verifier)")

    claims = rp.parse_id_token(token, nonce=auth["nonce"])   # raises if invalid
    check(claims["iss"] == issuer and claims["aud"] in (rp.client_id, [rp.client_id]),
          "id_token iss and aud", claims)
    ok(f"authlib validated the id_token (alg, JWKS, iss, aud, exp, nonce, at_hash): sub {claims['sub']}")

    check(claims.get("at_hash"), "the id_token has at_hash (so authlib checked it)", claims)
    try:
        rp.parse_id_token(dict(token, access_token=token["access_token"] + "x"), nonce=auth["nonce"])
        fail("authlib accepted the id_token for another access token")
    except Exception as e:
        check("at_hash" in str(e), "the at_hash mismatch is what authlib refuses", repr(e))
    # authlib must refuse an id_token checked against another nonce.
    try:
        rp.parse_id_token(token, nonce="not-the-nonce")
        fail("authlib accepted the id_token under another nonce")
    except Exception as e:   # authlib's InvalidClaimError
        check("nonce" in str(e), "the nonce mismatch is what authlib refuses", repr(e))
    ok("authlib refuses the same id_token under another nonce or access token")
    return b, token, claims, auth


# ---------------------------------------------------------------- the flows

def setup():
    conf = cli("client", "add", "rp-authlib", "--redirect-url", REDIRECT,
               "--post-logout-redirect-url", LOGGED_OUT)
    conf_id, conf_secret = field(conf, "client_id"), field(conf, "client_secret")
    pub = cli("client", "add", "rp-authlib-spa", "--public", "--redirect-url", REDIRECT,
              "--post-logout-redirect-url", LOGGED_OUT)
    pub_id = field(pub, "client_id")
    cli("user", "add", "rp-ada@example.com", "--username", "rp-ada", "--password-stdin",
        stdin=PASSWORD + "\n")
    cli("user", "add", "rp-tom@example.com", "--username", "rp-tom", "--password-stdin",
        stdin=PASSWORD + "\n")
    tom_secret, tom_step = enroll_totp("rp-tom")
    ok("CLI: two clients (confidential, public), rp-ada, rp-tom with TOTP (enroll-mfa + oathtool)")
    with open(state_file, "w") as f:
        json.dump({"conf_id": conf_id, "conf_secret": conf_secret, "pub_id": pub_id,
                   "tom_secret": tom_secret, "tom_step": tom_step}, f)


if mode == "setup":
    setup()
    sys.exit(0)
print(f"authlib {authlib.__version__}, requests {requests.__version__}")
with open(state_file) as f:
    made = json.load(f)
conf_id, conf_secret, pub_id = made["conf_id"], made["conf_secret"], made["pub_id"]
tom_secret, tom_step = made["tom_secret"], made["tom_step"]

# -- discovery
rp = relying_party(conf_id, conf_secret, "client_secret_basic")
md = rp.load_server_metadata()
check(md["issuer"] == base, "discovery issuer", md["issuer"])
for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
          "introspection_endpoint", "revocation_endpoint", "end_session_endpoint"):
    check(md.get(k, "").startswith(base + "/"), f"discovery {k}", md.get(k))
check("S256" in md["code_challenge_methods_supported"], "discovery S256")
check("code" in md["response_types_supported"], "discovery response type code")
jwks = rp.fetch_jwk_set()
check(jwks.get("keys"), "JWKS from discovery has keys", jwks)
ok(f"discovery (authlib): issuer {md['issuer']}, {len(jwks['keys'])} key(s) at jwks_uri")

# -- the code flow, confidential client, password user
b, token, claims, auth = code_flow(rp, "rp-ada@example.com")
check(claims.get("amr") == ["pwd"] and claims.get("acr") == "aal1", "amr/acr for a password", claims)
check(claims.get("email") == "rp-ada@example.com", "email claim in the id_token", claims)
check(claims.get("azp") == conf_id and claims.get("auth_time"), "azp and auth_time", claims)

# -- userinfo, through authlib
info = rp.userinfo(token=token)
check(info.get("sub") == claims["sub"], "userinfo sub is the id_token's", info)
check(info.get("email") == "rp-ada@example.com" and info.get("email_verified") is not None,
      "userinfo email, email_verified", info)
check(info.get("preferred_username") == "rp-ada", "userinfo preferred_username", info)
ok(f"userinfo (authlib): {dict(info)}")

# -- refresh, through authlib's session
s = session_for(rp)
refreshed = s.refresh_token(md["token_endpoint"], refresh_token=token["refresh_token"])
check(refreshed.get("access_token") and refreshed["access_token"] != token["access_token"],
      "refresh gives a new access token", refreshed)
check(refreshed.get("refresh_token") and refreshed["refresh_token"] != token["refresh_token"],
      "refresh rotates the refresh token", refreshed)
if refreshed.get("id_token"):
    # OIDC Core 12.2: no nonce need be in it; authlib's claims check skips
    # nonce when the id_token has none and the expected nonce is None.
    rc = rp.parse_id_token(refreshed, nonce=None)
    check(rc["sub"] == claims["sub"], "the refreshed id_token's sub", rc)
info2 = rp.userinfo(token=refreshed)
check(info2.get("sub") == claims["sub"], "userinfo with the refreshed access token", info2)
ok("refresh (authlib): new access token, rotated refresh token, userinfo with it")

# -- introspection (client_secret_basic, authlib's session)
r = s.introspect_token(md["introspection_endpoint"], token=refreshed["access_token"],
                       token_type_hint="access_token")
check(r.status_code == 200 and r.json().get("active") is True,
      "introspect the access token: active", f"{r.status_code} {r.text}")
j = r.json()
check(j.get("client_id") == conf_id and j.get("sub") == claims["sub"], "introspection fields", j)
r = s.introspect_token(md["introspection_endpoint"], token=refreshed["refresh_token"],
                       token_type_hint="refresh_token")
check(r.status_code == 200 and r.json().get("active") is True,
      "introspect the refresh token: active", f"{r.status_code} {r.text}")
ok(f"introspect (authlib): access and refresh tokens active, scope {j.get('scope')!r}")

# -- revocation, then introspection says inactive
r = s.revoke_token(md["revocation_endpoint"], token=refreshed["refresh_token"],
                   token_type_hint="refresh_token")
check(r.status_code == 200, "revoke the refresh token", f"{r.status_code} {r.text}")
for kind in ("refresh_token", "access_token"):
    r = s.introspect_token(md["introspection_endpoint"], token=refreshed[kind], token_type_hint=kind)
    check(r.status_code == 200 and r.json() == {"active": False},
          f"after revocation, the {kind} is inactive", f"{r.status_code} {r.text}")
r = requests.get(md["userinfo_endpoint"], timeout=15,
                 headers={"Authorization": "Bearer " + refreshed["access_token"]})
check(r.status_code == 401, "userinfo refuses the revoked session's access token", r.status_code)
try:
    s.refresh_token(md["token_endpoint"], refresh_token=refreshed["refresh_token"])
    fail("the revoked refresh token still refreshes")
except Exception as e:
    check("invalid_grant" in repr(e), "a revoked refresh token is invalid_grant", repr(e))
ok("revoke (authlib): both tokens inactive at introspection, userinfo 401, refresh invalid_grant")

# -- RP-initiated logout (authlib builds the URL)
lo = rp.create_logout_url(post_logout_redirect_uri=LOGGED_OUT, id_token_hint=token["id_token"])
r = get(b, lo["url"])
back = redirect(r, "end-session with id_token_hint and a registered URI")
check(back.split("?")[0] == LOGGED_OUT, "end-session sends to the post-logout URI", back)
check(query(back).get("state") == lo["state"], "end-session echoes state", back)
ok(f"end session (authlib's logout URL): {r.status_code} {LOGGED_OUT} with state")
# The browser session is over: authorize asks for a sign-in again.
again = rp.create_authorization_url(redirect_uri=REDIRECT, prompt="none")
r = get(b, again["url"])
cb = redirect(r, "prompt=none after logout")
check(cb.startswith(REDIRECT + "?") and query(cb).get("error") == "login_required",
      "after end-session, prompt=none is login_required", cb)
ok("after end session, prompt=none answers login_required")
# An unregistered post-logout URI is not followed.
r = get(b, md["end_session_endpoint"] + "?" + urllib.parse.urlencode(
    {"id_token_hint": token["id_token"], "post_logout_redirect_uri": "https://evil.example/",
     "state": "x"}))
check(r.status_code >= 400 or "evil.example" not in r.headers.get("Location", ""),
      "an unregistered post_logout_redirect_uri is not followed", f"{r.status_code} {r.headers}")
ok(f"end session with an unregistered post_logout_redirect_uri: {r.status_code}, not followed")

# -- TOTP user, public client (token endpoint auth none, PKCE)
spa = relying_party(pub_id, None, "none")
b2, t2, c2, a2 = code_flow(spa, "rp-tom", totp_secret=tom_secret, spent_step=tom_step)
check(c2.get("amr") == ["pwd", "otp"] and c2.get("acr") == "aal2", "amr/acr after TOTP", c2)
info = spa.userinfo(token=t2)
check(info.get("preferred_username") == "rp-tom", "userinfo for the TOTP user", info)
s2 = session_for(spa)
r2 = s2.refresh_token(spa.load_server_metadata()["token_endpoint"], refresh_token=t2["refresh_token"])
check(r2.get("access_token"), "public client refresh", r2)
r = s2.revoke_token(md["revocation_endpoint"], token=r2["refresh_token"],
                    token_type_hint="refresh_token")
check(r.status_code == 200, "public client revokes its refresh token", f"{r.status_code} {r.text}")
lo = spa.create_logout_url(post_logout_redirect_uri=LOGGED_OUT, id_token_hint=t2["id_token"])
back = redirect(get(b2, lo["url"]), "end-session for the public client")
check(back.split("?")[0] == LOGGED_OUT and query(back).get("state") == lo["state"],
      "end-session for the public client", back)
ok("TOTP user through a public client: amr pwd+otp, acr aal2, userinfo, refresh, revoke, end session")

print("oidc rp (authlib): all passed")
