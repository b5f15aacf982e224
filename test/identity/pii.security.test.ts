import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/platform/db/database.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ logLevel: 'trace' });
});
afterAll(() => t.close());

const ssn = '987654329';
const firstName = 'Zebulon';
const lastName = 'Quixotewright';
const secrets = [ssn, firstName, lastName, 'Ravenscroft Lane', '1900-01-01'];

describe('PII at rest and in logs', () => {
  it('no plaintext SSN or name reaches any table or any log line', async () => {
    const me = await t.signIn('private@example.com');
    const body = { firstName, lastName, ssn, address: '7 Ravenscroft Lane', country: 'USA', state: 'NY', zip: '10001' };
    expect((await t.post('/identity/user-pii', body, { ...me.auth, 'idempotency-key': 'pii-create-1' })).status).toBe(201);
    expect((await t.patch(`/identity/user-pii/${me.userId}`, { ssn, firstName }, me.auth)).status).toBe(200);
    expect((await t.get(`/identity/user-pii/${me.userId}`, me.auth)).status).toBe(200);
    expect(
      (await t.post('/identity/user-pii', { ...body, dobYear: '1900', dobMonth: '01', dobDay: '01', ssnLast4: '9999' }, me.auth)).status,
    ).toBe(400);
    expect((await t.post('/identity/user-pii', { ...body, ssn: `${ssn}0` }, me.auth)).status).toBe(400);

    const tables = await queryRows<{ tablename: string }>(t.db, sql`select tablename from pg_tables where schemaname = 'public'`);
    expect(tables.map((row) => row.tablename)).toEqual(expect.arrayContaining(['user_pii', 'idempotency_keys', 'users']));
    for (const { tablename } of tables) {
      const rows = await queryRows<{ row: unknown }>(t.db, sql`select row_to_json(x)::text as row from ${sql.identifier(tablename)} x`);
      const dump = rows.map((row) => String(row.row)).join('\n');
      for (const secret of secrets) expect(dump, `${secret} found in ${tablename}`).not.toContain(secret);
    }

    const logText = t.logs.join('');
    expect(logText.length).toBeGreaterThan(0);
    for (const secret of [...secrets, ssn.slice(0, 5)]) expect(logText, `${secret} found in logs`).not.toContain(secret);
    expect(logText).not.toContain(me.accessToken);
  });

  it('the stored SSN digest matches across records without revealing the SSN', async () => {
    const a = await t.signIn('digest-a@example.com');
    const b = await t.signIn('digest-b@example.com');
    await t.post('/identity/user-pii', { firstName: 'A', lastName: 'A', ssn: '123121234' }, a.auth);
    await t.post('/identity/user-pii', { firstName: 'B', lastName: 'B', ssn: '123121234' }, b.auth);
    const rows = await queryRows<{ ssn_digest: string }>(
      t.db,
      sql`select ssn_digest from user_pii where user_id in (${a.userId}, ${b.userId})`,
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]!.ssn_digest).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0]!.ssn_digest).toBe(rows[1]!.ssn_digest);
  });
});
