#!/usr/bin/env bash
# The interop suite: real outside tools against a real hallpass binary.
# Installs what it needs (PyPI: PyJWT, cryptography, schemathesis, authlib,
# selenium; npm: oidc-provider, openid-client; Debian: oathtool, zbar-tools,
# chromium, chromium-driver, ...) and fails loudly when a tool is missing; it never skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/interop

python3 -m pip install --quiet --disable-pip-version-check "PyJWT[crypto]>=2.8" 2>&1 | tail -n 3
python3 -c "import jwt, cryptography; print('PyJWT', jwt.__version__)"
# schemathesis: pinned, since its CLI and check names change between majors.
python3 -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5" 2>&1 | tail -n 3
schemathesis --version

# Debian: oathtool (codes as an authenticator app makes them), zbar-tools
# (reads our QR images; ImageMagick's extra coders let it read SVG too),
# msmtp (the mail command) and python3-aiosmtpd (the SMTP sink it delivers
# to; Debian's python, /usr/bin/python3, runs the sink).
debs="oathtool zbar-tools libmagickcore-6.q16-6-extra msmtp python3-aiosmtpd"
if ! command -v oathtool >/dev/null || ! command -v zbarimg >/dev/null \
    || ! dpkg -s libmagickcore-6.q16-6-extra >/dev/null 2>&1 \
    || ! command -v msmtp >/dev/null || ! dpkg -s python3-aiosmtpd >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    sudo_=""
    [ "$(id -u)" = 0 ] || sudo_=sudo
    # shellcheck disable=SC2086
    $sudo_ apt-get install -y -q $debs >/dev/null 2>&1 \
        || { $sudo_ apt-get update -q >/dev/null && $sudo_ apt-get install -y -q $debs >/dev/null; }
fi
# Debian: nodejs and npm (social sign-in's OpenID Provider runs on node),
# each only when missing: a node from elsewhere may bring its own npm.
nodedebs=""
command -v node >/dev/null || nodedebs="nodejs"
command -v npm >/dev/null || nodedebs="$nodedebs npm"
if [ -n "$nodedebs" ]; then
    export DEBIAN_FRONTEND=noninteractive
    sudo_=""
    [ "$(id -u)" = 0 ] || sudo_=sudo
    # shellcheck disable=SC2086
    $sudo_ apt-get install -y -q $nodedebs >/dev/null 2>&1 \
        || { $sudo_ apt-get update -q >/dev/null && $sudo_ apt-get install -y -q $nodedebs >/dev/null; }
fi
command -v node >/dev/null || { echo "interop: node is missing" >&2; exit 1; }
command -v npm >/dev/null || { echo "interop: npm is missing" >&2; exit 1; }
# oidc-provider, pinned in tests/interop/oidc/package-lock.json: npm ci, again
# only when the lock file or node changed since the last install.
oidc="$here/oidc"
stamp="$oidc/node_modules/.hallpass-installed"
want="$(node --version) $(sha256sum < "$oidc/package-lock.json")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    (cd "$oidc" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error) \
        || { echo "interop: npm ci in $oidc failed" >&2; exit 1; }
    echo "$want" > "$stamp"
fi
node -e 'console.log("node", process.version, "oidc-provider", require(process.argv[1]).version)' \
    "$PWD/$oidc/node_modules/oidc-provider/package.json" \
    || { echo "interop: oidc-provider is missing from $oidc/node_modules" >&2; exit 1; }

oathtool --version | head -n 1
command -v zbarimg >/dev/null || { echo "interop: zbarimg is missing" >&2; exit 1; }
command -v msmtp >/dev/null || { echo "interop: msmtp is missing" >&2; exit 1; }
msmtp --version | head -n 1
/usr/bin/python3 -c "import aiosmtpd; print('aiosmtpd', aiosmtpd.__version__)" \
    || { echo "interop: python3-aiosmtpd is missing" >&2; exit 1; }

cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/hallpass"
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

export HALLPASS_PBKDF2_ITERATIONS=1000
export HALLPASS_MAIL_COMMAND=
unset HALLPASS_CONFIG HALLPASS_MASTER_KEY || true

