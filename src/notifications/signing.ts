import { createHmac, randomBytes } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';

export const newSigningSecret = () => `${SECRET_PREFIX}${randomBytes(24).toString('base64')}`;

/** Standard Webhooks: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one entry per active secret. */
export function signatureHeader(secrets: string[], messageId: string, timestamp: number, body: string): string {
  return secrets
    .map((secret) => {
      const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
      return `v1,${createHmac('sha256', key).update(`${messageId}.${timestamp}.${body}`).digest('base64')}`;
    })
    .join(' ');
}
