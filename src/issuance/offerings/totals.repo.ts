import { eq, sql } from 'drizzle-orm';
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
