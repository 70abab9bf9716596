"""The sign-in pages in a real browser: Debian's headless Chromium, driven
through Debian's chromedriver by selenium (PyPI), against a real hallpass.

usage: pages.py BIN WORK SHOTS [--only STEP,STEP,...]
  BIN    the hallpass binary
  WORK   an empty scratch directory (the database, the browser's profile,
         the logs)
  SHOTS  where the screenshots go (emptied of old ones first); CI keeps
         them as artifacts: target/interop-screenshots
  --only run only these steps, in the usual order (default: all):
         signin         an app's authorize URL (PKCE S256, state, nonce) ->
                        /signin -> login and password typed and submitted
                        -> the relying party gets code and state -> tokens
         consent        a consent app: the consent page, deny (access_denied
                        to the app), then allow (code, state, tokens)
         account        /account: two-factor set-up (after the current
                        password), the QR code read from
                        a screenshot with zbarimg, oathtool's code
                        confirmed, the recovery codes shown
         signout        /signout's button; /account then sends to /signin
         second-factor  sign in again: the second-factor page takes
                        oathtool's code (amr otp in the id_token), then,
                        after another sign-out, a recovery code
         console        no console errors, no CSP violation, on any page
  Without the account step, second-factor signs in a user enrolled by the
  CLI (`hallpass user enroll-mfa`, answered with oathtool's code).

Nothing is downloaded at run time: the browser is /usr/bin/chromium, the
driver /usr/bin/chromedriver, named explicitly, and Selenium Manager is
switched off (SE_OFFLINE) and made to fail if selenium ever calls it.

The relying party is an HTTP server in this script on 127.0.0.1 that takes
the redirect (code and state, or error and state); the code is exchanged at
the token endpoint with urllib.

Each step prints "PASS ..." lines; a failure prints "FAIL ...", saves a
screenshot and the page source under SHOTS (FAIL-STEP.png, FAIL-STEP.html)
and exits non-zero. Each step's screenshots are kept on success too.
"""
import base64
import hashlib
import http.server
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

os.environ["SE_OFFLINE"] = "true"   # Selenium Manager never goes online

import selenium   # noqa: E402
from selenium import webdriver   # noqa: E402
from selenium.webdriver.chrome.options import Options   # noqa: E402
from selenium.webdriver.chrome.service import Service   # noqa: E402
from selenium.webdriver.common import selenium_manager   # noqa: E402
from selenium.webdriver.common.by import By   # noqa: E402
from selenium.common.exceptions import WebDriverException   # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait   # noqa: E402

STEPS = ["signin", "consent", "account", "signout", "second-factor", "console"]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PASSWORD = "correct-horse-battery-9"

args = sys.argv[1:]
only = None
if "--only" in args:
    i = args.index("--only")
    if i + 1 >= len(args):
        sys.exit("usage: pages.py BIN WORK SHOTS [--only STEP,STEP,...]")
    only = [s.strip() for s in args[i + 1].split(",") if s.strip()]
    del args[i:i + 2]
    unknown = [s for s in only if s not in STEPS]
    if unknown:
        sys.exit(f"pages.py: unknown step(s) {unknown}; the steps are {STEPS}")
if len(args) != 3:
    sys.exit("usage: pages.py BIN WORK SHOTS [--only STEP,STEP,...]")
bin_, work, shots = (os.path.abspath(a) for a in args)
steps = [s for s in STEPS if only is None or s in only]

driver = None
server = None
rp_http = None
current = "setup"      # the step running, for FAIL's screenshot name
shot_no = 0
console = []           # (step, entry) of every browser log entry
expected = []          # (step, path, status): error pages asked for on purpose


def cleanup():
    if driver is not None:
        try:
            driver.quit()
        except Exception:
            pass
    if server is not None and server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    if rp_http is not None:
        rp_http.shutdown()


def fail(what, detail=""):
    print(f"FAIL {current}: {what}: {detail}", flush=True)
    if driver is not None:
        try:
            print(f"     at {driver.current_url}", flush=True)
            png = os.path.join(shots, f"FAIL-{current}.png")
            driver.save_screenshot(png)
            with open(os.path.join(shots, f"FAIL-{current}.html"), "w") as f:
                f.write(driver.page_source)
            print(f"     screenshot {png}, page source beside it", flush=True)
        except Exception as e:   # the browser itself may be what failed
            print(f"     no screenshot: {e!r}", flush=True)
    if server is not None and server.poll() is not None:
        print(f"     hallpass exited {server.returncode}", flush=True)
    cleanup()
    sys.exit(1)


