import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireUser } from '../../platform/auth/principal.ts';
import { toSnake } from '../../platform/http/case.ts';
import { receiveRawJson } from '../../platform/http/raw-body.ts';
import { envelope, ok } from '../../platform/http/envelope.ts';
import { AppError, errorResponses } from '../../platform/http/errors.ts';
import { CAPPED_TOTAL_NOTE, pageMetaFor } from '../../platform/http/paging.ts';
import { paged } from '../offerings/offerings.schemas.ts';
import type { PaymentProvider } from '../payments/payment-provider.ts';
import {
  checkoutBody,
  checkoutResponse,
  createSubscriptionBody,
  listSubscriptionsQuery,
  signBody,
  subscriptionResponse,
} from './subscriptions.schemas.ts';
import type { SubscriptionsService } from './subscriptions.service.ts';

const idParams = z.object({ id: z.uuid() });

export async function subscriptionsRoutes(
  app: FastifyInstance,
  options: { subscriptions: SubscriptionsService; payments: PaymentProvider },
) {
  const { subscriptions } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = app.authenticate(['bearer']);
  const common = { tags: ['issuance: subscriptions'], security: [{ bearer: [] }] };

  routes.post(
    '/offerings/:offeringId/subscriptions',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Subscribe: eligibility is checked live and units are reserved',
        params: z.object({ offeringId: z.uuid() }),
        body: createSubscriptionBody,
        response: { 201: envelope(subscriptionResponse), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const { annualIncome, netWorth, otherRegCfInvestments, ...rest } = request.body;
      const created = await subscriptions.create(requireUser(request), request.params.offeringId, {
        ...rest,
        annualIncomeCents: annualIncome,
        netWorthCents: netWorth,
        otherRegCfInvestmentsCents: otherRegCfInvestments,
      });
      return reply.code(201).send(ok(toSnake(created)));
    },
  );

  routes.get(
    '/subscriptions',
    {
      onRequest,
      schema: {
        ...common,
        summary: "The caller's subscriptions",
        description: `Newest first. ${CAPPED_TOTAL_NOTE}`,
        querystring: listSubscriptionsQuery,
        response: { 200: envelope(paged(subscriptionResponse)), ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      const { items, ...count } = await subscriptions.list(
        requireUser(request),
        { status: request.query.status, offeringId: request.query.offering_id },
        request.query,
      );
      return ok({ items: toSnake(items), meta: pageMetaFor(request.query, count) });
    },
  );

  routes.get(
    '/subscriptions/:id',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Get a subscription',
        params: idParams,
        response: { 200: envelope(subscriptionResponse), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => ok(toSnake(await subscriptions.get(requireUser(request), request.params.id))),
  );

  routes.post(
    '/subscriptions/:id/sign-agreement',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Sign the subscription agreement (evidence recorded)',
        params: idParams,
        body: signBody,
        response: { 200: envelope(subscriptionResponse), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) =>
      ok(
        toSnake(
          await subscriptions.sign(requireUser(request), request.params.id, request.body, {
            ip: request.ip,
            userAgent: request.headers['user-agent'],
          }),
        ),
      ),
  );

  routes.post(
    '/subscriptions/:id/create-checkout-session',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Create a Stripe Checkout Session for units × price',
        description:
          'The body is optional. `successUrl` / `cancelUrl` say where the browser goes after paying or cancelling: ' +
          "absolute https URLs (http only in development mode), on one of the org's allowed redirect origins or of " +
          'CHECKOUT_RETURN_ORIGINS when any are set; ' +
          "Stripe's `{CHECKOUT_SESSION_ID}` placeholder is kept. Without them, our hosted confirmation pages, which need no token. " +
          'An open session is returned again when asked with the same return URLs; with others it is expired and replaced.',
        params: idParams,
        body: checkoutBody,
        response: { 200: envelope(checkoutResponse), ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => ok(toSnake(await subscriptions.createCheckout(requireUser(request), request.params.id, request.body ?? {}))),
  );

  routes.delete(
    '/subscriptions/:id',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Cancel (refunds any payment)',
        params: idParams,
        response: { 200: envelope(subscriptionResponse), ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => ok(toSnake(await subscriptions.cancel(requireUser(request), request.params.id))),
  );

  await app.register(async (webhooks) => {
    receiveRawJson(webhooks);
    webhooks.post(
      '/payments/stripe/webhook',
      {
        config: { idempotent: false },
        schema: { tags: ['issuance: payments'], summary: 'Stripe webhook (Stripe-Signature over the raw body)' },
      },
      async (request) => {
        const signature = request.headers['stripe-signature'];
        let event;
        try {
          if (typeof signature !== 'string') throw new Error('missing');
          event = options.payments.parseWebhook(request.body as Buffer, signature);
        } catch {
          throw new AppError('UNAUTHORIZED', 'Stripe-Signature is missing, invalid or too old');
        }
        const outcome = event ? await subscriptions.handlePaymentEvent(event) : 'ignored';
        return ok({ received: true, outcome });
      },
    );
  });
}
