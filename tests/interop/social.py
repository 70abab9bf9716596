"""Social sign-in against a real, certified OpenID Provider: panva's
oidc-provider (tests/interop/oidc, run by node), driven without a browser.

usage: social.py BIN OIDC_DIR WORK
  BIN       the hallpass binary
  OIDC_DIR  tests/interop/oidc, with node_modules installed (npm ci)
  WORK      an empty scratch directory

Two providers, each a node process on 127.0.0.1:
  A  issuer http://127.0.0.1:PA, the package's defaults: email and name come
     from the userinfo endpoint only (OpenID Connect Core 5.4), not in the
     id_token. Clients hp (RS256 id_tokens) and hp-es (ES256).
  B  issuer http://127.0.0.1:PB/realms/interop, as Keycloak lays out a realm,
     with the claims in the id_token. Client hp-kc.
hallpass: [providers.idp] and [providers.idp-es] (kind oidc, on A) and
[providers.keycloak] (kind keycloak, base_url + realm, on B: the seed routes
/auth/keycloak and /auth/keycloak-auth-redirect).

Each step prints "PASS ..." or exits non-zero with "FAIL ...".
"""
import html.parser
import http.cookiejar
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

bin_, oidc_dir, work = (os.path.abspath(a) for a in sys.argv[1:4])
PASSWORD = "correct-horse-battery-9"
APP_REDIRECT = "http://127.0.0.1:9/app/callback"   # our client's; never fetched
APP_STATE = "app123"
procs = []


def fail(what, detail=""):
    sys.exit(f"FAIL {what}: {detail}")


def ok(what):
    print(f"PASS {what}", flush=True)


# ---------------------------------------------------------------- HTTP

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def location(self):
        return self.headers.get("Location")

    def json(self):
        return json.loads(self.body)


