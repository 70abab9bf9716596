#!/usr/bin/env bash
# schemathesis against a live hallpass from its own /openapi.json: a fresh
# database with a client, an admin user and an API key carrying every
# scope; per-IP limits raised so that the run tests the handlers, not the
# rate limiter. Fails on any 5xx, any answer that violates its documented
# schema, or a crash. Usage: openapi.sh BIN WORKDIR
set -euo pipefail
bin=$1
dir=$2/openapi
mkdir -p "$dir"
cat > "$dir/h.toml" <<TOML
[limits]
login_burst = 1000000
login_per_minute = 1000000
token_burst = 1000000
token_per_minute = 1000000
free_failures = 1000000
account_failures_per_hour = 1000000
TOML
export HALLPASS_DB="$dir/h.db"
export HALLPASS_CONFIG="$dir/h.toml"
export HALLPASS_MAIL_COMMAND=
"$bin" init >/dev/null  # only init and serve create the database (issue 12)
"$bin" client add schemathesis >/dev/null
echo "correct-horse-battery-9" | "$bin" user add eve@example.com --username eve --admin --password-stdin >/dev/null
scopes=()
for s in users:read users:write auth:write activity:read clients:write tenants:write \
    apikeys:write keys:write mail:write audit:read admin; do
    scopes+=(--scope "$s")
done
key=$("$bin" apikey create --tenant default "${scopes[@]}" schemathesis | sed -n 's/^api_key: //p')
[ -n "$key" ] || { echo "interop: no API key" >&2; exit 1; }
"$bin" serve --listen 127.0.0.1:0 > "$dir/out" 2> "$dir/err" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$dir/out" ] && break; sleep 0.05; done
base=$(head -n 1 "$dir/out" | sed 's/^listening on //')
echo "== schemathesis at $base"

# An admin's access token, for the operations that take a user's bearer.
access=$(python3 - "$base" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/api/login", method="POST",
    data=json.dumps({"username": "eve", "password": "correct-horse-battery-9"}).encode(),
    headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["token"])
PY
)

st() {
    # From the work directory: schemathesis writes its cache (.schemathesis/)
    # where it runs, and that must not be the repository.
    (cd "$dir" && schemathesis run "$base/openapi.json" \
        --checks not_a_server_error,response_schema_conformance \
        --max-examples "${ST_EXAMPLES:-15}" --seed 1 \
        --phases examples,coverage,fuzzing \
        --suppress-health-check all \
        --request-timeout 10 --workers 2 "$@")
}
# First the admin's access token: the dialects' bearer operations (never
# /logout, which would end the session the rest of the run uses).
# SAML answers 501 by design (tests/it/conformance.rs), which schemathesis
# would count as a server error.
st -H "Authorization: Bearer $access" --include-tag native --include-tag mfa \
    --exclude-path-regex 'logout$|^/auth/saml'
# Then the API key, second since it may delete the admin: admin, lagrello
# and every other operation (which must then answer its documented 401).
st -H "Authorization: Bearer $key" --exclude-path-regex '^/auth/saml'
