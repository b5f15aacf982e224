import { createHash, randomUUID } from 'node:crypto';
import { assertNotOwnReview, reviewerLabel, reviewerOrg, type Reviewer, type UserPrincipal } from '../../platform/auth/principal.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import type { AuditWriter } from '../../platform/audit/audit.service.ts';
import { publish } from '../../platform/events/outbox.ts';
import { AppError, notFound } from '../../platform/http/errors.ts';
import type { CursorPaging } from '../../platform/http/paging.ts';
import { MAX_UPLOAD_BYTES, type ObjectStorage, type PresignedUpload, type StoredObject } from '../../platform/storage/storage.ts';
import type { AccreditationRepo, AccreditationRow, DocumentRow, ReviewStatus } from './accreditation.repo.ts';

type Basis = NonNullable<AccreditationRow['basis']>;
type DocumentType = DocumentRow['documentType'];
export type ReviewAction = 'start_review' | 'request_info' | 'approve' | 'deny';

const PROOF_FOR_BASIS: Record<Exclude<Basis, 'not_accredited'>, DocumentType> = {
  income: 'income_proof',
  net_worth: 'net_worth_proof',
  license_7_65_82: 'license_proof',
  entity: 'entity_proof',
};
const UPLOAD_URL_TTL_SECONDS = 15 * 60;
const RESUBMITTABLE: ReviewStatus[] = ['not_required', 'pending_review', 'more_info_needed', 'denied', 'expired'];
const ACCEPTS_DOCUMENTS: ReviewStatus[] = ['pending_review', 'more_info_needed'];

/** Review transitions: which review statuses each action may start from, and where it leads. */
const TRANSITIONS: Record<
  ReviewAction,
  { from: ReviewStatus[]; to: ReviewStatus; event?: string; needsDocument?: boolean; needsReason?: boolean }
> = {
  start_review: { from: ['pending_review'], to: 'under_review', needsDocument: true },
  request_info: {
    from: ['pending_review', 'under_review'],
    to: 'more_info_needed',
    event: 'accreditation.more_info_needed',
    needsReason: true,
  },
  approve: { from: ['pending_review', 'under_review'], to: 'approved', event: 'accreditation.approved', needsDocument: true },
  deny: { from: ['pending_review', 'under_review', 'more_info_needed'], to: 'denied', event: 'accreditation.denied', needsReason: true },
};

export type Accreditation = {
  id: string;
  userId: string;
  orgId: string;
  accreditationStatus: AccreditationRow['status'];
  accreditationBasis: AccreditationRow['basis'];
  reviewStatus: ReviewStatus;
  verified: boolean;
  reviewReason: string | null;
  submittedAt: Date | null;
  reviewedAt: Date | null;
  expiresAt: Date | null;
  documents: ReturnType<typeof presentDocument>[];
  createdAt: Date;
  updatedAt: Date;
};

export type AccreditationEligibility = {
  status: AccreditationRow['status'];
  basis: AccreditationRow['basis'];
  reviewStatus: ReviewStatus;
  verified: boolean;
  expiresAt: Date | null;
};

function presentDocument(row: DocumentRow) {
  return {
    id: row.id,
    accreditationId: row.accreditationId,
    documentType: row.documentType,
    fileName: row.fileName,
    contentType: row.contentType,
    fileSizeBytes: row.fileSizeBytes,
    sha256: row.sha256,
    status: row.status,
    uploadedAt: row.uploadedAt,
    createdAt: row.createdAt,
  };
}

const isVerified = (row: AccreditationRow) => row.reviewStatus === 'approved' && row.expiresAt !== null && row.expiresAt > new Date();

