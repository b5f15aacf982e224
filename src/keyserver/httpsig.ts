import { createHash, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { StrKey } from '@stellar/stellar-base';

/**
 * TokenD request signatures (draft-cavage HTTP signatures, `ed25519-sha256`): Ed25519 over the
 * SHA-256 of the signing string, keyId a StrKey account id (G...). See research/tokend.md §2.
 */
export type SignatureParams = { keyId: string; algorithm: 'ed25519-sha256'; headers: string[]; signature: string };
export type SignatureFailure = 'missing' | 'malformed' | 'invalid' | 'expired' | 'replayed';

export class SignatureError extends Error {
  constructor(
    readonly reason: SignatureFailure,
    message: string,
  ) {
    super(message);
  }
}

/** `body`: the raw request body as received, checked against a signed `digest` header. */
export type SignedRequest = { method: string; url: string; headers: IncomingHttpHeaders; body?: string };

/**
 * How strictly signatures are checked. `skewSeconds`: how far a signed `date` may be from `now`,
 * either way (default 300). `strict`: every write (any method but GET, HEAD, OPTIONS) must sign
 * `date` and `digest` besides `(request-target)`, so a captured signature covers its body and
 * expires; the caller then keeps a replay cache for the skew window.
 */
export type VerifyOptions = { skewSeconds?: number; strict?: boolean };

export const DEFAULT_SKEW_SECONDS = 300;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const ALLOWED_PARAMS = new Set(['keyId', 'algorithm', 'headers', 'signature']);

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The `Signature` header wins; otherwise `Authorization`, with or without the `Signature ` prefix. */
export function signatureHeader(headers: IncomingHttpHeaders): string | undefined {
  const signature = headerValue(headers, 'signature');
  if (signature) return signature;
  const authorization = headerValue(headers, 'authorization');
  if (!authorization) return undefined;
  return authorization.replace(/^Signature\s+/i, '');
}

export function parseSignatureHeader(value: string): SignatureParams {
  const params: Record<string, string> = {};
  for (const match of value.matchAll(/(\w+)="([^"]*)"/g)) {
    if (!ALLOWED_PARAMS.has(match[1]!)) throw new SignatureError('malformed', `unknown signature parameter ${match[1]}`);
    params[match[1]!] = match[2]!;
  }
  for (const required of ['keyId', 'algorithm', 'signature', 'headers']) {
    if (!params[required]) throw new SignatureError('malformed', `signature parameter ${required} is missing`);
  }
  if (params.algorithm !== 'ed25519-sha256') throw new SignatureError('malformed', `algorithm ${params.algorithm} is not supported`);
  if (!StrKey.isValidEd25519PublicKey(params.keyId!)) throw new SignatureError('malformed', 'keyId is not an account id');
  return {
    keyId: params.keyId!,
    algorithm: 'ed25519-sha256',
    headers: params.headers!.toLowerCase().split(' '),
    signature: params.signature!,
  };
}

/** One line per listed header, in order; `(request-target)` is the method and the raw request URI. */
export function signingString(params: SignatureParams, request: SignedRequest): string {
  return params.headers
    .map((name) => {
      if (name === '(request-target)') return `(request-target): ${request.method.toLowerCase()} ${request.url}`;
      const value = headerValue(request.headers, name);
      if (value === undefined) throw new SignatureError('invalid', `signed header ${name} is missing`);
      return `${name}: ${value}`;
    })
    .join('\n');
}

const keyCache = new Map<string, KeyObject>();

function publicKey(accountId: string): KeyObject {
  let key = keyCache.get(accountId);
  if (!key) {
    const raw = StrKey.decodeEd25519PublicKey(accountId);
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
    if (keyCache.size > 10_000) keyCache.clear();
    keyCache.set(accountId, key);
  }
  return key;
}

/** An Ed25519 signature by the key of a StrKey account id (G...); false for anything malformed. */
export function verifyEd25519(accountId: string, message: Buffer, signature: Buffer): boolean {
  if (signature.length !== 64 || !StrKey.isValidEd25519PublicKey(accountId)) return false;
  return verify(null, message, publicKey(accountId), signature);
}

/** `SHA-256=<base64>` (RFC 3230 instance digest) of a body. */
export function bodyDigest(body: string | Buffer): string {
  return `SHA-256=${createHash('sha256').update(body).digest('base64')}`;
}

/** Whether a `digest` header value names the SHA-256 of `body` (other algorithms are not accepted). */
function digestMatches(header: string, body: string): boolean {
  const expected = createHash('sha256').update(body, 'utf8').digest();
  for (const part of header.split(',')) {
    const match = /^\s*sha-256=([A-Za-z0-9+/]+={0,2})\s*$/i.exec(part);
    if (!match) continue;
    const given = Buffer.from(match[1]!, 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return true;
  }
  return false;
}

/**
 * Verifies a signed request and returns its parameters (`keyId` is the signer's account id).
 * A signed `digest` must be the SHA-256 of the body; a signed `date` (or `x-date`) must be within
 * `skewSeconds` of `now` either way. In strict mode a write must sign both. Throws SignatureError.
 */
export function verifyRequest(request: SignedRequest, now: Date = new Date(), options: VerifyOptions = {}): SignatureParams {
  const header = signatureHeader(request.headers);
  if (!header) throw new SignatureError('missing', 'the request is not signed');
  const params = parseSignatureHeader(header);
  if (params.headers.length === 0 || !params.headers.includes('(request-target)')) {
    throw new SignatureError('malformed', 'the signature must cover (request-target)');
  }
  const dateHeader = params.headers.find((name) => name === 'date' || name === 'x-date');
  if (options.strict && !SAFE_METHODS.has(request.method.toUpperCase())) {
    if (!dateHeader || !params.headers.includes('digest'))
      throw new SignatureError('malformed', 'the signature must cover date and digest (strict signatures)');
  }
  const digest = createHash('sha256').update(signingString(params, request), 'utf8').digest();
  if (!verifyEd25519(params.keyId, digest, Buffer.from(params.signature, 'base64'))) {
    throw new SignatureError('invalid', 'the signature does not match the request');
  }
  if (params.headers.includes('digest') && !digestMatches(headerValue(request.headers, 'digest') ?? '', request.body ?? '')) {
    throw new SignatureError('invalid', 'the digest header does not match the body');
  }
  if (dateHeader) {
    const signedAt = Date.parse(headerValue(request.headers, dateHeader) ?? '');
    if (Number.isNaN(signedAt)) throw new SignatureError('malformed', 'date header is malformed');
    const skewMs = (options.skewSeconds ?? DEFAULT_SKEW_SECONDS) * 1000;
    if (signedAt + skewMs < now.getTime()) throw new SignatureError('expired', 'the signature has expired');
    if (signedAt - skewMs > now.getTime()) throw new SignatureError('expired', 'the signature is dated in the future');
  }
  return params;
}