def ok(what):
    print(f"PASS {current}: {what}", flush=True)


def check(cond, what, detail=""):
    if not cond:
        fail(what, detail)


def shot(name):
    """A screenshot kept as an artifact, numbered in the order taken."""
    global shot_no
    shot_no += 1
    driver.save_screenshot(os.path.join(shots, f"{shot_no:02d}-{current}-{name}.png"))


# ---------------------------------------------------------------- tools

def need(path):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        fail(f"{path} is missing", "install Debian's chromium and chromium-driver")


def tool_version(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f"{' '.join(cmd)}", r.stderr)
    return r.stdout.strip().splitlines()[0]


def oathtool(secret, at):
    """The code an authenticator app shows at unix time `at`."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    r = subprocess.run(["oathtool", "--totp", "-b", "--now", stamp, secret],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "oathtool", r.stderr)
    return r.stdout.strip()


def fresh_code(secret, spent_step):
    """oathtool's code for a time step after `spent_step` (hallpass takes a
    step at most once, and one step of skew either side): no waiting for
    the next 30-s window. Returns the code and its step."""
    at = max(int(time.time()), (spent_step + 1) * 30)
    return oathtool(secret, at), at // 30


def cli(*a, stdin=None):
    r = subprocess.run([bin_, *a], input=stdin, capture_output=True, text=True,
                       timeout=60, env=env)
    if r.returncode != 0:
        fail(f"hallpass {' '.join(a)}", r.stderr)
    return r.stdout


def field(out, name):
    for line in out.splitlines():
        if line.startswith(name + ": "):
            return line.split(": ", 1)[1].strip()
    fail(f"no {name} in the CLI's answer", out)


def enroll_totp(user):
    """`hallpass user enroll-mfa USER` answered with oathtool's code: the
    secret, the step spent and the recovery codes it prints."""
    p = subprocess.Popen([bin_, "user", "enroll-mfa", user], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
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
    codes = [line.strip() for line in rest.splitlines() if line.startswith("  ") and line.strip()]
    check(codes, "enroll-mfa printed recovery codes", rest)
    return secret, now // 30, codes


# ---------------------------------------------------------------- the relying party

class RP(http.server.BaseHTTPRequestHandler):
    """The app's redirect URI: keeps each callback's query."""
    got = []

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path != "/callback":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        q = dict(urllib.parse.parse_qsl(u.query))
        RP.got.append(q)
        body = (b"<!doctype html><html lang=en><head><meta charset=utf-8>"
                b"<title>relying party</title><link rel=icon href=data:,></head>"
                b"<body><h1>The app got the callback</h1><pre>"
                + "\n".join(f"{k}: {'...' if k == 'code' else v}" for k, v in q.items())
                .replace("&", "&amp;").replace("<", "&lt;").encode()
                + b"</pre></body></html>")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def authorize_url(client_id):
    """An authorization request as an app makes it: PKCE S256, state, nonce."""
    verifier = b64url(secrets.token_bytes(32))
    req = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
           "scope": "openid profile email", "state": b64url(secrets.token_bytes(12)),
           "nonce": b64url(secrets.token_bytes(12)),
           "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()),
           "code_challenge_method": "S256"}
    return base + "/oauth2/authorize?" + urllib.parse.urlencode(req), dict(req, verifier=verifier)


def callback(req):
    """The query the app's redirect URI got last, after checking the
    browser is there and the state is the request's."""
    check(driver.current_url.startswith(redirect_uri + "?"),
          "the browser is back at the app's redirect URI", driver.current_url)
    check(RP.got, "the app's redirect URI was called")
    q = RP.got[-1]
    check(q.get("state") == req["state"], "the callback echoes the request's state", q)
    return q


