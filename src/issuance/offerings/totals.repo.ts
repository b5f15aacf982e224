import { asc, eq, inArray, sql } from 'drizzle-orm';
import { queryRows, type Executor } from '../../platform/db/database.ts';
import { offeringInvestors, offerings, securityClasses, subscriptions } from '../issuance.tables.ts';
import { FUNDED_STATUSES, HOLDING_STATUSES } from './offerings.repo.ts';

/** The fields of a subscription that its offering's, class's and investor's running totals count. */
export type Counted = Pick<
  typeof subscriptions.$inferSelect,
  'offeringId' | 'securityClassId' | 'userId' | 'status' | 'units' | 'amountCents' | 'accreditationStatus'
>;

/**
 * What one subscription adds to the running totals: its amount in cents to the committed total
 * while it holds units and to the raised total while it is funded, its units to its class's units
 * held, and 1 to its investor's count of holding (and, if it says so, accredited) subscriptions.
 */
export type Contribution = { committedCents: number; raisedCents: number; units: number; holding: number; accredited: number };

const NOTHING: Contribution = { committedCents: 0, raisedCents: 0, units: 0, holding: 0, accredited: 0 };

/** A subscription's contribution (see `Contribution`); nothing for `null` (a subscription not yet created). */
export function contribution(row: Pick<Counted, 'status' | 'units' | 'amountCents' | 'accreditationStatus'> | null): Contribution {
  if (!row) return NOTHING;
  const holding = (HOLDING_STATUSES as readonly string[]).includes(row.status);
  const funded = (FUNDED_STATUSES as readonly string[]).includes(row.status);
  return {
    committedCents: holding ? row.amountCents : 0,
    raisedCents: funded ? row.amountCents : 0,
    units: holding ? row.units : 0,
    holding: holding ? 1 : 0,
    accredited: holding && row.accreditationStatus === 'accredited' ? 1 : 0,
  };
}

/** `after` minus `before`, field by field. */
export function difference(before: Contribution, after: Contribution): Contribution {
  return {
    committedCents: after.committedCents - before.committedCents,
    raisedCents: after.raisedCents - before.raisedCents,
    units: after.units - before.units,
    holding: after.holding - before.holding,
    accredited: after.accredited - before.accredited,
  };
}

/**
 * One row of running totals that differs from what the subscriptions sum to: an offering's
 * (`committed_cents`, `raised_cents`, `investors`, `accredited_investors`), a security class's
 * (`units_held`) or an investor's part of an offering (`holding_subscriptions`,
 * `accredited_subscriptions`, `committed_cents`; a missing part counts as zeros). `id` is the
 * offering's, the class's or the investor's (user) id; `stored` and `summed` map each column (by
 * its SQL name) to its value, amounts in cents.
 */
export type TotalsDrift = {
  kind: 'offering' | 'class' | 'investor';
  offeringId: string;
  orgId: string;
  id: string;
  stored: Record<string, number>;
  summed: Record<string, number>;
};

/** The columns `drift` compares, by kind of row. */
const DRIFT_COLUMNS: Record<TotalsDrift['kind'], string[]> = {
  offering: ['committed_cents', 'raised_cents', 'investors', 'accredited_investors'],
  class: ['units_held'],
  investor: ['holding_subscriptions', 'accredited_subscriptions', 'committed_cents'],
};

