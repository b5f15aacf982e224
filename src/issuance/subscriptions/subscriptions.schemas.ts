import { z } from 'zod';
import { subscriptionStatuses } from '../issuance.tables.ts';
import { moneyString } from '../../platform/money.ts';
import { pagePagingQuery } from '../../platform/http/paging.ts';
import { optionalBody } from '../../platform/http/bodies.ts';

export const subscriptionStatus = z.enum(subscriptionStatuses);

export const createSubscriptionBody = z.strictObject({
  securityClassId: z.uuid(),
  unitsSubscribed: z.number().int().min(1).max(1_000_000_000),
  trancheId: z.string().trim().min(1).max(100).optional(),
  paymentMethod: z.enum(['card', 'us_bank_account']),
  accreditationStatus: z.enum(['accredited', 'non_accredited']),
  suitabilityConfirmed: z.boolean(),
  riskAcknowledgmentSigned: z.boolean(),
  annualIncome: moneyString.optional(),
  netWorth: moneyString.optional(),
  otherRegCfInvestments: moneyString.optional(),
});

export const signBody = z.strictObject({ signerName: z.string().trim().min(2).max(200), consent: z.literal(true) });
export const listSubscriptionsQuery = pagePagingQuery.extend({ status: subscriptionStatus.optional(), offering_id: z.uuid().optional() });

export const subscriptionResponse = z.object({
  id: z.uuid(),
  offering_id: z.uuid(),
  security_class_id: z.uuid(),
  user_id: z.uuid(),
  units_subscribed: z.number(),
  price_per_unit: z.string(),
  amount: z.string(),
  currency: z.string(),
  tranche_id: z.string().nullable(),
  payment_method: z.enum(['card', 'us_bank_account']),
  accreditation_status: z.enum(['accredited', 'non_accredited']),
  suitability_confirmed: z.boolean(),
  risk_acknowledgment_signed: z.boolean(),
  status: subscriptionStatus,
  payment_status: z.enum(['none', 'processing', 'paid', 'failed', 'refunded']),
  signed_at: z.string().nullable(),
  funded_at: z.date().nullable(),
  approved_at: z.date().nullable(),
  completed_at: z.date().nullable(),
  cancelled_at: z.date().nullable(),
  cancel_reason: z.string().nullable(),
  review_reason: z.string().nullable(),
  created_at: z.date(),
  updated_at: z.date(),
});

export const checkoutResponse = z.object({ session_id: z.string(), checkout_url: z.string(), amount: z.string(), currency: z.string() });

const returnUrl = z.url({ protocol: /^https?$/ }).max(2048);

/** Optional: where Stripe Checkout sends the browser back to; see `checkoutReturnUrls`. */
export const checkoutBody = optionalBody(
  z.strictObject({
    successUrl: returnUrl.optional(),
    cancelUrl: returnUrl.optional(),
  }),
);
