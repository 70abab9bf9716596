"""TOTP as an authenticator app sees it: the QR codes hallpass serves are
read with zbarimg (zbar-tools), the codes are made by oathtool, and they
must sign in through the native, mfa and yat dialects.

usage: totp.py BASE CLIENT_ID CLIENT_SECRET
Creates its own users through the CLI beforehand (see run.sh): ann, bea.
"""
import base64
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

base, client_id, client_secret = sys.argv[1:4]
PASSWORD = "correct-horse-battery-9"


def call(method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req) as r:
            raw = r.read()
            return r.status, dict(r.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return e.code, dict(e.headers), parsed


def expect(status, want, what, body=None):
    if status != want:
        sys.exit(f"FAIL {what}: status {status}, wanted {want}: {body}")
    print(f"ok   {what}")


def zbar(data_url):
    """The text of the QR code in a PNG data URL, read by zbarimg."""
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix), data_url[:40]
    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        f.write(base64.b64decode(data_url[len(prefix):]))
        f.flush()
        out = subprocess.run(["zbarimg", "--quiet", "--raw", f.name],
                             check=True, capture_output=True, text=True)
    return out.stdout.strip()


def zbar_svg(svg):
    """The text of the QR code in an SVG document, read by zbarimg."""
    with tempfile.NamedTemporaryFile(suffix=".svg", mode="w") as f:
        f.write(svg)
        f.flush()
        out = subprocess.run(["zbarimg", "--quiet", "--raw", f.name],
                             check=True, capture_output=True, text=True)
    return out.stdout.strip()


def oathtool(secret, at):
    """The code an authenticator app shows at unix time `at`."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    out = subprocess.run(["oathtool", "--totp", "-b", "--now", stamp, secret],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def secret_of(uri):
    q = urllib.parse.urlparse(uri).query
    return urllib.parse.parse_qs(q)["secret"][0]


def login_code(user):
    st, _, b = call("POST", "/auth/login", {"client_id": client_id, "client_secret": client_secret,
                                            "username": user, "password": PASSWORD})
    expect(st, 200, f"native /auth/login {user}", b)
    return b["code"]


def claims(jwt):
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# --- native: create-qr-code, zbarimg, oathtool, verify-otp ---------------
code = login_code("ann")
st, _, b = call("POST", "/auth/create-qr-code", {"code": code, "clientId": client_id})
expect(st, 200, "native /auth/create-qr-code", b)
uri = zbar(b["qrCode"])
assert uri.startswith("otpauth://totp/") and ":ann?" in uri, uri
params = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
assert params["algorithm"] == ["SHA1"] and params["digits"] == ["6"] and params["period"] == ["30"], params
ann_secret = secret_of(uri)
now = int(time.time())
st, _, b = call("POST", "/auth/verify-otp", {"key": "ann", "otp": oathtool(ann_secret, now),
                                             "code": code, "clientId": client_id})
expect(st, 200, "native /auth/verify-otp with oathtool's code confirms the factor", b)
st, _, t = call("POST", "/auth/token", {"clientId": client_id, "code": b["code"]})
expect(st, 200, "native /auth/token after the second factor", t)
assert claims(t["accessToken"])["amr"] == ["pwd", "otp"], claims(t["accessToken"])
st, _, me = call("GET", "/auth/me", headers={"Authorization": "Bearer " + t["accessToken"]})
expect(st, 200, "native /auth/me", me)

owed = login_code("ann")
st, _, b = call("POST", "/auth/token", {"clientId": client_id, "code": owed})
expect(st, 401, "native /auth/token refuses an owed code", b)
st, _, b = call("POST", "/auth/verify-otp", {"key": "ann", "otp": oathtool(ann_secret, now),
                                             "code": owed, "clientId": client_id})
expect(st, 401, "the same oathtool code again (replay)", b)
st, _, b = call("POST", "/auth/verify-otp", {"key": "ann", "otp": oathtool(ann_secret, now + 30),
                                             "code": owed, "clientId": client_id})
expect(st, 200, "the next step's oathtool code", b)

# --- yat: requires_2fa, then /auth/2fa with oathtool's code --------------
st, _, y = call("POST", "/auth/token", {"email": "ann@example.com", "password": PASSWORD})
expect(st, 200, "yat /auth/token", y)
assert y["requires_2fa"] == "GoogleAuthenticator", y
st, _, b = call("GET", "/auth/me", headers={"Authorization": "Bearer " + y["access_token"]})
expect(st, 401, "yat limited access token refused at /auth/me", b)
# ann's last accepted step is now+30; an app's code a step later is fresh.
time.sleep(max(0, (now // 30 + 1) * 30 - int(time.time()) + 1))
st, _, y2 = call("POST", "/auth/2fa", {"code": oathtool(ann_secret, int(time.time()) + 30),
                                       "refresh_token": y["refresh_token"]})
expect(st, 200, "yat /auth/2fa with oathtool's code", y2)
assert y2["requires_2fa"] is None, y2

# --- mfa: generate serves the link; its QR code says the same ------------
st, _, ua = call("POST", "/api/login", {"username": "bea", "password": PASSWORD})
expect(st, 200, "mfa /api/login (no MFA yet)", ua)
bearer = {"Authorization": "Bearer " + ua["token"]}
st, _, g = call("GET", "/api/user/mfa/generate", headers=bearer)
expect(st, 200, "mfa /api/user/mfa/generate", g)
decoded = zbar(g["qr_code"])
if decoded != g["link"]:
    sys.exit(f"FAIL the QR code says {decoded!r}, the served link is {g['link']!r}")
print("ok   zbarimg reads the served link from the QR code")
decoded_svg = zbar_svg(g["qr_code_svg"])
if decoded_svg != g["link"]:
    sys.exit(f"FAIL the SVG QR code says {decoded_svg!r}, the served link is {g['link']!r}")
print("ok   zbarimg reads the served link from the SVG QR code too")
st, _, b = call("PATCH", "/api/users", {"recovery_email": "bea@backup.example.org"}, bearer)
expect(st, 200, "mfa PATCH /api/users", b)
now = int(time.time())
st, _, b = call("PUT", "/api/user/mfa/enable", {"code": oathtool(g["secret"], now), "secret": g["secret"],
                                                "recovery_codes": g["recovery_codes"]}, bearer)
expect(st, 200, "mfa enable with oathtool's code", b)
st, h, b = call("POST", "/api/login", {"username": "bea", "password": PASSWORD})
expect(st, 401, "mfa /api/login now asks for the second factor", b)
token = {k.lower(): v for k, v in h.items()}["x-mfa-token"]
st, _, b = call("POST", "/api/user/mfa/auth", {"token": token, "code": oathtool(g["secret"], now + 30)})
expect(st, 200, "mfa /api/user/mfa/auth with oathtool's code", b)
assert b["mfa"] is True, b
print("totp interop: all passed")
