import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { DrizzleQueryError } from 'drizzle-orm/errors';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { loggerOptions, redactUrl } from '../../src/platform/observability/logging.ts';
import { freePort, fromSource, repoRoot, testDeployment, type Deployment } from '../support/process.ts';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: pino(loggerOptions('info'), stream), text: () => lines.join('') };
}

describe('logging security: URLs are redacted by route parameter and query name', () => {
  it.each([
    ['/wallets/' + 'a'.repeat(64), '/wallets/[redacted]'],
    ['/wallets/' + 'a'.repeat(64) + '/factors/3/verification', '/wallets/[redacted]/factors/3/verification'],
    ['/wallets/kdf?email=x%40y.com', '/wallets/kdf?email=[redacted]'],
    ['/kdf?email=x%40y.com&is_recovery=true', '/kdf?email=[redacted]&is_recovery=true'],
    ['/sessions/' + 'b'.repeat(32), '/sessions/[redacted]'],
    ['/identities/x@y.com', '/identities/[redacted]'],
    ['/identities?filter%5Bemail%5D=x%40y.com&page[limit]=5', '/identities?filter%5Bemail%5D=[redacted]&page[limit]=5'],
    ['/admin/mail?to=x%40y.com', '/admin/mail?to=[redacted]'],
    ['/storage/objects/k?expires=1&signature=abc', '/storage/objects/k?expires=1&signature=[redacted]'],
    // Percent-encoded, elsewhere in the path, under an unknown or disguised query name.
    ['/identities/a.b%40example.com', '/identities/[redacted]'],
    ['/identities/a.b%40Example.com/settings', '/identities/[redacted]/settings'],
    ['/anything/x@y.com/more', '/anything/[redacted]/more'],
    ['/kdf?email%00=x%40y.com', '/kdf?email%00=[redacted]'],
    ['/search?q=x%40y.com&page=2', '/search?q=[redacted]&page=2'],
  ])('%s', (url, expected) => {
    expect(redactUrl(url)).toBe(expected);
  });

  it('the request serializer logs the redacted URL', () => {
    const { logger, text } = capture();
    logger.info({ req: { method: 'GET', url: '/kdf?email=secret%40example.com', ip: '1.2.3.4' } }, 'incoming request');
    expect(text()).toContain('/kdf?email=[redacted]');
    expect(text()).not.toContain('secret');
  });
});

describe('logging security: a failed query never logs its parameters', () => {
  it('drops params from the error, its message, its stack and its cause', () => {
    const { logger, text } = capture();
    const cause = Object.assign(new Error('duplicate key value violates unique constraint'), {
      detail: 'Key (email)=(victim@example.com) already exists.',
      code: '23505',
    });
    const error = new DrizzleQueryError('insert into users (email, ssn) values ($1, $2)', ['victim@example.com', '112223333'], cause);
    logger.error({ err: error }, 'request failed');
    const logged = text();
    expect(logged).toContain('Failed query: insert into users');
    expect(logged).not.toContain('victim@example.com');
    expect(logged).not.toContain('112223333');
  });
});

describe('logging security: the first start shows one-time secrets once, never in the log stream', () => {
  let deployment: Deployment | undefined;
  afterAll(() => deployment?.dispose());

  it('writes them to a 0600 file when stdout is not a terminal', async () => {
    deployment = await testDeployment('first', { LOG_LEVEL: 'info', DEMO_IDP: 'true', ALLOW_INSECURE_HTTP: 'true', HOST: '127.0.0.1' });
    const { dataDir } = deployment;
    const env = { ...deployment.env, PORT: String(await freePort()) };
    const [node, ...args] = fromSource;
    const server = spawn(node!, [...args, 'serve', '--role', 'api'], { cwd: repoRoot, env });
    let output = '';
    server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`serve did not start: ${output}`)), 150_000);
        server.stdout.on('data', () => output.includes('First start') && output.includes('0600') && (clearTimeout(timer), resolve()));
        server.on('exit', (code) => reject(new Error(`serve exited ${code}: ${output}`)));
      });
      const file = path.join(dataDir, 'first-start-secrets.txt');
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      const secrets = fs.readFileSync(file, 'utf8');
      expect(secrets).toMatch(/tranche_admin_\w{40}/);
      expect(secrets).toMatch(/rialto_ak_/);
      expect(output).not.toMatch(/tranche_admin_\w/);
      expect(output).not.toMatch(/rialto_ak_[0-9a-f-]+_\w/);
    } finally {
      server.kill('SIGTERM');
      await new Promise((resolve) => server.once('exit', resolve));
    }
  }, 180_000);
});
