import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';

type Key = { kid: string; privateKey: CryptoKeyLike; publicJwk: JWK };
type CryptoKeyLike = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

/**
 * A real OIDC provider on a local port: discovery, JWKS, and ID tokens signed with its keys.
 * `trailingSlash` makes its issuer end in `/`, as Auth0's does.
 */
export async function startIdp(options: { trailingSlash?: boolean } = {}) {
  const keys: Key[] = [await newKey()];
  const requests: string[] = [];
  const server = http.createServer((request, response) => {
    requests.push(request.url ?? '');
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (request.url === '/.well-known/openid-configuration') {
      return send(200, { issuer, jwks_uri: `${origin}/jwks`, id_token_signing_alg_values_supported: ['RS256'] });
    }
    if (request.url === '/jwks') return send(200, { keys: keys.map((key) => key.publicJwk) });
    return send(404, { error: 'not found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = options.trailingSlash ? `${origin}/` : origin;
  const audience = 'integrator-client';

  async function newKey(): Promise<Key> {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const kid = randomUUID();
    return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
  }

  return {
    issuer,
    audience,
    jwksUrl: `${origin}/jwks`,
    requests,
    /** An ID token for `email`; `claims` and `options` override any default. */
    async idToken(
      email: string,
      claims: JWTPayload = {},
      options: { expiresIn?: string | number; typ?: string; key?: Key; issuedAt?: number } = {},
    ): Promise<string> {
      const key = options.key ?? keys.at(-1)!;
      const jwt = new SignJWT({ email, email_verified: true, nonce: randomUUID(), ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: options.typ ?? 'JWT' })
        .setIssuer(issuer)
        .setAudience(audience)
        // Opaque, as real IdPs' subjects are (stable per email): the email is not in it.
        .setSubject(`sub|${createHash('sha256').update(email).digest('hex').slice(0, 24)}`)
        .setIssuedAt(options.issuedAt)
        .setExpirationTime(options.expiresIn ?? '10m');
      if (claims.iss !== undefined) jwt.setIssuer(claims.iss);
      if (claims.aud !== undefined) jwt.setAudience(claims.aud);
      if (claims.sub !== undefined) jwt.setSubject(claims.sub);
      return jwt.sign(key.privateKey);
    },
    /** A key the IdP does not publish (a forger's). */
    unpublishedKey: newKey,
    /** Publishes a new signing key, as an IdP does when it rotates. */
    async rotate() {
      keys.push(await newKey());
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type TestIdp = Awaited<ReturnType<typeof startIdp>>;