const statusList = (statuses: readonly string[]) =>
  sql.raw(`(${statuses.map((status) => `'${status.replaceAll("'", "''")}'`).join(', ')})`);
const HOLDING = statusList(HOLDING_STATUSES);
const FUNDED = statusList(FUNDED_STATUSES);

/** `offering_id in (the ids)`, or true when `ids` is undefined (every offering). */
const ofOfferings = (column: string, ids: string[] | undefined) =>
  ids === undefined
    ? sql`true`
    : sql`${sql.raw(column)} in (select value::uuid from jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))`;

/** The offering's totals after a move: its committed total and maximum, and the investor's committed total in it (cents). */
export type OfferingMove = { committedCents: number; maximumAmountCents: number; investorCommittedCents: number };

/**
 * The running totals of offerings (`offerings.committed_cents`, `raised_cents`, `investors`,
 * `accredited_investors`), security classes (`security_classes.units_held`) and each investor's
 * part of an offering (`offering_investors`), moved by the subscriptions service in the transaction
 * of every subscription change, so that they always equal the sums over the subscriptions.
 *
 * Lock order, the same in every path so that no two transactions deadlock: the subscription's row
 * (a change) or the investor's advisory lock (a creation), then the offering's row, then the
 * class's, then the investor's `offering_investors` row. Rows are locked `for no key update` (as
 * an update locks them), never `for update`, which would also block the key share of a foreign
 * key check: an approval holds its class's row, then inserts a share referencing the offering.
 */
export function totalsRepo() {
  /**
   * Moves the offering's totals and the investor's part by `delta`, in one statement; the caller's
   * transaction must already hold the offering's row lock (it is taken before the investor's row).
   */
  async function moveOffering(target: Pick<Counted, 'offeringId' | 'userId'>, delta: Contribution, tx: Executor): Promise<OfferingMove> {
    const [row] = await queryRows<{ committed: string; maximum: string; investor_committed: string }>(
      tx,
      sql`
        with investor as (
          insert into ${offeringInvestors} as i (offering_id, user_id, holding_subscriptions, accredited_subscriptions, committed_cents)
          values (${target.offeringId}, ${target.userId}, ${delta.holding}, ${delta.accredited}, ${delta.committedCents})
          on conflict (offering_id, user_id) do update set
            holding_subscriptions = i.holding_subscriptions + excluded.holding_subscriptions,
            accredited_subscriptions = i.accredited_subscriptions + excluded.accredited_subscriptions,
            committed_cents = i.committed_cents + excluded.committed_cents
          returning holding_subscriptions, accredited_subscriptions, committed_cents
        ),
        moved as (
          -- The investor counts move when the investor's holding (accredited) subscriptions cross zero.
          update ${offerings} as o set
            committed_cents = o.committed_cents + ${delta.committedCents},
            raised_cents = o.raised_cents + ${delta.raisedCents},
            investors = o.investors + (investor.holding_subscriptions > 0)::int - (investor.holding_subscriptions - ${delta.holding} > 0)::int,
            accredited_investors = o.accredited_investors + (investor.accredited_subscriptions > 0)::int
              - (investor.accredited_subscriptions - ${delta.accredited} > 0)::int
          from investor
          where o.id = ${target.offeringId}
          returning o.committed_cents, o.maximum_amount_cents
        )
        select moved.committed_cents as committed, moved.maximum_amount_cents as maximum, investor.committed_cents as investor_committed
        from moved, investor`,
    );
    return {
      committedCents: Number(row!.committed),
      maximumAmountCents: Number(row!.maximum),
      investorCommittedCents: Number(row!.investor_committed),
    };
  }

  return {
    /**
     * Every running total (of the offerings `offeringIds`, default all) that differs from the sums
     * over the subscriptions, as `TotalsDrift` rows ordered by offering, kind and id. One statement:
     * its snapshot sees the totals and the subscriptions as of the same commits, and every change
     * moves both in one transaction, so a row it returns differs for real (no change in flight
     * shows as drift). Takes no lock.
     */
    async drift(tx: Executor, offeringIds?: string[]): Promise<TotalsDrift[]> {
      const rows = await queryRows<{
        kind: TotalsDrift['kind'];
        offering_id: string;
        org_id: string;
        id: string;
        stored: Record<string, number | string>;
        summed: Record<string, number | string>;
      }>(
        tx,
        sql`with subs as (
              select offering_id, security_class_id, user_id, amount_cents, units, accreditation_status,
                status in ${HOLDING} as holding, status in ${FUNDED} as funded
              from ${subscriptions} where ${ofOfferings('offering_id', offeringIds)}
            ), per_offering as (
              select offering_id,
                coalesce(sum(amount_cents) filter (where holding), 0) as committed,
                coalesce(sum(amount_cents) filter (where funded), 0) as raised,
                count(distinct user_id) filter (where holding) as investors,
                count(distinct user_id) filter (where holding and accreditation_status = 'accredited') as accredited
              from subs group by offering_id
            ), per_class as (
              select security_class_id, coalesce(sum(units) filter (where holding), 0) as units from subs group by security_class_id
            ), per_investor as (
              select offering_id, user_id, count(*) as holding,
                count(*) filter (where accreditation_status = 'accredited') as accredited, sum(amount_cents) as committed
              from subs where holding group by offering_id, user_id
            ), compared as (
              select 'offering' as kind, o.id as offering_id, o.org_id, o.id::text as id,
                jsonb_build_object('committed_cents', o.committed_cents, 'raised_cents', o.raised_cents,
                  'investors', o.investors, 'accredited_investors', o.accredited_investors) as stored,
                jsonb_build_object('committed_cents', coalesce(p.committed, 0), 'raised_cents', coalesce(p.raised, 0),
                  'investors', coalesce(p.investors, 0), 'accredited_investors', coalesce(p.accredited, 0)) as summed
              from ${offerings} o left join per_offering p on p.offering_id = o.id
              where ${ofOfferings('o.id', offeringIds)}
              union all
              select 'class', c.offering_id, c.org_id, c.id::text,
                jsonb_build_object('units_held', c.units_held), jsonb_build_object('units_held', coalesce(p.units, 0))
              from ${securityClasses} c left join per_class p on p.security_class_id = c.id
              where ${ofOfferings('c.offering_id', offeringIds)}
              union all
              select 'investor', o.id, o.org_id, coalesce(i.user_id, p.user_id)::text,
                jsonb_build_object('holding_subscriptions', coalesce(i.holding_subscriptions, 0),
                  'accredited_subscriptions', coalesce(i.accredited_subscriptions, 0), 'committed_cents', coalesce(i.committed_cents, 0)),
                jsonb_build_object('holding_subscriptions', coalesce(p.holding, 0),
                  'accredited_subscriptions', coalesce(p.accredited, 0), 'committed_cents', coalesce(p.committed, 0))
              from (select * from ${offeringInvestors} where ${ofOfferings('offering_id', offeringIds)}) i
              full join per_investor p on p.offering_id = i.offering_id and p.user_id = i.user_id
              join ${offerings} o on o.id = coalesce(i.offering_id, p.offering_id)
            )
            select * from compared where stored <> summed
            order by offering_id, case kind when 'offering' then 0 when 'class' then 1 else 2 end, id`,
      );
      // In the columns' order (jsonb keeps its own), as numbers (sums and counts come as text or bigint).
      const numbers = (kind: TotalsDrift['kind'], values: Record<string, number | string>) =>
        Object.fromEntries(DRIFT_COLUMNS[kind].map((column) => [column, Number(values[column])]));
      return rows.map((row) => ({
        kind: row.kind,
        offeringId: row.offering_id,
        orgId: row.org_id,
        id: row.id,
        stored: numbers(row.kind, row.stored),
        summed: numbers(row.kind, row.summed),
      }));
    },

    /**
     * Locks what a subscription change locks before it moves the totals of these offerings, in the
     * same order (see the lock order above): the offerings' rows, then their classes' rows, each
     * `for no key update` and in id order. Held until `tx` ends: no change of their totals can
     * commit meanwhile, and one already waiting moves them by its delta after the commit.
     */
    async lockOfferings(offeringIds: string[], tx: Executor): Promise<void> {
      if (offeringIds.length === 0) return;
      await tx
        .select({ id: offerings.id })
        .from(offerings)
        .where(inArray(offerings.id, offeringIds))
        .orderBy(asc(offerings.id))
        .for('no key update');
      await tx
        .select({ id: securityClasses.id })
        .from(securityClasses)
        .where(inArray(securityClasses.offeringId, offeringIds))
        .orderBy(asc(securityClasses.id))
        .for('no key update');
    },

    /**
     * Sets the running totals of these offerings, their classes and their investors' parts to the
     * sums over their subscriptions, set-based (the backfill of migration 0023), touching only
     * rows that differ. The caller's transaction must hold `lockOfferings` for them first: each
     * statement then reads subscriptions no change of the totals can commit to meanwhile.
     */
    async recompute(offeringIds: string[], tx: Executor): Promise<void> {
      if (offeringIds.length === 0) return;
      const ids = (column: string) => ofOfferings(column, offeringIds);
      await tx.execute(sql`
        insert into ${offeringInvestors} as i (offering_id, user_id, holding_subscriptions, accredited_subscriptions, committed_cents)
        select offering_id, user_id, count(*), count(*) filter (where accreditation_status = 'accredited'), sum(amount_cents)
        from ${subscriptions} where status in ${HOLDING} and ${ids('offering_id')}
        group by offering_id, user_id
        on conflict (offering_id, user_id) do update set
          holding_subscriptions = excluded.holding_subscriptions,
          accredited_subscriptions = excluded.accredited_subscriptions,
          committed_cents = excluded.committed_cents
        where (i.holding_subscriptions, i.accredited_subscriptions, i.committed_cents)
          is distinct from (excluded.holding_subscriptions, excluded.accredited_subscriptions, excluded.committed_cents)`);
      await tx.execute(sql`
        update ${offeringInvestors} as i set holding_subscriptions = 0, accredited_subscriptions = 0, committed_cents = 0
        where ${ids('i.offering_id')}
          and (i.holding_subscriptions, i.accredited_subscriptions, i.committed_cents) <> (0, 0, 0)
          and not exists (
            select 1 from ${subscriptions} s
            where s.offering_id = i.offering_id and s.user_id = i.user_id and s.status in ${HOLDING})`);
      await tx.execute(sql`
        update ${offerings} as o
        set committed_cents = s.committed, raised_cents = s.raised, investors = s.investors, accredited_investors = s.accredited
        from (
          select x.id,
            coalesce(sum(sub.amount_cents) filter (where sub.status in ${HOLDING}), 0) as committed,
            coalesce(sum(sub.amount_cents) filter (where sub.status in ${FUNDED}), 0) as raised,
            count(distinct sub.user_id) filter (where sub.status in ${HOLDING}) as investors,
            count(distinct sub.user_id) filter (where sub.status in ${HOLDING} and sub.accreditation_status = 'accredited') as accredited
          from ${offerings} x left join ${subscriptions} sub on sub.offering_id = x.id
          where ${ids('x.id')}
          group by x.id
        ) as s
        where o.id = s.id
          and (o.committed_cents, o.raised_cents, o.investors, o.accredited_investors) is distinct from (s.committed, s.raised, s.investors, s.accredited)`);
      await tx.execute(sql`
        update ${securityClasses} as c set units_held = s.units
        from (
          select x.id, coalesce(sum(sub.units) filter (where sub.status in ${HOLDING}), 0) as units
          from ${securityClasses} x left join ${subscriptions} sub on sub.security_class_id = x.id
          where ${ids('x.offering_id')}
          group by x.id
        ) as s
        where c.id = s.id and c.units_held <> s.units`);
    },

    /**
     * Takes `units` of the class for a new subscription, or none when fewer remain: the database
     * adds them only while the class's units held stay within its units authorized. Returns the
     * units held before (whether or not it took them) and whether it took them.
     */
    async holdUnits(securityClassId: string, units: number, tx: Executor): Promise<{ taken: boolean; heldBefore: number }> {
      const [taken] = await tx
        .update(securityClasses)
        .set({ unitsHeld: sql`${securityClasses.unitsHeld} + ${units}` })
        .where(
          sql`${securityClasses.id} = ${securityClassId} and ${securityClasses.unitsHeld} + ${units} <= ${securityClasses.unitsAuthorized}`,
        )
        .returning({ held: securityClasses.unitsHeld });
      if (taken) return { taken: true, heldBefore: taken.held - units };
      const [current] = await tx
        .select({ held: securityClasses.unitsHeld })
        .from(securityClasses)
        .where(eq(securityClasses.id, securityClassId));
      return { taken: false, heldBefore: current?.held ?? 0 };
    },

    /**
     * Adds a new subscription to its offering's totals and its investor's part, in the creating
     * transaction, which holds the offering's row lock; returns the totals after (the caller
     * refuses, rolling back, when they pass a limit). The class's units go through `holdUnits`.
     */
    add: (row: Counted, tx: Executor): Promise<OfferingMove> => moveOffering(row, contribution(row), tx),

    /**
     * Moves the totals by what changed between `before` and `after` (the same subscription, before
     * and after a status change), in the changing transaction, which holds the subscription's row
     * lock; does nothing when nothing counted changed (e.g. signing, approval).
     */
    async move(before: Counted, after: Counted, tx: Executor): Promise<void> {
      const delta = difference(contribution(before), contribution(after));
      if (Object.values(delta).every((value) => value === 0)) return;
      if (delta.committedCents === 0 && delta.units === 0 && delta.holding === 0 && delta.accredited === 0) {
        // Funding (or its reversal) moves only the raised total: one row, no other lock.
        await tx
          .update(offerings)
          .set({ raisedCents: sql`${offerings.raisedCents} + ${delta.raisedCents}` })
          .where(eq(offerings.id, after.offeringId));
        return;
      }
      await tx.select({ id: offerings.id }).from(offerings).where(eq(offerings.id, after.offeringId)).for('no key update');
      if (delta.units !== 0)
        await tx
          .update(securityClasses)
          .set({ unitsHeld: sql`${securityClasses.unitsHeld} + ${delta.units}` })
          .where(eq(securityClasses.id, after.securityClassId));
      await moveOffering(after, delta, tx);
    },
  };
}

export type TotalsRepo = ReturnType<typeof totalsRepo>;
