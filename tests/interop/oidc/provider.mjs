// A real OpenID Provider for the interop suite: panva's certified
// oidc-provider (pinned in package.json), on 127.0.0.1, with its
// development login and consent pages.
//
// usage: node provider.mjs [PORT]       (PORT or $OIDC_PORT; 0 = any free port)
// env:
//   OIDC_CLIENTS   JSON list of clients: [{client_id, client_secret,
//                  redirect_uris: [...], id_token_signed_response_alg?}]
//   OIDC_ACCOUNTS  JSON object, login -> {email, name}; the login is the
//                  subject (sub). Default: {"grace": {"email":
//                  "grace@example.com", "name": "Grace Hopper"}}
//   OIDC_PATH      a path the provider lives under, e.g. /realms/interop as
//                  Keycloak's realms do: the issuer is then
//                  http://127.0.0.1:PORT/realms/interop
//   OIDC_CONFORM   "false" puts the scope's claims (email, name) in the
//                  id_token too; default "true", the spec's way (and the
//                  package's default): with a code flow they come from
//                  the userinfo endpoint only.
// Prints "ready ISSUER" on stdout once it listens. The id_token is signed
// RS256 (or ES256 for a client asking for it) with keys made at start.
import { createServer } from 'node:http';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const port = Number(process.argv[2] ?? process.env.OIDC_PORT ?? 0);
const clients = JSON.parse(process.env.OIDC_CLIENTS ?? '[]');
if (!clients.length) {
  console.error('provider.mjs: OIDC_CLIENTS names no client');
  process.exit(2);
}
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS
  ?? '{"grace": {"email": "grace@example.com", "name": "Grace Hopper"}}');

async function jwk(type, options, alg, kid) {
  const { privateKey } = await promisify(generateKeyPair)(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid };
}
// The keys are made while the package loads. oidc-provider 8.x: the line
// for node 18 and 20 (Debian 12's nodejs is 18); 9.x wants node 22.
// RS256 is the default id_token alg; a client may ask for ES256.
const [{ default: Provider }, ...keys] = await Promise.all([
  import('oidc-provider'),
  jwk('rsa', { modulusLength: 2048 }, 'RS256', 'interop-rs256'),
  jwk('ec', { namedCurve: 'P-256' }, 'ES256', 'interop-es256'),
]);
const jwks = { keys };

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const prefix = (process.env.OIDC_PATH ?? '').replace(/\/$/, '');
const issuer = `http://127.0.0.1:${server.address().port}${prefix}`;

const provider = new Provider(issuer, {
  clients: clients.map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  jwks,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // PKCE: hallpass sends S256; a confidential client must too.
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  conformIdTokenClaims: process.env.OIDC_CONFORM !== 'false',
  features: {
    devInteractions: { enabled: true },
  },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: account.email, email_verified: true, name: account.name,
        };
      },
    };
  },
});
// Say why a request failed, on stderr, for the suite's log.
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('authorization.error', (ctx, err) => console.error('authorization.error', err.message, err.error_description ?? ''));
provider.on('grant.error', (ctx, err) => console.error('grant.error', err.message, err.error_description ?? ''));
provider.on('userinfo.error', (ctx, err) => console.error('userinfo.error', err.message, err.error_description ?? ''));

const callback = provider.callback();
server.on('request', (req, res) => {
  if (prefix) {
    // Mounted as express mounts it: oidc-provider finds its mount path from
    // originalUrl, and builds its URLs (forms, redirects) with it.
    if (req.url !== prefix && !req.url.startsWith(`${prefix}/`) && !req.url.startsWith(`${prefix}?`)) {
      res.statusCode = 404;
      res.end();
      return;
    }
    req.originalUrl = req.url;
    req.url = req.url.slice(prefix.length) || '/';
  }
  callback(req, res);
});
process.on('SIGTERM', () => process.exit(0));
console.log(`ready ${issuer}`);
