import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows, QueryOutsideTransactionError, type Database } from '../../src/platform/db/database.ts';
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
      db.transaction((tx) => queryRows<{ one: number }>(tx, sql`select 1 as one`)),
      queryRows<{ two: number }>(db, sql`select 2 as two`),
    ]);
    expect(inside).toEqual([{ one: 1 }]);
    expect(outside).toEqual([{ two: 2 }]);
    expect(await db.$count(outboxEvents)).toBeGreaterThanOrEqual(0);
  });
});
