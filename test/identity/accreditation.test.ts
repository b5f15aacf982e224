import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accreditations } from '../../src/identity/identity.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const file = Buffer.from('%PDF-1.4 a small but real file\n%%EOF\n');
const docRequest = (overrides: Record<string, unknown> = {}) => ({
  documentType: 'income_proof',
  fileName: 'w2.pdf',
  contentType: 'application/pdf',
  fileSizeBytes: file.length,
  ...overrides,
});

async function certified(email: string, basis = 'income') {
  const user = await t.signIn(email);
  const response = await t.request('PUT', '/identity/accreditations', {
    body: { accreditationStatus: 'accredited', accreditationBasis: basis },
    headers: user.auth,
  });
  return { user, id: response.body.data.id as string };
}

async function upload(user: { auth: Record<string, string> }, body = file, contentType = 'application/pdf') {
  const requested = await t.post('/identity/accreditations/documents', docRequest({ fileSizeBytes: body.length, contentType }), user.auth);
  const url = new URL(requested.body.data.upload.url);
  const put = await fetch(`${t.url}${url.pathname}${url.search}`, { method: 'PUT', headers: { 'content-type': contentType }, body });
  return { requested, put, url, documentId: requested.body.data.id as string };
}

describe('accreditation happy', () => {
  it('non-accredited self-certification finalizes at once, without review', async () => {
    const user = await t.signIn('non-acc@example.com');
    const response = await t.request('PUT', '/identity/accreditations', {
      body: { accreditationStatus: 'non_accredited', accreditationBasis: 'not_accredited' },
      headers: user.auth,
    });
    expect(response.body.data).toMatchObject({ accreditation_status: 'non_accredited', review_status: 'not_required', verified: false });
    expect(response.body.data.submitted_at).not.toBeNull();
  });

  it('more_info_needed goes back to pending_review when a new document arrives; then deny', async () => {
    const { user, id } = await certified('more-info@example.com');
    const first = await upload(user);
    await t.post(`/identity/accreditations/documents/${first.documentId}/upload`, undefined, user.auth);
    const admin = await t.signIn('admin@example.com');
    const asked = await t.post(`/admin/accreditations/${id}/request-info`, { reason: 'need 2024 too' }, admin.auth);
    expect(asked.body.data).toMatchObject({ review_status: 'more_info_needed', review_reason: 'need 2024 too' });
    const second = await upload(user);
    await t.post(`/identity/accreditations/documents/${second.documentId}/upload`, undefined, user.auth);
    expect((await t.get('/identity/accreditations', user.auth)).body.data.review_status).toBe('pending_review');
    const denied = await t.post(`/admin/accreditations/${id}/deny`, { reason: 'income below threshold' }, admin.auth);
    expect(denied.body.data.review_status).toBe('denied');
  });

  it('an approved accreditation expires after its validity and stops counting', async () => {
    const { user, id } = await certified('expiring@example.com');
    const doc = await upload(user);
    await t.post(`/identity/accreditations/documents/${doc.documentId}/upload`, undefined, user.auth);
    const adminKey = await t.modules.identity.orgs.createAdminKey();
    expect((await t.post(`/admin/accreditations/${id}/approve`, {}, { 'x-admin-key': adminKey.key })).body.data.verified).toBe(true);
    await t.db
      .update(accreditations)
      .set({ expiresAt: sql`now() - interval '1 minute'` })
      .where(eq(accreditations.id, id));
    expect((await t.get('/identity/accreditations', user.auth)).body.data).toMatchObject({
      accreditation_status: 'expired',
      review_status: 'expired',
      verified: false,
    });
    expect((await t.modules.identity.eligibility(t.org.id, user.userId)).accreditation.verified).toBe(false);
    const recertified = await t.request('PUT', '/identity/accreditations', {
      body: { accreditationStatus: 'accredited', accreditationBasis: 'net_worth' },
      headers: user.auth,
    });
    expect(recertified.body.data.review_status).toBe('pending_review');
  });

  it('the older accreditation-sessions routes accept base64 documents', async () => {
    const user = await t.signIn('sessions-acc@example.com');
    const session = await t.post(
      '/identity/accreditation-sessions',
      { accreditationStatus: 'accredited', accreditationBasis: 'license_7_65_82' },
      user.auth,
    );
    expect(session.status).toBe(201);
    const sessionId = session.body.data.session_id;
    const uploaded = await t.post(
      `/identity/accreditation-sessions/${sessionId}/documents`,
      { documentType: 'license_proof', fileName: 'finra.png', contentType: 'image/png', content: file.toString('base64') },
      user.auth,
    );
    expect(uploaded.status).toBe(201);
    expect(uploaded.body.data).toMatchObject({ status: 'uploaded', file_size_bytes: file.length });
    expect((await t.get(`/identity/accreditation-sessions/${sessionId}`, user.auth)).body.data.documents).toHaveLength(1);
    expect((await t.get('/identity/accreditation-sessions/user', user.auth)).body.data.items[0].session_id).toBe(sessionId);
    const bad = await t.post(
      `/identity/accreditation-sessions/${sessionId}/documents`,
      { documentType: 'license_proof', fileName: 'x.png', contentType: 'image/png', content: '***' },
      user.auth,
    );
    expect(bad.body.error.field).toBe('content');
  });
});