for alg in ES256 EdDSA RS256; do
    dir="$work/$alg"
    mkdir -p "$dir"
    export HALLPASS_DB="$dir/h.db"
    export HALLPASS_TOKEN_ALGORITHM=$alg
    extra=()
    if [ "$alg" = RS256 ]; then
        printf '[tokens]\nalgorithm = "RS256"\nrsa_key_file = "%s"\n' "$PWD/tests/it/fixtures/rsa-2048.pem" > "$dir/h.toml"
        export HALLPASS_CONFIG="$dir/h.toml"
    else
        unset HALLPASS_CONFIG || true
    fi
    "$bin" init >/dev/null  # only init and serve create the database (issue 12)
    out=$("$bin" client add interop)
    client_id=$(echo "$out" | sed -n 's/^client_id: //p')
    client_secret=$(echo "$out" | sed -n 's/^client_secret: //p')
    echo "correct-horse-battery-9" | "$bin" user add ada@example.com --username ada --password-stdin >/dev/null
    "$bin" serve --listen 127.0.0.1:0 > "$dir/out" 2> "$dir/err" &
    pids+=($!)
    for _ in $(seq 1 100); do [ -s "$dir/out" ] && break; sleep 0.05; done
    base=$(head -n 1 "$dir/out" | sed 's/^listening on //')
    echo "== $alg at $base"
    python3 "$here/verify_jwt.py" "$base" "$client_id" "$client_secret" ada correct-horse-battery-9 "$alg"
done

# TOTP: the ES256 server, two more users.
export HALLPASS_TOKEN_ALGORITHM=ES256
dir="$work/ES256"
export HALLPASS_DB="$dir/h.db"
unset HALLPASS_CONFIG || true
out=$("$bin" client add totp-interop)
client_id=$(echo "$out" | sed -n 's/^client_id: //p')
client_secret=$(echo "$out" | sed -n 's/^client_secret: //p')
echo "correct-horse-battery-9" | "$bin" user add ann@example.com --username ann --password-stdin >/dev/null
echo "correct-horse-battery-9" | "$bin" user add bea@example.com --username bea --password-stdin >/dev/null
base=$(head -n 1 "$dir/out" | sed 's/^listening on //')
echo "== TOTP at $base"
python3 "$here/totp.py" "$base" "$client_id" "$client_secret"

# Mail: msmtp as the mail command, delivering over SMTP to a sink on
# 127.0.0.1; a server of its own.
dir="$work/mail"
mkdir -p "$dir/sink"
/usr/bin/python3 "$here/smtp_sink.py" "$dir/port" "$dir/sink" 2> "$dir/sink.err" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$dir/port" ] && break; sleep 0.05; done
[ -s "$dir/port" ] || { echo "interop: the SMTP sink did not start" >&2; cat "$dir/sink.err" >&2; exit 1; }
port=$(cat "$dir/port")
cat > "$dir/h.toml" <<TOML
[mail]
command = ["msmtp", "-C", "/dev/null", "--host=127.0.0.1", "--port=$port", "--auth=off", "--tls=off", "--from=hallpass@localhost", "-t"]
timeout_secs = 10
TOML
export HALLPASS_DB="$dir/h.db"
export HALLPASS_CONFIG="$dir/h.toml"
unset HALLPASS_MAIL_COMMAND
"$bin" init >/dev/null
echo "correct-horse-battery-9" | "$bin" user add cea@example.com --username cea --password-stdin >/dev/null
echo "correct-horse-battery-9" | "$bin" user add dee@example.com --username dee --password-stdin >/dev/null
mail_client=$("$bin" client add mail-web)
mail_client_id=$(echo "$mail_client" | sed -n 's/^client_id: //p')
mail_client_secret=$(echo "$mail_client" | sed -n 's/^client_secret: //p')
"$bin" check-config >/dev/null
"$bin" serve --listen 127.0.0.1:0 > "$dir/out" 2> "$dir/err" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$dir/out" ] && break; sleep 0.05; done
base=$(head -n 1 "$dir/out" | sed 's/^listening on //')
echo "== mail (msmtp -> SMTP sink on 127.0.0.1:$port) at $base"
python3 "$here/mail.py" "$base" "$dir/sink" "$bin" "$dir/h.toml" "$mail_client_id" "$mail_client_secret"
# (Into a file first: `grep -q` would close the pipe while mail list writes.)
"$bin" mail list > "$dir/mail-list"
grep -q sent "$dir/mail-list" || { echo "interop: mail list shows nothing sent" >&2; exit 1; }

# OpenAPI: schemathesis from /openapi.json against a server of its own.
bash "$here/openapi.sh" "$bin" "$work"

# systemd: examples/hallpass.service passes `systemd-analyze verify` (it
# works offline, with systemd not running) and keeps its exposure score low,
# checked on a copy whose ExecStart is the binary just built (verify wants
# it to exist). Debian's systemd brings systemd-analyze.
if ! command -v systemd-analyze >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    sudo_=""
    [ "$(id -u)" = 0 ] || sudo_=sudo
    $sudo_ apt-get install -y -q systemd >/dev/null 2>&1 \
        || { $sudo_ apt-get update -q >/dev/null && $sudo_ apt-get install -y -q systemd >/dev/null; }