def exchange(client_id, client_secret, req, code):
    """The code at the token endpoint (client_secret_basic, the PKCE
    verifier); returns the tokens and the id_token's claims."""
    body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": redirect_uri,
                                   "code_verifier": req["verifier"]}).encode()
    r = urllib.request.Request(base + "/oauth2/token", data=body, method="POST")
    r.add_header("Content-Type", "application/x-www-form-urlencoded")
    basic = base64.b64encode(f"{urllib.parse.quote(client_id, safe='')}:"
                             f"{urllib.parse.quote(client_secret, safe='')}".encode()).decode()
    r.add_header("Authorization", "Basic " + basic)
    try:
        with urllib.request.urlopen(r, timeout=15) as resp:
            tok = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        fail("the token endpoint refused the code", f"{e.code} {e.read()[:500]!r}")
    check(tok.get("access_token") and tok.get("id_token"), "access_token and id_token", tok)
    part = tok["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    check(claims.get("nonce") == req["nonce"], "the id_token carries the request's nonce", claims)
    check(claims.get("aud") in (client_id, [client_id]), "the id_token's aud is the app", claims)
    return tok, claims


# ---------------------------------------------------------------- the browser

def path():
    return urllib.parse.urlsplit(driver.current_url).path


def go(url):
    driver.get(url)
    collect()


def submit(button):
    """Clicks a form's button and waits for the next page to load."""
    old = driver.find_element(By.TAG_NAME, "html")
    button.click()

    def replaced(_):
        # EC.staleness_of, but a node caught while being detached can also
        # answer "Node with given id does not belong to the document" (a
        # plain WebDriverException): that too means the old page is gone.
        try:
            old.is_enabled()
            return False
        except WebDriverException:
            return True

    try:
        WebDriverWait(driver, 15).until(replaced)
        WebDriverWait(driver, 15).until(
            lambda d: d.execute_script("return document.readyState") == "complete")
    except Exception as e:
        fail("the form's answer did not load", repr(e))
    collect()


def one(css, what):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    check(found, f"{what} ({css}) is on the page", path())
    return found[0]


def form_button(action, what):
    return one(f"form[action='{action}'] button[type='submit']", what)


def expect_status(path_, status):
    """The next page is an error status on purpose (a wrong password, a
    used code): Chromium logs its load as failed, which is not a fault."""
    expected.append((current, path_, status))


def collect():
    """Browser log entries (console messages, CSP reports, failed loads)
    since the last call, kept for the console step."""
    for e in driver.get_log("browser"):
        console.append((current, e))


def sign_in_form(login):
    """On /signin: types the login and password and submits."""
    check(path() == "/signin", "the sign-in page", driver.current_url)
    one("form[action='/signin'] input[name='csrf']", "the sign-in form's csrf field")
    box = one("#login", "the login field")
    box.clear()
    box.send_keys(login)
    one("#password", "the password field").send_keys(PASSWORD)
    submit(form_button("/signin", "the sign-in button"))


def second_factor(code):
    check(path() == "/signin/second-factor", "the second-factor page asks for a code",
          driver.current_url)
    one("#code", "the code field").send_keys(code)
    submit(form_button("/signin/second-factor", "the second-factor button"))


def sign_out():
    go(base + "/signout")
    submit(form_button("/signout", "the sign-out button"))
    check(path() == "/signin", "sign-out lands on /signin", driver.current_url)


# ---------------------------------------------------------------- setup

need(CHROMIUM)
need(CHROMEDRIVER)
print(f"selenium {selenium.__version__}; {tool_version([CHROMIUM, '--version'])}; "
      f"{tool_version([CHROMEDRIVER, '--version'])}; {tool_version(['oathtool', '--version'])}; "
      f"zbarimg {tool_version(['zbarimg', '--version'])}", flush=True)


def no_selenium_manager(*a, **k):
    fail("selenium tried to run Selenium Manager (it would download a browser or driver)")


selenium_manager.SeleniumManager.binary_paths = no_selenium_manager

os.makedirs(shots, exist_ok=True)
for old in os.listdir(shots):
    if old.endswith((".png", ".html")):
        os.remove(os.path.join(shots, old))
os.makedirs(work, exist_ok=True)

rp_http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RP)
threading.Thread(target=rp_http.serve_forever, daemon=True).start()
redirect_uri = f"http://127.0.0.1:{rp_http.server_address[1]}/callback"

env = {k: v for k, v in os.environ.items() if not k.startswith("HALLPASS_")}
env.update(HALLPASS_DB=os.path.join(work, "h.db"), HALLPASS_PBKDF2_ITERATIONS="1000",
           HALLPASS_MAIL_COMMAND="", HALLPASS_TOKEN_ALGORITHM="ES256")
cli("init")
app = cli("client", "add", "pages-app", "--redirect-url", redirect_uri, "--first-party")
app_id, app_secret = field(app, "client_id"), field(app, "client_secret")
con = cli("client", "add", "pages-consent", "--redirect-url", redirect_uri, "--consent")
con_id, con_secret = field(con, "client_id"), field(con, "client_secret")
cli("user", "add", "pg-ada@example.com", "--username", "pg-ada", "--password-stdin",
    stdin=PASSWORD + "\n")
