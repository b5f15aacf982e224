import { and, eq, sql } from 'drizzle-orm';
import { Keypair } from '@stellar/stellar-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompactSign, exportJWK, generateKeyPair } from 'jose';
import { signingKeys } from '../../src/identity/identity.tables.ts';
import { randomUUID } from 'node:crypto';
import { auditAnchors, auditChains, auditEntries, rateLimitCounters } from '../../src/platform/platform.tables.ts';
import { chainIdFor, entryHash } from '../../src/platform/audit/audit.service.ts';
import { queryRows, type Executor } from '../../src/platform/db/database.ts';
import { loadConfig } from '../../src/config.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { payCheckout, seedInvestor, seedOffering, subscriptionBody } from '../support/issuance.ts';

let t: TestApp;
let admin: Record<string, string>;
let platform: Record<string, string>;
let adminKeyId: string;
beforeAll(async () => {
  // Wallets verified at sign-up, so a key-server login needs no mail round trip.
  t = await startTestApp({ keyserver: { ...loadConfig({}).keyserver, emailVerification: false } });
  admin = (await t.signIn('admin@example.com')).auth;
  const key = await t.modules.identity.orgs.createAdminKey('audit');
  adminKeyId = key.id;
  platform = { 'x-admin-key': key.key };
});
afterAll(() => t.close());

const entriesFor = (subjectType: string, subjectId: string) =>
  t.db
    .select()
    .from(auditEntries)
    .where(and(eq(auditEntries.subjectType, subjectType), eq(auditEntries.subjectId, subjectId)))
    .orderBy(auditEntries.seq);
const actionsOf = (rows: { action: string }[]) => rows.map((row) => row.action);

/** A subscription from creation to shares: created, signed, paid through the Stripe double, approved. */
async function completedSubscription(email: string) {
  const investor = await seedInvestor(t, email);
  const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506c' });
  const created = await t.post(`/issuance/offerings/${offeringId}/subscriptions`, subscriptionBody(securityId, 10), investor.auth);
  expect(created.status, created.text).toBe(201);
  const id = created.body.data.id as string;
  expect(
    (await t.post(`/issuance/subscriptions/${id}/sign-agreement`, { signerName: 'John Smith', consent: true }, investor.auth)).status,
  ).toBe(200);
  const checkout = await t.post(`/issuance/subscriptions/${id}/create-checkout-session`, undefined, investor.auth);
  await payCheckout(t, checkout.body.data.checkout_url);
  const approved = await t.post(`/admin/subscriptions/${id}/approve`, {}, admin);
  expect(approved.body.data?.status, approved.text).toBe('completed');
  return { id, investor, offeringId, securityId, createdRequestId: created.headers.get('x-request-id') };
}

