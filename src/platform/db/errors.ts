/** Whether a query failed on a unique constraint (pg puts the code on the error, PGlite/drizzle on its cause). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string; cause?: { code?: string } }).code ?? (error as { cause?: { code?: string } }).cause?.code;
  return code === '23505';
}
