import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { openEmbedded, queryRows } from '../../src/platform/db/database.ts';
import { ensureTemplate, seedFromTemplate, templateKey } from '../../src/platform/db/embedded-template.ts';

const dirs: string[] = [];
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-template-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

describe('embedded template happy', () => {
  it('starts a new data directory as a copy of the migrated template, with nothing left to migrate', async () => {
    const template = await ensureTemplate();
    expect(path.basename(template)).toBe(`pgdata-${templateKey()}`);
    const journal = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../migrations/meta/_journal.json'), 'utf8')) as {
      entries: unknown[];
    };
    const dataDir = tempDir();
    const database = await openEmbedded({ dataDir });
    try {
      const [applied] = await queryRows<{ count: number }>(
        database.db,
        sql`select count(*)::int as count from drizzle.__drizzle_migrations`,
      );
      expect(applied!.count).toBe(journal.entries.length);
      await database.migrate();
      const [after] = await queryRows<{ count: number }>(database.db, sql`select count(*)::int as count from drizzle.__drizzle_migrations`);
      expect(after!.count).toBe(journal.entries.length);
    } finally {
      await database.close();
    }
    expect(fs.existsSync(path.join(dataDir, 'pgdata', 'PG_VERSION'))).toBe(true);
    expect(fs.existsSync(path.join(dataDir, 'pgdata.copying'))).toBe(false);
  });
});

describe('embedded template error', () => {
  it('never copies over a data directory that holds anything', async () => {
    const pgdata = path.join(tempDir(), 'pgdata');
    fs.mkdirSync(pgdata);
    fs.writeFileSync(path.join(pgdata, 'something'), 'x');
    expect(await seedFromTemplate(pgdata)).toBe(false);
    expect(fs.readdirSync(pgdata)).toEqual(['something']);
  });
});
