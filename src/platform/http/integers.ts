import { z } from 'zod';

/** The largest value a PostgreSQL `integer` (int4) column holds. */
export const INT4_MAX = 2_147_483_647;

/**
 * An integer from a JSON body that a PostgreSQL `integer` column holds: `min` to `max`, both
 * inclusive and within int4. A larger number is a 400 naming the field, never a database error.
 */
export const int4 = (min = 0, max = INT4_MAX) => z.number().int().min(min).max(Math.min(max, INT4_MAX));

/** The same from a query string or path parameter (text, coerced). */
export const queryInt4 = (min = 0, max = INT4_MAX) => z.coerce.number().int().min(min).max(Math.min(max, INT4_MAX));
