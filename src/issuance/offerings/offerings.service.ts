import { createHash } from 'node:crypto';
import { reviewerOrg, type Principal, type Reviewer } from '../../platform/auth/principal.ts';
import type { Db } from '../../platform/db/database.ts';
import type { AuditWriter } from '../../platform/audit/audit.service.ts';
import { publish } from '../../platform/events/outbox.ts';
import { AppError, notFound } from '../../platform/http/errors.ts';
import { pageOffset, type PagePaging } from '../../platform/http/paging.ts';
import { fromCents } from '../../platform/money.ts';
import type { ObjectStorage } from '../../platform/storage/storage.ts';
import {
  totalsOf,
  type DocumentRow,
  type IssuerRow,
  type OfferingRow,
  type OfferingSort,
  type OfferingsRepo,
  type OfferingStatus,
  type SecurityRow,
} from './offerings.repo.ts';

const TRANSITIONS: Record<'open' | 'pause' | 'close', { from: OfferingStatus[]; to: OfferingStatus; event: string }> = {
  open: { from: ['draft', 'paused'], to: 'open', event: 'offering.opened' },
  pause: { from: ['open'], to: 'paused', event: 'offering.paused' },
  close: { from: ['open', 'paused'], to: 'closed', event: 'offering.closed' },
};

export type OfferingInput = {
  issuerId: string;
  name: string;
  exemptionType: OfferingRow['exemptionType'];
  currency: string;
  targetAmountCents: number;
  maximumAmountCents: number;
  minimumInvestmentCents: number;
  maximumInvestmentCents?: number | null;
  deadline: string;
};

