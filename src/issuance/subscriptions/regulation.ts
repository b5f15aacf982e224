import type { OfferingRow } from '../offerings/offerings.repo.ts';

const REG_CF_FLOOR_CENTS = 2_500_00;
const REG_CF_THRESHOLD_CENTS = 124_000_00;

/**
 * Reg CF 12-month limit for a non-accredited investor (17 CFR 227.100(a)(2)): if income or net worth
 * is under $124,000, the greater of $2,500 or 5 % of the greater of the two; otherwise 10 % of the
 * greater, capped at $124,000.
 */
export function regCfLimitCents(annualIncomeCents: number, netWorthCents: number): number {
  const lower = Math.min(annualIncomeCents, netWorthCents);
  const greater = Math.max(annualIncomeCents, netWorthCents);
  if (lower < REG_CF_THRESHOLD_CENTS) return Math.max(REG_CF_FLOOR_CENTS, Math.floor((greater * 5) / 100));
  return Math.min(Math.floor(greater / 10), REG_CF_THRESHOLD_CENTS);
}

/** Resale restriction on shares issued under an exemption: one year for Reg D (Rule 144), Reg CF and Reg S. */
export function restrictionFor(
  exemptionType: OfferingRow['exemptionType'],
  acquisitionDate: string,
): { restricted: boolean; until: string | null } {
  if (exemptionType === 'reg_a_tier_1' || exemptionType === 'reg_a_tier_2') return { restricted: false, until: null };
  const date = new Date(`${acquisitionDate}T00:00:00Z`);
  date.setUTCFullYear(date.getUTCFullYear() + 1);
  return { restricted: true, until: date.toISOString().slice(0, 10) };
}
