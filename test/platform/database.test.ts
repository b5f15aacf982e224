import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueryOutsideTransactionError, type Database } from '../../src/platform/db/database.ts';
import { outboxEvents } from '../../src/platform/platform.tables.ts';
import { openTestDatabase } from '../support/harness.ts';

let database: Database;
beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(() => database.close());

describe('transactions', () => {
  it('refuses a query through db inside a transaction instead of deadlocking or escaping it', async () => {
    const { db } = database;
    await expect(db.transaction(async () => db.select().from(outboxEvents))).rejects.toBeInstanceOf(QueryOutsideTransactionError);
    await expect(db.transaction(async () => db.execute(sql`select 1`))).rejects.toThrow(/pass the transaction/);
  });

  it('lets queries through the transaction, and through db outside one, even concurrently', async () => {
    const { db } = database;
    const [inside, outside] = await Promise.all([
      db.transaction(async (tx) => (await tx.execute(sql`select 1 as one`)) as unknown),
      db.execute(sql`select 2 as two`) as Promise<unknown>,
    ]);
    expect(inside).toBeTruthy();
    expect(outside).toBeTruthy();
    expect(await db.$count(outboxEvents)).toBeGreaterThanOrEqual(0);
  });
});
