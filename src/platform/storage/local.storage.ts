import { createHmac } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { constantTimeEqual } from '../crypto/compare.ts';
import { AppError } from '../http/errors.ts';
import { MAX_UPLOAD_BYTES, type ObjectStorage } from './storage.ts';

type Meta = { contentType: string };
type PostPolicy = { expiration: string; key: string; contentType: string; maxBytes: number };

/** Form fields by lower-cased name (S3 treats form field names case-insensitively). */
function formFields(form: FormData): Map<string, ReturnType<FormData['get']>> {
  return new Map([...form.entries()].map(([name, value]) => [name.toLowerCase(), value]));
}

/**
 * Objects on local disk, with presigned URLs that behave like S3's: an HMAC over method, key,
 * expiry, content type and length; our own route checks it (constant time) before accepting.
 */
export function localStorage(options: { directory: string; publicUrl: string; signingKey: Buffer; routePrefix: string }) {
  const { directory, signingKey } = options;

  const filePath = (key: string) => {
    const resolved = path.resolve(directory, key);
    if (!resolved.startsWith(path.resolve(directory) + path.sep)) throw new AppError('VALIDATION_ERROR', 'invalid object key');
    return resolved;
  };

  const sign = (parts: string[]) => createHmac('sha256', signingKey).update(parts.join('\n')).digest('base64url');

  function signedUrl(method: 'PUT' | 'GET', key: string, expires: number, extra: Record<string, string>): string {
    const query = new URLSearchParams({ expires: String(expires), ...extra });
    query.set('signature', sign([method, key, String(expires), extra.contentType ?? '', extra.contentLength ?? '']));
    return `${options.publicUrl}${options.routePrefix}/${key.split('/').map(encodeURIComponent).join('/')}?${query.toString()}`;
  }

  function verify(method: 'PUT' | 'GET', key: string, query: Record<string, string | undefined>) {
    const expires = Number(query.expires);
    const expected = sign([method, key, query.expires ?? '', query.contentType ?? '', query.contentLength ?? '']);
    if (!constantTimeEqual(query.signature ?? '', expected)) throw new AppError('FORBIDDEN', 'signature does not match');
    if (!Number.isFinite(expires) || expires * 1000 < Date.now()) throw new AppError('FORBIDDEN', 'URL has expired');
  }

  async function write(key: string, body: Buffer, contentType: string) {
    const target = filePath(key);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.writeFile(target, body);
    await fs.writeFile(`${target}.meta.json`, JSON.stringify({ contentType } satisfies Meta));
  }

  const storage: ObjectStorage = {
    async presignPut(key, { contentType, contentLength, expiresInSeconds }) {
      const expires = Math.floor(Date.now() / 1000) + expiresInSeconds;
      const url = signedUrl('PUT', key, expires, { contentType, contentLength: String(contentLength) });
      return { method: 'PUT', url, headers: { 'Content-Type': contentType }, expiresAt: new Date(expires * 1000) };
    },
    async presignPost(key, { contentType, maxBytes, expiresInSeconds }) {
      const expiresAt = new Date(Date.now() + expiresInSeconds * 1000);
      const policy = Buffer.from(
        JSON.stringify({ expiration: expiresAt.toISOString(), key, contentType, maxBytes } satisfies PostPolicy),
      ).toString('base64');
      const fields = { key, 'Content-Type': contentType, policy, 'x-amz-signature': sign(['POST', policy]) };
      return { url: `${options.publicUrl}${options.routePrefix}`, fields, expiresAt };
    },
    async presignGet(key, { expiresInSeconds }) {
      return signedUrl('GET', key, Math.floor(Date.now() / 1000) + expiresInSeconds, {});
    },
    async head(key) {
      try {
        const stat = await fs.stat(filePath(key));
        const meta = JSON.parse(await fs.readFile(`${filePath(key)}.meta.json`, 'utf8')) as Meta;
        return { size: stat.size, contentType: meta.contentType };
      } catch {
        return null;
      }
    },
    async get(key) {
      const object = await storage.head(key);
      if (!object) return null;
      try {
        const body = await fs.readFile(filePath(key));
        return { ...object, size: body.length, body };
      } catch {
        return null;
      }
    },
    put: write,
  };

  /** The routes the presigned URLs point at. */
  async function routes(app: FastifyInstance) {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_UPLOAD_BYTES }, (_request, body, done) => done(null, body));

    app.put<{ Params: { '*': string }; Querystring: Record<string, string | undefined> }>(
      '/*',
      { config: { idempotent: false }, schema: { hide: true } },
      async (request, reply) => {
        const key = request.params['*'];
        verify('PUT', key, request.query);
        const contentType = request.headers['content-type'];
        if (contentType === undefined || contentType !== request.query.contentType) {
          throw new AppError('FORBIDDEN', `Content-Type must be ${request.query.contentType}`);
        }
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        if (String(body.length) !== request.query.contentLength) {
          throw new AppError('FORBIDDEN', `body must be exactly ${request.query.contentLength} bytes`);
        }
        await write(key, body, contentType);
        return reply.code(200).send();
      },
    );

    app.post('/', { config: { idempotent: false }, schema: { hide: true } }, async (request, reply) => {
      const contentType = request.headers['content-type'] ?? '';
      if (!contentType.startsWith('multipart/form-data') || !Buffer.isBuffer(request.body)) {
        throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'expected a multipart/form-data upload');
      }
      const form = formFields(
        await new Response(request.body, { headers: { 'content-type': contentType } }).formData().catch(() => new FormData()),
      );
      const policy = form.get('policy');
      const signature = form.get('x-amz-signature');
      const file = form.get('file');
      if (typeof policy !== 'string' || typeof signature !== 'string' || !(file instanceof Blob)) {
        throw new AppError('VALIDATION_ERROR', 'policy, x-amz-signature and file are required');
      }
      if (!constantTimeEqual(signature, sign(['POST', policy]))) throw new AppError('FORBIDDEN', 'signature does not match');
      const terms = JSON.parse(Buffer.from(policy, 'base64').toString('utf8')) as PostPolicy;
      if (Date.parse(terms.expiration) < Date.now()) throw new AppError('FORBIDDEN', 'policy has expired');
      if (form.get('key') !== terms.key) throw new AppError('FORBIDDEN', 'key does not match the policy');
      if (form.get('content-type') !== terms.contentType) throw new AppError('FORBIDDEN', `Content-Type must be ${terms.contentType}`);
      if (file.size < 1 || file.size > terms.maxBytes) throw new AppError('FORBIDDEN', `file must be 1 to ${terms.maxBytes} bytes`);
      await write(terms.key, Buffer.from(await file.arrayBuffer()), terms.contentType);
      return reply.code(204).send();
    });

    app.get<{ Params: { '*': string }; Querystring: Record<string, string | undefined> }>(
      '/*',
      { schema: { hide: true } },
      async (request, reply) => {
        const key = request.params['*'];
        verify('GET', key, request.query);
        const object = await storage.head(key);
        if (!object) throw new AppError('NOT_FOUND', 'object not found');
        // Uploads come from users: never render one inline on our origin (an uploaded text/html
        // would run as our page). Download it, under the type it was uploaded as, unsniffed.
        return reply
          .type(object.contentType ?? 'application/octet-stream')
          .header('content-disposition', 'attachment')
          .header('x-content-type-options', 'nosniff')
          .send(await fs.readFile(filePath(key)));
      },
    );
  }

  return { ...storage, routes };
}
