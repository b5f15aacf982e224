import { z } from 'zod';

/**
 * Dates and times as the database can store them: PostgreSQL has no year 0 and its `date` and
 * `timestamptz` inputs answer "out of range" (a 500) for what ISO 8601 accepts beyond them, so
 * every date and time a request sends is checked to fall in years 1–9999 (in UTC, after its
 * offset) and refused with 400 otherwise.
 */
const inStorableYears = (value: string) => {
  const year = new Date(value).getUTCFullYear();
  return year >= 1 && year <= 9999;
};
const OUT_OF_RANGE = 'must be between the years 1 and 9999';

/** ISO 8601 date and time with an offset (`2026-11-30T12:00:00Z`), in years 1–9999 UTC. */
export const isoDateTime = () => z.iso.datetime({ offset: true }).refine(inStorableYears, OUT_OF_RANGE);

/** ISO 8601 calendar date (`2026-11-30`), in years 1–9999. */
export const isoDate = () => z.iso.date().refine(inStorableYears, OUT_OF_RANGE);
