"""Forward-auth behind real proxies: Debian's nginx (auth_request, the
README's snippet) and Debian's caddy (forward_auth), each in front of a
small app (an http.server that echoes the headers it got), with hallpass's
access rules deciding.

usage: forward.py HALLPASS_BIN WORKDIR

Everything runs on 127.0.0.1, each on its own port: hallpass, the app,
nginx, caddy. Cookies do not care about ports, so the session cookie the
sign-in page sets for 127.0.0.1 reaches the proxies too (with real host
names that is `[web] cookie_domain`). nginx runs with its own config and
prefix in WORKDIR, in the foreground (`daemon off`), as the current user;
caddy with its admin endpoint off and its data in WORKDIR.

Per proxy: an anonymous request ends at the sign-in page (with rd); after
signing in through the pages (a requests.Session reading the csrf field
from the forms) the app gets Remote-User; a deny path is refused; a
forged Remote-User never reaches the app; a two_factor path asks a TOTP
user for the code first and sends a password-only session to the
step-up; signing out ends access.
"""
import html.parser
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

bin_, work = sys.argv[1:3]
PASSWORD = "correct-horse-battery-9"
procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, proc=None, log=None):
    for _ in range(200):
        if proc is not None and proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    detail = open(log).read() if log and os.path.exists(log) else ""
    sys.exit(f"forward: {what} did not start on {port}\n{detail}")


# ------------------------------------------------------------------ the app

