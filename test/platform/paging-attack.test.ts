import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { seedOffering } from '../support/issuance.ts';

let t: TestApp;
let admin: Record<string, string>;
let offeringId: string;
beforeAll(async () => {
  t = await startTestApp();
  const session = await t.signIn('admin@example.com');
  admin = session.auth;
  const seeded = await seedOffering(t, admin);
  offeringId = seeded.offeringId;
});
afterAll(() => t.close());

const lists = [
  '/admin/subscriptions',
  '/admin/kyc-verifications',
  '/admin/accreditations',
  '/admin/offerings',
  '/admin/shares',
  '/admin/audit',
  '/admin/mail',
  '/identity/audit',
  '/notifications/deliveries',
  '/notifications/webhooks',
  '/issuance/offerings',
  '/issuance/subscriptions',
  '/issuance/shares',
  '/issuance/securities',
];
const offeringLists = () => [`/issuance/offerings/${offeringId}/documents`, `/issuance/offerings/${offeringId}/securities`];
const bad = [
  'cursor=',
  'cursor=not-a-uuid',
  'cursor=00000000-0000-4000-8000-000000000000&cursor=00000000-0000-4000-8000-000000000001',
  'cursor[]=x',
  'page=0',
  'page=-1',
  'page=1.5',
  'page=21474837',
  'page=99999999999999999999',
  'page=',
  'page=abc',
  'page=Infinity',
  'page=NaN',
  'limit=0',
  'limit=101',
  'limit=-5',
  'limit=',
  'limit=1e400',
  'offset=-1',
  'offset=2147483648',
  'offset=1.5',
  'offset=1e10',
  'page=21474836&limit=100',
  'offset=2147483647&limit=100',
  'cursor=00000000-0000-4000-8000-000000000000&page=5',
  'cursor=00000000-0000-4000-8000-000000000000&offset=5',
  'cursor=FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF',
  'page=0x10',
  'page= 2',
  'limit=100&page=21474836&cursor=00000000-0000-4000-8000-000000000000',
];
/** Hostile paging parameters on every list: a 4xx in the error envelope or a page, never a 5xx. */
describe('paging parameters error', () => {
  it('no list answers a bad cursor, page, limit or offset with a 5xx or outside the envelope', async () => {
    const wrong: string[] = [];
    for (const list of [...lists, ...offeringLists()]) {
      for (const q of bad) {
        const r = await t.get<any>(`${list}?${q}`, admin);
        const enveloped =
          r.status === 200 ? r.body?.success === true : r.body?.success === false && typeof r.body?.error?.code === 'string';
        if (r.status >= 500 || !enveloped) wrong.push(`${r.status} ${list}?${q} ${r.text.slice(0, 200)}`);
      }
    }
    expect(wrong).toEqual([]);
  }, 120_000);
});