def browser():
    """A cookie jar and an opener that never follows a redirect."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar), NoRedirect())
    return jar, opener


def request(opener, method, url, form=None, body=None, headers=None):
    data = None
    hdrs = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with opener.open(req, timeout=15) as r:
            return Response(r.status, r.headers, r.read().decode())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read().decode(errors="replace"))


api = urllib.request.build_opener(NoRedirect())


def query(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


class Forms(html.parser.HTMLParser):
    """The forms (action, inputs) and links of a page."""

    def __init__(self):
        super().__init__()
        self.forms, self.links = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""),
                               "method": (a.get("method") or "get").lower(),
                               "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])


def parse_forms(page):
    p = Forms()
    p.feed(page)
    return p


# ---------------------------------------------------------------- processes

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_provider(name, clients, accounts, path="", conform=True):
    env = dict(os.environ,
               OIDC_CLIENTS=json.dumps(clients),
               OIDC_ACCOUNTS=json.dumps(accounts),
               OIDC_PATH=path,
               OIDC_CONFORM="true" if conform else "false")
    err = open(os.path.join(work, f"{name}.err"), "w")
    p = subprocess.Popen(["node", "provider.mjs", "0"],
                         cwd=oidc_dir, env=env, stdout=subprocess.PIPE,
                         stderr=err, text=True)
    procs.append(p)
    return name, p, err.name


def provider_ready(spawned):
    """The issuer and discovery document of a spawn_provider()."""
    name, p, err = spawned
    line = p.stdout.readline().strip()   # "ready ISSUER", or EOF if it died
    if not line.startswith("ready "):
        p.wait(timeout=5)
        fail(f"provider {name} start",
             f"exit {p.returncode}: {open(err).read()[-2000:]}")
    issuer = line.split(" ", 1)[1]
    doc = request(api, "GET", issuer + "/.well-known/openid-configuration")
    if doc.status != 200 or doc.json()["issuer"] != issuer:
        fail(f"provider {name} discovery", f"{doc.status} {doc.body[:300]}")
    ok(f"provider {name} (oidc-provider) ready, discovery at {issuer}")
    return issuer, doc.json()


def run(*args, stdin=None):
    r = subprocess.run([bin_, *args], input=stdin, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        fail(f"hallpass {' '.join(args)}", r.stderr)
    return r.stdout


def stop_all():
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()


# ---------------------------------------------------------------- the flow

def walk_provider(opener, url, issuer, login, until, abort=False):
    """Follows the provider's redirects from `url`, fills its login form
    (login/password of the dev interactions) and its consent form (or, with
    abort, its "cancel" link), until a redirect leaves for `until`.
    Returns that URL and the forms seen."""
    seen = []
    for _ in range(12):
        if url.startswith(until):
            return url, seen
        if not url.startswith(issuer.split("/realms/")[0]):
            fail("provider walk", f"redirected off the provider: {url}")
        r = request(opener, "GET", url)
        if r.status in (302, 303):
            url = urllib.parse.urljoin(url, r.location)
            continue
        if r.status != 200:
            fail("provider walk", f"GET {url}: {r.status} {r.body[:500]}")
        page = parse_forms(r.body)
        if not page.forms:
            fail("provider walk", f"no form at {url}: {r.body[:500]}")
        form = page.forms[0]
        prompt = form["fields"].get("prompt")
        seen.append(prompt)
        fields = dict(form["fields"])
        if prompt == "login":
            fields.update(login=login, password=PASSWORD)
        elif prompt == "consent":
            if abort:
                cancel = [h for h in page.links if h.endswith("/abort")]
                if not cancel:
                    fail("provider walk", f"no abort link at {url}")
                url = urllib.parse.urljoin(url, cancel[0])
                continue
        else:
            fail("provider walk", f"unknown form at {url}: {form}")
        r = request(opener, "POST", urllib.parse.urljoin(url, form["action"]),
                    form=fields)
        if r.status not in (302, 303):
            fail("provider walk", f"POST {prompt}: {r.status} {r.body[:500]}")
        url = urllib.parse.urljoin(url, r.location)
    fail("provider walk", "more than 12 hops")


def provider_alone(issuer, disco, client_id, secret, login, email_in_id_token):
    """The provider half with no hallpass: an authorization request of our
    own (PKCE S256), the forms, and the token endpoint, so a failure further
    on is known to be hallpass's."""
    import base64
    import hashlib
    _, opener = browser()
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = APP_REDIRECT
    url = disco["authorization_endpoint"] + "?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id,
        "redirect_uri": redirect, "scope": "openid email profile",
        "state": "s1", "nonce": "n1", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    back, _ = walk_provider(opener, url, issuer, login, redirect)
    code = query(back).get("code") or fail("provider alone", back)
    auth = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    r = request(api, "POST", disco["token_endpoint"], form={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": redirect, "code_verifier": verifier},
        headers={"Authorization": "Basic " + auth})
    if r.status != 200 or "id_token" not in r.json():
        fail("provider alone: token endpoint", f"{r.status} {r.body}")
    header, payload = (json.loads(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
                       for x in r.json()["id_token"].split(".")[:2])
    if payload["iss"] != issuer or payload["aud"] != client_id \
            or payload["nonce"] != "n1" or ("email" in payload) != email_in_id_token:
        fail("provider alone: id_token", f"{payload}")
    ok(f"provider alone, client {client_id}: authorize + login + consent + "
       f"token -> id_token {header['alg']} for sub {payload['sub']}, "
       + ("email in it" if email_in_id_token else "email from userinfo only"))
    return header["alg"]


def sign_in(base, client_id, start, callback, issuer, login, opener=None,
            abort=False, forms=("login", "consent"), post_secret=None):
    """GET start (or POST it, form-encoded, with the client's secret) ->
    provider -> callback -> our client's redirect URL.
    Returns the query of that last redirect, and the callback URL."""
    _, opener = browser() if opener is None else (None, opener)
    params = {"client_id": client_id, "redirect_uri": APP_REDIRECT,
              "state": APP_STATE}
    if post_secret is None:
        r = request(opener, "GET", base + start + "?" + urllib.parse.urlencode(params))
    else:
        r = request(opener, "POST", base + start,
                    form=dict(params, client_secret=post_secret))
    if r.status != 302 or not r.location:
        fail(f"{'GET' if post_secret is None else 'POST'} {start}",
             f"{r.status} {r.body[:500]}")
    q = query(r.location)
    want = {"response_type": "code", "redirect_uri": base + callback,
            "code_challenge_method": "S256"}
    for k, v in want.items():
        if q.get(k) != v:
            fail(f"GET {start}", f"{k}={q.get(k)!r}, wanted {v!r} in {r.location}")
    for k in ("client_id", "state", "nonce", "code_challenge", "scope"):
        if not q.get(k):
            fail(f"GET {start}", f"no {k} in {r.location}")
    if "openid" not in q["scope"].split():
        fail(f"GET {start}", f"scope {q['scope']!r} without openid")
    cookie = r.headers.get_all("Set-Cookie") or []
    if not any(c.startswith("hp_oauth_") for c in cookie):
        fail(f"GET {start}", f"no hp_oauth_ binding cookie: {cookie}")
    back, seen = walk_provider(opener, r.location, issuer, login,
                               base + callback, abort=abort)
    if not abort and tuple(seen) != tuple(forms):
        fail("provider forms", f"saw {seen}, wanted {list(forms)}")
    r = request(opener, "GET", back)
    if r.status != 302 or not (r.location or "").startswith(APP_REDIRECT + "?"):
        fail(f"GET {callback}", f"{r.status} {r.location} {r.body[:500]}")
    got = query(r.location)
    if got.get("state") != APP_STATE:
        fail(f"GET {callback}", f"state {got.get('state')!r} in {r.location}")
    return got, back


def exchange(base, client_id, code):
    r = request(api, "POST", base + "/auth/token",
                body={"clientId": client_id, "code": code})
    if r.status != 200 or "accessToken" not in r.json():
        fail("POST /auth/token", f"{r.status} {r.body}")
    token = r.json()["accessToken"]
    r = request(api, "GET", base + "/auth/me",
                headers={"Authorization": "Bearer " + token})
    if r.status != 200:
        fail("GET /auth/me", f"{r.status} {r.body}")
    return r.json()


def main():
    os.environ["HALLPASS_DB"] = os.path.join(work, "h.db")
    os.environ["HALLPASS_CONFIG"] = os.path.join(work, "h.toml")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    secret = {c: f"{c}-secret-{os.urandom(8).hex()}" for c in ("hp", "hp-es", "hp-kc")}

    a = spawn_provider("A", [
        {"client_id": "hp", "client_secret": secret["hp"],
         "redirect_uris": [base + "/auth/oidc/idp/callback", APP_REDIRECT]},
        {"client_id": "hp-es", "client_secret": secret["hp-es"],
         "redirect_uris": [base + "/auth/oidc/idp-es/callback", APP_REDIRECT],
         "id_token_signed_response_alg": "ES256"},
    ], {"grace": {"email": "grace@example.com", "name": "Grace Hopper"}})
    b = spawn_provider("B", [
        {"client_id": "hp-kc", "client_secret": secret["hp-kc"],
         "redirect_uris": [base + "/auth/keycloak-auth-redirect", APP_REDIRECT]},
    ], {"ada": {"email": "ada@example.com", "name": "Ada Lovelace"}},
        path="/realms/interop", conform=False)
    (a_issuer, a_disco), (b_issuer, b_disco) = provider_ready(a), provider_ready(b)
    # The provider half alone first: a failure after these is hallpass's.
    for issuer, disco, client, login, alg, in_id_token in (
            (a_issuer, a_disco, "hp", "grace", "RS256", False),
            (a_issuer, a_disco, "hp-es", "grace", "ES256", False),
            (b_issuer, b_disco, "hp-kc", "ada", "RS256", True)):
        if provider_alone(issuer, disco, client, secret[client], login,
                          in_id_token) != alg:
            fail(f"provider alone, client {client}", f"wanted {alg}")

    b_base = b_issuer.split("/realms/")[0]
    with open(os.environ["HALLPASS_CONFIG"], "w") as f:
        f.write(f'''public_url = "{base}"
signup = "open"

[providers.idp]
kind = "oidc"
issuer = "{a_issuer}"
client_id = "hp"
client_secret = "{secret['hp']}"

[providers.idp-es]
kind = "oidc"
issuer = "{a_issuer}"
client_id = "hp-es"
client_secret = "{secret['hp-es']}"
link_by_email = true

[providers.keycloak]
base_url = "{b_base}"
realm = "interop"
client_id = "hp-kc"
client_secret = "{secret['hp-kc']}"
''')
    run("check-config")
    run("init")  # only init and serve create the database (issue 12)
    out = run("client", "add", "social-app", "--redirect-url", APP_REDIRECT)
    client_id = [l.split(": ", 1)[1] for l in out.splitlines()
                 if l.startswith("client_id: ")][0]
    client_secret = [l.split(": ", 1)[1] for l in out.splitlines()
                     if l.startswith("client_secret: ")][0]
    run("user", "add", "root@example.com", "--admin", "--password-stdin",
        stdin=PASSWORD + "\n")
    run("user", "add", "ada@example.com", "--username", "ada",
        "--password-stdin", stdin=PASSWORD + "\n")
    err = open(os.path.join(work, "hallpass.err"), "w")
    hp = subprocess.Popen([bin_, "serve", "--listen", f"127.0.0.1:{port}"],
                          stdout=subprocess.PIPE, stderr=err, text=True)
    procs.append(hp)
    if not hp.stdout.readline().startswith("listening on"):
        hp.wait(timeout=5)
        fail("hallpass serve", open(err.name).read()[-2000:])
    ok(f"hallpass at {base} with providers idp, idp-es, keycloak")

    # 1. A first sign-in through [providers.idp]: a new user (signup open).
    jar, opener = browser()
    got, callback_url = sign_in(base, client_id, "/auth/oidc/idp",
                                "/auth/oidc/idp/callback", a_issuer, "grace",
                                opener=opener)
    if "code" not in got:
        fail("idp sign-in", f"no code: {got}")
    ok("idp: /auth/oidc/idp -> provider login + consent -> callback -> "
       f"{APP_REDIRECT}?code=...&state={APP_STATE}")
    me = exchange(base, client_id, got["code"])
    if me.get("email") != "grace@example.com" or me.get("name") != "Grace Hopper":
        fail("idp /auth/me", f"{me}")
    grace_id = me["id"]
    ok(f"idp: /auth/token -> accessToken; /auth/me is grace@example.com "
       f"'Grace Hopper' (claims from userinfo), id {grace_id}")

    # The callback again (a replayed state): refused, no redirect.
    r = request(opener, "GET", callback_url)
    if r.status != 400:
        fail("replayed callback", f"{r.status} {r.location} {r.body[:300]}")
    ok("idp: the same callback again (replayed state) -> 400, no redirect")

    # 2. login_activity: the sign-in's row, read by an admin.
    r = request(api, "POST", base + "/auth/token",
                body={"email": "root@example.com", "password": PASSWORD})
    if r.status != 200:
        fail("admin sign-in", f"{r.status} {r.body}")
    root = r.json()["access_token"]
    flt = json.dumps({"where": {"actor": grace_id}})
    r = request(api, "GET", base + "/login-activity?filter=" + urllib.parse.quote(flt),
                headers={"Authorization": "Bearer " + root})
    if r.status != 200:
        fail("GET /login-activity", f"{r.status} {r.body}")
    rows = [x for x in r.json() if x.get("loginType") == "ACCESS"]
    if len(rows) != 1 or "idp" not in json.dumps(rows[0].get("tokenPayload")):
        fail("login_activity", f"wanted one ACCESS row naming idp: {r.json()}")
    ok(f"idp: one login_activity row, ACCESS, tokenPayload {rows[0]['tokenPayload']}")

    # 3. Again, in the same browser: the provider remembers the session and
    # the consent (no forms), and hallpass finds the identity it linked.
    got, _ = sign_in(base, client_id, "/auth/oidc/idp", "/auth/oidc/idp/callback",
                     a_issuer, "grace", opener=opener, forms=())
    me = exchange(base, client_id, got.get("code") or fail("idp again", got))
    if me["id"] != grace_id:
        fail("idp again", f"user {me['id']}, wanted {grace_id}")
    ok(f"idp again (provider session, no forms): the same user {grace_id}")

    # 4. ES256 id_tokens, another provider name: a new identity, linked to
    # grace by the verified email.
    got, _ = sign_in(base, client_id, "/auth/oidc/idp-es",
                     "/auth/oidc/idp-es/callback", a_issuer, "grace")
    me = exchange(base, client_id, got.get("code") or fail("idp-es", got))
    if me["id"] != grace_id:
        fail("idp-es", f"user {me['id']}, wanted grace {grace_id}")
    ok(f"idp-es (ES256 id_token): linked by verified email to user {grace_id}")

    # 5. The keycloak seed routes, issuer {base_url}/realms/{realm}, claims
    # in the id_token: linked to ada, a password user made by the CLI.
    r = request(api, "POST", base + "/auth/login-token", body={
        "client_id": client_id, "client_secret": client_secret,
        "username": "ada", "password": PASSWORD})
    if r.status != 200:
        fail("ada password sign-in", f"{r.status} {r.body}")
    ada = request(api, "GET", base + "/auth/me", headers={
        "Authorization": "Bearer " + r.json()["accessToken"]}).json()
    got, _ = sign_in(base, client_id, "/auth/keycloak",
                     "/auth/keycloak-auth-redirect", b_issuer, "ada",
                     post_secret=client_secret)
    me = exchange(base, client_id, got.get("code") or fail("keycloak", got))
    if me["id"] != ada["id"] or me.get("email") != "ada@example.com":
        fail("keycloak", f"{me}, wanted ada {ada['id']}")
    ok(f"keycloak: POST /auth/keycloak (client_id, client_secret) -> realm interop "
       f"-> /auth/keycloak-auth-redirect: "
       f"linked to the password user ada {ada['id']}")

    # 6. Consent denied at the provider: an error for our client, no code.
    got, _ = sign_in(base, client_id, "/auth/oidc/idp", "/auth/oidc/idp/callback",
                     a_issuer, "grace", abort=True)
    if got.get("error") != "access_denied" or "code" in got:
        fail("consent denied", f"{got}")
    ok(f"idp, consent denied: {APP_REDIRECT}?error=access_denied&state={APP_STATE}")


try:
    t0 = time.monotonic()
    main()
    print(f"social: done in {time.monotonic() - t0:.1f}s")
finally:
    stop_all()
