import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows, type Database } from '../../src/platform/db/database.ts';
import { databaseAt, migrationsBefore } from '../support/migrations.ts';

let fresh: Awaited<ReturnType<typeof databaseAt>>;
let database: Database;
let subscriptionIds: string[];

// Transitions as the releases before migration 0024 wrote them: approval's two changes (approved,
// then completed) in one transaction share one created_at, and the rows are stored completed first.
beforeAll(async () => {
  fresh = await databaseAt(migrationsBefore('0024_transition_order'));
  database = fresh.database;
  const { db } = database;
  const orgId = randomUUID();
  const [issuer] = await queryRows<{ id: string }>(
    db,
    sql`insert into issuers (org_id, legal_name) values (${orgId}, 'Legacy Inc.') returning id`,
  );
  const [offering] = await queryRows<{ id: string }>(
    db,
    sql`insert into offerings (org_id, issuer_id, name, exemption_type, target_amount_cents, maximum_amount_cents, minimum_investment_cents, deadline, status)
        values (${orgId}, ${issuer!.id}, 'Legacy', 'reg_d_506b', 100000, 50000000, 100, '2030-12-31', 'open') returning id`,
  );
  const [security] = await queryRows<{ id: string }>(
    db,
    sql`insert into security_classes (org_id, offering_id, name, category, price_per_unit_cents, units_authorized)
        values (${orgId}, ${offering!.id}, 'A', 'equity', 1000, 1000) returning id`,
  );
  subscriptionIds = (
    await queryRows<{ id: string }>(
      db,
      sql`insert into subscriptions (org_id, offering_id, security_class_id, user_id, units, price_per_unit_cents, amount_cents, currency,
            payment_method, accreditation_status, suitability_confirmed, risk_acknowledgment_signed, status)
          select ${orgId}, ${offering!.id}, ${security!.id}, gen_random_uuid(), 1, 1000, 1000, 'USD', 'card', 'accredited', true, true, 'completed'
          from generate_series(1, 3) returning id`,
    )
  ).map((row) => row.id);
  for (const id of subscriptionIds)
    await db.execute(sql`
      insert into subscription_transitions (subscription_id, from_status, to_status, actor, created_at) values
        (${id}, 'approved', 'completed', 'admin', '2026-01-03T00:00:00Z'),
        (${id}, 'pending_review', 'approved', 'admin', '2026-01-03T00:00:00Z'),
        (${id}, 'pending_payment', 'pending_review', 'stripe', '2026-01-02T00:00:00Z'),
        (${id}, null, 'pending_signature', 'user', '2026-01-01T00:00:00Z')`);
  await database.migrate();
}, 120_000);
afterAll(async () => {
  await database?.close();
  await fresh?.drop();
});

const statuses = (id: string) =>
  queryRows<{ to_status: string; seq: string }>(
    database.db,
    sql`select to_status, seq from subscription_transitions where subscription_id = ${id} order by seq`,
  );

describe('transition order migration', () => {
  it('numbers the stored transitions by time, approved before completed, and new ones after them', async () => {
    for (const id of subscriptionIds)
      expect((await statuses(id)).map((row) => row.to_status)).toEqual(['pending_signature', 'pending_review', 'approved', 'completed']);
    const [last] = await queryRows<{ max: string }>(database.db, sql`select max(seq)::text as max from subscription_transitions`);
    expect(Number(last!.max)).toBe(12);
    // Two changes in one transaction, as approval makes them: insertion order, not the shared time.
    await database.db.transaction(async (tx) => {
      await tx.execute(sql`insert into subscription_transitions (subscription_id, from_status, to_status, actor) values
        (${subscriptionIds[0]}, 'completed', 'cancelled', 'admin')`);
      await tx.execute(sql`insert into subscription_transitions (subscription_id, from_status, to_status, actor) values
        (${subscriptionIds[0]}, 'cancelled', 'refunded', 'admin')`);
    });
    const rows = await statuses(subscriptionIds[0]!);
    expect(rows.slice(-2).map((row) => [row.to_status, Number(row.seq)])).toEqual([
      ['cancelled', 13],
      ['refunded', 14],
    ]);
    // The identity is the database's: a writer cannot set it.
    await expect(
      database.db.execute(
        sql`insert into subscription_transitions (subscription_id, to_status, actor, seq) values (${subscriptionIds[1]}, 'x', 'y', 1)`,
      ),
    ).rejects.toThrow();
  });
});