/** An offering as the API shows it, with its running totals (raised, remaining, investor counts). */
export function presentOffering(row: OfferingRow, issuer: IssuerRow | undefined) {
  const totals = totalsOf(row);
  return {
    id: row.id,
    name: row.name,
    issuer: { id: row.issuerId, legalName: issuer?.legalName ?? '' },
    exemptionType: row.exemptionType,
    amounts: {
      target: fromCents(row.targetAmountCents),
      maximum: fromCents(row.maximumAmountCents),
      raised: fromCents(totals.raisedCents),
      remaining: fromCents(Math.max(0, row.maximumAmountCents - totals.committedCents)),
      currency: row.currency,
    },
    investment: {
      minimum: fromCents(row.minimumInvestmentCents),
      maximum: row.maximumInvestmentCents === null ? null : fromCents(row.maximumInvestmentCents),
    },
    investors: { total: totals.investors, accredited: totals.accredited, nonAccredited: totals.nonAccredited },
    deadline: row.deadline,
    status: row.status,
    openedAt: row.openedAt,
    closedAt: row.closedAt,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** A security class as the API shows it; `unitsAvailable` is what its running total of units held leaves. */
export function presentSecurity(row: SecurityRow, currency: string) {
  return {
    id: row.id,
    offeringId: row.offeringId,
    name: row.name,
    category: row.category,
    pricePerUnit: fromCents(row.pricePerUnitCents),
    currency,
    unitsAuthorized: row.unitsAuthorized,
    unitsAvailable: Math.max(0, row.unitsAuthorized - row.unitsHeld),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

function presentDocument(row: DocumentRow, url: string) {
  return {
    id: row.id,
    offeringId: row.offeringId,
    kind: row.kind,
    title: row.title,
    version: row.version,
    contentType: row.contentType,
    sizeBytes: row.sizeBytes,
    sha256: row.sha256,
    url,
    createdAt: row.createdAt,
  };
}

/** Integrators read open, paused and closed offerings of their org; drafts are back-office only. */
const isVisible = (row: OfferingRow) => row.status !== 'draft';

export function offeringsService(deps: { db: Db; repo: OfferingsRepo; storage: ObjectStorage; audit: AuditWriter }) {
  const { db, repo, storage } = deps;

  async function presentMany(rows: OfferingRow[]) {
    const issuersById = await repo.issuersById([...new Set(rows.map((row) => row.issuerId))]);
    return rows.map((row) => presentOffering(row, issuersById.get(row.issuerId)));
  }

  async function visibleOffering(principal: Principal, id: string): Promise<OfferingRow> {
    const row = await repo.find(principal.orgId, id);
    if (!row || !isVisible(row)) throw notFound('offering');
    return row;
  }

  async function managedOffering(reviewer: Reviewer, id: string): Promise<OfferingRow> {
    const row = await repo.find(reviewerOrg(reviewer), id);
    if (!row) throw notFound('offering');
    return row;
  }

  async function securitiesOf(rows: SecurityRow[]) {
    const offeringsById = await repo.offeringsById([...new Set(rows.map((row) => row.offeringId))]);
    return rows.map((row) => presentSecurity(row, offeringsById.get(row.offeringId)!.currency));
  }

  return {
    visibleOffering,

    async list(
      principal: Principal,
      query: {
        status?: OfferingStatus;
        exemptionType?: OfferingRow['exemptionType'];
        sortBy: OfferingSort;
        sortOrder: 'asc' | 'desc';
      } & PagePaging,
    ) {
      const { rows, ...count } = await repo.list(
        { orgId: principal.orgId, status: query.status, exemptionType: query.exemptionType, includeDrafts: false },
        { by: query.sortBy, order: query.sortOrder },
        { limit: query.limit, offset: pageOffset(query) },
      );
      return { items: await presentMany(rows), ...count };
    },

    /** The back office's list: drafts included, every org for a platform admin, newest first. */
    async listForReviewer(reviewer: Reviewer, query: { status?: OfferingStatus } & PagePaging) {
      const { rows, ...count } = await repo.list(
        { orgId: reviewerOrg(reviewer), status: query.status, includeDrafts: true },
        { by: 'created_at', order: 'desc' },
        { limit: query.limit, offset: pageOffset(query) },
      );
      return { items: await presentMany(rows), ...count };
    },

    get: async (principal: Principal, id: string) => (await presentMany([await visibleOffering(principal, id)]))[0]!,

    async securities(principal: Principal, filter: { offeringId?: string; category?: SecurityRow['category'] }, paging: PagePaging) {
      if (filter.offeringId) await visibleOffering(principal, filter.offeringId);
      const { rows, ...count } = await repo.listSecurities(
        { orgId: principal.orgId, ...filter, visibleOnly: true },
        { limit: paging.limit, offset: pageOffset(paging) },
      );
      return { items: await securitiesOf(rows), ...count };
    },

    async security(principal: Principal, id: string) {
      const row = await repo.findSecurity(principal.orgId, id);
      if (!row) throw notFound('security');
      await visibleOffering(principal, row.offeringId);
      return (await securitiesOf([row]))[0]!;
    },

    /** One page of an offering's documents (by kind, newest version first) with download links, and the capped total (see `Page`). */
    async documents(principal: Principal, offeringId: string, paging: PagePaging) {
      await visibleOffering(principal, offeringId);
      const { rows, ...count } = await repo.documents(offeringId, { limit: paging.limit, offset: pageOffset(paging) });
      const items = await Promise.all(
        rows.map(async (row) => presentDocument(row, await storage.presignGet(row.storageKey, { expiresInSeconds: 900 }))),
      );
      return { items, ...count };
    },

    async createIssuer(
      reviewer: Reviewer,
      input: {
        orgId?: string;
        legalName: string;
        formationDate?: string;
        countryOfFormation?: string;
        countrySubdivisionOfFormation?: string;
      },
    ) {
      const orgId = reviewerOrg(reviewer) ?? input.orgId;
      if (!orgId)
        throw new AppError('VALIDATION_ERROR', 'orgId is required with a platform admin key', [{ field: 'orgId', message: 'is required' }]);
      if (reviewer.kind === 'org_admin' && input.orgId && input.orgId !== orgId)
        throw new AppError('FORBIDDEN', 'An org_admin creates issuers in their own org');
      const issuer = await db.transaction(async (tx) => {
        const inserted = await repo.insertIssuer(
          {
            orgId,
            legalName: input.legalName,
            formationDate: input.formationDate ?? null,
            countryOfFormation: input.countryOfFormation ?? null,
            countrySubdivisionOfFormation: input.countrySubdivisionOfFormation ?? null,
          },
          tx,
        );
        await deps.audit.record(tx, { orgId, action: 'issuer.created', subject: { type: 'issuer', id: inserted.id }, after: inserted });
        return inserted;
      });
      return {
        id: issuer.id,
        orgId: issuer.orgId,
        legalName: issuer.legalName,
        formationDate: issuer.formationDate,
        countryOfFormation: issuer.countryOfFormation,
        countrySubdivisionOfFormation: issuer.countrySubdivisionOfFormation,
        createdAt: issuer.createdAt,
      };
    },

    async create(reviewer: Reviewer, input: OfferingInput) {
      const issuer = await repo.findIssuer(input.issuerId);
      const scope = reviewerOrg(reviewer);
      if (!issuer || (scope !== undefined && issuer.orgId !== scope)) throw notFound('issuer');
      const row = await db.transaction(async (tx) => {
        const inserted = await repo.insert(
          { ...input, orgId: issuer.orgId, maximumInvestmentCents: input.maximumInvestmentCents ?? null },
          tx,
        );
        await deps.audit.record(tx, {
          orgId: inserted.orgId,
          action: 'offering.created',
          subject: { type: 'offering', id: inserted.id },
          related: [{ type: 'issuer', id: issuer.id }],
          after: inserted,
          details: { status: inserted.status, exemption_type: inserted.exemptionType },
        });
        return inserted;
      });
      return (await presentMany([row]))[0]!;
    },

    /** Checks run on the locked row, so a concurrent close or change can't slip between check and write. */
    async update(reviewer: Reviewer, id: string, changes: Partial<Omit<OfferingInput, 'issuerId'>>) {
      const offering = await managedOffering(reviewer, id);
      const updated = await db.transaction(async (tx) => {
        const row = (await repo.lock(offering.id, tx))!;
        if (row.status === 'closed') throw new AppError('INVALID_STATE', 'A closed offering cannot change');
        const merged = { ...row, ...changes };
        if (merged.maximumAmountCents < merged.targetAmountCents) {
          throw new AppError('VALIDATION_ERROR', 'maximumAmount must be at least targetAmount', [
            { field: 'maximumAmount', message: 'must be at least targetAmount' },
          ]);
        }
        const next = await repo.update(row.id, changes, tx);
        await deps.audit.record(tx, {
          orgId: next.orgId,
          action: 'offering.updated',
          subject: { type: 'offering', id: next.id },
          before: row,
          after: next,
          details: { fields: Object.keys(changes).sort().join(',') },
        });
        return next;
      });
      return (await presentMany([updated]))[0]!;
    },

    async transition(reviewer: Reviewer, id: string, action: keyof typeof TRANSITIONS) {
      const transition = TRANSITIONS[action];
      const offering = await managedOffering(reviewer, id);
      const updated = await db.transaction(async (tx) => {
        const row = await repo.lock(offering.id, tx);
        if (!row || !transition.from.includes(row.status))
          throw new AppError('INVALID_STATE', `Cannot ${action} an offering that is ${row?.status}`);
        if (
          action === 'open' &&
          (await repo.listSecurities({ orgId: row.orgId, offeringId: row.id, visibleOnly: false }, { limit: 1, offset: 0 }, tx)).rows
            .length === 0
        ) {
          throw new AppError('INVALID_STATE', 'Add a security class before opening the offering');
        }
        const now = new Date();
        const next = await repo.update(
          row.id,
          {
            status: transition.to,
            ...(action === 'open' && !row.openedAt ? { openedAt: now } : {}),
            ...(action === 'close' ? { closedAt: now } : {}),
          },
          tx,
        );
        await deps.audit.record(tx, {
          orgId: next.orgId,
          action: transition.event,
          subject: { type: 'offering', id: next.id },
          before: row,
          after: next,
          details: { from_status: row.status, to_status: next.status },
        });
        await publish(tx, { orgId: next.orgId, type: transition.event, data: { offering_id: next.id, status: next.status } });
        return next;
      });
      return (await presentMany([updated]))[0]!;
    },

    async addSecurity(
      reviewer: Reviewer,
      offeringId: string,
      input: { name: string; category: SecurityRow['category']; pricePerUnitCents: number; unitsAuthorized: number },
    ) {
      const offering = await managedOffering(reviewer, offeringId);
      const row = await db.transaction(async (tx) => {
        const locked = (await repo.lock(offering.id, tx))!;
        if (locked.status === 'closed') throw new AppError('INVALID_STATE', 'A closed offering cannot change');
        const security = await repo.insertSecurity({ ...input, orgId: offering.orgId, offeringId: offering.id }, tx);
        await deps.audit.record(tx, {
          orgId: security.orgId,
          action: 'security_class.created',
          subject: { type: 'security_class', id: security.id },
          related: [{ type: 'offering', id: offering.id }],
          after: security,
          details: {
            category: security.category,
            price_per_unit_cents: security.pricePerUnitCents,
            units_authorized: security.unitsAuthorized,
          },
        });
        return security;
      });
      return presentSecurity(row, offering.currency);
    },

    /** Stores an offering document (PPM, subscription agreement) with its SHA-256 and a new version. */
    async addDocument(
      reviewer: Reviewer,
      offeringId: string,
      input: { kind: DocumentRow['kind']; title: string; contentType: string; content: Buffer },
    ) {
      const offering = await managedOffering(reviewer, offeringId);
      const sha256 = createHash('sha256').update(input.content).digest('hex');
      const key = `offerings/${offering.orgId}/${offering.id}/${input.kind}/${sha256}`;
      await storage.put(key, input.content, input.contentType);
      // The offering's row lock serialises version numbering: concurrent uploads get 1, 2, 3...
      const row = await db.transaction(async (tx) => {
        await repo.lock(offering.id, tx);
        const document = await repo.insertDocument(
          {
            offeringId: offering.id,
            kind: input.kind,
            title: input.title,
            contentType: input.contentType,
            sizeBytes: input.content.length,
            sha256,
            storageKey: key,
          },
          tx,
        );
        await deps.audit.record(tx, {
          orgId: offering.orgId,
          action: 'offering.document.added',
          subject: { type: 'offering_document', id: document.id },
          related: [{ type: 'offering', id: offering.id }],
          details: { kind: document.kind, version: document.version, sha256: document.sha256 },
        });
        return document;
      });
      return presentDocument(row, await storage.presignGet(row.storageKey, { expiresInSeconds: 900 }));
    },

    latestAgreement: (offeringId: string) => repo.latestDocument(offeringId, 'subscription_agreement'),
  };
}

export type OfferingsService = ReturnType<typeof offeringsService>;
