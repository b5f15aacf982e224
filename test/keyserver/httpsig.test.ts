import { createHash } from 'node:crypto';
import { Keypair } from '@stellar/stellar-base';
import { describe, expect, it } from 'vitest';
import { parseSignatureHeader, signingString, verifyRequest, type SignedRequest } from '../../src/keyserver/httpsig.ts';

// The verified vector of research/tokend.md §2.3.
const SEED = 'SCDMOOXVNMO6SA22AYUMZDIGLDJMBUTVEGB73FFNTLFJILBJWIU4NQ3D';
const KEY_ID = 'GBLTOG6EJS5OWDNQNSCEAVDNMPBY6F73XZHHKR27YE5AKE23ZZEXOLBK';
const DATE = 'Fri, 05 Jan 2018 21:31:40 GMT';
const SIGNATURE = 'w/y3EsliTmQPC6MS88N/kjU/hFVxlIdhFhzfRGv4yIsSokgMpxVqxcC/CmUsAN4t3BKpskGG7+JEWryV8NXvCg==';
const vectorNow = new Date('2018-01-05T21:33:00Z');

const vectorRequest = (overrides: Partial<SignedRequest> = {}): SignedRequest => ({
  method: 'GET',
  url: '/users?type=2',
  headers: {
    date: DATE,
    authorization: `keyId="${KEY_ID}",algorithm="ed25519-sha256",signature="${SIGNATURE}",headers="date (request-target)"`,
  },
  ...overrides,
});

/** Signs as the TokenD JS SDK does: `(request-target)` only, in a `signature` header. */
function sdkStyle(method: string, url: string, seed = Keypair.random()) {
  const target = `(request-target): ${method.toLowerCase()} ${url}`;
  const signature = seed.sign(createHash('sha256').update(target).digest()).toString('base64');
  return {
    keypair: seed,
    request: {
      method,
      url,
      headers: { signature: `keyId="${seed.publicKey()}",algorithm="ed25519-sha256",headers="(request-target)",signature="${signature}"` },
    },
  };
}

describe('TokenD request signatures: the published test vector', () => {
  it('derives the keyId from the seed and builds the documented signing string and hash', () => {
    expect(Keypair.fromSecret(SEED).publicKey()).toBe(KEY_ID);
    const request = vectorRequest();
    const params = parseSignatureHeader(String(request.headers.authorization));
    const text = signingString(params, request);
    expect(text).toBe(`date: ${DATE}\n(request-target): get /users?type=2`);
    expect(createHash('sha256').update(text).digest('hex')).toBe('6fcbee4b0a8932784644d33b360bd3eef389ed37dfd66f17e4bfa910ba9d616a');
  });

  it('verifies, from Authorization with or without the Signature prefix, and from the Signature header', () => {
    expect(verifyRequest(vectorRequest(), vectorNow).keyId).toBe(KEY_ID);
    const value = String(vectorRequest().headers.authorization);
    expect(verifyRequest(vectorRequest({ headers: { date: DATE, authorization: `Signature ${value}` } }), vectorNow).keyId).toBe(KEY_ID);
    expect(verifyRequest(vectorRequest({ headers: { date: DATE, signature: value } }), vectorNow).keyId).toBe(KEY_ID);
  });
});

describe('TokenD request signatures: refusals', () => {
  it('refuses a tampered target, method or date', () => {
    expect(() => verifyRequest(vectorRequest({ url: '/users?type=3' }), vectorNow)).toThrow(expect.objectContaining({ reason: 'invalid' }));
    expect(() => verifyRequest(vectorRequest({ method: 'DELETE' }), vectorNow)).toThrow(expect.objectContaining({ reason: 'invalid' }));
    const headers = { ...vectorRequest().headers, date: 'Fri, 05 Jan 2018 21:31:41 GMT' };
    expect(() => verifyRequest(vectorRequest({ headers }), vectorNow)).toThrow(expect.objectContaining({ reason: 'invalid' }));
  });

  it("refuses another key's signature", () => {
    const { request } = sdkStyle('GET', '/wallets/abc');
    const other = Keypair.random().publicKey();
    const forged = { ...request, headers: { signature: String(request.headers.signature).replace(/keyId="G\w+"/, `keyId="${other}"`) } };
    expect(() => verifyRequest(forged)).toThrow(expect.objectContaining({ reason: 'invalid' }));
  });

  it('refuses unsigned and malformed headers', () => {
    expect(() => verifyRequest({ method: 'GET', url: '/', headers: {} })).toThrow(expect.objectContaining({ reason: 'missing' }));
    const base = `keyId="${KEY_ID}",algorithm="ed25519-sha256",signature="${SIGNATURE}"`;
    for (const value of [
      base,
      `${base},headers=""`,
      `${base},headers="date"`,
      `${base},headers="(request-target)",extra="1"`,
      `keyId="${KEY_ID}",algorithm="rsa-sha256",signature="${SIGNATURE}",headers="(request-target)"`,
      `keyId="not-a-key",algorithm="ed25519-sha256",signature="${SIGNATURE}",headers="(request-target)"`,
    ]) {
      expect(() => verifyRequest({ method: 'GET', url: '/', headers: { date: DATE, signature: value } }, vectorNow), value).toThrow(
        expect.objectContaining({ reason: 'malformed' }),
      );
    }
  });

  it('enforces the clock-skew window only when date is signed', () => {
    expect(() => verifyRequest(vectorRequest(), new Date('2018-01-05T22:31:41Z'))).toThrow(expect.objectContaining({ reason: 'expired' }));
    expect(() => verifyRequest(vectorRequest(), new Date('2018-01-05T21:20:00Z'))).toThrow(expect.objectContaining({ reason: 'expired' }));
    const { request, keypair } = sdkStyle('POST', '/wallets?filter[email]=a%40b.c');
    expect(verifyRequest(request, new Date('2030-01-01T00:00:00Z')).keyId).toBe(keypair.publicKey());
  });
});
