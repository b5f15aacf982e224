import { createHmac } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { constantTimeEqual } from '../../platform/crypto/compare.ts';
import type { PiiRecord } from '../pii/pii.schemas.ts';
import type { KycProvider, ProviderCallback, ProviderOutcome } from './provider.ts';

/**
 * A vendor's test mode, deterministic on input. The last four digits of the SSN choose the result:
 *
 * | SSN ends in | result |
 * |---|---|
 * | 0001 | `action_required`: a document scan at a URL we serve; completing it approves |
 * | 0002 | `needs_review` (manual review) |
 * | 0003 | `rejected` |
 * | 0004 | `error` |
 * | 0005 | `pending`, then approved by an asynchronous callback |
 * | 0006 | `pending`, then rejected by an asynchronous callback |
 * | anything else (e.g. the spec's JOHN SMITH, 112223333) | `approved` |
 *
 * References carry the variant and the submission time, signed, so the sandbox needs no storage.
 */
export const SANDBOX_PROVIDER = 'sandbox';
export const SANDBOX_SIGNATURE_HEADER = 'x-sandbox-signature';

type Variant = 'approve' | 'document_scan' | 'review' | 'reject' | 'error' | 'async_approve' | 'async_reject';

const variantBySuffix: Record<string, Variant> = {
  '0001': 'document_scan',
  '0002': 'review',
  '0003': 'reject',
  '0004': 'error',
  '0005': 'async_approve',
  '0006': 'async_reject',
};

const outcomes = {
  approved: { status: 'approved', checks: { identity: 'passed', document: 'not_attempted' }, requiredAction: null },
  review: { status: 'needs_review', checks: { identity: 'needs_review', document: 'not_attempted' }, requiredAction: null },
  rejected: { status: 'rejected', checks: { identity: 'failed', document: 'not_attempted' }, requiredAction: null },
  error: { status: 'error', checks: { identity: 'not_attempted', document: 'not_attempted' }, requiredAction: null },
  pending: { status: 'pending', checks: { identity: 'pending', document: 'not_attempted' }, requiredAction: null },
  scanned: { status: 'approved', checks: { identity: 'passed', document: 'passed' }, requiredAction: null },
} satisfies Record<string, ProviderOutcome>;

const callbackSchema = z.object({
  reference: z.string(),
  outcome: z.object({
    status: z.enum(['pending', 'action_required', 'needs_review', 'approved', 'rejected', 'error']),
    checks: z.object({
      identity: z.enum(['not_attempted', 'pending', 'passed', 'failed', 'needs_review']),
      document: z.enum(['not_attempted', 'pending', 'passed', 'failed', 'needs_review']),
    }),
    requiredAction: z.object({ type: z.literal('document_scan'), url: z.string() }).nullable(),
  }),
});

export type SandboxOptions = {
  secret: Buffer;
  /** Where the scan page is served, e.g. http://localhost:3000/identity/kyc/sandbox. */
  scanBaseUrl: string;
  asyncDelayMs: number;
  /** How long a submission takes to answer, like a slow vendor (0: at once). */
  submitDelayMs?: number;
  /** The vendor's callback delivery: in the sandbox, straight to our callback handler. */
  deliverCallback: (headers: Record<string, string>, body: Buffer) => Promise<void>;
};