fi
command -v systemd-analyze >/dev/null || { echo "interop: systemd-analyze is missing" >&2; exit 1; }
echo "== systemd unit ($(systemd-analyze --version | head -n 1))"
mkdir -p "$work/systemd"
unit="$work/systemd/hallpass.service"
binabs=$(realpath "$bin")
sed "s|^ExecStart=/usr/local/bin/hallpass |ExecStart=$binabs |" examples/hallpass.service > "$unit"
grep -q "^ExecStart=$binabs serve" "$unit" || { echo "interop: no ExecStart to point at $binabs" >&2; exit 1; }
# verify exits 0 on unknown keys and bad values (it only warns): any output fails.
verify=$(systemd-analyze verify --man=no "$unit" 2>&1) || true
if [ -n "$verify" ] || ! systemd-analyze verify --man=no "$unit" >/dev/null 2>&1; then
    echo "interop: systemd-analyze verify complains about examples/hallpass.service:" >&2
    echo "$verify" >&2
    exit 1
fi
# (--threshold misbehaves offline in systemd 252: read the score instead.)
exposure=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1 \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "exposure level $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e + 0 <= 2.0) }' \
    || { echo "interop: the unit's exposure level is ${exposure:-unknown}, above 2.0" >&2; exit 1; }

# Social sign-in: hallpass against panva's oidc-provider on node.
mkdir -p "$work/social"
echo "== social sign-in (oidc-provider)"
python3 "$here/social.py" "$bin" "$oidc" "$work/social"

# OpenID Provider (issue 13): relying parties nobody here wrote, each
# through discovery, PKCE, the sign-in form (and the TOTP step), the code
# exchange with the id_token validated by the library, userinfo, refresh,
# introspection, revocation and end session. PyPI: authlib (pinned); npm:
# openid-client (pinned in tests/interop/oidc_rp/package-lock.json, npm ci
# only when the lock file or node changed). A server of its own.
echo "== OpenID relying parties (authlib, openid-client)"
python3 -m pip install --quiet --disable-pip-version-check "authlib==1.9.10" "requests>=2.31,<3" 2>&1 | tail -n 3
python3 -c "import authlib, requests; print('authlib', authlib.__version__, 'requests', requests.__version__)" \
    || { echo "interop: authlib or requests is missing" >&2; exit 1; }
rp="$here/oidc_rp"
stamp="$rp/node_modules/.hallpass-installed"
want="$(node --version) $(sha256sum < "$rp/package-lock.json")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    (cd "$rp" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error) \
        || { echo "interop: npm ci in $rp failed" >&2; exit 1; }
    echo "$want" > "$stamp"
fi
[ -f "$rp/node_modules/openid-client/package.json" ] \
    || { echo "interop: openid-client is missing from $rp/node_modules" >&2; exit 1; }
dir="$work/oidc-rp"
mkdir -p "$dir"
export HALLPASS_DB="$dir/h.db" HALLPASS_TOKEN_ALGORITHM=ES256 HALLPASS_MAIL_COMMAND=
unset HALLPASS_CONFIG || true
# Clients and users first, with the CLI, before the server starts. (While
# this suite was written, a CLI command beside a live server could unlink
# its -wal and -shm: the server's own permission checks had dropped its
# SQLite locks. Fixed in db::access_problem, which now opens nothing; the
# other suites still use the CLI beside a live server.)
"$bin" init >/dev/null
python3 "$here/oidc_rp.py" setup "$bin" "$dir/made.json"
node_rp=$("$bin" client add rp-openid-client --redirect-url http://127.0.0.1:9/node/callback \
    --post-logout-redirect-url http://127.0.0.1:9/node/signed-out \
    --scope openid --scope profile --scope email --scope offline_access)
echo "correct-horse-battery-9" | "$bin" user add rp-node@example.com --username rp-node --password-stdin >/dev/null
"$bin" serve --listen 127.0.0.1:0 > "$dir/out" 2> "$dir/err" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$dir/out" ] && break; sleep 0.05; done
[ -s "$dir/out" ] || { echo "interop: hallpass did not start" >&2; cat "$dir/err" >&2; exit 1; }
base=$(head -n 1 "$dir/out" | sed 's/^listening on //')
python3 "$here/oidc_rp.py" run "$base" "$dir/made.json"
node "$rp/rp.mjs" "$base" "$(echo "$node_rp" | sed -n 's/^client_id: //p')" \
    "$(echo "$node_rp" | sed -n 's/^client_secret: //p')" rp-node@example.com correct-horse-battery-9 \
    http://127.0.0.1:9/node/callback http://127.0.0.1:9/node/signed-out

