import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** Where `npm install` (its `prepare` step) builds the console: `console/dist` at the repository root. */
export const CONSOLE_DIST = fileURLToPath(new URL('../../console/dist/', import.meta.url));

/**
 * The console's pages: scripts, styles, fonts and API calls from our own origin only (no inline
 * script or style), framed by nobody; documents may be shown in a frame from our origin.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "frame-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tranche console</title></head>
<body><h1>The console is not built</h1><p>Its build (console/dist) is missing. Run <code>npm install</code> (its prepare step
builds it) or <code>npm run build:console</code>, then restart the server. The API is unaffected.</p></body></html>`;

/**
 * Serves the back-office console (a single-page app) at `/console`: hashed assets are cached for a
 * year, every other path gets `index.html` (the app routes in the browser). Without a build it
 * answers every console path with a page saying how to build it.
 */
export async function consoleStatic(app: FastifyInstance, options: { root?: string } = {}) {
  const root = options.root ?? CONSOLE_DIST;
  const built = fs.existsSync(path.join(root, 'index.html'));
  app.addHook('onSend', async (_request, reply: FastifyReply, payload) => {
    reply.header('content-security-policy', CONSOLE_CSP);
    return payload;
  });
  if (!built) {
    const notBuilt = async (_request: unknown, reply: FastifyReply) => reply.code(503).type('text/html; charset=utf-8').send(NOT_BUILT);
    app.get('/', { schema: { hide: true } }, notBuilt);
    app.get('/*', { schema: { hide: true } }, notBuilt);
    return;
  }
  await app.register(fastifyStatic, { root, serve: false, cacheControl: false });
  const index = (reply: FastifyReply) => reply.header('cache-control', 'no-store').type('text/html; charset=utf-8').sendFile('index.html');
  app.get('/', { schema: { hide: true } }, (_request, reply) => index(reply));
  app.get<{ Params: { '*': string } }>('/*', { schema: { hide: true } }, (request, reply) => {
    const wanted = request.params['*'];
    if (wanted.startsWith('assets/') && !wanted.includes('..')) {
      const file = path.join(root, wanted);
      if (fs.existsSync(file)) return reply.header('cache-control', 'public, max-age=31536000, immutable').sendFile(wanted);
      return reply.code(404).type('text/plain').send('Not found');
    }
    return index(reply);
  });
}