describe('accreditation error', () => {
  it('validates status/basis pairs', async () => {
    const user = await t.signIn('pairs@example.com');
    for (const body of [
      { accreditationStatus: 'accredited', accreditationBasis: 'not_accredited' },
      { accreditationStatus: 'non_accredited', accreditationBasis: 'income' },
    ]) {
      const response = await t.request('PUT', '/identity/accreditations', { body, headers: user.auth });
      expect(response.status).toBe(400);
      expect(response.body.error.field).toBe('accreditationBasis');
    }
    const unknown = await t.request('PUT', '/identity/accreditations', {
      body: { accreditationStatus: 'qualified_purchaser', accreditationBasis: 'income' },
      headers: user.auth,
    });
    expect(unknown.body.error.field).toBe('accreditationStatus');
  });

  it('refuses documents before an accredited self-certification', async () => {
    const user = await t.signIn('early@example.com');
    const response = await t.post('/identity/accreditations/documents', docRequest(), user.auth);
    expect(response.status).toBe(409);
    expect(response.body.error.code).toBe('INVALID_STATE');
  });

  it('checks document type against the basis, content type and size', async () => {
    const { user } = await certified('doc-rules@example.com', 'net_worth');
    const wrongType = await t.post('/identity/accreditations/documents', docRequest(), user.auth);
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error).toMatchObject({
      field: 'documentType',
      message: 'documentType must be net_worth_proof for basis net_worth',
    });
    const oversize = await t.post(
      '/identity/accreditations/documents',
      docRequest({ documentType: 'net_worth_proof', fileSizeBytes: 10 * 1024 * 1024 + 1 }),
      user.auth,
    );
    expect(oversize.body.error.field).toBe('fileSizeBytes');
    const gif = await t.post(
      '/identity/accreditations/documents',
      docRequest({ documentType: 'net_worth_proof', contentType: 'image/gif' }),
      user.auth,
    );
    expect(gif.body.error.field).toBe('contentType');
    const path = await t.post(
      '/identity/accreditations/documents',
      docRequest({ documentType: 'net_worth_proof', fileName: '../../etc/passwd' }),
      user.auth,
    );
    expect(path.body.error.field).toBe('fileName');
  });

  it('keeps a document upload_pending when finalized before its file arrives, and refuses a double finalize', async () => {
    const { user } = await certified('finalize@example.com');
    const requested = await t.post('/identity/accreditations/documents', docRequest(), user.auth);
    const early = await t.post(`/identity/accreditations/documents/${requested.body.data.id}/upload`, undefined, user.auth);
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe('INVALID_STATE');
    const doc = (await t.get('/identity/accreditations', user.auth)).body.data.documents.find(
      (d: { id: string }) => d.id === requested.body.data.id,
    );
    expect(doc.status).toBe('upload_pending');

    const good = await upload(user);
    expect((await t.post(`/identity/accreditations/documents/${good.documentId}/upload`, undefined, user.auth)).status).toBe(200);
    const twice = await t.post(`/identity/accreditations/documents/${good.documentId}/upload`, undefined, user.auth);
    expect(twice.status).toBe(409);
    expect(twice.body.error.code).toBe('INVALID_STATE');
  });

  it('the upload URL refuses another content type, another length, a changed signature or key', async () => {
    const { user } = await certified('url-rules@example.com');
    const requested = await t.post('/identity/accreditations/documents', docRequest(), user.auth);
    const url = new URL(requested.body.data.upload.url);
    const target = `${t.url}${url.pathname}`;
    const put = (search: string, contentType: string, body: Buffer) =>
      fetch(`${target}${search}`, { method: 'PUT', headers: { 'content-type': contentType }, body });
    expect((await put(url.search, 'image/png', file)).status).toBe(403);
    expect((await put(url.search, 'application/pdf', Buffer.concat([file, Buffer.from('x')]))).status).toBe(403);
    const tampered = new URLSearchParams(url.search);
    tampered.set('contentLength', String(file.length + 1));
    expect((await put(`?${tampered.toString()}`, 'application/pdf', Buffer.concat([file, Buffer.from('x')]))).status).toBe(403);
    const otherKey = await fetch(`${target.replace('w2.pdf', 'evil.pdf')}${url.search}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/pdf' },
      body: file,
    });
    expect(otherKey.status).toBe(403);
    expect((await put(url.search, 'application/pdf', file)).status).toBe(200);
  });

  it('review transitions: approve from a terminal state is INVALID_STATE; approve needs a document', async () => {
    const { user, id } = await certified('terminal@example.com');
    const admin = await t.signIn('admin@example.com');
    const noDoc = await t.post(`/admin/accreditations/${id}/approve`, {}, admin.auth);
    expect(noDoc.status).toBe(409);
    const doc = await upload(user);
    await t.post(`/identity/accreditations/documents/${doc.documentId}/upload`, undefined, user.auth);
    expect((await t.post(`/admin/accreditations/${id}/deny`, {}, admin.auth)).body.error.field).toBe('reason');
    await t.post(`/admin/accreditations/${id}/deny`, { reason: 'no' }, admin.auth);
    const approve = await t.post(`/admin/accreditations/${id}/approve`, {}, admin.auth);
    expect(approve.status).toBe(409);
    expect(approve.body.error.code).toBe('INVALID_STATE');
    const reviewing = await t.request('PUT', '/identity/accreditations', {
      body: { accreditationStatus: 'accredited', accreditationBasis: 'income' },
      headers: user.auth,
    });
    expect(reviewing.body.data.review_status).toBe('pending_review');
  });
});

describe('accreditation security', () => {
  it('a reviewer of the org downloads the uploaded file; others cannot', async () => {
    const owner = await certified('download@example.com');
    const doc = await upload(owner.user);
    await t.post(`/identity/accreditations/documents/${doc.documentId}/upload`, undefined, owner.user.auth);
    const admin = await t.signIn('admin@example.com');
    const link = await t.get(`/admin/accreditations/documents/${doc.documentId}/download`, admin.auth);
    expect(link.status).toBe(200);
    const url = new URL(link.body.data.url);
    const download = await fetch(`${t.url}${url.pathname}${url.search}`);
    expect(Buffer.from(await download.arrayBuffer()).equals(file)).toBe(true);
    const rival = await t.createOrg({ name: 'Rival Download', adminEmails: ['admin@rival-dl.com'] });
    const rivalAdmin = await t.signIn('admin@rival-dl.com', rival);
    expect((await t.get(`/admin/accreditations/documents/${doc.documentId}/download`, rivalAdmin.auth)).status).toBe(404);
    expect((await t.get(`/admin/accreditations/documents/${doc.documentId}/download`, owner.user.auth)).status).toBe(403);
  });

  it('review by an admin of another org is 404; by a plain user 403', async () => {
    const { id } = await certified('guarded@example.com');
    const rival = await t.createOrg({ name: 'Rival Acc', adminEmails: ['admin@rival-acc.com'] });
    const rivalAdmin = await t.signIn('admin@rival-acc.com', rival);
    expect((await t.post(`/admin/accreditations/${id}/request-info`, { reason: 'x' }, rivalAdmin.auth)).status).toBe(404);
    const plain = await t.signIn('plain-acc@example.com');
    expect((await t.post(`/admin/accreditations/${id}/request-info`, { reason: 'x' }, plain.auth)).status).toBe(403);
    expect((await t.post(`/admin/accreditations/${id}/request-info`, { reason: 'x' })).status).toBe(401);
  });

  it("cannot finalize or read another user's document or session", async () => {
    const owner = await certified('doc-owner@example.com');
    const doc = await upload(owner.user);
    const other = await t.signIn('doc-thief@example.com');
    expect((await t.post(`/identity/accreditations/documents/${doc.documentId}/upload`, undefined, other.auth)).status).toBe(404);
    expect((await t.get(`/identity/accreditation-sessions/${owner.id}`, other.auth)).status).toBe(404);
  });
});
