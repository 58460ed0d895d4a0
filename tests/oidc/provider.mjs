// Real providers on loopback for the federation tests and the demo, both panva's certified
// oidc-provider with its development login and consent pages:
//
// - an OpenID provider, with the client `app` (a secret, Basic authentication, PKCE S256
//   required; RS256 ID tokens) and `app-hs256` (the same, for the attack below);
// - a GitHub-shaped one on a second port: plain OAuth 2.0 (no `openid` scope, no ID token)
//   at GitHub's paths (`/login/oauth/authorize`, `/login/oauth/access_token`), one client
//   `gh-app` authenticating in the body as GitHub's clients do, PKCE S256 required, token
//   errors answered with status 200 as GitHub does, and GitHub Enterprise Server's REST API
//   (`/api/v3/user`, `/api/v3/user/emails`, the latter only with the `user:email` scope)
//   answering for the access tokens it issued.
//
// For the attack tests, the OpenID provider can misbehave as a broken or hostile one would,
// still issuing its tokens by its own code:
//   PUBLISH_OTHER_KEYS=1     its JWKS lists other keys under the signing keys' kids
//   CLOCK_SKEW_SECS=-300     its clock runs that far behind (with ID_TOKEN_TTL=60: the ID
//                            tokens it issues have expired when they arrive)
// and its second client, `app-hs256`, gets ID tokens signed with HS256 (the client secret as
// the key), an algorithm none of its published keys has.
//
// Any login name signs in (any password); the name decides the account's claims:
//   alice@example.com             e-mail alice@example.com, verified
//   unverified:bob@example.com    e-mail bob@example.com, not verified
//   noemail:carol                 no e-mail at all
// The subject is the name itself at the OpenID provider, and a number derived from it at
// the GitHub-shaped one (GitHub's user ids are numbers).
//
//   PORT=0 REDIRECT_URIS=... GITHUB_PORT=0 GITHUB_REDIRECT_URIS=... node provider.mjs
// prints `github http://127.0.0.1:<port>` then `listening http://127.0.0.1:<port>` once both
// serve.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const skewMs = Number(process.env.CLOCK_SKEW_SECS ?? 0) * 1000;
if (skewMs) {
  const realNow = Date.now;
  Date.now = () => realNow() + skewMs;
}

const listOf = (value) => (value ?? '').split(',').filter(Boolean);
const clientSecret = process.env.CLIENT_SECRET ?? 'local-idp-secret';

function claimsOf(login) {
  if (login.startsWith('noemail:')) return {};
  if (login.startsWith('unverified:')) return { email: login.slice('unverified:'.length), email_verified: false };
  return { email: login, email_verified: true };
}

async function signingKeys({ publicOnly = false } = {}) {
  const keys = [];
  for (const [alg, kid] of [['RS256', 'rs-1'], ['ES256', 'es-1']]) {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    keys.push({ ...(await exportJWK(publicOnly ? publicKey : privateKey)), alg, kid, use: 'sig' });
  }
  return keys;
}

async function listen(port) {
  const server = createServer();
  await new Promise((resolve) => server.listen(Number(port ?? 0), '127.0.0.1', resolve));
  return { server, issuer: `http://127.0.0.1:${server.address().port}` };
}

const common = {
  jwks: { keys: await signingKeys() },
  pkce: { required: () => true },
  cookies: { keys: [crypto.randomUUID()] },
  features: { devInteractions: { enabled: true } },
};

// The GitHub-shaped provider.
const github = await listen(process.env.GITHUB_PORT);
const githubProvider = new Provider(github.issuer, {
  ...common,
  clients: [{
    client_id: 'gh-app',
    client_secret: clientSecret,
    redirect_uris: listOf(process.env.GITHUB_REDIRECT_URIS),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  scopes: ['read:user', 'user:email'],
  routes: { authorization: '/login/oauth/authorize', token: '/login/oauth/access_token' },
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
});

const githubId = (login) => createHash('sha256').update(login).digest().readUIntBE(0, 4);

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

// GitHub's REST API for the tokens issued above: 401 without a valid one, 404 for the
// addresses without the `user:email` scope (as GitHub answers).
async function githubApi(req, res) {
  const bearer = /^(?:Bearer|token) (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const token = bearer && (await githubProvider.AccessToken.find(bearer));
  if (!token || !req.headers['user-agent']) return json(res, token ? 403 : 401, { message: token ? 'User-Agent required' : 'Bad credentials' });
  const login = token.accountId;
  const { email, email_verified: verified } = claimsOf(login);
  if (req.url === '/api/v3/user') {
    return json(res, 200, { login: login.replace(/[^A-Za-z0-9-]/g, '-'), id: githubId(login), type: 'User', email: null });
  }
  if (req.url === '/api/v3/user/emails' && token.scope?.split(' ').includes('user:email')) {
    const emails = email ? [{ email, primary: true, verified, visibility: 'private' }] : [];
    emails.push({ email: `${githubId(login)}+noreply@users.noreply.github.test`, primary: false, verified: true, visibility: null });
    return json(res, 200, emails);
  }
  return json(res, 404, { message: 'Not Found' });
}

const githubCallback = githubProvider.callback();
github.server.on('request', (req, res) => {
  if (req.url.startsWith('/api/v3/')) {
    githubApi(req, res).catch(() => json(res, 500, { message: 'Server Error' }));
    return;
  }
  if (req.method === 'POST' && req.url.startsWith('/login/oauth/access_token')) {
    // GitHub answers a refused code with status 200 and an `error` member.
    const end = res.end.bind(res);
    res.end = (...args) => {
      if (res.statusCode === 400) [res.statusCode, res.statusMessage] = [200, 'OK'];
      return end(...args);
    };
  }
  githubCallback(req, res);
});

// The OpenID provider.
const oidc = await listen(process.env.PORT);
const client = {
  client_secret: clientSecret,
  redirect_uris: listOf(process.env.REDIRECT_URIS),
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};
const provider = new Provider(oidc.issuer, {
  ...common,
  clients: [
    { ...client, client_id: 'app' },
    { ...client, client_id: 'app-hs256', id_token_signed_response_alg: 'HS256' },
  ],
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256', 'HS256'] },
  ...(process.env.ID_TOKEN_TTL && { ttl: { IdToken: Number(process.env.ID_TOKEN_TTL) } }),
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  conformIdTokenClaims: false,
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub, ...claimsOf(sub) }; } };
  },
});
const otherKeys = process.env.PUBLISH_OTHER_KEYS && { keys: await signingKeys({ publicOnly: true }) };
const oidcCallback = provider.callback();
oidc.server.on('request', (req, res) => {
  if (otherKeys && req.url === '/jwks') return json(res, 200, otherKeys);
  oidcCallback(req, res);
});

console.log(`github ${github.issuer}`);
console.log(`listening ${oidc.issuer}`);
