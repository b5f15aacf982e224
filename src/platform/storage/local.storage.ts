import { createHmac } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { constantTimeEqual } from '../crypto/compare.ts';
import { AppError } from '../http/errors.ts';
import { MAX_UPLOAD_BYTES, type ObjectStorage } from './storage.ts';

type Meta = { contentType: string };

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

    app.get<{ Params: { '*': string }; Querystring: Record<string, string | undefined> }>(
      '/*',
      { schema: { hide: true } },
      async (request, reply) => {
        const key = request.params['*'];
        verify('GET', key, request.query);
        const object = await storage.head(key);
        if (!object) throw new AppError('NOT_FOUND', 'object not found');
        return reply.type(object.contentType ?? 'application/octet-stream').send(await fs.readFile(filePath(key)));
      },
    );
  }

  return { ...storage, routes };
}
