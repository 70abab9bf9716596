"""hallpass against SourceLoop's own contract (issue 15): the OpenAPI document
that @sourceloop/authentication-service 19.2.2 exports (export.sh).

usage: check.py BIN DOC WORK
  BIN   the hallpass binary
  DOC   the exported openapi.json
  WORK  an empty scratch directory

A real hallpass (temp database, a client with a redirect URL, users made
with the CLI, each social provider kind of 19.2.2 configured with explicit
endpoints on a fake provider in this process, mail written to files) is driven
through every operation of the document, in an order that gives each the
state it needs (a valid client, a signed-in user's tokens, a code from
/auth/login, a mailed reset or sign-up token, a mailed OTP, a provider's
code at a callback). Every request is
first checked against the document's request schema (a request that is not
valid is a bug in this script: exit 2). Every answer is then held to the
document:
  - its status is one the operation documents;
  - a valid request with real state is not refused (4xx/5xx), even where the
    document lists that error status;
  - its body validates against the response schema of that status ($refs
    resolved, OpenAPI 3.0 `nullable`, `format: date-time` as RFC 3339);
  - the access token's claims have AuthUser's types (authClientId a number).
An operation hallpass does not route (404, and absent from its own
/openapi.json) or answers 501 (SAML) is counted as not served: reported,
never a failure. Prints "served N of 48" and each violation as
"FAIL METHOD PATH STATUS at JSONPATH: message"; exits 1 when there is any.

Two lists below say where the check departs from the letter of the
document: ALLOWED_EXTRA, the one allowed difference of hallpass (fields the
seed requires and 19.2.2 lacks), and ERRATA/SOCIAL_*, where the document
misdescribes 19.2.2's own server (as its shipped source shows).
"""
import base64
import email
import email.policy
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import jsonschema
except ImportError:
    sys.exit("FAIL the jsonschema package is missing (pip install jsonschema)")

bin_, doc_path, work = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
DOC = json.load(open(doc_path))
PASSWORD = "correct-horse-battery-9"
NEW_PASSWORD = "staple-battery-horse-10"
APP_REDIRECT = "http://127.0.0.1:9/app/callback"   # our client's; never fetched

# ---------------------------------------------------------------- the allow-list
# The one allowed difference (issue 15): fields that the seed (the older
# SourceLoop page hallpass's native dialect was built from) requires and
# 19.2.2's schemas lack. Those schemas say additionalProperties: false, so
# each such field is admitted here, with the type the seed gives it, and
# nothing else is.
ALLOWED_EXTRA = {
    "TokenResponse": {
        # The seed's TokenResponse: expiresIn (seconds) and expiresAt (unix
        # ms); 19.2.2 has `expires` only. Seed clients read these two.
        "expiresIn": ({"type": "number"}, "seed TokenResponse field, absent from 19.2.2"),
        "expiresAt": ({"type": "number"}, "seed TokenResponse field, absent from 19.2.2"),
    },
    "AuthUser": {
        # The seed's audit-field names; 19.2.2 renamed them createdOn and
        # modifiedOn, and the issue says to send both generations' names.
        "createdAt": ({"type": "string", "format": "date-time"},
                      "seed AuthUser audit field (19.2.2: createdOn)"),
        "updatedAt": ({"type": "string", "format": "date-time"},
                      "seed AuthUser audit field (19.2.2: modifiedOn)"),
        # The seed's AuthUser has `name` (shared/API.md §1); 19.2.2 dropped it.
        "name": ({"type": "string"}, "seed AuthUser field, absent from 19.2.2"),
    },
}

