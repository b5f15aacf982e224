import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { eventCatalog } from '../src/notifications/event-catalog.ts';

const read = (file: string) => fs.readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');

describe('docs stay true', () => {
  it('the webhook docs list every event type of the catalog, and the README links every doc', () => {
    const webhooks = read('docs/webhooks.md');
    const documented = new Set([...webhooks.matchAll(/^\| `([\w.]+)` +\|/gm)].map((match) => match[1]));
    for (const type of Object.keys(eventCatalog)) expect(documented.has(type), type).toBe(true);
    const readme = read('README.md');
    for (const doc of ['docs/webhooks.md', 'docs/kyc-sandbox.md', 'docs/accreditation.md', 'docs/operations.md', 'docs/audit.md'])
      expect(readme).toContain(`](${doc})`);
  });

  it('the operations guide lists every metric the code registers, and the README every setting of src/config.ts it documents', () => {
    const sources = ['src/platform/observability/metrics.ts', 'src/notifications/delivery-observer.ts'].map(read).join('\n');
    const names = [...sources.matchAll(/name: '((?:tranche|http)_\w+)'/g)].map((match) => match[1]!);
    expect(names.length).toBeGreaterThan(10);
    const operations = read('docs/operations.md');
    for (const name of names) expect(operations, name).toContain(`| \`${name}\``);
    const readme = read('README.md');
    for (const setting of ['WORKER_HTTP_PORT', 'METRICS_PORT', 'METRICS_TOKEN']) expect(readme, setting).toContain(`| \`${setting}\``);
  });

  it('the sandbox KYC table covers every SSN suffix the sandbox provider reacts to', () => {
    const source = read('src/identity/kyc/sandbox.provider.ts');
    const suffixes = [...source.matchAll(/^ {2}'(\d{4})': '\w+',$/gm)].map((match) => match[1]);
    expect(suffixes.length).toBeGreaterThan(5);
    const table = read('docs/kyc-sandbox.md');
    for (const suffix of suffixes) expect(table).toContain(`| \`${suffix}\``);
  });
});
