import { z } from 'zod';
import { pagePagingQuery, pageMeta } from '../../platform/http/paging.ts';
import { moneyString } from '../../platform/money.ts';
import { isoDate as isoDateOnly } from '../../platform/http/times.ts';

export const exemptionType = z.enum(['reg_d_506b', 'reg_d_506c', 'reg_cf', 'reg_a_tier_1', 'reg_a_tier_2', 'reg_s']);
export const offeringStatus = z.enum(['draft', 'open', 'paused', 'closed']);
export const securityCategory = z.enum(['equity', 'preferred_equity', 'debt', 'convertible', 'revenue_share', 'fund_interest']);
export type SecurityCategory = z.infer<typeof securityCategory>;

export const listOfferingsQuery = pagePagingQuery.extend({
  status: z
    .enum(['active', 'open', 'paused', 'closed'])
    .transform((status) => (status === 'active' ? 'open' : status))
    .optional(),
  exemption_type: exemptionType.optional(),
  sort_by: z.enum(['created_at', 'deadline', 'name', 'target_amount', 'opened_at']).default('created_at'),
  sort_order: z.enum(['asc', 'desc']).default('desc'),
});

export const listSecuritiesQuery = pagePagingQuery.extend({ offering_id: z.uuid().optional(), category: securityCategory.optional() });

const money = z.string();
export const offeringResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  issuer: z.object({ id: z.uuid(), legal_name: z.string() }),
  exemption_type: exemptionType,
  amounts: z.object({ target: money, maximum: money, raised: money, remaining: money, currency: z.string() }),
  investment: z.object({ minimum: money, maximum: money.nullable() }),
  investors: z.object({ total: z.number(), accredited: z.number(), non_accredited: z.number() }),
  deadline: z.string(),
  status: offeringStatus,
  opened_at: z.date().nullable(),
  closed_at: z.date().nullable(),
  created_at: z.date(),
  updated_at: z.date(),
});

export const securityResponse = z.object({
  id: z.uuid(),
  offering_id: z.uuid(),
  name: z.string(),
  category: securityCategory,
  price_per_unit: money,
  currency: z.string(),
  units_authorized: z.number(),
  units_available: z.number(),
  created_at: z.date(),
  updated_at: z.date(),
});

export const documentResponse = z.object({
  id: z.uuid(),
  offering_id: z.uuid(),
  kind: z.enum(['ppm', 'subscription_agreement', 'other']),
  title: z.string(),
  version: z.number(),
  content_type: z.string(),
  size_bytes: z.number(),
  sha256: z.string(),
  url: z.string(),
  created_at: z.date(),
});

export const paged = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), meta: pageMeta });

const isoDate = isoDateOnly();
/** ISO 3166-1 alpha-2 country, ISO 3166-2 subdivision (the part after the dash): the OCF issuer's formation place. */
export const countryCode = z.string().regex(/^[A-Z]{2}$/, 'must be an ISO 3166-1 alpha-2 code (US)');
export const subdivisionCode = z.string().regex(/^[A-Z0-9]{1,3}$/, 'must be an ISO 3166-2 subdivision code (DE)');
export const createIssuerBody = z.strictObject({
  orgId: z.uuid().optional(),
  legalName: z.string().trim().min(1).max(300),
  /** Needed by the OCF export (with countryOfFormation). */
  formationDate: isoDate.optional(),
  countryOfFormation: countryCode.optional(),
  countrySubdivisionOfFormation: subdivisionCode.optional(),
});
export const createOfferingBody = z
  .strictObject({
    issuerId: z.uuid(),
    name: z.string().trim().min(1).max(300),
    exemptionType,
    currency: z.literal('USD').default('USD'),
    targetAmount: moneyString,
    maximumAmount: moneyString,
    minimumInvestment: moneyString,
    maximumInvestment: moneyString.optional(),
    deadline: isoDate,
  })
  .refine((body) => body.maximumAmount >= body.targetAmount, { message: 'must be at least targetAmount', path: ['maximumAmount'] })
  .refine((body) => body.maximumInvestment === undefined || body.maximumInvestment >= body.minimumInvestment, {
    message: 'must be at least minimumInvestment',
    path: ['maximumInvestment'],
  });
export const updateOfferingBody = z
  .strictObject({
    name: z.string().trim().min(1).max(300).optional(),
    targetAmount: moneyString.optional(),
    maximumAmount: moneyString.optional(),
    minimumInvestment: moneyString.optional(),
    maximumInvestment: moneyString.nullable().optional(),
    deadline: isoDate.optional(),
  })
  .refine((body) => Object.keys(body).length > 0, { message: 'send at least one field to change' });
export const createSecurityBody = z.strictObject({
  name: z.string().trim().min(1).max(200),
  category: securityCategory,
  pricePerUnit: moneyString.refine((cents) => cents > 0, 'must be more than 0'),
  unitsAuthorized: z.number().int().min(1).max(1_000_000_000),
});
export const createDocumentBody = z.strictObject({
  kind: z.enum(['ppm', 'subscription_agreement', 'other']),
  title: z.string().trim().min(1).max(300),
  contentType: z.enum(['application/pdf', 'text/plain', 'text/html']),
  content: z.base64('must be base64').min(1),
});