# ---------------------------------------------------------------- errata
# Where 19.2.2's document misdescribes 19.2.2's own server (read in the
# TypeScript the package ships, src/), the check holds hallpass to what that
# server answers. These are corrections of the document, not differences
# allowed to hallpass.
ERRATA = {
    # login.controller.ts: `content: {'application/json': AuthUser}` (a model
    # where a media type object belongs), which LoopBack drops: the document
    # says nothing about the body, the server answers `new AuthUser(user)`.
    ("GET", "/auth/me"): {"200": {"$ref": "#/components/schemas/AuthUser"}},
    # signup-request.controller.ts answers SignupWithTokenReponseDto
    # {email, user} (both required), while its decorator names
    # LocalUserProfileDto, the request body, whose `password` is required:
    # the document would have the server echo the password.
    ("POST", "/auth/sign-up/create-user"): {"200": {
        "title": "SignupWithTokenReponseDto", "type": "object",
        "properties": {"email": {"type": "string"}, "user": {"type": "object"}},
        "required": ["email", "user"]}},
}
# Browser sign-in through a provider: 19.2.2 answers the start with
# passport's 302 to the provider and the callback with
# `response.redirect(client.redirectUrl + '?code=')` (google-login.controller.ts
# and its siblings), though the document gives each `200 TokenResponse`.
# Here a start must answer a 302 to the configured provider's authorize URL,
# and a callback (after the fake provider's token endpoint) a 302 to the
# client's redirect URL with a code that /auth/token takes.
SOCIAL_STARTS = {
    "/auth/google": "google", "/auth/azure": "azure", "/auth/keycloak": "keycloak",
    "/auth/cognito": "cognito", "/auth/auth0": "auth0", "/auth/facebook": "facebook",
    "/auth/instagram": "instagram", "/auth/oauth-apple": "apple",
}
SOCIAL_CALLBACKS = {
    "/auth/google-auth-redirect", "/auth/azure-oauth-redirect",
    "/auth/keycloak-auth-redirect", "/auth/cognito-auth-redirect",
    "/auth/auth0-auth-redirect", "/auth/facebook-auth-redirect",
    "/auth/instagram-auth-redirect", "/auth/apple-oauth-redirect",
}

# ---------------------------------------------------------------- schemas

def patched_components():
    comps = json.loads(json.dumps(DOC.get("components", {}).get("schemas", {})))
    for name, fields in ALLOWED_EXTRA.items():
        if name not in comps:
            sys.exit(f"FAIL allow-list: the document has no schema {name}")
        for field, (schema, _) in fields.items():
            if field in comps[name].get("properties", {}):
                sys.exit(f"FAIL allow-list: {name}.{field} is in the document: drop it from the list")
            comps[name].setdefault("properties", {})[field] = schema
    return comps


COMPONENTS = patched_components()


def to_json_schema(s, seen=()):
    """An OpenAPI 3.0 schema as JSON Schema: $refs inlined, `nullable`
    as a null type."""
    if isinstance(s, list):
        return [to_json_schema(x, seen) for x in s]
    if not isinstance(s, dict):
        return s
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return {}
        return to_json_schema(COMPONENTS[name], seen + (name,))
    out = {}
    for k, v in s.items():
        if k in ("properties", "patternProperties"):
            out[k] = {p: to_json_schema(x, seen) for p, x in v.items()}
        elif k in ("example", "x-typescript-type", "nullable", "description"):
            continue
        else:
            out[k] = to_json_schema(v, seen)
    if s.get("nullable") and "type" in out:
        t = out["type"]
        out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
        if "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
    return out


RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time")
def _date_time(v):
    return not isinstance(v, str) or bool(RFC3339.match(v))


def schema_errors(schema, value):
    """[(json path, message)] of `value` against an OpenAPI schema."""
    js = to_json_schema(schema)
    v = jsonschema.Draft7Validator(js, format_checker=FORMATS)
    out = []
    for e in sorted(v.iter_errors(value), key=lambda e: list(e.absolute_path)):
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                             for p in e.absolute_path)
        out.append((path, e.message))
    return out


def types_only(schema):
    """A schema's property types without required or additionalProperties:
    the AuthUser fields inside a JWT, beside the token's own claims."""
    s = dict(to_json_schema(schema))
    s.pop("required", None)
    s.pop("additionalProperties", None)
    return s

# ---------------------------------------------------------------- HTTP

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


OPENER = urllib.request.build_opener(NoRedirect())


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def short(self):
        return self.body[:300].replace("\n", " ")


def send(method, url, headers=None, body=None, form=None):
    hdrs = dict(headers or {})
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with OPENER.open(req, timeout=20) as r:
            return Answer(r.status, r.headers, r.read().decode(errors="replace"))
    except urllib.error.HTTPError as e:
        return Answer(e.code, e.headers, e.read().decode(errors="replace"))


