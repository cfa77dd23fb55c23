// An independent authorization server for certbound's interop tests: panva/oidc-provider with
//  - client `--client-id` (default certbound-interop): mutual-TLS client authentication
//    (self_signed_tls_client_auth) and RFC 8705 certificate-bound access tokens
//    (JWT, ES256, cnf."x5t#S256");
//  - client `--dpop-client-id` (default certbound-dpop): private_key_jwt with the same client
//    key and RFC 9449 DPoP-bound access tokens (dpop_bound_access_tokens, JWT, cnf.jkt).
//    `--dpop-nonce` makes the token endpoint demand a server nonce (use_dpop_nonce first).
//
// Usage: node server.mjs --tls-cert server.pem --tls-key server.key --client-cert client.pem
//                        [--client-id ID] [--dpop-client-id ID] [--dpop-nonce]
//                        [--host 127.0.0.1] [--port 0]
// (each option may also come from env: TLS_CERT, TLS_KEY, CLIENT_CERT, CLIENT_ID,
// DPOP_CLIENT_ID, DPOP_NONCE=1, HOST, PORT)
// Prints one JSON line when ready: {"ready":true,"addr":"IP:PORT","issuer":…,"client_id":…,
// "scope":…,"resource":…,"token_endpoint":…,"dpop_client_id":…,"dpop_nonce":bool}
// and stops on SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import * as crypto from 'node:crypto';
import https from 'node:https';
import Provider from 'oidc-provider';

function arg(name, env, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  if (i !== -1 && i + 1 < process.argv.length) return process.argv[i + 1];
  return process.env[env] ?? dflt;
}

function flag(name, env) {
  return process.argv.includes(`--${name}`) || ['1', 'true', 'yes'].includes(process.env[env] ?? '');
}

const tlsCert = arg('tls-cert', 'TLS_CERT');
const tlsKey = arg('tls-key', 'TLS_KEY');
const clientCertPath = arg('client-cert', 'CLIENT_CERT');
const clientId = arg('client-id', 'CLIENT_ID', 'certbound-interop');
const dpopClientId = arg('dpop-client-id', 'DPOP_CLIENT_ID', 'certbound-dpop');
const dpopNonce = flag('dpop-nonce', 'DPOP_NONCE');
const host = arg('host', 'HOST', '127.0.0.1');
const port = Number(arg('port', 'PORT', '0'));
if (!tlsCert || !tlsKey || !clientCertPath) {
  console.error('usage: node server.mjs --tls-cert PEM --tls-key PEM --client-cert PEM [--client-id ID] [--dpop-client-id ID] [--dpop-nonce] [--port 0]');
  process.exit(2);
}

const RESOURCE = 'urn:certbound:interop-api';
const SCOPE = 'api:read';

// The clients' registered JWKS: the certificate's public key with x5c (self_signed_tls_client_auth
// matches the presented TLS certificate against these; private_key_jwt verifies the client
// assertion's signature with the same key).
const clientX509 = new crypto.X509Certificate(readFileSync(clientCertPath));
const clientJwk = {
  ...clientX509.publicKey.export({ format: 'jwk' }),
  x5c: [clientX509.raw.toString('base64')],
};

// The provider's token-signing key (ES256), fresh per run.
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'ES256', kid: 'interop-es256' };

const server = https.createServer({
  cert: readFileSync(tlsCert),
  key: readFileSync(tlsKey),
  requestCert: true,
  rejectUnauthorized: false, // self-signed client certificates are normal in RFC 8705
});

server.listen(port, host, () => {
  const { address, port: bound } = server.address();
  const hostPart = address.includes(':') ? `[${address}]` : address;
  const issuer = `https://${hostPart}:${bound}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      token_endpoint_auth_method: 'self_signed_tls_client_auth',
      tls_client_certificate_bound_access_tokens: true,
      id_token_signed_response_alg: 'ES256', // the only signing key is ES256
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      jwks: { keys: [clientJwk] },
    }, {
      client_id: dpopClientId,
      token_endpoint_auth_method: 'private_key_jwt',
      dpop_bound_access_tokens: true, // a token request without a DPoP proof is refused
      id_token_signed_response_alg: 'ES256',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      jwks: { keys: [clientJwk] },
    }],
    jwks: { keys: [signingJwk] },
    clientAuthMethods: ['self_signed_tls_client_auth', 'private_key_jwt'],
    features: {
      devInteractions: { enabled: false },
      dPoP: {
        enabled: true,
        // Stateless server nonces (RFC 9449 §8), fresh per run.
        nonceSecret: crypto.randomBytes(32),
        requireNonce: () => dpopNonce,
      },
      clientCredentials: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        selfSignedTlsClientAuth: true,
        getCertificate(ctx) {
          const socket = ctx.req.socket;
          if (typeof socket.getPeerX509Certificate !== 'function') return undefined;
          return socket.getPeerX509Certificate();
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (indicator !== RESOURCE) throw new Provider.errors.InvalidTarget();
          return { scope: SCOPE, audience: RESOURCE, accessTokenTTL: 3600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
        },
      },
    },
  });
  server.on('request', provider.callback());
  console.log(JSON.stringify({
    ready: true,
    addr: `${address}:${bound}`,
    issuer,
    client_id: clientId,
    scope: SCOPE,
    resource: RESOURCE,
    token_endpoint: `${issuer}/token`,
    dpop_client_id: dpopClientId,
    dpop_nonce: dpopNonce,
  }));
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { server.close(); process.exit(0); });
}
