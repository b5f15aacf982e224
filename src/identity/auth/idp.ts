import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';

export type IdpRegistration = { idpIssuer: string | null; idpJwksUrl: string | null; idpAudience: string };
/**
 * What a verified ID token proves. `emailVerified` is true only when the token's `email_verified`
 * claim is the JSON value `true` (OIDC Core §5.1): a string "true", or an absent claim, does not
 * prove the email and so grants nothing that hangs on it (the org_admin role by admin email).
 */
export type VerifiedIdentity = { subject: string; email: string; emailVerified: boolean; claims: JWTPayload };

export class IdTokenRejected extends Error {}

const DISCOVERY_TTL_MS = 60 * 60 * 1000;
const FETCH_TIMEOUT_MS = 5000;
const ACCEPTED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const discoverySchema = z.object({ issuer: z.string(), jwks_uri: z.url() });

/**
 * Verifies an integrator's OIDC ID token against the IdP its org registered: discovery document
 * (cached an hour) for the JWKS URL, and a remote JWKS that jose caches and refetches when it sees
 * an unknown `kid`.
 */
export function idpVerifier(options: { ownIssuer: string; jwksRefetchCooldownSeconds: number; clockToleranceSeconds?: number }) {
  const jwksByUrl = new Map<string, JWTVerifyGetKey>();
  const discovered = new Map<string, { jwksUri: string; fetchedAt: number }>();

  async function jwksUri(idp: IdpRegistration): Promise<string> {
    if (idp.idpJwksUrl) return idp.idpJwksUrl;
    const issuer = idp.idpIssuer!;
    // OIDC Discovery §4: strip one trailing slash before appending the well-known path, but
    // compare the document's issuer with the registered one exactly (§4.3).
    const discoveryUrl = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const cached = discovered.get(issuer);
    if (cached && Date.now() - cached.fetchedAt < DISCOVERY_TTL_MS) return cached.jwksUri;
    let document: z.infer<typeof discoverySchema>;
    try {
      const response = await fetch(discoveryUrl, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
      if (!response.ok) throw new Error(`status ${response.status}`);
      document = discoverySchema.parse(await response.json());
    } catch (error) {
      // Name the URL and the network cause (fetch says only "fetch failed"): the org's issuer is the
      // integrator's own, and a wrong one (a demo IdP whose port changed) is then plain to see.
      const cause = (error as Error).cause as { code?: string; message?: string } | undefined;
      const reason = [(error as Error).message, cause?.code ?? cause?.message].filter(Boolean).join(': ');
      throw new IdTokenRejected(`the identity provider's discovery document could not be read from ${discoveryUrl} (${reason})`);
    }
    if (document.issuer !== issuer) throw new IdTokenRejected("the identity provider's discovery document names another issuer");
    discovered.set(issuer, { jwksUri: document.jwks_uri, fetchedAt: Date.now() });
    return document.jwks_uri;
  }

  function jwksFor(url: string): JWTVerifyGetKey {
    let jwks = jwksByUrl.get(url);
    if (!jwks) {
      jwks = createRemoteJWKSet(new URL(url), {
        timeoutDuration: FETCH_TIMEOUT_MS,
        cooldownDuration: options.jwksRefetchCooldownSeconds * 1000,
      });
      jwksByUrl.set(url, jwks);
    }
    return jwks;
  }

  return {
    async verify(idp: IdpRegistration, token: string): Promise<VerifiedIdentity> {
      let header: ReturnType<typeof decodeProtectedHeader>;
      try {
        header = decodeProtectedHeader(token);
      } catch {
        throw new IdTokenRejected('token is not a JWT');
      }
      if (!header.alg || header.alg === 'none') throw new IdTokenRejected('unsigned tokens are not accepted');
      const typ = header.typ?.toLowerCase();
      if (typ === 'at+jwt' || typ === 'application/at+jwt')
        throw new IdTokenRejected('an access token was sent where an ID token is required');

      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, jwksFor(await jwksUri(idp)), {
          algorithms: ACCEPTED_ALGORITHMS,
          audience: idp.idpAudience,
          ...(idp.idpIssuer ? { issuer: idp.idpIssuer } : {}),
          clockTolerance: options.clockToleranceSeconds ?? 5,
          requiredClaims: ['exp', 'iat'],
        }));
      } catch (error) {
        throw new IdTokenRejected(describeJoseError(error));
      }
      if (typeof payload.iss !== 'string' || (idp.idpIssuer !== null && payload.iss !== idp.idpIssuer))
        throw new IdTokenRejected('ID token issuer does not match the registered issuer');
      if (payload.iss === options.ownIssuer || payload.token_use === 'access') {
        throw new IdTokenRejected('an access token was sent where an ID token is required');
      }
      if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw new IdTokenRejected('ID token has no sub claim');
      const email = z.email().safeParse(payload.email);
      if (!email.success) throw new IdTokenRejected('ID token has no valid email claim');
      // Only the JSON value `true` proves the email; any other value that is present ("false",
      // "true", 0, null) is refused rather than guessed at. An absent claim proves nothing.
      if (payload.email_verified !== undefined && payload.email_verified !== true)
        throw new IdTokenRejected("ID token's email is not verified");
      return { subject: payload.sub, email: email.data.toLowerCase(), emailVerified: payload.email_verified === true, claims: payload };
    },
  };
}

export type IdpVerifier = ReturnType<typeof idpVerifier>;

function describeJoseError(error: unknown): string {
  if (error instanceof IdTokenRejected) return error.message;
  if (error instanceof errors.JWTExpired) return 'ID token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return 'ID token audience does not match the registered audience';
    if (error.claim === 'iss') return 'ID token issuer does not match the registered issuer';
    if (error.claim === 'nbf') return 'ID token is not yet valid';
    return `ID token claim ${error.claim} is invalid`;
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'ID token signature is invalid';
  if (error instanceof errors.JWKSNoMatchingKey) return "ID token was not signed by a key in the identity provider's JWKS";
  if (error instanceof errors.JOSEAlgNotAllowed) return 'ID token signing algorithm is not accepted';
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) return "the identity provider's JWKS could not be read";
  if (error instanceof errors.JOSEError) return 'ID token is malformed';
  return "the identity provider's JWKS could not be read";
}
