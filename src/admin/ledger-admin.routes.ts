import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Identity } from '../identity/identity.module.ts';
import type { Issuance } from '../issuance/issuance.module.ts';
import { countryCode, subdivisionCode } from '../issuance/offerings/offerings.schemas.ts';
import { reviewerOrg } from '../platform/auth/principal.ts';
import { toSnake } from '../platform/http/case.ts';
import { envelope, ok } from '../platform/http/envelope.ts';
import { errorResponses } from '../platform/http/errors.ts';
import { int4 } from '../platform/http/integers.ts';
import { fromCents } from '../platform/money.ts';
import type { ShareRow } from '../issuance/shares/corrections.repo.ts';
import { adminSecurity, requireReviewer, reviewerAuth } from './reviewer.ts';
import { isoDate } from '../platform/http/times.ts';

const idParams = z.object({ id: z.uuid() });

const entryResponse = z.object({
  id: z.uuid(),
  subscription_id: z.uuid(),
  user_id: z.uuid(),
  security_class_id: z.uuid(),
  units: z.number(),
  total_cost_basis: z.string(),
  status: z.string(),
  replaces_share_id: z.uuid().nullable(),
});

const presentEntry = (row: ShareRow) =>
  toSnake({
    id: row.id,
    subscriptionId: row.subscriptionId,
    userId: row.userId,
    securityClassId: row.securityClassId,
    units: row.units,
    totalCostBasis: fromCents(row.costBasisCents),
    status: row.status,
    replacesShareId: row.replacesShareId,
  });

/** Back office: ledger corrections and the issuer's cap table in the Open Cap Format. */
export async function ledgerAdminRoutes(
  app: FastifyInstance,
  options: { identity: Identity; issuance: Pick<Issuance, 'corrections' | 'ocf'> },
) {
  const { issuance } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = reviewerAuth(app, options.identity);
  const common = { tags: ['admin: ledger'], security: adminSecurity };

  routes.post(
    '/shares/:id/cancel',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Correct the share ledger: cancel an entry with a reason and, optionally, re-issue it (corrected units)',
        params: idParams,
        body: z.strictObject({
          reason: z.string().trim().min(1).max(2000),
          reissue: z.strictObject({ units: int4(1).optional() }).optional(),
        }),
        response: {
          200: envelope(
            z.object({
              cancellation: z.object({ id: z.uuid(), reason: z.string(), created_at: z.date() }),
              cancelled: entryResponse,
              reissued: entryResponse.nullable(),
            }),
          ),
          ...errorResponses(400, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const result = await issuance.corrections.cancel(requireReviewer(request), request.params.id, request.body);
      return ok({
        cancellation: { id: result.cancellation.id, reason: result.cancellation.reason, created_at: result.cancellation.createdAt },
        cancelled: presentEntry(result.cancelled),
        reissued: result.reissued && presentEntry(result.reissued),
      });
    },
  );

  routes.get(
    '/issuers/:id/ocf',
    {
      onRequest,
      schema: {
        ...common,
        summary: "The issuer's cap table as Open Cap Format files in a zip (application/zip), each validated against the OCF schemas",
        description:
          'Manifest, stakeholders, stock classes, stock legend templates and transactions (issuances, cancellations, re-issuances). ' +
          'The issuer object needs a formation date and country: stored with the issuer, or given here.',
        params: idParams,
        querystring: z.object({
          formation_date: isoDate().optional(),
          country_of_formation: countryCode.optional(),
          country_subdivision_of_formation: subdivisionCode.optional(),
        }),
        response: { 200: z.string().describe('application/zip'), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const pkg = await issuance.ocf.export(request.params.id, reviewerOrg(requireReviewer(request)), {
        formationDate: q.formation_date,
        countryOfFormation: q.country_of_formation,
        countrySubdivisionOfFormation: q.country_subdivision_of_formation,
      });
      return (
        reply
          .type('application/zip')
          .header('content-disposition', `attachment; filename="ocf-${request.params.id}.zip"`)
          // A Buffer is sent as is (no serialization); the schema above only documents it.
          .send(Buffer.from(pkg.zip) as unknown as string)
      );
    },
  );
}
