import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import type { Clock } from '../platform/clock.ts';
import { auditWriter, type AuditWriter } from '../platform/audit/audit.service.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import { ping, type Db } from '../platform/db/database.ts';
import { registerServiceInfo } from '../platform/http/service-info.ts';
import type { ObjectStorage } from '../platform/storage/storage.ts';
import { offeringsRepo } from './offerings/offerings.repo.ts';
import { offeringsRoutes } from './offerings/offerings.routes.ts';
import { offeringsService } from './offerings/offerings.service.ts';
import { totalsRepo } from './offerings/totals.repo.ts';
import { totalsService } from './offerings/totals.service.ts';
import { checkoutReturnRoutes } from './payments/checkout-return.ts';
import { createPayments } from './payments/create-payments.ts';
import { correctionsRepo } from './shares/corrections.repo.ts';
import { correctionsService } from './shares/corrections.service.ts';
import { sharesRepo, type ShareFilter } from './shares/shares.repo.ts';
import { reviewerOrg, type Reviewer } from '../platform/auth/principal.ts';
import { ocfRepo } from './ocf/ocf.repo.ts';
import { ocfService } from './ocf/ocf.service.ts';
import { ocfValidator, type OcfValidator } from './ocf/ocf-validator.ts';
import { sharesRoutes } from './shares/shares.routes.ts';
import { subscriptionsRepo } from './subscriptions/subscriptions.repo.ts';
import { subscriptionsRoutes } from './subscriptions/subscriptions.routes.ts';
import { subscriptionsService, type InvestorEligibility } from './subscriptions/subscriptions.service.ts';

export type IssuanceDeps = {
  db: Db;
  /** Where consequential changes are recorded; default a writer on `db`. */
  audit?: AuditWriter;
  storage: ObjectStorage;
  clock: Clock;
  keyring: Keyring;
  config: Pick<Config, 'stripe' | 'checkoutReturn' | 'publicUrl' | 'healthTimeoutMs'>;
  /** Identity's live KYC and accreditation state. */
  eligibility: (orgId: string, userId: string) => Promise<InvestorEligibility>;
  /** Identity's allowed redirect origins of an org. */
  redirectOrigins: (orgId: string) => Promise<string[]>;
  /** Identity's legal names of holders, for the OCF export's stakeholders; default none known. */
  legalNames?: (orgId: string, userIds: string[]) => Promise<Map<string, string>>;
  version: string;
};

export function createIssuance(deps: IssuanceDeps) {
  const { db } = deps;
  const offerings = offeringsRepo(db);
  const payments = createPayments(deps.config, db);
  const audit = deps.audit ?? auditWriter(db, deps.keyring);
  const offeringsSvc = offeringsService({ db, repo: offerings, storage: deps.storage, audit });
  const totals = totalsRepo();
  const subscriptions = subscriptionsService({
    db,
    keyring: deps.keyring,
    repo: subscriptionsRepo(db),
    offerings,
    totals,
    eligibility: deps.eligibility,
    redirectOrigins: deps.redirectOrigins,
    payments: payments.provider,
    clock: deps.clock,
    publicUrl: deps.config.publicUrl,
    checkoutReturn: deps.config.checkoutReturn,
    audit,
  });
  const shares = sharesRepo(db);
  const corrections = correctionsService({ db, repo: correctionsRepo(db), audit });
  let validator: OcfValidator | undefined;
  const ocf = ocfService({
    repo: ocfRepo(db),
    // Loading the ~175 schemas takes a moment: on the first export, not at start.
    validator: () => (validator ??= ocfValidator()),
    clock: deps.clock,
    legalNames: deps.legalNames ?? (async () => new Map()),
  });

  return {
    offerings: offeringsSvc,
    subscriptions,
    /** The check and repair of the running totals against the subscriptions (`tranche totals check|repair`). */
    totals: totalsService({ db, totals, audit }),
    /** Ledger corrections: cancellation and re-issuance of share entries. */
    corrections,
    /** The issuer's cap table in the Open Cap Format. */
    ocf,
    /**
     * The share ledger as the back office reads it: a platform admin every org's, an org admin
     * their org's; filter by offering, holder, restriction. Newest entries first.
     */
    ledger: (
      reviewer: Reviewer,
      filter: Pick<ShareFilter, 'offeringId' | 'userId' | 'restricted' | 'status'>,
      paging: { limit: number; offset: number },
    ) => shares.list({ ...filter, orgId: reviewerOrg(reviewer) }, paging),
    /** The local Stripe double when no STRIPE_SECRET_KEY is set; mount `routes` at STRIPE_DOUBLE_PREFIX. */
    stripeDouble: payments.double,
    async routes(app: FastifyInstance) {
      registerServiceInfo(app, {
        name: 'issuance',
        description: 'Offerings, securities, subscriptions, payments and the share ledger',
        version: deps.version,
        checkDatabase: () => ping(db),
        healthTimeoutMs: deps.config.healthTimeoutMs,
      });
      await app.register(offeringsRoutes, { offerings: offeringsSvc });
      await app.register(subscriptionsRoutes, { subscriptions, payments: payments.provider });
      await app.register(sharesRoutes, { shares });
      await app.register(checkoutReturnRoutes);
    },
    close: async () => undefined,
  };
}

export type Issuance = ReturnType<typeof createIssuance>;
