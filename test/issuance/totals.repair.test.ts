import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { offeringInvestors, offerings, securityClasses } from '../../src/issuance/issuance.tables.ts';
import { openDatabase, type Database } from '../../src/platform/db/database.ts';
import { auditEntries } from '../../src/platform/platform.tables.ts';
import { startTestApp, usingPostgres, type TestApp } from '../support/harness.ts';
import { seedInvestor, seedOffering, storedTotals, subscriptionBody, summedTotals } from '../support/issuance.ts';
import { repoRoot, testDeployment, type Deployment } from '../support/process.ts';

// Running totals that drifted from the subscriptions (SQL by hand, a restored backup, an older
// release serving past migration 0023): `tranche totals check` lists them, `repair` recomputes
// them under the locks a subscription change takes, so it may run while the server serves.

type Session = Awaited<ReturnType<typeof seedInvestor>>;

/** Subscriptions of three investors in one offering with two classes, one of them cancelled. */
async function seedSubscriptions(t: TestApp, prefix: string) {
  const admin = (await t.signIn('admin@example.com')).auth;
  const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506b', unitsAuthorized: 1000 });
  const second = await t.post(
    `/admin/offerings/${offeringId}/securities`,
    { name: 'Class B', category: 'equity', pricePerUnit: '20.00', unitsAuthorized: 500 },
    admin,
  );
  expect(second.status, second.text).toBe(201);
  const investors: Session[] = [];
  for (let i = 0; i < 3; i++) investors.push(await seedInvestor(t, `${prefix}-${i}@example.com`, { accreditation: 'none' }));
  const subscribe = async (investor: Session, classId: string, units: number, extra: Record<string, unknown> = {}) => {
    const response = await t.post(
      `/issuance/offerings/${offeringId}/subscriptions`,
      subscriptionBody(classId, units, extra),
      investor.auth,
    );
    expect(response.status, response.text).toBe(201);
    return response.body.data.id as string;
  };
  await subscribe(investors[0]!, securityId, 10);
  await subscribe(investors[1]!, second.body.data.id as string, 5, { accreditationStatus: 'non_accredited' });
  const cancelled = await subscribe(investors[2]!, securityId, 30);
  expect((await t.delete(`/issuance/subscriptions/${cancelled}`, investors[2]!.auth)).status).toBe(200);
  return { admin, offeringId, securityId, classB: second.body.data.id as string, investors, subscribe };
}

/** Moves every kind of running total away from the subscriptions, as SQL by hand would. */
async function corrupt(db: TestApp['db'], offeringId: string, securityId: string, investors: Session[]) {
  await db
    .update(offerings)
    .set({ committedCents: sql`${offerings.committedCents} + 99900`, investors: 7 })
    .where(eq(offerings.id, offeringId));
  await db
    .update(securityClasses)
    .set({ unitsHeld: sql`${securityClasses.unitsHeld} + 3` })
    .where(eq(securityClasses.id, securityId));
  await db.update(offeringInvestors).set({ committedCents: 1 }).where(eq(offeringInvestors.userId, investors[0]!.userId));
  await db.delete(offeringInvestors).where(eq(offeringInvestors.userId, investors[1]!.userId));
  // The investor whose only subscription was cancelled: a part with nothing behind it.
  await db.update(offeringInvestors).set({ holdingSubscriptions: 1 }).where(eq(offeringInvestors.userId, investors[2]!.userId));
}

