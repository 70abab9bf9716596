"""Mail as a real MTA client sees it: hallpass's mail command is Debian's
msmtp, which delivers over SMTP to a sink on 127.0.0.1 (smtp_sink.py,
aiosmtpd). The MFA reset (mfa dialect) mails two codes; the delivered
messages are read back with Python's `email` parser (headers, both parts),
and the codes finish the reset. A forgotten password (native dialect) is
reset with the link the delivered mail carries. Then `hallpass mail test`
goes the same way.

usage: mail.py BASE SINKDIR HALLPASS_BIN CONFIG CLIENT_ID CLIENT_SECRET
Creates its users and client through the CLI beforehand (see run.sh): cea,
dee.
"""
import email
import email.policy
import glob
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

base, sink, binary, config, client_id, client_secret = sys.argv[1:7]
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
        return e.code, dict(e.headers), raw


def expect(status, want, what, body=None):
    if status != want:
        sys.exit(f"FAIL {what}: status {status}, wanted {want}: {body}")
    print(f"ok   {what}")


def oathtool(secret, at):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    out = subprocess.run(["oathtool", "--totp", "-b", "--now", stamp, secret],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def wait_for(to, seen, timeout=10):
    """The first message in the sink addressed to `to` not in `seen`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in sorted(glob.glob(os.path.join(sink, "*.eml"))):
            if path in seen:
                continue
            with open(path, "rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.default)
            if msg["To"] == to:
                seen.add(path)
                return msg
        time.sleep(0.05)
    sys.exit(f"FAIL no mail to {to} reached the SMTP sink within {timeout} s")


def check_message(msg, to, subject, url=None):
    for h in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
        if msg[h] is None:
            sys.exit(f"FAIL the message to {to} has no {h} header")
    assert msg["To"] == to, msg["To"]
    assert msg["Subject"] == subject, msg["Subject"]
    assert msg["MIME-Version"] == "1.0"
    assert msg["From"].addresses[0].addr_spec == "hallpass@localhost", msg["From"]
    assert msg.get_content_type() == "multipart/alternative", msg.get_content_type()
    assert msg["Date"].datetime is not None
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert (url or base) in text, text
    assert "<html>" in html, html
    print(f"ok   the mail to {to}: headers, text/plain and text/html parse ({subject!r})")
    return text, html


seen = set()

# --- mfa: enable TOTP, then the emailed reset ----------------------------
st, _, ua = call("POST", "/api/login", {"username": "cea", "password": PASSWORD})
expect(st, 200, "mfa /api/login", ua)
bearer = {"Authorization": "Bearer " + ua["token"]}
st, _, g = call("GET", "/api/user/mfa/generate", headers=bearer)
expect(st, 200, "mfa generate", g)
st, _, b = call("PATCH", "/api/users", {"recovery_email": "cea@backup.example.org"}, bearer)
expect(st, 200, "mfa recovery email", b)
st, _, b = call("PUT", "/api/user/mfa/enable", {"code": oathtool(g["secret"], int(time.time())),
                                                "secret": g["secret"],
                                                "recovery_codes": g["recovery_codes"]}, bearer)
expect(st, 200, "mfa enable", b)
asked = time.time()
st, _, b = call("POST", "/api/user/mfa/reset", {"identifier": "cea"})
expect(st, 200, "mfa reset mails two codes", b)
main = wait_for("cea@example.com", seen)
backup = wait_for("cea@backup.example.org", seen)
print(f"ok   both reset mails reached the SMTP sink through msmtp in {time.time() - asked:.2f} s")
codes = []
for msg, to, part in ((main, "cea@example.com", "1 of 2"), (backup, "cea@backup.example.org", "2 of 2")):
    text, html = check_message(msg, to, f"Your two-factor reset code ({part})")
    m = re.search(r"Code %s: (\S+)" % re.escape(part), text)
    assert m, text
    assert m.group(1) in html, html
    codes.append(m.group(1))
st, _, b = call("PUT", f"/api/user/mfa/reset/{ua['id']}",
                {"main_email_code": codes[0], "recovery_email_code": codes[1]})
expect(st, 200, "mfa reset with the two delivered codes", b)
assert b["mfa"] is False, b

# --- native: a forgotten password, reset from the delivered link ------------
client = {"client_id": client_id, "client_secret": client_secret}
st, _, b = call("POST", "/auth/forget-password", {"username": "dee", **client})
expect(st, 204, "native forget-password", b)
text, html = check_message(wait_for("dee@example.com", seen), "dee@example.com",
                           "Reset your hallpass password")
m = re.search(r"(https?://\S+[?&]token=([A-Za-z0-9_\-]+))", text)
assert m, text
link, token = m.group(1), m.group(2)
assert link.startswith(base + "/reset-password?"), link
assert token in html, "the HTML part carries the same link"
st, _, b = call("GET", "/auth/verify-reset-password-link?token=" + token)
expect(st, 200, "native verify-reset-password-link from the mail", b)
NEW = "plum-kestrel-orbit-42"
st, _, b = call("PATCH", "/auth/reset-password", {"token": token, "password": NEW, **client})
expect(st, 204, "native reset-password with the mailed token", b)
st, _, b = call("PATCH", "/auth/reset-password", {"token": token, "password": NEW + "x", **client})
expect(st, 401, "the mailed token is single use", b)
st, _, b = call("POST", "/auth/login-token", {"username": "dee", "password": NEW, **client})
expect(st, 200, "native sign-in with the new password", b)
st, _, b = call("POST", "/auth/login-token", {"username": "dee", "password": PASSWORD, **client})
expect(st, 401, "the old password no longer signs in", b)

# --- hallpass mail test, through the same msmtp -----------------------------
out = subprocess.run([binary, "mail", "test", "ops@example.com", "--config", config],
                     capture_output=True, text=True)
if out.returncode != 0 or "exit: 0" not in out.stdout:
    sys.exit(f"FAIL hallpass mail test: {out.returncode}\n{out.stdout}\n{out.stderr}")
print("ok   hallpass mail test: msmtp exit 0")
# The CLI knows no bound port: its public URL is the configured listen address.
check_message(wait_for("ops@example.com", seen), "ops@example.com", "A test message from hallpass",
              url="http://127.0.0.1:8080")
print("mail interop: all passed")
