// A real OpenID provider on loopback for the federation tests and the demo: panva's
// certified oidc-provider with its development login and consent pages. Any login name
// signs in (any password); the name decides the account's claims:
//   alice@example.com             e-mail alice@example.com, verified
//   unverified:bob@example.com    e-mail bob@example.com, not verified
//   noemail:carol                 no e-mail at all
// The subject is the name itself. One client, `app`, with a secret, PKCE S256 required.
//
//   PORT=0 REDIRECT_URIS=http://127.0.0.1:9000/auth/oauth/local/callback node provider.mjs
// prints `listening http://127.0.0.1:<port>` once it serves.
import { createServer } from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const redirectUris = (process.env.REDIRECT_URIS ?? '').split(',').filter(Boolean);
const clientSecret = process.env.CLIENT_SECRET ?? 'local-idp-secret';

function claimsOf(login) {
  if (login.startsWith('noemail:')) return {};
  if (login.startsWith('unverified:')) return { email: login.slice('unverified:'.length), email_verified: false };
  return { email: login, email_verified: true };
}

async function signingKeys() {
  const keys = [];
  for (const [alg, kid] of [['RS256', 'rs-1'], ['ES256', 'es-1']]) {
    const { privateKey } = await generateKeyPair(alg, { extractable: true });
    keys.push({ ...(await exportJWK(privateKey)), alg, kid, use: 'sig' });
  }
  return keys;
}

const server = createServer();
await new Promise((resolve) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'app',
    client_secret: clientSecret,
    redirect_uris: redirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: await signingKeys() },
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  conformIdTokenClaims: false,
  cookies: { keys: [crypto.randomUUID()] },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub, ...claimsOf(sub) }; } };
  },
});
server.on('request', provider.callback());
console.log(`listening ${issuer}`);