# What second-factor signs in with: the account page's enrolment when it
# runs, else a user the CLI enrolled.
mfa = None
if "second-factor" in steps and "account" not in steps:
    cli("user", "add", "pg-tom@example.com", "--username", "pg-tom", "--password-stdin",
        stdin=PASSWORD + "\n")
    secret, spent, codes = enroll_totp("pg-tom")
    mfa = {"login": "pg-tom", "secret": secret, "spent": spent, "recovery": codes,
           "how": "enrolled by `hallpass user enroll-mfa`"}

server = subprocess.Popen([bin_, "serve", "--listen", "127.0.0.1:0"], env=env,
                          stdout=subprocess.PIPE, stderr=open(os.path.join(work, "err"), "w"),
                          text=True)
line = server.stdout.readline()
check(line.startswith("listening on "), "hallpass serve", line)
base = line.split("listening on ", 1)[1].strip()

opts = Options()
opts.binary_location = CHROMIUM
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
          "--window-size=1000,900", "--no-first-run", "--no-default-browser-check",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-extensions", "--disable-features=Translate,OptimizationHints,MediaRouter",
          f"--user-data-dir={os.path.join(work, 'profile')}"):
    opts.add_argument(a)
opts.add_experimental_option("prefs", {"credentials_enable_service": False,
                                       "profile.password_manager_enabled": False,
                                       "profile.password_manager_leak_detection": False})
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
try:
    driver = webdriver.Chrome(
        service=Service(executable_path=CHROMEDRIVER,
                        log_output=os.path.join(work, "chromedriver.log")),
        options=opts)
except Exception as e:
    fail("chromedriver did not start Chromium", repr(e))
driver.implicitly_wait(1)
driver.set_page_load_timeout(20)
print(f"hallpass at {base}, the app at {redirect_uri}, steps: {', '.join(steps)}", flush=True)


# ---------------------------------------------------------------- the steps

def step_signin():
    url, req = authorize_url(app_id)
    go(url)
    check(path() == "/signin", "authorize without a session sends to /signin", driver.current_url)
    back = one("form[action='/signin'] input[name='return_to']", "the return_to field")
    check(back.get_attribute("value").startswith("/oauth2/authorize?"),
          "the sign-in form returns to the authorize request", back.get_attribute("value"))
    shot("form")
    ok("the app's authorize URL (PKCE S256, state, nonce) lands on /signin")

    # A wrong password: the message next to the field, the login kept.
    box = one("#login", "the login field")
    box.send_keys("pg-ada")
    one("#password", "the password field").send_keys("not-the-password")
    expect_status("/signin", 401)
    submit(form_button("/signin", "the sign-in button"))
    err = one("#password-error", "the message next to the password")
    check(path() == "/signin" and err.is_displayed() and err.text.strip(),
          "a wrong password is told next to the field", driver.current_url)
    check(one("#login", "the login field").get_attribute("value") == "pg-ada",
          "the login is kept after a wrong password")
    shot("wrong-password")
    ok(f"a wrong password: #password-error says {err.text.strip()!r}")

    sign_in_form("pg-ada@example.com")
    q = callback(req)
    check("code" in q, "the app got a code", q)
    shot("app-callback")
    go(base + "/signout")   # hallpass's origin, to read its cookies
    cookies = {c["name"]: c for c in driver.get_cookies()}
    sess = cookies.get("__Host-hallpass") or cookies.get("hallpass")
    check(sess, "a session cookie", list(cookies))
    check(sess.get("httpOnly") and sess.get("sameSite") == "Lax",
          "the session cookie is HttpOnly and SameSite=Lax", sess)
    ok(f"signed in: the app got code and state; cookie {sess['name']} HttpOnly, SameSite=Lax")
    tok, claims = exchange(app_id, app_secret, req, q["code"])
    check(claims.get("amr") == ["pwd"], "amr pwd", claims)
    ok(f"the code exchanged (PKCE verifier): id_token for sub {claims['sub']}, nonce, amr {claims['amr']}")


