import { z } from 'zod';
import { offsetPagingQuery } from '../http/paging.ts';
import type { AuditEntryRow } from './audit.repo.ts';
import type { ChainReport } from './audit.service.ts';
import { isoDateTime } from '../http/times.ts';

export const actorKind = z.enum(['user', 'org_admin', 'platform_staff', 'api_key', 'system']);

/** Query of the audit reads: every filter optional, `limit`/`offset` paging, newest first. */
export const auditQuery = offsetPagingQuery.extend({
  subject_type: z.string().min(1).max(100).optional(),
  subject_id: z.string().min(1).max(200).optional(),
  actor_kind: actorKind.optional(),
  actor_id: z.string().min(1).max(200).optional(),
  action: z.string().min(1).max(100).optional(),
  from: isoDateTime().optional(),
  to: isoDateTime().optional(),
});

export const auditEntryResponse = z.object({
  id: z.uuid(),
  chain_id: z.string(),
  seq: z.number(),
  org_id: z.uuid().nullable(),
  actor: z.object({ kind: actorKind, id: z.string().nullable() }),
  action: z.string(),
  subject: z.object({ type: z.string(), id: z.string() }),
  related: z.array(z.string()),
  request_id: z.string().nullable(),
  state_digest: z.string().nullable().describe('HMAC-SHA256 of the before/after state, under a key only the platform holds'),
  details: z.record(z.string(), z.unknown()),
  occurred_at: z.date(),
  prev_hash: z.string(),
  hash: z.string().describe('SHA-256 of the canonical entry, chaining it to prev_hash'),
});

export const chainReportResponse = z.object({
  chain_id: z.string(),
  org_id: z.uuid().nullable(),
  entries: z.number(),
  anchored_seq: z.number(),
  ok: z.boolean(),
  broken: z.object({ seq: z.number(), entry_id: z.string().nullable(), reason: z.string() }).optional(),
});

export const presentEntry = (row: AuditEntryRow): z.infer<typeof auditEntryResponse> => ({
  id: row.id,
  chain_id: row.chainId,
  seq: Number(row.seq),
  org_id: row.orgId,
  actor: { kind: row.actorKind, id: row.actorId },
  action: row.action,
  subject: { type: row.subjectType, id: row.subjectId },
  related: row.related,
  request_id: row.requestId,
  state_digest: row.stateDigest,
  details: row.details as Record<string, unknown>,
  occurred_at: row.occurredAt,
  prev_hash: row.prevHash,
  hash: row.hash,
});

export const presentReport = (report: ChainReport): z.infer<typeof chainReportResponse> => ({
  chain_id: report.chainId,
  org_id: report.orgId,
  entries: report.entries,
  anchored_seq: report.anchoredSeq,
  ok: report.ok,
  ...(report.broken ? { broken: { seq: report.broken.seq, entry_id: report.broken.entryId, reason: report.broken.reason } } : {}),
});
