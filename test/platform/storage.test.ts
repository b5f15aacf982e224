import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Storage } from '../../src/platform/storage/s3.storage.ts';
import { startS3 } from '../support/s3rver.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

describe('S3 driver against a local S3-compatible server', () => {
  let s3: Awaited<ReturnType<typeof startS3>>;
  beforeAll(async () => {
    s3 = await startS3();
  });
  afterAll(() => s3.close());

  it('presigns a PUT that uploads, HEADs the object and presigns a GET', async () => {
    const storage = s3Storage(s3.options);
    const body = Buffer.from('%PDF-1.4 s3 upload\n');
    const upload = await storage.presignPut('docs/a.pdf', {
      contentType: 'application/pdf',
      contentLength: body.length,
      expiresInSeconds: 60,
    });
    expect(upload.url).toContain('X-Amz-Signature=');
    expect(new URL(upload.url).searchParams.get('X-Amz-SignedHeaders')).toBe('content-length;content-type;host');
    expect((await fetch(upload.url, { method: 'PUT', headers: upload.headers, body })).status).toBe(200);
    expect(await storage.head('docs/a.pdf')).toEqual({ size: body.length, contentType: 'application/pdf' });
    expect(await storage.head('docs/missing.pdf')).toBeNull();
    const download = await fetch(await storage.presignGet('docs/a.pdf', { expiresInSeconds: 60 }));
    expect(Buffer.from(await download.arrayBuffer()).equals(body)).toBe(true);
  });

  it('refuses an expired presigned URL', async () => {
    const storage = s3Storage(s3.options);
    const upload = await storage.presignPut('docs/late.pdf', { contentType: 'application/pdf', contentLength: 3, expiresInSeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect((await fetch(upload.url, { method: 'PUT', headers: upload.headers, body: 'abc' })).status).toBe(403);
  });

  it('runs the accreditation upload flow when S3 is configured', async () => {
    const t = await startTestApp({ s3: s3.options });
    try {
      const user = await t.signIn('s3-flow@example.com');
      await t.request('PUT', '/identity/accreditations', {
        body: { accreditationStatus: 'accredited', accreditationBasis: 'entity' },
        headers: user.auth,
      });
      const body = Buffer.from('entity documents');
      const requested = await t.post(
        '/identity/accreditations/documents',
        { documentType: 'entity_proof', fileName: 'llc.pdf', contentType: 'application/pdf', fileSizeBytes: body.length },
        user.auth,
      );
      expect(requested.body.data.upload.url.startsWith(s3.endpoint)).toBe(true);
      expect(
        (await fetch(requested.body.data.upload.url, { method: 'PUT', headers: requested.body.data.upload.headers, body })).status,
      ).toBe(200);
      const finalized = await t.post(`/identity/accreditations/documents/${requested.body.data.id}/upload`, undefined, user.auth);
      expect(finalized.body.data.status).toBe('uploaded');
    } finally {
      await t.close();
    }
  });
});

describe('local disk driver', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('serves signed GETs and refuses expired or altered URLs', async () => {
    const { storage } = t.modules.storage;
    await storage.put('a/b.png', Buffer.from('png-bytes'), 'image/png');
    expect(await storage.head('a/b.png')).toEqual({ size: 9, contentType: 'image/png' });
    const url = new URL(await storage.presignGet('a/b.png', { expiresInSeconds: 60 }));
    const ok = await fetch(`${t.url}${url.pathname}${url.search}`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('image/png');
    expect(await ok.text()).toBe('png-bytes');
    const expired = new URL(await storage.presignGet('a/b.png', { expiresInSeconds: -1 }));
    expect((await fetch(`${t.url}${expired.pathname}${expired.search}`)).status).toBe(403);
    expect((await fetch(`${t.url}${url.pathname.replace('b.png', 'c.png')}${url.search}`)).status).toBe(403);
    const put = await storage.presignPut('a/late.pdf', { contentType: 'application/pdf', contentLength: 3, expiresInSeconds: -1 });
    const late = new URL(put.url);
    expect((await fetch(`${t.url}${late.pathname}${late.search}`, { method: 'PUT', headers: put.headers, body: 'abc' })).status).toBe(403);
  });

  it('refuses bodies over 10 MB and keys that climb out of the directory', async () => {
    const { storage } = t.modules.storage;
    const size = 10 * 1024 * 1024 + 1;
    const put = await storage.presignPut('big.pdf', { contentType: 'application/pdf', contentLength: size, expiresInSeconds: 60 });
    const url = new URL(put.url);
    const response = await fetch(`${t.url}${url.pathname}${url.search}`, { method: 'PUT', headers: put.headers, body: Buffer.alloc(size) });
    expect(response.status).toBe(413);
    await expect(storage.put('../escape.txt', Buffer.from('x'), 'text/plain')).rejects.toThrow(/invalid object key/);
  });
});