# The pages in a real browser (issue 13): Debian's headless Chromium through
# Debian's chromedriver, driven by selenium (PyPI, pinned; it is told both
# paths and never runs Selenium Manager, so nothing is downloaded at test
# time): sign-in, consent, the account page's TOTP set-up from the QR code
# (a screenshot read by zbarimg, oathtool's code), sign-out, the second
# factor, and no console error or CSP violation. A server of its own, started
# by pages.py. The screenshots stay in target/interop-screenshots (CI's
# artifacts), on success too.
echo "== the pages in Chromium (selenium)"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    sudo_=""
    [ "$(id -u)" = 0 ] || sudo_=sudo
    $sudo_ apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
        || { $sudo_ apt-get update -q >/dev/null && $sudo_ apt-get install -y -q chromium chromium-driver >/dev/null; }
fi
[ -x /usr/bin/chromium ] || { echo "interop: /usr/bin/chromium is missing (Debian: chromium)" >&2; exit 1; }
[ -x /usr/bin/chromedriver ] || { echo "interop: /usr/bin/chromedriver is missing (Debian: chromium-driver)" >&2; exit 1; }
# (4.51.0: 4.52.0 wants a certifi newer than the index has yet.)
python3 -m pip install --quiet --disable-pip-version-check "selenium==4.51.0" 2>&1 | tail -n 3
python3 -c "import selenium; print('selenium', selenium.__version__)" \
    || { echo "interop: selenium is missing" >&2; exit 1; }
mkdir -p "$work/pages"
python3 "$here/pages.py" "$bin" "$work/pages" target/interop-screenshots

# SourceLoop's own contract (issue 15): the OpenAPI document that
# @sourceloop/authentication-service 19.2.2 exports from npm (cached under
# target/sourceloop/), every operation of it that hallpass serves driven with
# real state and held to its schemas. Building bcrypt for the export needs
# this node's headers (NodeSource's nodejs has them; Debian's comes with
# libnode-dev), make and a C++ compiler: installed here when missing.
echo "== SourceLoop 19.2.2 contract"
nodedir=$(node -p 'require("path").resolve(process.execPath, "..", "..")')
sldebs=""
[ -f "$nodedir/include/node/node.h" ] || sldebs="libnode-dev"
command -v make >/dev/null || sldebs="$sldebs make"
command -v g++ >/dev/null || sldebs="$sldebs g++"
if [ -n "$sldebs" ]; then
    export DEBIAN_FRONTEND=noninteractive
    sudo_=""
    [ "$(id -u)" = 0 ] || sudo_=sudo
    # shellcheck disable=SC2086
    $sudo_ apt-get install -y -q $sldebs >/dev/null 2>&1 \
        || { $sudo_ apt-get update -q >/dev/null && $sudo_ apt-get install -y -q $sldebs >/dev/null; } \
        || echo "interop: apt-get install$sldebs failed" >&2
fi
python3 -c 'import jsonschema' 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check "jsonschema>=4.18" 2>&1 | tail -n 3
sldoc=$(bash "$here/sourceloop/export.sh") \
    || { echo "interop: exporting SourceLoop's OpenAPI document failed" >&2; exit 1; }
mkdir -p "$work/sourceloop"
python3 "$here/sourceloop/check.py" "$bin" "$sldoc" "$work/sourceloop"

# Forward-auth (issue 14): Debian's nginx (auth_request) and caddy
# (forward_auth) in front of a small app. Neither may start as a system
# service on install (ports 80/443, root): a policy-rc.d that refuses
# service starts is put in place for the install when the machine has none.
# forward.py runs each in the foreground with its own config, on ports
# above 1024.
if ! command -v nginx >/dev/null || ! command -v caddy >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    sudo_=""
    [ "$(id -u)" = 0 ] || sudo_=sudo
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo_ tee /usr/sbin/policy-rc.d >/dev/null
        $sudo_ chmod 0755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    $sudo_ apt-get install -y -q nginx caddy >/dev/null 2>&1 \
        || { $sudo_ apt-get update -q >/dev/null && $sudo_ apt-get install -y -q nginx caddy >/dev/null; } \
        || echo "interop: apt-get install nginx caddy failed" >&2
    [ -z "$made_policy" ] || $sudo_ rm -f /usr/sbin/policy-rc.d
fi
command -v nginx >/dev/null || { echo "interop: nginx is missing" >&2; exit 1; }
command -v caddy >/dev/null || { echo "interop: caddy is missing" >&2; exit 1; }
echo "== forward-auth ($(nginx -v 2>&1), caddy $(caddy version | cut -d' ' -f1))"
mkdir -p "$work/forward"
python3 "$here/forward.py" "$bin" "$work/forward"

echo "interop: 12 passed, 0 failed"