export function accreditationService(deps: {
  db: Db;
  repo: AccreditationRepo;
  storage: ObjectStorage;
  validityDays: number;
  audit: AuditWriter;
}) {
  const { db, repo, storage } = deps;

  /**
   * An approved accreditation past its end date becomes expired, in the database too, audited as
   * `accreditation.expired` (actor: the system) in the same transaction (`tx`, or one of its own).
   */
  async function withExpiry(row: AccreditationRow, tx?: Executor): Promise<AccreditationRow> {
    const due = (current: AccreditationRow) =>
      current.reviewStatus === 'approved' && !!current.expiresAt && current.expiresAt <= new Date();
    if (!due(row)) return row;
    const expire = async (inTx: Executor) => {
      // Locked and checked again: of two readers at once, one expires it and records it.
      const current = (await repo.lock(row.id, inTx)) ?? row;
      if (!due(current)) return current;
      const expired = await repo.update(row.id, { status: 'expired', reviewStatus: 'expired' }, inTx);
      await deps.audit.record(inTx, {
        orgId: row.orgId,
        action: 'accreditation.expired',
        subject: { type: 'accreditation', id: row.id },
        related: [{ type: 'user', id: row.userId }],
        before: current,
        after: expired,
        details: { expires_at: current.expiresAt!.toISOString() },
        actor: { kind: 'system', id: 'accreditation:expiry' },
      });
      await publish(inTx, {
        orgId: row.orgId,
        type: 'accreditation.expired',
        data: { accreditation_id: row.id, user_id: row.userId, review_status: 'expired' },
      });
      return expired;
    };
    return tx ? expire(tx) : db.transaction(expire);
  }

  async function present(row: AccreditationRow): Promise<Accreditation> {
    return presentWith(row, await repo.documents(row.id));
  }

  /** Presents a page of rows with their documents read in one query. */
  async function presentPage(rows: AccreditationRow[]): Promise<Accreditation[]> {
    const documents = await repo.documentsOf(rows.map((row) => row.id));
    return rows.map((row) => presentWith(row, documents.get(row.id) ?? []));
  }

  function presentWith(row: AccreditationRow, documents: DocumentRow[]): Accreditation {
    return {
      id: row.id,
      userId: row.userId,
      orgId: row.orgId,
      accreditationStatus: row.status,
      accreditationBasis: row.basis,
      reviewStatus: row.reviewStatus,
      verified: isVerified(row),
      reviewReason: row.reviewReason,
      submittedAt: row.submittedAt,
      reviewedAt: row.reviewedAt,
      expiresAt: row.expiresAt,
      documents: documents.map(presentDocument),
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }

  async function own(principal: UserPrincipal): Promise<AccreditationRow> {
    return withExpiry(await repo.getOrCreate({ orgId: principal.orgId, userId: principal.userId }));
  }

  async function ownById(principal: UserPrincipal, id: string): Promise<AccreditationRow> {
    const row = await repo.find(id);
    if (!row || row.orgId !== principal.orgId || (row.userId !== principal.userId && principal.role !== 'org_admin'))
      throw notFound('accreditation');
    return withExpiry(row);
  }

  function assertAcceptsDocuments(row: AccreditationRow, documentType: DocumentType) {
    if (row.status !== 'accredited' || !ACCEPTS_DOCUMENTS.includes(row.reviewStatus)) {
      throw new AppError(
        'INVALID_STATE',
        `Documents are accepted after an accredited self-certification, while review is pending; review is ${row.reviewStatus}`,
      );
    }
    const expected = PROOF_FOR_BASIS[row.basis as Exclude<Basis, 'not_accredited'>];
    if (documentType !== expected) {
      throw new AppError('VALIDATION_ERROR', `documentType must be ${expected} for basis ${row.basis}`, [
        { field: 'documentType', message: `must be ${expected} for basis ${row.basis}` },
      ]);
    }
  }

  async function recordUpload(accreditation: AccreditationRow, document: DocumentRow, tx: Executor) {
    if (accreditation.reviewStatus === 'more_info_needed') await repo.update(accreditation.id, { reviewStatus: 'pending_review' }, tx);
    await deps.audit.record(tx, {
      orgId: accreditation.orgId,
      action: 'accreditation.document.uploaded',
      subject: { type: 'accreditation', id: accreditation.id },
      related: [
        { type: 'user', id: accreditation.userId },
        { type: 'accreditation_document', id: document.id },
      ],
      after: document,
      details: { document_id: document.id, document_type: document.documentType, review_status: accreditation.reviewStatus },
    });
    await publish(tx, {
      orgId: accreditation.orgId,
      type: 'accreditation.document.uploaded',
      data: {
        accreditation_id: accreditation.id,
        user_id: accreditation.userId,
        document_id: document.id,
        document_type: document.documentType,
      },
    });
  }

  const storageKey = (row: AccreditationRow, documentId: string, fileName: string) =>
    `accreditation/${row.orgId}/${row.userId}/${documentId}/${fileName.replace(/[^\w.-]/g, '_').replace(/^\.+$/, '_')}`;

  return {
    /**
     * Expires approved accreditations past their end date (in batches of 100, each in its own
     * transaction, audited and published), so the change is recorded and announced even when nobody
     * reads them; run periodically by the worker (`startMaintenance`). Returns how many it expired.
     */
    async sweepExpired(): Promise<number> {
      let count = 0;
      for (;;) {
        const due = await repo.dueToExpire(100);
        for (const row of due) if ((await withExpiry(row)).reviewStatus === 'expired') count++;
        if (due.length < 100) return count;
      }
    },

    get: async (principal: UserPrincipal) => present(await own(principal)),
    getById: async (principal: UserPrincipal, id: string) => present(await ownById(principal, id)),

    async submit(
      principal: UserPrincipal,
      input: { accreditationStatus: 'accredited' | 'non_accredited'; accreditationBasis: Basis },
    ): Promise<Accreditation> {
      const { accreditationStatus: status, accreditationBasis: basis } = input;
      if ((status === 'non_accredited') !== (basis === 'not_accredited')) {
        const message =
          status === 'non_accredited'
            ? 'must be not_accredited for non_accredited'
            : 'must be income, net_worth, license_7_65_82 or entity';
        throw new AppError('VALIDATION_ERROR', `accreditationBasis ${message}`, [{ field: 'accreditationBasis', message }]);
      }
      const current = await own(principal);
      const updated = await db.transaction(async (tx) => {
        const row = (await repo.lock(current.id, tx))!;
        if (!RESUBMITTABLE.includes(row.reviewStatus)) {
          throw new AppError('INVALID_STATE', `Accreditation cannot be re-certified while review is ${row.reviewStatus}`);
        }
        const next = await repo.update(
          row.id,
          {
            status,
            basis,
            reviewStatus: status === 'accredited' ? 'pending_review' : 'not_required',
            submittedAt: new Date(),
            reviewedAt: null,
            reviewedBy: null,
            reviewReason: null,
            expiresAt: null,
          },
          tx,
        );
        await deps.audit.record(tx, {
          orgId: next.orgId,
          action: 'accreditation.submitted',
          subject: { type: 'accreditation', id: next.id },
          related: [{ type: 'user', id: next.userId }],
          before: row,
          after: next,
          details: { accreditation_status: status, accreditation_basis: basis, review_status: next.reviewStatus },
        });
        await publish(tx, {
          orgId: next.orgId,
          type: 'accreditation.submitted',
          data: {
            accreditation_id: next.id,
            user_id: next.userId,
            accreditation_status: status,
            accreditation_basis: basis,
            review_status: next.reviewStatus,
          },
        });
        return next;
      });
      return present(updated);
    },

    async requestUpload(
      principal: UserPrincipal,
      input: { documentType: DocumentType; fileName: string; contentType: string; fileSizeBytes: number },
    ): Promise<ReturnType<typeof presentDocument> & { upload: PresignedUpload }> {
      const accreditation = await own(principal);
      assertAcceptsDocuments(accreditation, input.documentType);
      const id = randomUUID();
      const key = storageKey(accreditation, id, input.fileName);
      const upload = await storage.presignPut(key, {
        contentType: input.contentType,
        contentLength: input.fileSizeBytes,
        expiresInSeconds: UPLOAD_URL_TTL_SECONDS,
      });
      const document = await repo.insertDocument({
        id,
        accreditationId: accreditation.id,
        ...input,
        storageKey: key,
        status: 'upload_pending',
        uploadExpiresAt: upload.expiresAt,
      });
      return { ...presentDocument(document), upload };
    },

    /**
     * Accepts the uploaded object. Before any file has arrived the document stays upload_pending
     * (409 INVALID_STATE) until its upload URL expires, then fails. An oversized or mismatched file
     * fails the document (422 UPLOAD_FAILED). An accepted file is copied, with its SHA-256, to a
     * key no upload URL reaches: the reviewer reads exactly the bytes checked here, even if the
     * still-valid upload URL replaces the original afterwards.
     */
    async finalizeUpload(principal: UserPrincipal, documentId: string) {
      const document = await repo.findDocument(documentId);
      const accreditation = document ? await repo.find(document.accreditationId) : undefined;
      if (!document || !accreditation || accreditation.orgId !== principal.orgId || accreditation.userId !== principal.userId)
        throw notFound('document');
      if (document.status !== 'upload_pending') throw new AppError('INVALID_STATE', `Document is already ${document.status}`);
      const head = await storage.head(document.storageKey);
      const stillOpen = document.uploadExpiresAt !== null && document.uploadExpiresAt > new Date();
      if (!head && stillOpen) {
        throw new AppError(
          'INVALID_STATE',
          `No file has arrived yet; upload it to the URL, then finalize again before ${document.uploadExpiresAt!.toISOString()}`,
        );
      }
      const object: (StoredObject & { body?: Buffer }) | null =
        head && head.size <= MAX_UPLOAD_BYTES ? await storage.get(document.storageKey) : head;
      const failure = !object
        ? 'no file was uploaded before the upload URL expired'
        : object.size > MAX_UPLOAD_BYTES
          ? 'file exceeds 10 MB'
          : object.size !== document.fileSizeBytes
            ? `file is ${object.size} bytes, ${document.fileSizeBytes} were declared`
            : object.contentType !== document.contentType
              ? `file type is ${object.contentType}, ${document.contentType} was declared`
              : undefined;
      let accepted: { sha256: string; key: string } | undefined;
      if (!failure && object?.body) {
        const sha256 = createHash('sha256').update(object.body).digest('hex');
        const key = `reviewed/${document.id}/${sha256}`;
        await storage.put(key, object.body, document.contentType);
        accepted = { sha256, key };
      }
      const finalized = await db.transaction(async (tx) => {
        const locked = await repo.lockDocument(document.id, tx);
        if (locked?.status !== 'upload_pending') throw new AppError('INVALID_STATE', `Document is already ${locked?.status}`);
        if (!accepted) return repo.updateDocument(document.id, { status: 'upload_failed', failureReason: failure ?? 'unreadable' }, tx);
        const uploaded = await repo.updateDocument(
          document.id,
          { status: 'uploaded', uploadedAt: new Date(), storageKey: accepted.key, sha256: accepted.sha256 },
          tx,
        );
        await recordUpload((await repo.lock(accreditation.id, tx))!, uploaded, tx);
        return uploaded;
      });
      if (!accepted)
        throw new AppError('UPLOAD_FAILED', `Upload failed: ${failure ?? 'the file could not be read'}; request a new upload URL`);
      return presentDocument(finalized);
    },

    /** The older base64 route: the file arrives in the request body and is stored by us. */
    async uploadBase64(
      principal: UserPrincipal,
      accreditationId: string,
      input: { documentType: DocumentType; fileName: string; contentType: string; content: string },
    ) {
      const accreditation = await ownById(principal, accreditationId);
      if (accreditation.userId !== principal.userId) throw notFound('accreditation');
      assertAcceptsDocuments(accreditation, input.documentType);
      const bytes = Buffer.from(input.content, 'base64');
      if (bytes.length > MAX_UPLOAD_BYTES) {
        throw new AppError('VALIDATION_ERROR', 'content must be at most 10 MB', [
          { field: 'content', message: 'must be at most 10 MB once decoded' },
        ]);
      }
      const id = randomUUID();
      const key = storageKey(accreditation, id, input.fileName);
      await storage.put(key, bytes, input.contentType);
      const document = await db.transaction(async (tx) => {
        const row = await repo.insertDocument(
          {
            id,
            accreditationId,
            documentType: input.documentType,
            fileName: input.fileName,
            contentType: input.contentType,
            fileSizeBytes: bytes.length,
            storageKey: key,
            sha256: createHash('sha256').update(bytes).digest('hex'),
            status: 'uploaded',
            uploadedAt: new Date(),
          },
          tx,
        );
        await recordUpload((await repo.lock(accreditationId, tx))!, row, tx);
        return row;
      });
      return presentDocument(document);
    },

    /** A short-lived download link, so a reviewer can read the document. */
    async documentDownload(reviewer: Reviewer, documentId: string): Promise<{ url: string; expiresAt: Date }> {
      const document = await repo.findDocument(documentId);
      const accreditation = document ? await repo.find(document.accreditationId) : undefined;
      const scope = reviewerOrg(reviewer);
      if (!document || !accreditation || (scope !== undefined && accreditation.orgId !== scope)) throw notFound('document');
      if (document.status !== 'uploaded') throw new AppError('INVALID_STATE', `Document is ${document.status}`);
      const expiresInSeconds = 300;
      return {
        url: await storage.presignGet(document.storageKey, { expiresInSeconds }),
        expiresAt: new Date(Date.now() + expiresInSeconds * 1000),
      };
    },

    async listForReview(reviewer: Reviewer, reviewStatus: ReviewStatus, paging: CursorPaging) {
      const { rows, ...count } = await repo.listForReview(
        { orgId: reviewerOrg(reviewer), reviewStatus },
        { limit: paging.limit, offset: paging.offset, after: paging.cursor },
      );
      return { items: await presentPage(rows), ...count };
    },

    async review(reviewer: Reviewer, id: string, action: ReviewAction, reason: string | undefined): Promise<Accreditation> {
      const transition = TRANSITIONS[action];
      if (transition.needsReason && !reason)
        throw new AppError('VALIDATION_ERROR', 'reason is required', [{ field: 'reason', message: 'is required' }]);
      const reviewed = await db.transaction(async (tx) => {
        const locked = await repo.lock(id, tx);
        const scope = reviewerOrg(reviewer);
        if (!locked || (scope !== undefined && locked.orgId !== scope)) throw notFound('accreditation');
        assertNotOwnReview(reviewer, locked.userId, 'accreditation');
        const row = await withExpiry(locked, tx);
        if (!transition.from.includes(row.reviewStatus)) {
          throw new AppError('INVALID_STATE', `Cannot ${action.replace('_', ' ')} an accreditation whose review is ${row.reviewStatus}`);
        }
        if (transition.needsDocument && !(await repo.documents(row.id, tx)).some((document) => document.status === 'uploaded')) {
          throw new AppError('INVALID_STATE', 'No supporting document has been uploaded yet');
        }
        const now = new Date();
        const next = await repo.update(
          row.id,
          {
            reviewStatus: transition.to,
            reviewedBy: reviewerLabel(reviewer),
            reviewReason: reason ?? null,
            reviewedAt: now,
            ...(action === 'approve' ? { expiresAt: new Date(now.getTime() + deps.validityDays * 86_400_000) } : {}),
          },
          tx,
        );
        await deps.audit.record(tx, {
          orgId: next.orgId,
          action: `accreditation.review.${action}`,
          subject: { type: 'accreditation', id: next.id },
          related: [{ type: 'user', id: next.userId }],
          before: row,
          after: next,
          details: { from_review_status: row.reviewStatus, review_status: next.reviewStatus, with_reason: reason !== undefined },
        });
        if (transition.event) {
          await publish(tx, {
            orgId: next.orgId,
            type: transition.event,
            data: { accreditation_id: next.id, user_id: next.userId, review_status: next.reviewStatus },
          });
        }
        return next;
      });
      return present(reviewed);
    },

    /** Live accreditation state for eligibility checks and token claims. */
    async eligibility(orgId: string, userId: string): Promise<AccreditationEligibility> {
      const found = await repo.findForUser(orgId, userId);
      if (!found) return { status: 'pending', basis: null, reviewStatus: 'not_required', verified: false, expiresAt: null };
      const row = await withExpiry(found);
      return { status: row.status, basis: row.basis, reviewStatus: row.reviewStatus, verified: isVerified(row), expiresAt: row.expiresAt };
    },
  };
}

export type AccreditationService = ReturnType<typeof accreditationService>;
