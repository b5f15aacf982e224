import { createHash } from 'node:crypto';
import { bodyDigest } from './httpsig.ts';

/** What signs: an account id (StrKey G...) and its Ed25519 signing function (e.g. a Stellar/TokenD Keypair). */
export type RequestSigner = { accountId: string; sign(data: Buffer): Buffer | Uint8Array };

/**
 * Headers that sign a key-server request strictly: `(request-target)`, `date` and `digest` (the
 * SHA-256 of the exact body sent), as KEYSERVER_STRICT_SIGNATURES requires of every write. Send
 * the body byte for byte as given here. `now` is for tests; a signature is good for the server's
 * skew window (default ±5 minutes) and, in strict mode, once.
 *
 * This is what our own clients use; the official @tokend/js-sdk signs `(request-target)` only,
 * which the server accepts unless strict mode is on.
 */
export function strictSignatureHeaders(
  signer: RequestSigner,
  request: { method: string; target: string; body?: string },
  now: Date = new Date(),
): Record<string, string> {
  const date = now.toUTCString();
  const digest = bodyDigest(request.body ?? '');
  const signingString = [`(request-target): ${request.method.toLowerCase()} ${request.target}`, `date: ${date}`, `digest: ${digest}`].join(
    '\n',
  );
  const signature = Buffer.from(signer.sign(createHash('sha256').update(signingString, 'utf8').digest())).toString('base64');
  return {
    date,
    digest,
    signature: `keyId="${signer.accountId}",algorithm="ed25519-sha256",headers="(request-target) date digest",signature="${signature}"`,
  };
}
