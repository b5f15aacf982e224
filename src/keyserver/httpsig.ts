import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { StrKey } from '@stellar/stellar-base';

/**
 * TokenD request signatures (draft-cavage HTTP signatures, `ed25519-sha256`): Ed25519 over the
 * SHA-256 of the signing string, keyId a StrKey account id (G...). See research/tokend.md §2.
 */
export type SignatureParams = { keyId: string; algorithm: 'ed25519-sha256'; headers: string[]; signature: string };
export type SignatureFailure = 'missing' | 'malformed' | 'invalid' | 'expired';

export class SignatureError extends Error {
  constructor(
    readonly reason: SignatureFailure,
    message: string,
  ) {
    super(message);
  }
}

export type SignedRequest = { method: string; url: string; headers: IncomingHttpHeaders };

const ALLOWED_PARAMS = new Set(['keyId', 'algorithm', 'headers', 'signature']);
const MAX_AGE_MS = 60 * 60 * 1000;
const MAX_FUTURE_MS = 5 * 60 * 1000;

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

/**
 * Verifies a signed request and returns the signer's account id. If `date` (or `x-date`) is signed,
 * it must be at most an hour old and at most five minutes ahead.
 */
export function verifyRequest(request: SignedRequest, now: Date = new Date()): SignatureParams {
  const header = signatureHeader(request.headers);
  if (!header) throw new SignatureError('missing', 'the request is not signed');
  const params = parseSignatureHeader(header);
  if (params.headers.length === 0 || !params.headers.includes('(request-target)')) {
    throw new SignatureError('malformed', 'the signature must cover (request-target)');
  }
  const digest = createHash('sha256').update(signingString(params, request), 'utf8').digest();
  if (!verifyEd25519(params.keyId, digest, Buffer.from(params.signature, 'base64'))) {
    throw new SignatureError('invalid', 'the signature does not match the request');
  }
  const dateHeader = params.headers.find((name) => name === 'date' || name === 'x-date');
  if (dateHeader) {
    const signedAt = Date.parse(headerValue(request.headers, dateHeader) ?? '');
    if (Number.isNaN(signedAt)) throw new SignatureError('malformed', 'date header is malformed');
    if (signedAt + MAX_AGE_MS < now.getTime()) throw new SignatureError('expired', 'the signature has expired');
    if (signedAt - MAX_FUTURE_MS > now.getTime()) throw new SignatureError('expired', 'the signature is dated in the future');
  }
  return params;
}
