/**
 * PostgreSQL `text` cannot hold the NUL character (U+0000): a value carrying one fails in the
 * database, so every request is screened for it before validation.
 */

const MAX_DEPTH = 64;

/**
 * The dotted path of the first string (value or object key) holding U+0000 in `input`, e.g.
 * `data.attributes.email`, `whole` when `input` itself is such a string, or undefined. Buffers
 * (raw bodies kept for signature checks) are skipped.
 */
export function findNul(input: unknown, whole: string, path = '', depth = 0): string | undefined {
  if (typeof input === 'string') return input.includes('\0') ? path || whole : undefined;
  if (input === null || typeof input !== 'object' || Buffer.isBuffer(input) || depth > MAX_DEPTH) return undefined;
  for (const [key, value] of Object.entries(input)) {
    const at = path ? `${path}.${key}` : key;
    if (key.includes('\0')) return at;
    const found = findNul(value, whole, at, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}
