"""Signs in to a running hallpass and verifies the access token with PyJWT,
using only what a relying party has: the JWKS, the issuer, its client id."""
import json
import sys
import urllib.request

import jwt

base, client_id, client_secret, username, password, alg = sys.argv[1:7]


def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(req, data) as r:
        return json.loads(r.read())


tokens = call("POST", "/auth/login-token", {
    "client_id": client_id, "client_secret": client_secret,
    "username": username, "password": password})
access = tokens["accessToken"]

jwks = jwt.PyJWKClient(base + "/.well-known/jwks.json")
key = jwks.get_signing_key_from_jwt(access)
claims = jwt.decode(access, key.key, algorithms=[alg], audience=client_id,
                    issuer=base, options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]})
assert jwt.get_unverified_header(access)["alg"] == alg
assert claims["amr"] == ["pwd"], claims
me = call("GET", "/auth/me", token=access)
assert me["id"] == claims["sub"], (me, claims)

# A token whose payload was changed must not verify.
h, p, s = access.split(".")
forged = h + "." + jwt.utils.base64url_encode(json.dumps({**claims, "role": "admin"}).encode()).decode() + "." + s
try:
    jwt.decode(forged, key.key, algorithms=[alg], audience=client_id, issuer=base)
except jwt.InvalidSignatureError:
    pass
else:
    raise SystemExit("a forged token verified")
print(f"PyJWT verified a hallpass {alg} token (kid {key.key_id})")