export function sandboxProvider(options: SandboxOptions) {
  const sign = (value: string) => createHmac('sha256', options.secret).update(value).digest('base64url');

  const makeReference = (variant: Variant, verificationId: string) => {
    const body = `${variant}.${verificationId}.${Date.now()}`;
    return `sbx.${body}.${sign(body)}`;
  };

  function readReference(reference: string): { variant: Variant; verificationId: string; submittedAt: number } {
    const match = /^sbx\.([a-z_]+)\.([0-9a-f-]{36})\.(\d+)\.([\w-]+)$/.exec(reference);
    if (!match || !constantTimeEqual(sign(`${match[1]}.${match[2]}.${match[3]}`), match[4]!)) throw new Error('unknown sandbox reference');
    return { variant: match[1] as Variant, verificationId: match[2]!, submittedAt: Number(match[3]) };
  }

  function initialOutcome(variant: Variant, reference: string): ProviderOutcome {
    switch (variant) {
      case 'document_scan':
        return {
          status: 'action_required',
          checks: { identity: 'needs_review', document: 'pending' },
          requiredAction: { type: 'document_scan', url: `${options.scanBaseUrl}/scan/${encodeURIComponent(reference)}` },
        };
      case 'review':
        return outcomes.review;
      case 'reject':
        return outcomes.rejected;
      case 'error':
        return outcomes.error;
      case 'async_approve':
      case 'async_reject':
        return outcomes.pending;
      case 'approve':
        return outcomes.approved;
    }
  }

  function signedCallback(callback: ProviderCallback) {
    const body = Buffer.from(JSON.stringify(callback));
    return { headers: { 'content-type': 'application/json', [SANDBOX_SIGNATURE_HEADER]: sign(body.toString('utf8')) }, body };
  }

  async function sendCallback(callback: ProviderCallback) {
    const { headers, body } = signedCallback(callback);
    await options.deliverCallback(headers, body);
  }

  const provider: KycProvider & { signedCallback: typeof signedCallback; routes: (app: FastifyInstance) => Promise<void> } = {
    name: SANDBOX_PROVIDER,

    async submit({ verificationId, pii }: { verificationId: string; pii: PiiRecord }) {
      if (options.submitDelayMs) await new Promise((resolve) => setTimeout(resolve, options.submitDelayMs));
      const last4 = (pii.ssn ?? pii.ssnLast4 ?? '').slice(-4);
      const variant = variantBySuffix[last4] ?? 'approve';
      const reference = makeReference(variant, verificationId);
      if (variant === 'async_approve' || variant === 'async_reject') {
        const outcome = variant === 'async_approve' ? outcomes.approved : outcomes.rejected;
        setTimeout(() => void sendCallback({ reference, outcome }).catch(() => undefined), options.asyncDelayMs).unref();
      }
      return { reference, outcome: initialOutcome(variant, reference) };
    },

    async fetchResult(reference) {
      const { variant, submittedAt } = readReference(reference);
      if ((variant === 'async_approve' || variant === 'async_reject') && Date.now() - submittedAt >= options.asyncDelayMs) {
        return variant === 'async_approve' ? outcomes.approved : outcomes.rejected;
      }
      return initialOutcome(variant, reference);
    },

    parseCallback(headers, rawBody) {
      const signature = headers[SANDBOX_SIGNATURE_HEADER];
      if (typeof signature !== 'string' || !constantTimeEqual(sign(rawBody.toString('utf8')), signature))
        throw new Error('invalid callback signature');
      const callback = callbackSchema.parse(JSON.parse(rawBody.toString('utf8')));
      readReference(callback.reference);
      return callback;
    },

    signedCallback,

    /** The vendor's hosted document-scan page (a form; submitting it completes the scan). */
    async routes(app: FastifyInstance) {
      const routes = app.withTypeProvider<ZodTypeProvider>();
      // The page's own form posts url-encoded (it carries no fields): accept it here, nowhere else.
      app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, _body, done) =>
        done(null, undefined),
      );
      const params = z.object({ reference: z.string().max(300) });
      routes.get('/scan/:reference', { schema: { hide: true, params } }, async (request, reply) => {
        readReference(request.params.reference);
        return reply
          .type('text/html; charset=utf-8')
          .send(
            `<!doctype html><title>Sandbox document scan</title><h1>Sandbox document scan</h1>` +
              `<p>This stands in for the vendor's ID scan.</p><form method="post"><button>Complete scan</button></form>`,
          );
      });
      routes.post('/scan/:reference', { schema: { hide: true, params }, config: { idempotent: false } }, async (request, reply) => {
        const reference = request.params.reference;
        if (readReference(reference).variant !== 'document_scan') return reply.code(409).type('text/plain').send('no scan for this check');
        await sendCallback({ reference, outcome: outcomes.scanned });
        return reply.type('text/html; charset=utf-8').send('<!doctype html><title>Scan complete</title><h1>Scan complete</h1>');
      });
    },
  };
  return provider;
}

export type SandboxProvider = ReturnType<typeof sandboxProvider>;
