import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import { startS3 } from '../support/s3rver.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

const original = Buffer.from('%PDF-1.4 the W-2 the reviewer must see\n%%EOF\n');
const replacement = Buffer.from('%PDF-1.4 a forged W-2 swapped in later\n%%EOF\n');
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** The accreditation document flow on one storage driver: local disk, or S3 (s3rver). */
function uploadsSuite(name: string, overrides: () => Promise<{ config: Partial<Config>; close: () => Promise<void> }>) {
  describe(`accreditation uploads (${name})`, () => {
    let t: TestApp;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      const setup = await overrides();
      t = await startTestApp(setup.config);
      cleanup = () => setup.close();
    });
    afterAll(async () => {
      await t.close();
      await cleanup();
    });

    const absolute = (url: string) => (url.startsWith('http://tranche.test') ? url.replace('http://tranche.test', t.url) : url);

    async function requestUpload(email: string) {
      expect(original.length).toBe(replacement.length);
      const user = await t.signIn(email);
      await t.request('PUT', '/identity/accreditations', {
        body: { accreditationStatus: 'accredited', accreditationBasis: 'income' },
        headers: user.auth,
      });
      const requested = await t.post(
        '/identity/accreditations/documents',
        { documentType: 'income_proof', fileName: 'w2.pdf', contentType: 'application/pdf', fileSizeBytes: original.length },
        user.auth,
      );
      expect(requested.status, requested.text).toBe(201);
      const put = (body: Buffer) =>
        fetch(absolute(requested.body.data.upload.url as string), { method: 'PUT', headers: requested.body.data.upload.headers, body });
      const finalize = () => t.post(`/identity/accreditations/documents/${requested.body.data.id}/upload`, undefined, user.auth);
      const status = async () =>
        (await t.get('/identity/accreditations', user.auth)).body.data.documents.find(
          (d: { id: string }) => d.id === requested.body.data.id,
        ).status as string;
      return { user, id: requested.body.data.id as string, put, finalize, status };
    }

    it('a finalize before the file arrives leaves the document upload_pending; the upload then finalizes', async () => {
      const doc = await requestUpload(`early-${name}@example.com`);
      const early = await doc.finalize();
      expect(early.status).toBe(409);
      expect(early.body.error.code).toBe('INVALID_STATE');
      expect(await doc.status()).toBe('upload_pending');
      expect((await doc.put(original)).status).toBe(200);
      const finalized = await doc.finalize();
      expect(finalized.status, finalized.text).toBe(200);
      expect(finalized.body.data).toMatchObject({ status: 'uploaded', sha256: sha256(original), file_size_bytes: original.length });
    });

    it('a document whose upload URL expired without a file fails', async () => {
      const doc = await requestUpload(`expired-${name}@example.com`);
      await t.db.execute(sql`update accreditation_documents set upload_expires_at = now() - interval '1 second' where id = ${doc.id}`);
      const late = await doc.finalize();
      expect(late.status).toBe(422);
      expect(late.body.error.code).toBe('UPLOAD_FAILED');
      expect(await doc.status()).toBe('upload_failed');
    });

    it('a replacement sent through the still-valid upload URL after finalize is not what the reviewer downloads', async () => {
      const doc = await requestUpload(`swap-${name}@example.com`);
      expect((await doc.put(original)).status).toBe(200);
      expect((await doc.finalize()).status).toBe(200);
      expect((await doc.put(replacement)).status).toBe(200);

      const admin = await t.signIn('admin@example.com');
      const link = await t.get(`/admin/accreditations/documents/${doc.id}/download`, admin.auth);
      expect(link.status, link.text).toBe(200);
      const downloaded = Buffer.from(await (await fetch(absolute(link.body.data.url as string))).arrayBuffer());
      expect(sha256(downloaded)).toBe(sha256(original));
    });
  });
}

uploadsSuite('local', async () => ({ config: {}, close: async () => undefined }));
uploadsSuite('S3', async () => {
  const s3 = await startS3();
  return { config: { s3: s3.options }, close: () => s3.close() };
});
