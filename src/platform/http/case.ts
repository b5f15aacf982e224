type SnakeCaseString<S extends string> = S extends `${infer Head}${infer Tail}`
  ? Head extends Lowercase<Head>
    ? `${Head}${SnakeCaseString<Tail>}`
    : `_${Lowercase<Head>}${SnakeCaseString<Tail>}`
  : S;

/** The type of `value` with every object key snake_cased, recursively (Dates stay Dates). */
export type Snake<T> = T extends Date
  ? T
  : T extends readonly (infer Item)[]
    ? Snake<Item>[]
    : T extends object
      ? { [K in keyof T as K extends string ? SnakeCaseString<K> : K]: Snake<T[K]> }
      : T;

/** camelCase identifiers become snake_case; anything else (such as a header name) stays as it is. */
export function snakeCase(key: string): string {
  if (!/^[a-z][a-zA-Z0-9]*$/.test(key)) return key;
  return key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** Response bodies are snake_case; domain objects are camelCase. This maps one to the other. */
export function toSnake<T>(value: T): Snake<T> {
  if (Array.isArray(value)) return value.map((item: unknown) => toSnake(item)) as Snake<T>;
  if (value instanceof Date || value === null || typeof value !== 'object') return value as Snake<T>;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[snakeCase(key)] = toSnake(item);
  return out as Snake<T>;
}
