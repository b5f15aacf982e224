import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboxEvents } from '../../src/platform/platform.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { seedOffering } from '../support/issuance.ts';

let t: TestApp;
let admin: Record<string, string>;
let investor: Record<string, string>;
beforeAll(async () => {
  t = await startTestApp();
  admin = (await t.signIn('admin@example.com')).auth;
  investor = (await t.signIn('reader@example.com')).auth;
});
afterAll(() => t.close());

describe('offerings happy', () => {
  it('back office creates, opens, pauses and closes an offering; integrators read it with Bearer or API key', async () => {
    const { offeringId, securityId } = await seedOffering(t, admin, { open: false });
    expect((await t.get(`/issuance/offerings/${offeringId}`, investor)).status).toBe(404);

    expect((await t.post(`/admin/offerings/${offeringId}/open`, {}, admin)).body.data.status).toBe('open');
    const read = await t.get(`/issuance/offerings/${offeringId}`, { 'x-api-key': t.apiKey });
    expect(read.body.data).toMatchObject({
      name: 'Acme Series A',
      issuer: { legal_name: 'Acme Robotics, Inc.' },
      exemption_type: 'reg_d_506c',
      amounts: { target: '100000.00', maximum: '500000.00', raised: '0.00', remaining: '500000.00', currency: 'USD' },
      investment: { minimum: '100.00', maximum: null },
      investors: { total: 0, accredited: 0, non_accredited: 0 },
      deadline: '2027-12-31',
      status: 'open',
    });
    expect(read.body.data.opened_at).not.toBeNull();

    const securities = await t.get(`/issuance/offerings/${offeringId}/securities`, investor);
    expect(securities.body.data.items).toEqual([
      expect.objectContaining({
        id: securityId,
        price_per_unit: '10.00',
        units_authorized: 10000,
        units_available: 10000,
        category: 'preferred_equity',
      }),
    ]);
    expect((await t.get(`/issuance/securities/${securityId}`, investor)).body.data.offering_id).toBe(offeringId);
    expect((await t.get(`/primary-issuance/offerings/${offeringId}`, investor)).body.data.id).toBe(offeringId);

    const documents = await t.get(`/issuance/offerings/${offeringId}/documents`, investor);
    expect(documents.body.data.items).toEqual([
      expect.objectContaining({ kind: 'subscription_agreement', version: 1, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }),
    ]);
    const url = new URL(documents.body.data.items[0].url);
    expect(await (await fetch(`${t.url}${url.pathname}${url.search}`)).text()).toBe('I subscribe.');

    expect((await t.post(`/admin/offerings/${offeringId}/pause`, {}, admin)).body.data.status).toBe('paused');
    expect((await t.post(`/admin/offerings/${offeringId}/close`, {}, admin)).body.data.status).toBe('closed');
    const events = (await t.db.select().from(outboxEvents).orderBy(outboxEvents.createdAt)).filter(
      (event) => (event.data as { offering_id?: string }).offering_id === offeringId,
    );
    expect(events.map((event) => event.type)).toEqual(['offering.opened', 'offering.paused', 'offering.closed']);
  });

  it('lists with filters (active means open), sorting and page meta', async () => {
    await seedOffering(t, admin, { exemptionType: 'reg_cf' });
    await seedOffering(t, admin, { exemptionType: 'reg_d_506b' });
    const open = await t.get('/issuance/offerings?status=active&limit=1&sort_by=created_at&sort_order=asc', investor);
    expect(open.body.data.items).toHaveLength(1);
    expect(open.body.data.items[0].status).toBe('open');
    expect(open.body.data.meta).toMatchObject({ page: 1, limit: 1, has_previous_page: false });
    expect(open.body.data.meta.total).toBeGreaterThanOrEqual(2);
    const regCf = await t.get('/issuance/offerings?exemption_type=reg_cf', investor);
    expect(regCf.body.data.items.every((o: { exemption_type: string }) => o.exemption_type === 'reg_cf')).toBe(true);
    expect((await t.get('/issuance/offerings?limit=101', investor)).body.error.field).toBe('limit');
    expect((await t.get('/issuance/offerings?status=draft', investor)).body.error.field).toBe('status');
  });

  it('versions documents per kind', async () => {
    const { offeringId } = await seedOffering(t, admin);
    const second = await t.post(
      `/admin/offerings/${offeringId}/documents`,
      {
        kind: 'subscription_agreement',
        title: 'Subscription Agreement v2',
        contentType: 'text/plain',
        content: Buffer.from('I subscribe, v2.').toString('base64'),
      },
      admin,
    );
    expect(second.body.data.version).toBe(2);
  });
});