describe('running totals check and repair', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('check lists every drifted offering, class and investor row; repair recomputes them, audited; check then passes', async () => {
    const { offeringId, securityId, investors } = await seedSubscriptions(t, 'drift');
    const totals = t.modules.issuance.totals;
    expect(await totals.check()).toEqual([]);
    const before = await storedTotals(t.db, offeringId);
    await corrupt(t.db, offeringId, securityId, investors);

    const drift = await totals.check();
    expect(drift.map((row) => [row.kind, row.id])).toEqual([
      ['offering', offeringId],
      ['class', securityId],
      ...[investors[0]!.userId, investors[1]!.userId, investors[2]!.userId].sort().map((id) => ['investor', id]),
    ]);
    expect(drift[0]).toMatchObject({
      orgId: t.org.id,
      stored: { committed_cents: before.committedCents + 99_900, investors: 7 },
      summed: { committed_cents: before.committedCents, investors: 2, raised_cents: 0, accredited_investors: 1 },
    });
    expect(drift.find((row) => row.id === investors[1]!.userId)).toMatchObject({
      stored: { holding_subscriptions: 0, committed_cents: 0 },
      summed: { holding_subscriptions: 1, accredited_subscriptions: 0, committed_cents: 10_000 },
    });

    const repaired = await totals.repair();
    expect(repaired).toEqual(drift);
    expect(await totals.check()).toEqual([]);
    expect(await storedTotals(t.db, offeringId)).toEqual(await summedTotals(t.db, offeringId));
    expect(await storedTotals(t.db, offeringId)).toEqual(before);

    const entries = await t.db.select().from(auditEntries).where(eq(auditEntries.action, 'offering_totals.repaired'));
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ orgId: null, actorKind: 'system', actorId: 'cli:totals-repair', subjectType: 'running_totals' });
    expect(entries[0]!.related).toEqual([`offering:${offeringId}`]);
    // Nothing more to repair: no second entry.
    expect(await totals.repair()).toEqual([]);
    expect(await t.db.select().from(auditEntries).where(eq(auditEntries.action, 'offering_totals.repaired'))).toHaveLength(1);
  });

  it('a repair running while subscriptions are created and cancelled over HTTP loses none of them', async () => {
    const { offeringId, securityId, classB, investors, subscribe } = await seedSubscriptions(t, 'race');
    const more = await Promise.all(
      Array.from({ length: 6 }, (_, i) => seedInvestor(t, `race-more-${i}@example.com`, { accreditation: 'none' })),
    );
    const cancellable = await subscribe(investors[0]!, classB, 5);
    await corrupt(t.db, offeringId, securityId, investors);

    const [repaired, ...responses] = await Promise.all([
      t.modules.issuance.totals.repair(),
      ...more.map((investor, i) =>
        t.post(`/issuance/offerings/${offeringId}/subscriptions`, subscriptionBody(i % 2 ? securityId : classB, 10 + i), investor.auth),
      ),
      t.delete(`/issuance/subscriptions/${cancellable}`, investors[0]!.auth),
    ]);
    expect(responses.map((response) => response.status)).toEqual([...more.map(() => 201), 200]);
    expect(repaired.length).toBeGreaterThan(0);
    expect(await t.modules.issuance.totals.check()).toEqual([]);
    const stored = await storedTotals(t.db, offeringId);
    expect(stored).toEqual(await summedTotals(t.db, offeringId));
    expect(stored.investors).toBe(2 + more.length);
  });
});

describe('tranche totals check and repair (CLI)', { timeout: 600_000 }, () => {
  let deployment: Deployment;
  let database: Database;
  let t: TestApp;
  let seeded: Awaited<ReturnType<typeof seedSubscriptions>>;

  const tranche = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
        cwd: repoRoot,
        env: deployment.env,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failure = error as { code: number; stdout: string; stderr: string };
      return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
    }
  };

  beforeAll(async () => {
    deployment = await testDeployment('totals', { LOG_LEVEL: 'warn' });
    database = await openDatabase(loadConfig(deployment.env));
    await database.migrate();
    t = await startTestApp({}, { reuse: { database, keyring: deployment.keyring() } });
    seeded = await seedSubscriptions(t, 'cli');
    await corrupt(t.db, seeded.offeringId, seeded.securityId, seeded.investors);
    // The embedded database is one process's: the CLI runs once the server is gone.
    if (!usingPostgres()) {
      await t.close();
      await database.close();
    }
  }, 240_000);
  afterAll(async () => {
    if (usingPostgres()) {
      await t.close();
      await database.close();
    }
    await deployment.dispose();
  });

  it('check exits 1 listing the drifted rows, repair fixes them (while the server serves creates, on PostgreSQL), check then exits 0', async () => {
    const check = await tranche('totals', 'check');
    expect(check.code, check.stderr).toBe(1);
    expect(check.stdout).toContain(`differs  offering ${seeded.offeringId} (org ${t.org.id}): committed_cents`);
    expect(check.stdout).toContain(`differs  class ${seeded.securityId} of offering ${seeded.offeringId}`);
    expect(check.stdout).toContain('5 row(s) differ from the subscriptions: tranche totals repair recomputes them.');

    let created: Promise<number[]> = Promise.resolve([]);
    if (usingPostgres()) {
      const more = await Promise.all(
        Array.from({ length: 4 }, (_, i) => seedInvestor(t, `cli-more-${i}@example.com`, { accreditation: 'none' })),
      );
      // Creates over HTTP, one after another, for as long as the repair runs.
      created = (async () => {
        const statuses: number[] = [];
        for (const [i, investor] of more.entries()) {
          const response = await t.post(
            `/issuance/offerings/${seeded.offeringId}/subscriptions`,
            subscriptionBody(seeded.securityId, 10 + i),
            investor.auth,
          );
          statuses.push(response.status);
        }
        return statuses;
      })();
    }
    const repair = await tranche('totals', 'repair');
    expect(repair.code, repair.stderr).toBe(0);
    expect(repair.stdout).toContain(`repaired  offering ${seeded.offeringId}`);
    expect(repair.stdout).toMatch(/Repaired 5 row\(s\) of 1 offering\(s\) \(recorded in the audit log\)\./);
    expect((await created).every((status) => status === 201)).toBe(true);

    const after = await tranche('totals', 'check');
    expect(after.code, after.stdout + after.stderr).toBe(0);
    expect(after.stdout).toContain('Every running total matches the subscriptions.');
    expect((await tranche('totals', 'repair')).stdout).toContain('Nothing to repair');
  });
});