def step_consent():
    # Deny first: the app hears access_denied with its state.
    url, req = authorize_url(con_id)
    go(url)
    if path() == "/signin":   # when run without the signin step
        sign_in_form("pg-ada")
    check(urllib.parse.urlsplit(driver.current_url).netloc == urllib.parse.urlsplit(base).netloc,
          "a consent app's authorize shows a page here, not a redirect to the app",
          driver.current_url)
    check(path() == "/oauth2/authorize", "the consent page is authorize's answer",
          driver.current_url)
    allow = one("form button[name='decision'][value='allow']", "the allow button")
    deny = one("form button[name='decision'][value='deny']", "the deny button")
    check("pages-consent" in driver.find_element(By.TAG_NAME, "body").text,
          "the consent page names the app")
    shot("page")
    ok(f"a consent app's authorize answers the consent page (allow: {allow.text.strip()!r})")
    submit(deny)
    q = callback(req)
    check(q.get("error") == "access_denied" and "code" not in q,
          "deny sends access_denied to the app", q)
    shot("denied")
    ok("deny: the app gets error=access_denied with its state")

    url, req = authorize_url(con_id)
    go(url)
    check(path() == "/oauth2/authorize", "the consent page again after a deny", driver.current_url)
    submit(one("form button[name='decision'][value='allow']", "the allow button"))
    q = callback(req)
    check("code" in q, "allow gives the app a code", q)
    shot("allowed")
    tok, claims = exchange(con_id, con_secret, req, q["code"])
    ok(f"allow: the app got code and state, exchanged for tokens (sub {claims['sub']})")


def step_account():
    global mfa
    go(base + "/account")
    if path() == "/signin":   # when run without the signin step
        sign_in_form("pg-ada")
    check(path() == "/account", "the account page", driver.current_url)
    for section in ("password", "two-factor", "recovery", "activity", "sessions"):
        one(f"#{section}", f"the {section} section")
    shot("page")
    ok("/account has its sections: password, two-factor, recovery, activity, sessions")
    setup = driver.find_elements(
        By.XPATH, "//form[@action='/account/totp']//button[normalize-space()="
                  "'Set up two-factor authentication']")
    check(setup, "the button 'Set up two-factor authentication' in a form posting to /account/totp")
    # The set-up asks for the current password first (a session alone adds
    # no factor); the field is labelled "Current password".
    label = one("form[action='/account/totp'] label[for='totp_password']",
                "the set-up form's password label")
    check(label.text.strip() == "Current password", "the label says 'Current password'",
          label.text)
    one("form[action='/account/totp'] input[name='password']",
        "the set-up form's password field").send_keys(PASSWORD)
    submit(setup[0])
    qr = one("img#totp-qr", "the QR code")
    check((qr.get_attribute("src") or "").startswith("data:image/png;base64,"),
          "the QR code is a PNG data URL", (qr.get_attribute("src") or "")[:40])
    shot("qr")
    png = os.path.join(shots, f"{shot_no + 1:02d}-account-qr-element.png")
    check(qr.screenshot(png), "a screenshot of #totp-qr")
    r = subprocess.run(["zbarimg", "--raw", "-q", png], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and r.stdout.strip(), "zbarimg reads the QR code's screenshot",
          f"{r.returncode} {r.stdout!r} {r.stderr!r}")
    uri = r.stdout.strip()
    u = urllib.parse.urlsplit(uri)
    check(u.scheme == "otpauth" and u.netloc == "totp", "the QR code is an otpauth://totp URI", uri)
    secret = urllib.parse.parse_qs(u.query).get("secret", [""])[0]
    shown = "".join(one("#totp-secret", "the secret as text").text.split()).upper()
    check(secret and secret.upper() == shown, "the QR code's secret is the one shown as text",
          f"{secret!r} vs {shown!r}")
    ok(f"zbarimg read the QR code from a screenshot: {uri.split('?')[0]}, its secret is #totp-secret's")
    now = int(time.time())
    confirm = one("form[action='/account/totp/confirm'] input[name='code']", "the confirm form's code")
    confirm.send_keys(oathtool(secret, now))
    submit(form_button("/account/totp/confirm", "the confirm button"))
    items = driver.find_elements(By.CSS_SELECTOR, "ul#recovery-codes li")
    codes = [i.text.strip() for i in items if i.text.strip()]
    check(codes, "the recovery codes are shown in #recovery-codes", path())
    shot("recovery-codes")
    ok(f"oathtool's code confirmed the enrolment; {len(codes)} recovery codes shown")
    mfa = {"login": "pg-ada", "secret": secret, "spent": now // 30, "recovery": codes,
           "how": "enrolled on the account page"}