def bearer(token):
    return {"Authorization": "Bearer " + token}

# ---------------------------------------------------------------- a provider

class FakeProvider:
    """Every configured provider's token, userinfo and JWKS endpoints on one
    loopback port: what hallpass fetches during a callback. Its authorize
    endpoint is never visited: the check reads state and nonce from the
    start's redirect and comes back to the callback itself, as the provider
    would send the browser. id_tokens are RS256 (PyJWT)."""

    def __init__(self, port):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.jwt, self.codes = jwt, {}
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid="k1", use="sig", alg="RS256")
        self.jwks = {"keys": [jwk]}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                name, _, what = self.path.lstrip("/").partition("/")
                what = what.split("?")[0]
                if what == "jwks":
                    return self.answer(200, fake.jwks)
                if what == "userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    who = fake.codes.get(token.removeprefix("at-"))
                    if who:
                        return self.answer(200, fake.person(who))
                self.answer(404, {"error": "not_found"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                name, _, what = self.path.lstrip("/").partition("/")
                who = fake.codes.get(form.get("code", ""))
                if what != "token" or not who or who["name"] != name:
                    return self.answer(400, {"error": "invalid_grant"})
                out = {"access_token": "at-" + form["code"], "token_type": "Bearer",
                       "expires_in": 3600, "refresh_token": "rt-" + form["code"]}
                if who["oidc"]:
                    out["id_token"] = fake.id_token(who)
                self.answer(200, out)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def person(self, who):
        return {"sub": who["sub"], "id": who["sub"], "email": who["email"],
                "email_verified": True, "name": who["display"], "username": who["sub"]}

    def id_token(self, who):
        now = int(time.time())
        claims = dict(self.person(who), iss=who["issuer"], aud=who["client_id"],
                      nonce=who["nonce"], iat=now, exp=now + 300)
        claims.pop("id")
        return self.jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})


# ---------------------------------------------------------------- the server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, stdin=None, check=True):
    r = subprocess.run([bin_, *args], input=stdin, capture_output=True,
                       text=True, timeout=60)
    if check and r.returncode != 0:
        sys.exit(f"FAIL hallpass {' '.join(args)}: {r.stderr.strip()}")
    return r


def field(out, name):
    for line in out.splitlines():
        if line.startswith(name + ": "):
            return line.split(": ", 1)[1]
    sys.exit(f"FAIL no {name} in: {out}")