describe('audit happy', () => {
  it('a subscription from creation to shares leaves one entry per step, with actor and request id, and one call shows its timeline', async () => {
    const { id, investor, createdRequestId } = await completedSubscription('audit-journey@example.com');
    const rows = await entriesFor('subscription', id);
    expect(actionsOf(rows)).toEqual([
      'subscription.created',
      'subscription.pending_payment',
      'subscription.payment_initiated',
      'subscription.pending_review',
      'subscription.approved',
      'subscription.completed',
    ]);
    const [created, signed, , funded, approved] = rows;
    expect(created).toMatchObject({ orgId: t.org.id, actorKind: 'user', actorId: investor.userId, requestId: createdRequestId });
    expect(signed).toMatchObject({ actorKind: 'user', actorId: investor.userId });
    expect(funded).toMatchObject({ actorKind: 'system', actorId: 'payments:stripe' });
    expect(approved).toMatchObject({ actorKind: 'org_admin' });
    expect(created!.stateDigest).toMatch(/^[0-9a-f]{64}$/);

    const timeline = await t.get(`/admin/audit/subjects/subscription/${id}`, admin);
    expect(timeline.status, timeline.text).toBe(200);
    const actions = actionsOf(timeline.body.data.items as { action: string }[]);
    expect(actions).toEqual([
      'subscription.created',
      'subscription.pending_payment',
      'subscription.payment_initiated',
      'subscription.pending_review',
      'subscription.approved',
      'share.issued',
      'subscription.completed',
    ]);
    const share = (timeline.body.data.items as { action: string; subject: { id: string }; details: Record<string, unknown> }[]).find(
      (item) => item.action === 'share.issued',
    )!;
    expect(share.details).toMatchObject({ units: 10, restricted: true });
    expect(await entriesFor('share', share.subject.id)).toHaveLength(1);
  });

  it('KYC, accreditation, offering and key changes each leave exactly one entry', async () => {
    const investor = await seedInvestor(t, 'audit-identity@example.com');
    const kyc = (
      await t.db
        .select()
        .from(auditEntries)
        .where(sql`${auditEntries.related} @> array[${`user:${investor.userId}`}]::text[]`)
    ).map((row) => row.action);
    expect(kyc.filter((action) => action === 'kyc.verification.created')).toHaveLength(1);
    expect(kyc.filter((action) => action === 'kyc.verification.approved')).toHaveLength(1);
    expect(kyc.filter((action) => action === 'accreditation.submitted')).toHaveLength(1);
    expect(kyc.filter((action) => action === 'accreditation.document.uploaded')).toHaveLength(1);
    expect(kyc.filter((action) => action === 'accreditation.review.approve')).toHaveLength(1);
    const [approvedKyc] = await t.db
      .select()
      .from(auditEntries)
      .where(
        and(
          eq(auditEntries.action, 'kyc.verification.approved'),
          sql`${auditEntries.related} @> array[${`user:${investor.userId}`}]::text[]`,
        ),
      );
    expect(approvedKyc).toMatchObject({ actorKind: 'system', actorId: 'kyc:sandbox' });

    const { offeringId, issuerId, securityId } = await seedOffering(t, admin);
    expect(actionsOf(await entriesFor('issuer', issuerId))).toEqual(['issuer.created']);
    expect(actionsOf(await entriesFor('offering', offeringId))).toEqual(['offering.created', 'offering.opened']);
    expect(actionsOf(await entriesFor('security_class', securityId))).toEqual(['security_class.created']);
    const [opened] = await t.db
      .select()
      .from(auditEntries)
      .where(and(eq(auditEntries.subjectId, offeringId), eq(auditEntries.action, 'offering.opened')));
    expect(opened).toMatchObject({ actorKind: 'org_admin' });
    const renamed = await t.patch(`/admin/offerings/${offeringId}`, { name: 'Renamed' }, platform);
    expect(renamed.status, renamed.text).toBe(200);
    const [updated] = await t.db
      .select()
      .from(auditEntries)
      .where(and(eq(auditEntries.subjectId, offeringId), eq(auditEntries.action, 'offering.updated')));
    expect(updated).toMatchObject({ actorKind: 'platform_staff', actorId: `admin_key:${adminKeyId}`, details: { fields: 'name' } });
    expect(actionsOf(await entriesFor('offering', offeringId))).toEqual(['offering.created', 'offering.opened', 'offering.updated']);

    const key = await t.modules.identity.orgs.createApiKey(t.org.id, 'audit');
    await t.modules.identity.orgs.revokeApiKey(key.id);
    expect(actionsOf(await entriesFor('api_key', key.id))).toEqual(['api_key.created', 'api_key.revoked']);
    expect(actionsOf(await entriesFor('admin_key', adminKeyId))).toEqual(['admin_key.created']);
    const [adminKeyEntry] = await entriesFor('admin_key', adminKeyId);
    expect(adminKeyEntry).toMatchObject({ orgId: null, chainId: 'platform', actorKind: 'platform_staff', actorId: 'cli' });
  });

  it('webhook endpoint and secret changes are recorded with the API key as actor and no URL in clear', async () => {
    const apiKey = { 'x-api-key': t.apiKey };
    const created = await t.post('/notifications/webhooks', { url: 'https://hooks.example.com/audit', eventTypes: ['*'] }, apiKey);
    expect(created.status, created.text).toBe(201);
    const id = created.body.data.id as string;
    expect((await t.post(`/notifications/webhooks/${id}/rotate-secret`, {}, apiKey)).status).toBe(200);
    expect((await t.delete(`/notifications/webhooks/${id}`, apiKey)).status).toBeLessThan(300);
    const rows = await entriesFor('webhook_endpoint', id);
    expect(actionsOf(rows)).toEqual(['webhook.endpoint.created', 'webhook.secret.rotated', 'webhook.endpoint.deleted']);
    expect(rows[0]).toMatchObject({ actorKind: 'api_key', actorId: t.apiKeyId });
    expect(JSON.stringify(rows)).not.toContain('hooks.example.com');
  });

  it('a key-server login records the session it opens, on a key-server chain, naming the wallet row and nothing of the session', async () => {
    const owner = Keypair.random();
    const walletId = Buffer.from(owner.rawPublicKey()).toString('hex');
    const { wallet } = await t.modules.keyserver.wallets.create(
      { walletId, email: 'audit-wallet@example.com', accountId: owner.publicKey(), salt: 'c2FsdA==', keychainData: 'a2V5', kdfVersion: 2 },
      { accountId: Keypair.random().publicKey(), salt: 'c2FsdA==', keychainData: 'a2V5' },
      [{ publicKey: owner.publicKey(), roleId: 2, weight: 1000, identity: 1, details: '{}' }],
    );
    const login = await t.get(`/wallets/${walletId}`);
    expect(login.status, login.text).toBe(200);
    const sessionId = login.body.included?.[0]?.id as string;
    const rows = await entriesFor('wallet', wallet.id);
    expect(actionsOf(rows)).toEqual(['keyserver.session.created', 'keyserver.session.created']);
    expect(rows[1]).toMatchObject({ orgId: null, chainId: `keyserver:${wallet.id[0]}`, actorKind: 'user', actorId: `wallet:${wallet.id}` });
    expect(JSON.stringify(rows)).not.toContain(walletId);
    expect(JSON.stringify(rows)).not.toContain(sessionId);
  });

  it('recordWith puts a change and its entry in one statement: the first one of a chain makes its head, and the database hashes what verify hashes', async () => {
    const chain = `test:${randomUUID()}`;
    const counter = (key: string, executor: Executor = t.db) =>
      executor.insert(rateLimitCounters).values({ key, count: 1, resetAt: new Date(Date.now() + 60_000) });
    const audit = t.modules.audit;
    await audit.recordWith(t.db, { orgId: null, chain, action: 'test.first', subject: { type: 'test', id: '1' } }, counter(`${chain}:1`));
    // Text the canonical JSON escapes (quotes, backslashes, control characters) and text it does not (non-ASCII).
    await audit.recordWith(
      t.db,
      {
        orgId: null,
        chain,
        action: 'test.second',
        subject: { type: 'test', id: '2' },
        related: [{ type: 'test', id: '1' }],
        after: { name: 'Zoë' },
        details: { note: 'naïve "quoted" \\ back\nslash\ttab \u0001 ✓', count: 2, flag: true, none: null },
      },
      counter(`${chain}:2`),
    );
    await t.db.transaction(async (tx) => {
      await audit.recordWith(
        tx,
        { orgId: null, chain, action: 'test.in_transaction', subject: { type: 'test', id: '3' } },
        counter(`${chain}:3`, tx),
      );
    });
    const rows = await t.db.select().from(auditEntries).where(eq(auditEntries.chainId, chain)).orderBy(auditEntries.seq);
    expect(rows.map((row) => [row.seq, row.action])).toEqual([
      [1, 'test.first'],
      [2, 'test.second'],
      [3, 'test.in_transaction'],
    ]);
    expect(rows[1]).toMatchObject({ related: ['test:1'], details: { note: 'naïve "quoted" \\ back\nslash\ttab \u0001 ✓' } });
    expect(rows[1]!.stateDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(rows.map((row) => row.hash)).toEqual(rows.map((row) => entryHash(row)));
    expect((await audit.verify()).find((report) => report.chainId === chain)).toMatchObject({ ok: true, entries: 3 });
    expect(await t.db.$count(rateLimitCounters, sql`${rateLimitCounters.key} like ${`${chain}:%`}`)).toBe(3);

    // A change that fails takes its entry with it: the key is taken.
    await expect(
      audit.recordWith(t.db, { orgId: null, chain, action: 'test.refused', subject: { type: 'test', id: '4' } }, counter(`${chain}:1`)),
    ).rejects.toThrow();
    expect(await t.db.$count(auditEntries, eq(auditEntries.chainId, chain))).toBe(3);
    expect((await audit.verify()).find((report) => report.chainId === chain)).toMatchObject({ ok: true, entries: 3 });
  });

  it('an org admin reads their org only, with filters and paging; a platform admin filters by org', async () => {
    const page = await t.get('/identity/audit?action=subscription.created&limit=1', admin);
    expect(page.status, page.text).toBe(200);
    expect(page.body.data.items).toHaveLength(1);
    expect(page.body.data.meta.total).toBeGreaterThanOrEqual(1);
    expect(page.body.data.items[0]).toMatchObject({ org_id: t.org.id, action: 'subscription.created' });

    const other = await t.createOrg({ name: 'Other', adminEmails: ['other-admin@example.com'] });
    await t.modules.identity.orgs.createApiKey(other.org.id, 'other');
    const otherAdmin = (await t.signIn('other-admin@example.com', other)).auth;
    const mine = await t.get('/identity/audit?limit=100', otherAdmin);
    expect(mine.body.data.items.every((item: { org_id: string }) => item.org_id === other.org.id)).toBe(true);
    expect((await t.get(`/identity/audit?org_id=${t.org.id}`, otherAdmin)).status).toBe(403);

    const byActor = await t.get(`/admin/audit?org_id=${other.org.id}&actor_kind=platform_staff`, platform);
    expect(byActor.body.data.items.map((item: { action: string }) => item.action)).toContain('api_key.created');
    const future = await t.get(`/admin/audit?from=${encodeURIComponent(new Date(Date.now() + 3600_000).toISOString())}`, platform);
    expect(future.body.data.meta.total).toBe(0);
  });
});

describe('audit coverage', () => {
  it('users (first sign-in, role change, deletion) and their PII (create, update, delete) each leave exactly one entry, with no value in clear', async () => {
    const user = await t.signIn('coverage.user@example.com');
    expect(actionsOf(await entriesFor('user', user.userId))).toEqual(['user.created']);
    const pii = await t.post('/identity/user-pii', { firstName: 'Quintus', lastName: 'Coverage' }, user.auth);
    expect(pii.status, pii.text).toBe(201);
    expect(
      (await t.request('PATCH', `/identity/user-pii/${user.userId}`, { body: { lastName: 'Renamed' }, headers: user.auth })).status,
    ).toBe(200);
    expect((await t.request('PATCH', `/identity/users/${user.userId}`, { body: { role: 'org_admin' }, headers: admin })).status).toBe(200);
    expect((await t.request('DELETE', `/identity/user-pii/${user.userId}`, { headers: user.auth })).status).toBeLessThan(300);
    const rows = await entriesFor('user', user.userId);
    expect(actionsOf(rows)).toEqual(['user.created', 'pii.created', 'pii.updated', 'user.role_changed', 'pii.deleted']);
    expect(rows[2]!.details).toEqual({ fields: 'lastName' });
    expect(rows[3]!.details).toMatchObject({ role_from: 'user', role_to: 'org_admin' });
    expect(JSON.stringify(rows)).not.toMatch(/Quintus|Coverage|Renamed|coverage\.user/);
    expect((await t.request('DELETE', `/identity/users/${user.userId}`, { headers: admin })).status).toBeLessThan(300);
    expect(actionsOf(await entriesFor('user', user.userId)).at(-1)).toBe('user.deleted');
  });

  it('an approved accreditation past its end date is expired by the sweep, once, audited and announced', async () => {
    const user = await t.signIn('coverage.expiry@example.com');
    const certified = await t.request('PUT', '/identity/accreditations', {
      body: { accreditationStatus: 'accredited', accreditationBasis: 'income' },
      headers: user.auth,
    });
    const id = certified.body.data.id as string;
    await t.db.execute(sql`update accreditations set review_status = 'approved', expires_at = now() - interval '1 day' where id = ${id}`);
    expect(await t.modules.identity.accreditation.sweepExpired()).toBe(1);
    expect(await t.modules.identity.accreditation.sweepExpired()).toBe(0);
    const rows = await entriesFor('accreditation', id);
    expect(actionsOf(rows).filter((action) => action === 'accreditation.expired')).toHaveLength(1);
    expect(rows.at(-1)).toMatchObject({ actorKind: 'system', actorId: 'accreditation:expiry' });
    const events = await queryRows<{ n: number }>(
      t.db,
      sql`select count(*)::int as n from outbox_events where type = 'accreditation.expired' and data->>'accreditation_id' = ${id}`,
    );
    expect(events[0]!.n).toBe(1);
  });
});

describe('audit error', () => {
  it('a change that rolls back leaves no entry, and the chain stays whole', async () => {
    const before = await t.db.$count(auditEntries);
    await expect(
      t.db.transaction(async (tx) => {
        await t.modules.audit.record(tx, { orgId: t.org.id, action: 'test.rolled_back', subject: { type: 'test', id: 'x' } });
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await t.db.$count(auditEntries)).toBe(before);
    const [report] = await t.modules.audit.verify({ orgId: t.org.id });
    expect(report).toMatchObject({ ok: true });
  });

  it('bad filters are 400 and do not reach the log; unauthenticated reads are 401', async () => {
    expect((await t.get('/admin/audit?actor_kind=robot', platform)).status).toBe(400);
    expect((await t.get('/admin/audit?from=yesterday', platform)).status).toBe(400);
    expect((await t.get('/admin/audit')).status).toBe(401);
    expect((await t.get('/admin/audit/subjects/Bad-Type/x', platform)).status).toBe(400);
  });
});

describe('audit security', () => {
  it('editing any entry row makes verify fail at that entry', async () => {
    const org = await t.createOrg({ name: 'Tamper' });
    for (let i = 0; i < 4; i++) await t.modules.identity.orgs.createApiKey(org.org.id, `k${i}`);
    const chainId = chainIdFor(org.org.id);
    const [ok] = await t.modules.audit.verify({ orgId: org.org.id });
    expect(ok).toMatchObject({ ok: true, entries: 5 });
    const entries = await t.db.select().from(auditEntries).where(eq(auditEntries.chainId, chainId)).orderBy(auditEntries.seq);
    for (const [column, value] of [
      ['details', sql`'{"forged":true}'::jsonb`],
      ['actor_id', sql`'someone-else'`],
      ['occurred_at', sql`occurred_at - interval '1 day'`],
      ['action', sql`'api_key.revoked'`],
    ] as const) {
      const target = entries[2]!;
      const original = await t.db.select().from(auditEntries).where(eq(auditEntries.id, target.id));
      await t.db.execute(sql`update audit_entries set ${sql.raw(column)} = ${value} where id = ${target.id}`);
      const [report] = await t.modules.audit.verify({ orgId: org.org.id });
      expect(report, column).toMatchObject({ ok: false, broken: { seq: 3, entryId: target.id } });
      const verified = await t.get('/admin/audit/verify', platform);
      expect(verified.body.data.ok).toBe(false);
      await t.db.update(auditEntries).set(original[0]!).where(eq(auditEntries.id, target.id));
    }
    // A rewritten hash (recomputed for the forged row) breaks the next entry's link instead.
    await t.db.execute(sql`update audit_entries set hash = repeat('a', 64) where id = ${entries[1]!.id}`);
    const [relinked] = await t.modules.audit.verify({ orgId: org.org.id });
    expect(relinked!.broken?.seq).toBe(2);
    await t.db.update(auditEntries).set({ hash: entries[1]!.hash }).where(eq(auditEntries.id, entries[1]!.id));
    expect((await t.modules.audit.verify({ orgId: org.org.id }))[0]).toMatchObject({ ok: true });
  });

  it('deleting the newest entries is caught against the last anchor, even with the chain head rewound', async () => {
    const org = await t.createOrg({ name: 'Truncate' });
    for (let i = 0; i < 3; i++) await t.modules.identity.orgs.createApiKey(org.org.id, `k${i}`);
    const chainId = chainIdFor(org.org.id);
    const anchors = await t.modules.audit.anchor();
    expect(anchors.find((anchor) => anchor.chainId === chainId)).toMatchObject({ seq: 4 });
    expect((await t.modules.audit.verify({ orgId: org.org.id }))[0]).toMatchObject({ ok: true, anchoredSeq: 4 });

    const [third] = await t.db
      .select()
      .from(auditEntries)
      .where(and(eq(auditEntries.chainId, chainId), eq(auditEntries.seq, 2)));
    await t.db.delete(auditEntries).where(and(eq(auditEntries.chainId, chainId), sql`${auditEntries.seq} > 2`));
    await t.db.update(auditChains).set({ seq: 2, headHash: third!.hash }).where(eq(auditChains.chainId, chainId));
    const [report] = await t.modules.audit.verify({ orgId: org.org.id });
    expect(report).toMatchObject({ ok: false, broken: { seq: 3 } });
    expect(report!.broken!.reason).toMatch(/removed/);

    // A forged anchor (another signer) is refused as well.
    await t.db
      .update(auditAnchors)
      .set({ seq: 2, headHash: third!.hash, signature: 'e30.e30.AAAA' })
      .where(eq(auditAnchors.chainId, chainId));
    expect((await t.modules.audit.verify({ orgId: org.org.id }))[0]!.broken!.reason).toMatch(/signature/);
  });

  it('an anchor signed with a key row written in the database alone is not trusted', async () => {
    const org = await t.createOrg({ name: 'Forged key' });
    await t.modules.identity.orgs.createApiKey(org.org.id, 'k');
    const chainId = chainIdFor(org.org.id);
    await t.modules.audit.anchor();
    const [real] = await t.db.select().from(signingKeys).where(eq(signingKeys.purpose, 'audit_anchor'));
    // The attacker's own key pair, published in a row that copies the real row's sealed columns.
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
    const kid = 'forged-anchor-key';
    await t.db.insert(signingKeys).values({
      ...real!,
      kid,
      publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' },
      createdAt: new Date(real!.createdAt.getTime() - 1000),
    });
    const [head] = await t.db.select().from(auditChains).where(eq(auditChains.chainId, chainId));
    const forged = await new CompactSign(
      new TextEncoder().encode(
        JSON.stringify({ chain_id: chainId, seq: 7, head_hash: 'f'.repeat(64), anchored_at: new Date().toISOString() }),
      ),
    )
      .setProtectedHeader({ alg: 'RS256', kid })
      .sign(privateKey);
    await t.db
      .update(auditAnchors)
      .set({ seq: 7, headHash: 'f'.repeat(64), signature: forged })
      .where(eq(auditAnchors.chainId, chainId));
    const [report] = await t.modules.audit.verify({ orgId: org.org.id });
    expect(report).toMatchObject({ ok: false });
    expect(report!.broken!.reason).toMatch(/signature/);
    await expect(t.modules.audit.verify({ orgId: org.org.id, anchors: [forged] })).rejects.toThrow(/not signed by this platform/);
    expect(head!.seq).toBeGreaterThan(0);
    await t.db.delete(signingKeys).where(eq(signingKeys.kid, kid));
  });

  it('a deleted chain head, or anchors and chains deleted in the database, are caught (the latter against anchors kept elsewhere)', async () => {
    const org = await t.createOrg({ name: 'Deleted chain' });
    for (let i = 0; i < 3; i++) await t.modules.identity.orgs.createApiKey(org.org.id, `k${i}`);
    const chainId = chainIdFor(org.org.id);
    const kept = (await t.modules.audit.anchor()).filter((anchor) => anchor.chainId === chainId).map((anchor) => anchor.signature);
    expect(kept).toHaveLength(1);
    expect((await t.modules.audit.verify({ orgId: org.org.id, anchors: kept }))[0]).toMatchObject({ ok: true });

    // The head row alone deleted: the chain is still listed, and broken.
    const [head] = await t.db.select().from(auditChains).where(eq(auditChains.chainId, chainId));
    await t.db.delete(auditChains).where(eq(auditChains.chainId, chainId));
    const headless = (await t.modules.audit.verify()).find((report) => report.chainId === chainId);
    expect(headless).toMatchObject({ ok: false });
    expect(headless!.broken!.reason).toMatch(/head row was deleted/);
    await t.db.insert(auditChains).values(head!);

    // History rewritten, then the anchors deleted: the database alone can no longer tell; the kept anchor can.
    const entries = await t.db.select().from(auditEntries).where(eq(auditEntries.chainId, chainId)).orderBy(auditEntries.seq);
    await t.db.delete(auditAnchors).where(eq(auditAnchors.chainId, chainId));
    await t.db.delete(auditEntries).where(and(eq(auditEntries.chainId, chainId), sql`${auditEntries.seq} > 2`));
    await t.db.update(auditChains).set({ seq: 2, headHash: entries[1]!.hash }).where(eq(auditChains.chainId, chainId));
    expect((await t.modules.audit.verify({ orgId: org.org.id }))[0]).toMatchObject({ ok: true });
    const truncated = (await t.modules.audit.verify({ orgId: org.org.id, anchors: kept }))[0]!;
    expect(truncated).toMatchObject({ ok: false });
    expect(truncated.broken!.reason).toMatch(/removed: a kept anchor/);

    // The whole chain deleted.
    await t.db.delete(auditEntries).where(eq(auditEntries.chainId, chainId));
    await t.db.delete(auditChains).where(eq(auditChains.chainId, chainId));
    const gone = (await t.modules.audit.verify({ anchors: kept })).find((report) => report.chainId === chainId);
    expect(gone).toMatchObject({ ok: false });
    expect(gone!.broken!.reason).toMatch(/chain was deleted/);
  });

  it('verify run while the org is being written to reports the chain whole', async () => {
    const org = await t.createOrg({ name: 'Busy' });
    const writes = Promise.all(Array.from({ length: 20 }, (_, i) => t.modules.identity.orgs.createApiKey(org.org.id, `busy${i}`)));
    const reports = [];
    for (let i = 0; i < 10; i++) reports.push(...(await t.modules.audit.verify({ orgId: org.org.id })));
    await writes;
    for (const report of reports) expect(report, report.broken?.reason).toMatchObject({ ok: true });
    expect((await t.modules.audit.verify({ orgId: org.org.id }))[0]).toMatchObject({ ok: true, entries: 21 });
  });
});