describe('offerings error', () => {
  it('validates money, dates and amounts, naming the field', async () => {
    const issuer = await t.post('/admin/issuers', { legalName: 'X' }, admin);
    const base = {
      issuerId: issuer.body.data.id,
      name: 'X',
      exemptionType: 'reg_cf',
      targetAmount: '1000.00',
      maximumAmount: '2000.00',
      minimumInvestment: '10.00',
      deadline: '2027-01-01',
    };
    expect((await t.post('/admin/offerings', { ...base, targetAmount: '1000.001' }, admin)).body.error.field).toBe('targetAmount');
    expect((await t.post('/admin/offerings', { ...base, targetAmount: 1000 }, admin)).body.error.field).toBe('targetAmount');
    expect((await t.post('/admin/offerings', { ...base, maximumAmount: '500.00' }, admin)).body.error.field).toBe('maximumAmount');
    expect((await t.post('/admin/offerings', { ...base, deadline: '2027-02-30' }, admin)).body.error.field).toBe('deadline');
    expect((await t.post('/admin/offerings', { ...base, exemptionType: 'reg_z' }, admin)).body.error.field).toBe('exemptionType');
  });

  it('refuses transitions that do not exist (409) and opening without a security class', async () => {
    const { offeringId } = await seedOffering(t, admin);
    const reopen = await t.post(`/admin/offerings/${offeringId}/open`, {}, admin);
    expect(reopen.status).toBe(409);
    expect(reopen.body.error.code).toBe('INVALID_STATE');
    const issuer = await t.post('/admin/issuers', { legalName: 'Empty' }, admin);
    const empty = await t.post(
      '/admin/offerings',
      {
        issuerId: issuer.body.data.id,
        name: 'E',
        exemptionType: 'reg_cf',
        targetAmount: '1.00',
        maximumAmount: '1.00',
        minimumInvestment: '1.00',
        deadline: '2027-01-01',
      },
      admin,
    );
    expect((await t.post(`/admin/offerings/${empty.body.data.id}/open`, {}, admin)).body.error.message).toMatch(/security class/);
  });
});

describe('offerings security', () => {
  it('back-office routes need an org_admin or a platform admin key', async () => {
    expect((await t.post('/admin/issuers', { legalName: 'Nope' }, investor)).status).toBe(403);
    expect((await t.post('/admin/issuers', { legalName: 'Nope' }, { 'x-api-key': t.apiKey })).status).toBe(401);
    const adminKey = await t.modules.identity.orgs.createAdminKey();
    const platform = { 'x-admin-key': adminKey.key };
    expect((await t.post('/admin/issuers', { legalName: 'No org' }, platform)).body.error.field).toBe('orgId');
    expect((await t.post('/admin/issuers', { legalName: 'Platform made', orgId: t.org.id }, platform)).status).toBe(201);
  });

  it("hides other orgs' offerings from readers and from their admins", async () => {
    const { offeringId, securityId } = await seedOffering(t, admin);
    const other = await t.createOrg({ name: 'Other Issuance', adminEmails: ['admin@other-iss.com'] });
    const otherAdmin = (await t.signIn('admin@other-iss.com', other)).auth;
    expect((await t.get(`/issuance/offerings/${offeringId}`, { 'x-api-key': other.apiKey })).status).toBe(404);
    expect((await t.get(`/issuance/securities/${securityId}`, otherAdmin)).status).toBe(404);
    expect((await t.post(`/admin/offerings/${offeringId}/pause`, {}, otherAdmin)).status).toBe(404);
    expect((await t.get('/issuance/offerings', { 'x-api-key': other.apiKey })).body.data.items).toEqual([]);
  });
});