class Echo(BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = json.dumps({
            "method": self.command,
            "path": self.path,
            "remote_user": self.headers.get("Remote-User"),
            "remote_email": self.headers.get("Remote-Email"),
            "remote_name": self.headers.get("Remote-Name"),
            "remote_groups": self.headers.get("Remote-Groups"),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = answer

    def log_message(self, *args):
        pass


app_port = free_port()
app = ThreadingHTTPServer(("127.0.0.1", app_port), Echo)
threading.Thread(target=app.serve_forever, daemon=True).start()

# ------------------------------------------------------------------ hallpass

hp_port = free_port()
hp = f"http://127.0.0.1:{hp_port}"
cfg = os.path.join(work, "hallpass.toml")
with open(cfg, "w") as f:
    f.write(f"""listen = "127.0.0.1:{hp_port}"
db = "{work}/h.db"
public_url = "{hp}"
trusted_proxies = ["127.0.0.1"]
access_log = false

[access]
default_policy = "deny"

[[access.rules]]
domain = "127.0.0.1"
path = "/public"
policy = "bypass"

[[access.rules]]
domain = "127.0.0.1"
path = "/private"
policy = "deny"

[[access.rules]]
domain = "127.0.0.1"
path = "/vault"
policy = "two_factor"

[[access.rules]]
domain = "127.0.0.1"
policy = "one_factor"
""")
# Nothing from run.sh's earlier servers (the environment beats the file).
env = {k: v for k, v in os.environ.items() if not k.startswith("HALLPASS_")}
env.update(HALLPASS_CONFIG=cfg, HALLPASS_PBKDF2_ITERATIONS="1000", HALLPASS_MAIL_COMMAND="")


def cli(*args, stdin=None):
    r = subprocess.run([bin_, *args], env=env, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"forward: hallpass {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def oathtool(secret, at=None):
    """The TOTP code now, or at Unix time `at`."""
    cmd = ["oathtool", "--totp", "-b", secret] + ([] if at is None else ["-N", f"@{at}"])
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


cli("init")
cli("check-config")
cli("user", "add", "ann@example.com", "--username", "ann", "--name", "Ann Lee",
    "--password-stdin", stdin=PASSWORD + "\n")
cli("user", "add", "bea@example.com", "--username", "bea", "--password-stdin",
    stdin=PASSWORD + "\n")
# bea gets TOTP, through the CLI: it prints the secret, then reads a code.
enroll = subprocess.Popen([bin_, "user", "enroll-mfa", "bea"], env=env, text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
bea_secret = None
for line in enroll.stdout:
    if line.startswith("secret: "):
        bea_secret = line.split(": ", 1)[1].strip()
        break
assert bea_secret, "enroll-mfa printed no secret"
enroll.stdin.write(oathtool(bea_secret) + "\n")
enroll.stdin.close()
assert enroll.wait(timeout=30) == 0, enroll.stderr.read()
# A step is taken once (replay refused): each sign-in below waits for a
# step after the last one used.
last_step = [int(time.time()) // 30]

hp_log = os.path.join(work, "hallpass.err")
server = subprocess.Popen([bin_, "serve"], env=env, stdout=subprocess.DEVNULL,
                          stderr=open(hp_log, "w"))
procs.append(server)
wait_port(hp_port, "hallpass", server, hp_log)

# ------------------------------------------------------------------ proxies

nginx_port = free_port()
prefix = os.path.join(work, "nginx")
os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
user_line = "user root;" if os.geteuid() == 0 else ""
with open(os.path.join(prefix, "nginx.conf"), "w") as f:
    f.write(f"""{user_line}
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    server {{
        listen 127.0.0.1:{nginx_port};
        server_name 127.0.0.1;

        location = /_hallpass {{
            internal;
            proxy_pass http://127.0.0.1:{hp_port}/auth/verify?proxy=nginx;
            proxy_method GET;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL http://127.0.0.1:{nginx_port}$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}

        location / {{
            auth_request /_hallpass;
            auth_request_set $hp_user $upstream_http_remote_user;
            auth_request_set $hp_email $upstream_http_remote_email;
            auth_request_set $hp_name $upstream_http_remote_name;
            auth_request_set $hp_groups $upstream_http_remote_groups;
            auth_request_set $hp_signin $upstream_http_location;
            error_page 401 =302 $hp_signin;

            proxy_set_header Remote-User $hp_user;
            proxy_set_header Remote-Email $hp_email;
            proxy_set_header Remote-Name $hp_name;
            proxy_set_header Remote-Groups $hp_groups;
            proxy_pass http://127.0.0.1:{app_port};
        }}
    }}
}}
""")
nginx_log = os.path.join(prefix, "logs", "error.log")
nginx = subprocess.Popen(["nginx", "-p", prefix, "-c", os.path.join(prefix, "nginx.conf"),
                          "-e", nginx_log],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "nginx.err"), "w"))
procs.append(nginx)
wait_port(nginx_port, "nginx", nginx, os.path.join(work, "nginx.err"))

caddy_port = free_port()
caddy_dir = os.path.join(work, "caddy")
os.makedirs(caddy_dir, exist_ok=True)
caddyfile = os.path.join(caddy_dir, "Caddyfile")
with open(caddyfile, "w") as f:
    f.write(f"""{{
    admin off
    auto_https off
}}

http://127.0.0.1:{caddy_port} {{
    forward_auth 127.0.0.1:{hp_port} {{
        uri /auth/verify
        copy_headers Remote-User Remote-Email Remote-Name Remote-Groups
    }}
    reverse_proxy 127.0.0.1:{app_port}
}}
""")
caddy_env = dict(os.environ, XDG_DATA_HOME=caddy_dir, XDG_CONFIG_HOME=caddy_dir, HOME=caddy_dir)
caddy_log = os.path.join(work, "caddy.err")
caddy = subprocess.Popen(["caddy", "run", "--config", caddyfile, "--adapter", "caddyfile"],
                         env=caddy_env, stdout=subprocess.DEVNULL, stderr=open(caddy_log, "w"))
procs.append(caddy)
wait_port(caddy_port, "caddy", caddy, caddy_log)


# ------------------------------------------------------------------ the flows

class Fields(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.values = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.values[a["name"]] = a.get("value") or ""


def fields(page):
    p = Fields()
    p.feed(page)
    return p.values


def check(cond, what):
    if not cond:
        sys.exit(f"forward: FAILED: {what}")
    print(f"  ok: {what}")


def sign_in(s, signin_url, login, totp_secret=None):
    """Follows the proxy's redirect to the sign-in page and signs in."""
    page = s.get(signin_url, allow_redirects=False)
    check(page.status_code == 200, f"the sign-in page answers ({page.status_code})")
    f = fields(page.text)
    r = s.post(hp + "/signin", data={"csrf": f["csrf"], "return_to": f.get("return_to", "/account"),
                                     "login": login, "password": PASSWORD},
               allow_redirects=False)
    check(r.status_code == 303, f"{login}: the password is taken ({r.status_code})")
    if totp_secret is None:
        return r
    check(r.headers["Location"].startswith("/signin/second-factor"),
          f"{login}: the second factor is asked for")
    page = s.get(hp + r.headers["Location"], allow_redirects=False)
    f = fields(page.text)
    # A fresh step: the last one used is spent.
    while int(time.time()) // 30 <= last_step[0]:
        time.sleep(0.5)
    # The code and the step noted from one reading of the clock (read
    # twice, a step boundary between them made the next sign-in reuse it).
    now = int(time.time())
    last_step[0] = now // 30
    r = s.post(hp + "/signin/second-factor",
               data={"csrf": f["csrf"], "return_to": f.get("return_to", "/account"),
                     "code": oathtool(totp_secret, now)},
               allow_redirects=False)
    check(r.status_code == 303, f"{login}: the code is taken ({r.status_code})")
    return r


def sign_out(s):
    page = s.get(hp + "/signout")
    r = s.post(hp + "/signout", data={"csrf": fields(page.text)["csrf"]}, allow_redirects=False)
    check(r.status_code == 303, "signed out")


def flow(name, base, post_method):
    print(f"== forward-auth behind {name} at {base}")
    s = requests.Session()
    url = base + "/photos/2024?page=3"
    r = s.get(url, allow_redirects=False)
    check(r.status_code == 302, f"anonymous: redirected ({r.status_code})")
    loc = r.headers["Location"]
    check(loc.startswith(hp + "/signin?rd="), f"to the sign-in page ({loc})")
    rd = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)["rd"][0]
    check(rd == url, f"rd is the original URL ({rd})")
    done = sign_in(s, loc, "ann")
    check(done.headers["Location"] == rd,
          f"the sign-in page sends the browser back to rd ({done.headers['Location']})")
    r = s.get(url, headers={"Remote-User": "mallory"}, allow_redirects=False)
    check(r.status_code == 200, f"signed in: the app answers ({r.status_code})")
    j = r.json()
    check(j["remote_user"] == "ann", f"the app got Remote-User ann, not the forged one ({j})")
    check(j["remote_email"] == "ann@example.com" and j["remote_name"] == "Ann Lee",
          "and Remote-Email, Remote-Name")
    check("default" in (j["remote_groups"] or "").split(","), "and Remote-Groups")
    check(j["path"] == "/photos/2024?page=3", "the app got the original path")
    r = getattr(s, post_method)(base + "/api/items", data="x=1", allow_redirects=False)
    check(r.status_code == 200 and r.json()["method"] == post_method.upper(),
          f"a {post_method.upper()} passes too ({r.status_code})")

    r = s.get(base + "/private/keys", allow_redirects=False)
    check(r.status_code == 403, f"a deny path is refused ({r.status_code})")
    r = s.get(base + "/public/../private/keys", allow_redirects=False)
    check(r.status_code in (400, 403), f"and not through dot segments ({r.status_code})")

    anon = requests.Session()
    forged = {"X-Original-URL": base + "/public/status", "X-Original-Method": "GET",
              "X-Forwarded-Uri": "/public/status"}
    r = anon.get(base + "/private/keys", headers=forged, allow_redirects=False)
    check(r.status_code in (302, 403),
          f"a client's own X-Original-URL / X-Forwarded-Uri decide nothing ({r.status_code})")
    r = anon.get(base + "/public/status", headers={"Remote-User": "admin"}, allow_redirects=False)
    check(r.status_code == 200, f"a bypass path passes anonymously ({r.status_code})")
    check(r.json()["remote_user"] in (None, ""),
          f"a forged Remote-User never reaches the app ({r.json()['remote_user']!r})")

    # two_factor: ann's session has only a password: the step-up.
    r = s.get(base + "/vault", allow_redirects=False)
    check(r.status_code == 302 and r.headers["Location"].startswith(hp + "/signin/step-up?rd="),
          f"a password-only session on a two_factor path goes to the step-up ({r.headers.get('Location')})")
    step = s.get(r.headers["Location"], allow_redirects=False)
    check(step.status_code == 403 and "/account#two-factor" in step.text,
          f"ann has no TOTP: the step-up page says to set it up ({step.status_code})")
    r = s.get(base + "/vault", allow_redirects=False)
    check(r.status_code == 302, "and the vault stays shut")
    # bea has TOTP: signing in asks for the code, then the vault opens.
    b = requests.Session()
    r = b.get(base + "/vault/door", allow_redirects=False)
    check(r.status_code == 302, "anonymous on the two_factor path: to sign in")
    rd = urllib.parse.parse_qs(urllib.parse.urlsplit(r.headers["Location"]).query)["rd"][0]
    done = sign_in(b, r.headers["Location"], "bea", bea_secret)
    check(done.headers["Location"] == rd, "after the code, back to rd")
    r = b.get(base + "/vault/door", allow_redirects=False)
    check(r.status_code == 200 and r.json()["remote_user"] == "bea",
          f"after the code, the two_factor path passes ({r.status_code})")
    sign_out(b)

    sign_out(s)
    r = s.get(url, allow_redirects=False)
    check(r.status_code == 302, f"after signing out: to sign in again ({r.status_code})")


try:
    flow("nginx", f"http://127.0.0.1:{nginx_port}", "post")
    flow("caddy", f"http://127.0.0.1:{caddy_port}", "delete")
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    app.shutdown()
print("forward: nginx and caddy passed")