def step_signout():
    go(base + "/account")
    if path() == "/signin":   # when run alone: sign in first
        sign_in_form("pg-ada")
        if path() == "/signin/second-factor":
            fail("signout alone cannot pass a second factor; run it with signin")
    check(path() == "/account", "signed in before signing out", driver.current_url)
    go(base + "/signout")
    shot("form")
    submit(form_button("/signout", "the sign-out button"))
    check(path() == "/signin", "sign-out lands on /signin", driver.current_url)
    names = [c["name"] for c in driver.get_cookies()]
    check("__Host-hallpass" not in names and "hallpass" not in names,
          "the session cookie is gone", names)
    ok("the sign-out button: /signin, the session cookie gone")
    go(base + "/account")
    check(path() == "/signin", "/account after sign-out sends to /signin", driver.current_url)
    shot("account-after")
    ok("/account after sign-out redirects to /signin")


def step_second_factor():
    check(mfa, "a user with TOTP on (the account step, or the CLI's enroll-mfa)")
    names = [c["name"] for c in driver.get_cookies()]
    if "__Host-hallpass" in names or "hallpass" in names:
        go(base + "/signout")
        submit(form_button("/signout", "the sign-out button"))
    # Through an app: oathtool's code, and the id_token says so.
    url, req = authorize_url(app_id)
    go(url)
    sign_in_form(mfa["login"])
    shot("asks")
    code, step = fresh_code(mfa["secret"], mfa["spent"])
    second_factor(code)
    q = callback(req)
    check("code" in q, "the app got a code after the second factor", q)
    shot("app-callback")
    tok, claims = exchange(app_id, app_secret, req, q["code"])
    check(claims.get("amr") == ["pwd", "otp"], "amr pwd+otp after oathtool's code", claims)
    mfa["spent"] = step
    ok(f"{mfa['login']} ({mfa['how']}): the second-factor page took oathtool's code; "
       f"the app's id_token says amr {claims['amr']}, acr {claims.get('acr')}")
    go(base + "/account")
    check(path() == "/account", "signed in: /account", driver.current_url)
    sign_out()

    # Straight to /account: a recovery code.
    go(base + "/signin?return_to=%2Faccount")
    sign_in_form(mfa["login"])
    second_factor(mfa["recovery"][0])
    check(path() == "/account", "a recovery code signs in to /account", driver.current_url)
    shot("recovery-code")
    ok("a recovery code on the second-factor page signs in (to /account)")
    sign_out()
    go(base + "/signin?return_to=%2Faccount")
    sign_in_form(mfa["login"])
    expect_status("/signin/second-factor", 401)
    second_factor(mfa["recovery"][0])
    check(path() == "/signin/second-factor", "the same recovery code again is refused",
          driver.current_url)
    err = one("#code-error", "the message next to the code")
    shot("recovery-code-reused")
    ok(f"the same recovery code again: refused, #code-error says {err.text.strip()!r}")


def faults(entries):
    """The entries that fail the run: any CSP violation, and any error
    other than the load of an error page asked for on purpose."""
    bad = []
    for st, e in entries:
        msg = e.get("message", "")
        csp = "Content Security Policy" in msg or "Content-Security-Policy" in msg
        on_purpose = e.get("source") == "network" and any(
            st == s_ and f"{base}{p_} " in msg and f"status of {n_} " in msg
            for s_, p_, n_ in expected)
        if csp or (e.get("level") == "SEVERE" and not on_purpose):
            bad.append(f"[{st}] {e.get('level')} {e.get('source')}: {msg}")
    return bad


def step_console():
    collect()
    for st, e in console:
        print(f"     console [{st}] {e.get('level')} {e.get('source')}: {e.get('message')}")
    bad = faults(console)
    check(not bad, "console errors or CSP violations", "\n  " + "\n  ".join(bad))
    ok(f"no console error and no CSP violation on any page ({len(console)} log entries read, "
       f"{len(expected)} error page(s) on purpose)")
    # The check itself: an inline style put into a page must show up as a
    # CSP violation in the log read above.
    go(base + "/signin")
    driver.execute_script("document.head.insertAdjacentHTML('beforeend', "
                          "'<style>body { color: red }</style>')")
    probe = [("probe", e) for e in driver.get_log("browser")]
    check(faults(probe) and any("Content Security Policy" in e.get("message", "") for _, e in probe),
          "an inline style injected into /signin is reported as a CSP violation", probe)
    ok("the check sees CSP violations: an injected inline style is reported as one")


t0 = time.monotonic()
for current in steps:
    globals()["step_" + current.replace("-", "_")]()
collect()
cleanup()
print(f"pages (chromium): {len(steps)} steps passed ({', '.join(steps)}) in "
      f"{time.monotonic() - t0:.1f} s; screenshots in {shots}", flush=True)