def apple_key(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def provider_toml(name, kind, upstream, oidc):
    """A provider with every endpoint explicit, on the fake provider's
    port: a start needs no discovery."""
    lines = [f"[providers.{name}]", f'kind = "{kind}"', f'client_id = "sl-{name}"']
    if kind == "apple":
        lines += ['team_id = "TEAM123456"', 'key_id = "KEY1234567"',
                  f'private_key_file = "{work}/apple.p8"']
    else:
        lines.append(f'client_secret = "sl-{name}-secret"')
    lines += [f'authorize_url = "{upstream}/{name}/authorize"',
              f'token_url = "{upstream}/{name}/token"',
              f'userinfo_url = "{upstream}/{name}/userinfo"']
    if oidc:
        lines += [f'issuer = "{upstream}/{name}"', f'jwks_url = "{upstream}/{name}/jwks"']
    return "\n".join(lines) + "\n"


PROVIDERS = [  # name = kind, oidc
    ("google", True), ("azure", True), ("keycloak", True), ("cognito", True),
    ("facebook", False), ("instagram", False), ("apple", True), ("auth0", True),
]


def write_config(base, maildir, upstream, providers):
    toml = f'''public_url = "{base}"
signup = "open"

[limits]
login_burst = 1000000
login_per_minute = 1000000
token_burst = 1000000
token_per_minute = 1000000
free_failures = 1000000
account_failures_per_hour = 1000000

[mail]
command = ["sh", "-c", "cat > \\"$0/$$.eml.part\\" && mv \\"$0/$$.eml.part\\" \\"$0/$$.eml\\"", "{maildir}"]
timeout_secs = 10

'''
    for name, oidc in providers:
        toml += provider_toml(name, name, upstream, oidc) + "\n"
    with open(os.environ["HALLPASS_CONFIG"], "w") as f:
        f.write(toml)


def start_server():
    os.environ["HALLPASS_DB"] = os.path.join(work, "h.db")
    os.environ["HALLPASS_CONFIG"] = os.path.join(work, "h.toml")
    os.environ.pop("HALLPASS_MAIL_COMMAND", None)
    os.environ.setdefault("HALLPASS_PBKDF2_ITERATIONS", "1000")
    maildir = os.path.join(work, "mail")
    os.makedirs(maildir, exist_ok=True)
    apple_key(os.path.join(work, "apple.p8"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    upstream_port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    providers = list(PROVIDERS)
    write_config(base, maildir, upstream, providers)
    cli("check-config")
    notes = []
    cli("init")
    out = cli("client", "add", "sourceloop-app", "--redirect-url", APP_REDIRECT).stdout
    client = (field(out, "client_id"), field(out, "client_secret"))
    for user, extra in (("ada", ["--admin", "--name", "Ada Lovelace"]), ("bob", []),
                        ("cyd", []), ("dot", []), ("eve", []), ("fay", [])):
        cli("user", "add", f"{user}@example.com", "--username", user, *extra,
            "--password-stdin", stdin=PASSWORD + "\n")
    err = open(os.path.join(work, "hallpass.err"), "w")
    hp = subprocess.Popen([bin_, "serve", "--listen", f"127.0.0.1:{port}"],
                          stdout=subprocess.PIPE, stderr=err, text=True)
    if not hp.stdout.readline().startswith("listening on"):
        hp.wait(timeout=5)
        sys.exit("FAIL hallpass serve: " + open(err.name).read()[-2000:])
    return hp, base, client, maildir, (upstream, FakeProvider(upstream_port)), notes


class Mailbox:
    def __init__(self, d):
        self.dir, self.seen = d, set()

    def next_to(self, address, sent, timeout=10):
        """The text of the next mail to `address`, or "" after `timeout`;
        "" at once when the request that should have sent it (`sent`, an
        Answer) was refused."""
        if sent is None or sent.status >= 300:
            return ""
        end = time.time() + timeout
        while time.time() < end:
            for name in sorted(os.listdir(self.dir)):
                if not name.endswith(".eml") or name in self.seen:
                    continue
                with open(os.path.join(self.dir, name), "rb") as f:
                    msg = email.message_from_binary_file(f, policy=email.policy.default)
                if address not in str(msg.get("To", "")):
                    continue
                self.seen.add(name)
                part = msg.get_body(preferencelist=("plain", "html"))
                return part.get_content() if part else ""
            time.sleep(0.05)
        print(f"note: no mail to {address} within {timeout} s", flush=True)
        return ""

# ---------------------------------------------------------------- requests

def doc_op(method, path):
    return DOC["paths"][path][method.lower()]


def request_problems(method, path, req):
    """Why `req` is not valid under the document's request schema ([] when
    it is)."""
    op = doc_op(method, path)
    problems = []
    given = {"query": req.get("query", {}), "header": req.get("headers", {}),
             "path": req.get("path_params", {})}
    for p in op.get("parameters", []):
        where = given.get(p["in"], {})
        names = {k.lower(): k for k in where} if p["in"] == "header" else {k: k for k in where}
        key = names.get(p["name"].lower() if p["in"] == "header" else p["name"])
        if key is None:
            if p.get("required"):
                problems.append(f"missing {p['in']} parameter {p['name']}")
            continue
        value = where[key]
        if "content" in p:
            schema = next(iter(p["content"].values())).get("schema", {})
            try:
                value = json.loads(value)
            except ValueError:
                problems.append(f"{p['name']}: not JSON")
                continue
        else:
            schema = p.get("schema", {})
        for at, msg in schema_errors(schema, value):
            problems.append(f"{p['in']} {p['name']} {at}: {msg}")
    rb = op.get("requestBody")
    body, form = req.get("body"), req.get("form")
    if rb:
        content = rb.get("content", {})
        ctype = "application/x-www-form-urlencoded" if form is not None else "application/json"
        if body is None and form is None:
            if rb.get("required"):
                problems.append("missing the required body")
        elif ctype not in content:
            problems.append(f"body as {ctype}, the document takes {list(content)}")
        else:
            for at, msg in schema_errors(content[ctype].get("schema", {}),
                                         body if body is not None else form):
                problems.append(f"body {at}: {msg}")
    elif body is not None or form is not None:
        problems.append("a body where the document takes none")
    if op.get("security") and not any(k.lower() == "authorization" for k in given["header"]):
        problems.append("no bearer where the document's security asks for one")
    return problems

# ---------------------------------------------------------------- the run

class Run:
    def __init__(self, base, hallpass_ops):
        self.base, self.hallpass_ops = base, hallpass_ops
        self.results = {}        # (method, path) -> "served" | "not served: ..." | ...
        self.violations = []     # (method, path, status, where, message)
        self.allowed_seen = set()

    def violation(self, method, path, status, where, message):
        # Array items alike are one violation ($[*]), and so is the same one
        # met twice (/auth/me for two users).
        where = re.sub(r"\[\d+\]", "[*]", where)
        v = (method, path, status, where, message)
        if v not in self.violations:
            self.violations.append(v)
            print(f"FAIL {method} {path} {status} at {where}: {message}", flush=True)

    def blocked(self, method, path, why):
        """An operation that an earlier one left without the state it needs:
        a failure, since that earlier one broke the contract."""
        self.results[(method, path)] = "blocked"
        self.violation(method, path, "-", "setup", f"not driven: {why}")

    def call(self, method, path, **req):
        """Sends a request that must be valid under the document, and holds
        the answer to it. Returns the Answer (None when not served)."""
        problems = request_problems(method, path, req)
        if problems:
            print(f"check.py bug: the request for {method} {path} is not valid "
                  f"under the document: {problems}", file=sys.stderr)
            sys.exit(2)
        url = self.base + path
        for k, v in req.get("path_params", {}).items():
            url = url.replace("{" + k + "}", urllib.parse.quote(v, safe=""))
        if req.get("query"):
            url += "?" + urllib.parse.urlencode(req["query"])
        a = send(method, url, headers=req.get("headers"), body=req.get("body"),
                 form=req.get("form"))
        key = (method, path)
        if a.status == 501:
            self.results[key] = f"not served: 501 {a.short()}"
            print(f"NOT SERVED {method} {path}: 501 {a.short()}", flush=True)
            return None
        if a.status in (404, 405) and key not in self.hallpass_ops:
            self.results[key] = f"not served: {a.status}, not in hallpass's /openapi.json"
            print(f"NOT SERVED {method} {path}: {a.status} {a.short()}", flush=True)
            return None
        self.results[key] = "served"
        n = len(self.violations)
        self.judge(method, path, a, req.get("expect"))
        if len(self.violations) == n:
            print(f"PASS {method} {path} {a.status}", flush=True)
        return a

    def judge(self, method, path, a, expect):
        op = doc_op(method, path)
        documented = set(op.get("responses", {}))
        st = str(a.status)
        if isinstance(expect, tuple) and expect[0] == "redirect":
            where = a.headers.get("Location") or ""
            if a.status not in (302, 303) or not where.startswith(expect[1] + "?"):
                self.violation(method, path, st, "status",
                               f"a redirect (302) to {expect[1]}?... expected; "
                               f"got Location {where!r}, {a.short()}")
            return
        if st not in documented and "default" not in documented:
            self.violation(method, path, st, "status",
                           f"not a documented status (documented: {sorted(documented)}); body {a.short()}")
        if a.status >= 400:
            self.violation(method, path, st, "status",
                           f"a valid request with real state was refused: {a.short()}")
            return
        schema = ERRATA.get((method, path), {}).get(st)
        if schema is None:
            resp = op.get("responses", {}).get(st, {})
            schema = (resp.get("content") or {}).get("application/json", {}).get("schema")
        if a.status == 204:
            if a.body:
                self.violation(method, path, st, "body", f"a 204 with a body: {a.short()}")
            return
        if not schema:
            return   # the document gives no schema for this answer
        try:
            body = a.json()
        except ValueError:
            self.violation(method, path, st, "body", f"not JSON: {a.short()}")
            return
        for at, msg in schema_errors(schema, body):
            self.violation(method, path, st, at, msg)
        self.note_allowed(schema, body)

    def note_allowed(self, schema, body):
        ref = schema.get("$ref", "").rsplit("/", 1)[-1]
        if ref in ALLOWED_EXTRA and isinstance(body, dict):
            for f in ALLOWED_EXTRA[ref]:
                if f in body:
                    self.allowed_seen.add(f"{ref}.{f}")

    def claims(self, method, path, token):
        """The access token's payload against AuthUser's types."""
        try:
            payload = json.loads(base64.urlsafe_b64decode(
                token.split(".")[1] + "=" * (-len(token.split(".")[1]) % 4)))
        except (ValueError, IndexError):
            self.violation(method, path, "200", "$.accessToken", "not a JWT")
            return
        for at, msg in schema_errors(types_only({"$ref": "#/components/schemas/AuthUser"}),
                                     payload):
            self.violation(method, path, "200", "accessToken claims " + at,
                           msg + " (AuthUser's type)")


def main():
    hp, base, (cid, csecret), maildir, upstream, notes = start_server()
    try:
        drive(base, cid, csecret, Mailbox(maildir), upstream, notes)
    finally:
        hp.terminate()
        try:
            hp.wait(timeout=5)
        except subprocess.TimeoutExpired:
            hp.kill()


def drive(base, cid, csecret, mail, provider, notes):
    upstream, fake = provider
    ours = send("GET", base + "/openapi.json")
    if ours.status != 200:
        sys.exit(f"FAIL GET /openapi.json: {ours.status}")
    hallpass_ops = {(m.upper(), p) for p, ops in ours.json()["paths"].items()
                    for m in ops if m in ("get", "post", "put", "patch", "delete")}
    doc_ops = [(m.upper(), p) for p, ops in DOC["paths"].items() for m in ops]
    run = Run(base, hallpass_ops)
    client = {"client_id": cid, "client_secret": csecret}

    def login(user, password=PASSWORD):
        a = send("POST", base + "/auth/login-token", body=dict(client, username=user, password=password))
        if a.status != 200:
            sys.exit(f"FAIL setup: login-token for {user}: {a.status} {a.short()}")
        return a.json()

    # Password sign-in, codes and tokens (ada).
    a = run.call("POST", "/auth/login", body=dict(client, username="ada", password=PASSWORD))
    code = a and a.status == 200 and a.json().get("code")
    if not code:
        sys.exit(f"FAIL setup: no code from /auth/login: {a and a.short()}")
    a = run.call("POST", "/auth/token", body={"code": code, "clientId": cid})
    if a and a.status == 200:
        run.claims("POST", "/auth/token", a.json().get("accessToken", ""))
    ada = login("ada")
    run.call("POST", "/auth/login-token", body=dict(client, username="ada", password=PASSWORD))
    a = run.call("GET", "/auth/me", headers=bearer(ada["accessToken"]))
    tenant = a.json().get("tenantId") if a and a.status == 200 else None
    # Again for a user made without a name (firstName is required).
    run.call("GET", "/auth/me", headers=bearer(login("fay")["accessToken"]))
    a = run.call("POST", "/auth/token-refresh", headers=bearer(ada["accessToken"]),
                 body={"refreshToken": ada["refreshToken"]})
    if a and a.status == 200:
        ada = a.json()
    # 19.2.2's switch-token refuses a body without tenantId (400), though its
    # schema has it optional: a real client sends one of the user's tenants.
    body = {"refreshToken": ada["refreshToken"]}
    if tenant:
        body["tenantId"] = tenant
    a = run.call("POST", "/auth/switch-token", headers=bearer(ada["accessToken"]), body=body)
    if a and a.status == 200:
        ada = a.json()

    # Login activity (ada is an admin).
    h = bearer(ada["accessToken"])
    a = run.call("GET", "/login-activity", headers=h,
                 query={"filter": json.dumps({"limit": 5, "order": ["loginTime DESC"]})})
    rows = a.json() if a and a.status == 200 else []
    run.call("GET", "/login-activity/count", headers=h,
             query={"where": json.dumps({"loginType": {"neq": "nothing"}})})
    if rows and isinstance(rows, list) and isinstance(rows[0], dict) and rows[0].get("id"):
        run.call("GET", "/login-activity/{id}", headers=h, path_params={"id": str(rows[0]["id"])},
                 query={"filter": json.dumps({"fields": ["id", "actor", "loginTime"]})})
    else:
        run.blocked("GET", "/login-activity/{id}", "no row id from GET /login-activity")
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))
    run.call("GET", "/active-users/{range}", headers=h, path_params={"range": "daily"},
             query={"startDate": iso(now - 7 * 86400), "endDate": iso(now + 86400)})

    # change-password (bob).
    bob = login("bob")
    run.call("PATCH", "/auth/change-password", headers=bearer(bob["accessToken"]),
             body={"refreshToken": bob["refreshToken"], "username": "bob",
                   "password": NEW_PASSWORD, "oldPassword": PASSWORD})

    # forget-password -> mailed token -> verify -> reset (cyd). The document
    # puts these behind HTTPBearer: a generated client sends its bearer.
    cyd = login("cyd")
    a = run.call("POST", "/auth/forget-password", headers=bearer(cyd["accessToken"]),
                 body=dict(client, username="cyd"))
    m = re.search(r"token=([A-Za-z0-9._~%-]+)", mail.next_to("cyd@example.com", a))
    if m:
        reset = urllib.parse.unquote(m.group(1))
        run.call("GET", "/auth/verify-reset-password-link", query={"token": reset})
        run.call("PATCH", "/auth/reset-password", headers=bearer(cyd["accessToken"]),
                 body=dict(client, token=reset, password=NEW_PASSWORD))
    else:
        run.blocked("GET", "/auth/verify-reset-password-link", "no token in a reset mail")
        run.blocked("PATCH", "/auth/reset-password", "no token in a reset mail")

    # send-otp -> mailed code -> verify-otp (dot).
    a = run.call("POST", "/auth/send-otp", body=dict(client, key="dot"))
    m = re.search(r"\b(\d{6})\b", mail.next_to("dot@example.com", a))
    if m:
        run.call("POST", "/auth/verify-otp", body={"key": "dot", "otp": m.group(1), "clientId": cid})
    else:
        run.blocked("POST", "/auth/verify-otp", "no code in an OTP mail")

    # TOTP enrolment with a login code (eve).
    a = send("POST", base + "/auth/login", body=dict(client, username="eve", password=PASSWORD))
    eve_code = a.json().get("code") if a.status == 200 else sys.exit(f"FAIL setup: eve login {a.short()}")
    run.call("GET", "/auth/check-qr-code", headers={"code": eve_code, "clientId": cid})
    run.call("POST", "/auth/create-qr-code", body={"code": eve_code, "clientId": cid})

    # Sign-up: create-token -> mailed token (the bearer of the next two).
    a = run.call("POST", "/auth/sign-up/create-token", body={"email": "new@example.com"})
    m = re.search(r"token=([A-Za-z0-9._~%-]+)", mail.next_to("new@example.com", a))
    signup = urllib.parse.unquote(m.group(1)) if m else None
    if signup:
        run.call("GET", "/auth/sign-up/verify-token", headers=bearer(signup))
        run.call("POST", "/auth/sign-up/create-user", headers=bearer(signup),
                 body={"email": "new@example.com", "password": PASSWORD})
    else:
        run.blocked("GET", "/auth/sign-up/verify-token", "no token in a sign-up mail")
        run.blocked("POST", "/auth/sign-up/create-user", "no token in a sign-up mail")

    # Logout, and the per-provider logouts, each on a session of its own.
    for path in ("/logout", "/google/logout", "/cognito/logout", "/keycloak/logout"):
        s = login("fay")
        a = run.call("POST", path, headers=bearer(s["accessToken"]),
                     body={"refreshToken": s["refreshToken"]})
        if a and a.status == 200:
            r = send("POST", base + "/auth/token-refresh", body={"refreshToken": s["refreshToken"]})
            if r.status == 200:
                run.violation("POST", path, "200", "effect",
                              "the session's refresh token still works after the logout")

    # Social sign-in: starts (GET with query, POST with a form).
    for method, path in doc_ops:
        if path in SOCIAL_STARTS:
            to = ("redirect", f"{upstream}/{SOCIAL_STARTS[path]}/authorize")
            if method == "GET":
                run.call(method, path, query=client, expect=to)
            else:
                run.call(method, path, form=client, expect=to)
    # Callbacks: a start of our own, then back from the "provider" with a
    # code it knows; hallpass fetches tokens (and userinfo) from the fake
    # provider and must redirect to the client's URL with a code for
    # /auth/token.
    starts = {v: k for k, v in SOCIAL_STARTS.items()}
    oidc = dict(PROVIDERS)
    for method, path in doc_ops:
        if path not in SOCIAL_CALLBACKS:
            continue
        name = next((n for n in starts if path.startswith(starts[n].replace("oauth-apple", "apple") + "-")
                     or path.startswith(f"/auth/{n}-")), None)
        if name is None:
            sys.exit(f"check.py bug: no provider for {path}")
        a = send("POST", base + starts[name], form=client)
        if a.status != 302 or "Location" not in a.headers:
            run.blocked(method, path, f"POST {starts[name]} answered {a.status}: {a.short()}")
            continue
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(a.headers["Location"]).query))
        cookie = "; ".join(c.split(";", 1)[0] for c in a.headers.get_all("Set-Cookie") or [])
        code = f"{name}-{os.urandom(6).hex()}"
        fake.codes[code] = {"name": name, "oidc": oidc.get(name, False), "nonce": q.get("nonce"),
                            "sub": f"{name}-subject-1", "email": f"{name}@social.example",
                            "display": f"{name.title()} User", "issuer": f"{upstream}/{name}",
                            "client_id": f"sl-{name}"}
        a = run.call(method, path, query={"code": code, "state": q.get("state", "")},
                     headers={"Cookie": cookie}, expect=("redirect", APP_REDIRECT))
        back = a and dict(urllib.parse.parse_qsl(
            urllib.parse.urlsplit(a.headers.get("Location") or "").query))
        if back and back.get("code"):
            t = run.call("POST", "/auth/token", body={"code": back["code"], "clientId": cid})
            if t and t.status == 200:
                run.claims("POST", "/auth/token", t.json().get("accessToken", ""))

    # SAML (out of scope: 501).
    run.call("POST", "/auth/saml", form=client)
    run.call("POST", "/auth/saml-redirect", query={"client": cid}, form={})

    # ---------------------------------------------------------------- report
    missing = [k for k in doc_ops if k not in run.results]
    if missing:
        sys.exit(f"check.py bug: operations not driven: {missing}")
    served = [k for k in doc_ops if run.results[k] in ("served", "blocked")]
    print()
    for n in notes:
        print("note:", n)
    print(f"served {len(served)} of {len(doc_ops)} operations of "
          f"{DOC['info']['title']} (@sourceloop/authentication-service 19.2.2):")
    for m, p in served:
        print(f"  {m} {p}")
    print(f"not served {len(doc_ops) - len(served)}:")
    for k in doc_ops:
        if run.results[k] not in ("served", "blocked"):
            print(f"  {k[0]} {k[1]}: {run.results[k]}")
    print("allow-list (extra fields the seed requires and 19.2.2 lacks): " + ", ".join(
        f"{s}.{f}" + ("" if f"{s}.{f}" in run.allowed_seen else " (not seen)")
        for s, fs in ALLOWED_EXTRA.items() for f in fs))
    broken = {(m, p) for m, p, *_ in run.violations}
    conform = [k for k in served if k not in broken]
    if run.violations:
        print(f"\n{len(run.violations)} schema violation(s):")
        for m, p, st, at, msg in run.violations:
            print(f"  {m} {p} {st} at {at}: {msg}")
        print(f"sourceloop: {len(broken)} operation(s) break the document, "
              f"{len(conform)} conform")
        sys.exit(1)
    print(f"sourceloop: every served operation conforms ({len(conform)} checked)")


if __name__ == "__main__":
    main()
