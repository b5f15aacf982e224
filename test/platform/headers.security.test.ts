import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ corsOrigins: ['https://app.example.com'] });
});
afterAll(() => t.close());

describe('response headers security', () => {
  it('every response carries a restrictive Content-Security-Policy and nosniff', async () => {
    for (const path of ['/identity/', '/identity/users/x', '/kdf', '/nope']) {
      const response = await t.get(path);
      expect(response.headers.get('content-security-policy'), path).toContain("default-src 'none'");
      expect(response.headers.get('content-security-policy'), path).toContain("frame-ancestors 'none'");
      expect(response.headers.get('x-content-type-options'), path).toBe('nosniff');
    }
  });

  it('the API docs keep working under their own policy', async () => {
    const page = await t.get('/docs/static/index.html');
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("default-src 'none'");
  });

  it('CORS allows configured origins only and never reflects another', async () => {
    const allowed = await t.request('OPTIONS', '/identity/', {
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' },
    });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    const evil = await t.request('OPTIONS', '/identity/', {
      headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'GET' },
    });
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    expect((await t.get('/identity/', { origin: 'https://evil.example.com' })).headers.get('access-control-allow-origin')).toBeNull();
  });

  it('token and PII responses are not cacheable', async () => {
    const token = await t.request('POST', '/identity/auth/exchange', {
      headers: { 'x-api-key': t.apiKey },
      body: { token: await t.idp.idToken('cache@example.com') },
    });
    expect(token.status).toBe(200);
    expect(token.headers.get('cache-control')).toBe('no-store');
    const user = await t.signIn('cache2@example.com');
    const pii = await t.get(`/identity/user-pii/${user.userId}`, user.auth);
    expect(pii.headers.get('cache-control')).toBe('no-store');
    expect((await t.get(`/identity/users/${user.userId}`, user.auth)).headers.get('cache-control')).toBe('no-store');
  });

  it('uploaded documents download as attachments, unsniffed, even when uploaded as text/html', async () => {
    const key = 'probe/evil.html';
    await t.modules.storage.storage.put(key, Buffer.from('<script>alert(1)</script>'), 'text/html');
    const url = new URL(await t.modules.storage.storage.presignGet(key, { expiresInSeconds: 60 }));
    const response = await fetch(`${t.url}${url.pathname}${url.search}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-disposition')).toBe('attachment');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
  });
});
