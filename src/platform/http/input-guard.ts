/**
 * Text that PostgreSQL cannot store as sent is refused before validation, in every part of every
 * request (params, query, body): the NUL character (U+0000), which `text` cannot hold (the write
 * would fail in the database), and a lone UTF-16 surrogate (`"\ud800"`, valid JSON but not Unicode
 * text), which would be stored as U+FFFD, silently changing the value. Values nested deeper than
 * `MAX_DEPTH` are refused too: no route takes them, and recursive validators would overflow the stack.
 */

const MAX_DEPTH = 64;

/** With the `u` flag only unpaired surrogates match: a pair is one code point. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** What is wrong with a string, as a validation message; undefined when it can be stored as sent. */
function unstorable(text: string): string | undefined {
  if (text.includes('\0')) return 'must not contain the NUL character';
  if (LONE_SURROGATE.test(text)) return 'must be well-formed Unicode (no lone UTF-16 surrogate)';
  return undefined;
}

/**
 * The first string (value or object key) in `input` that cannot be stored as sent, as its dotted
 * path (e.g. `data.attributes.email`, or `whole` when `input` itself is such a string) and the
 * reason; undefined when there is none. A value nested `MAX_DEPTH` levels deep is itself refused. Buffers (raw bodies kept for signature checks) are skipped.
 */
export function findUnstorableText(input: unknown, whole: string, path = '', depth = 0): { field: string; message: string } | undefined {
  if (typeof input === 'string') {
    const message = unstorable(input);
    return message ? { field: path || whole, message } : undefined;
  }
  if (input === null || typeof input !== 'object' || Buffer.isBuffer(input)) return undefined;
  if (depth >= MAX_DEPTH) return { field: path || whole, message: `must not be nested more than ${MAX_DEPTH} levels deep` };
  for (const [key, value] of Object.entries(input)) {
    const at = path ? `${path}.${key}` : key;
    const message = unstorable(key);
    if (message) return { field: at, message };
    const found = findUnstorableText(value, whole, at, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}
