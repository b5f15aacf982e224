import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows, type Database } from '../../src/platform/db/database.ts';
import { storedTotals, summedTotals } from '../support/issuance.ts';
import { databaseAt, migrationsBefore } from '../support/migrations.ts';

let fresh: Awaited<ReturnType<typeof databaseAt>>;
let database: Database;
let offeringIds: string[];

// Subscriptions as the releases before running totals wrote them: every status, several investors
// (some with subscriptions that say accredited and others that do not), two classes in one offering.
beforeAll(async () => {
  fresh = await databaseAt(migrationsBefore('0023_running_totals'));
  database = fresh.database;
  const { db } = database;
  const orgId = randomUUID();
  const [issuer] = await queryRows<{ id: string }>(
    db,
    sql`insert into issuers (org_id, legal_name) values (${orgId}, 'Legacy Inc.') returning id`,
  );
  offeringIds = (
    await queryRows<{ id: string }>(
      db,
      sql`insert into offerings (org_id, issuer_id, name, exemption_type, target_amount_cents, maximum_amount_cents, minimum_investment_cents, deadline, status)
          select ${orgId}, ${issuer!.id}, 'Legacy ' || k, 'reg_d_506b', 100000, 50000000, 100, '2030-12-31', 'open'
          from generate_series(1, 3) as k returning id`,
    )
  ).map((row) => row.id);
  // Two classes for the first offering, one for the second; the third has no subscriptions.
  await db.execute(sql`
    insert into security_classes (org_id, offering_id, name, category, price_per_unit_cents, units_authorized)
    values (${orgId}, ${offeringIds[0]}, 'A', 'equity', 1000, 1000), (${orgId}, ${offeringIds[0]}, 'B', 'preferred_equity', 2500, 500),
      (${orgId}, ${offeringIds[1]}, 'C', 'equity', 100, 100000), (${orgId}, ${offeringIds[2]}, 'D', 'equity', 100, 10)`);
  await db.execute(sql`
    insert into subscriptions (org_id, offering_id, security_class_id, user_id, units, price_per_unit_cents, amount_cents, currency,
      payment_method, accreditation_status, suitability_confirmed, risk_acknowledgment_signed, status)
    select ${orgId}, c.offering_id, c.id,
      (array['00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000003',
        '00000000-0000-4000-8000-000000000004', '00000000-0000-4000-8000-000000000005'])[1 + i % 5]::uuid,
      1 + i % 4, c.price_per_unit_cents, (1 + i % 4) * c.price_per_unit_cents, 'USD', 'card',
      case when i % 3 = 0 then 'accredited' else 'non_accredited' end, true, true,
      (array['draft', 'pending_signature', 'pending_payment', 'pending_review', 'approved', 'completed', 'rejected', 'cancelled'])[1 + i % 8]
    from generate_series(1, 120) as i,
      lateral (select * from security_classes where offering_id in (${offeringIds[0]}, ${offeringIds[1]}) order by name offset i % 3 limit 1) as c`);
  await database.migrate();
}, 120_000);
afterAll(async () => {
  await database?.close();
  await fresh?.drop();
});

describe('running totals migration', () => {
  it('fills every offering, class and investor part from the subscriptions already there', async () => {
    for (const offeringId of offeringIds)
      expect(await storedTotals(database.db, offeringId)).toEqual(await summedTotals(database.db, offeringId));
    const first = await summedTotals(database.db, offeringIds[0]!);
    expect(first.committedCents).toBeGreaterThan(first.raisedCents);
    expect(first.raisedCents).toBeGreaterThan(0);
    expect(first.investors).toBe(5);
    expect(first.accreditedInvestors).toBeGreaterThan(0);
    expect(Object.values(first.unitsHeld).every((units) => units > 0)).toBe(true);
    expect(await storedTotals(database.db, offeringIds[2]!)).toMatchObject({ committedCents: 0, investors: 0, parts: {} });
  });

  it('keeps a class within its units authorized from then on: the database refuses more', async () => {
    const [row] = await queryRows<{ id: string }>(database.db, sql`select id from security_classes where name = 'D'`);
    await expect(database.db.execute(sql`update security_classes set units_held = 11 where id = ${row!.id}`)).rejects.toThrow();
  });
});
