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
    for (const doc of ['docs/webhooks.md', 'docs/kyc-sandbox.md', 'docs/accreditation.md']) expect(readme).toContain(`](${doc})`);
  });

  it('the sandbox KYC table covers every SSN suffix the sandbox provider reacts to', () => {
    const source = read('src/identity/kyc/sandbox.provider.ts');
    const suffixes = [...source.matchAll(/^ {2}'(\d{4})': '\w+',$/gm)].map((match) => match[1]);
    expect(suffixes.length).toBeGreaterThan(5);
    const table = read('docs/kyc-sandbox.md');
    for (const suffix of suffixes) expect(table).toContain(`| \`${suffix}\``);
  });
});
