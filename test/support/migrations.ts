// Databases as an older release left them: migrated up to a given migration only, so a test can
// put rows in the old shape and check what the next migrations (and start-up steps) make of them.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import { expect, inject } from 'vitest';
import { migrationsFolder, openEmbedded, openPostgres, type Database } from '../../src/platform/db/database.ts';
import { withDatabaseName } from './global-setup.ts';

/** The migrations before the one tagged `tag` (by default, before PII was sealed at rest), in a folder of their own. */
export function migrationsBefore(tag = '0014_pii_at_rest'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-migrations-'));
  const journal = JSON.parse(fs.readFileSync(path.join(migrationsFolder, 'meta/_journal.json'), 'utf8')) as {
    entries: { idx: number; tag: string }[];
  };
  const last = journal.entries.findIndex((entry) => entry.tag === tag);
  expect(last).toBeGreaterThan(0);
  journal.entries = journal.entries.slice(0, last);
  fs.mkdirSync(path.join(dir, 'meta'));
  fs.writeFileSync(path.join(dir, 'meta/_journal.json'), JSON.stringify(journal));
  for (const entry of journal.entries) fs.copyFileSync(path.join(migrationsFolder, `${entry.tag}.sql`), path.join(dir, `${entry.tag}.sql`));
  return dir;
}

/** An empty database migrated up to `folder` only; `migrate()` then applies the rest. */
export async function databaseAt(folder: string): Promise<{ database: Database; drop(): Promise<void> }> {
  const target = inject('database');
  if (target.kind === 'embedded') {
    const database = await openEmbedded();
    await migratePglite(drizzlePglite(database.pglite), { migrationsFolder: folder });
    return { database, drop: async () => undefined };
  }
  const name = `${target.prefix}${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: target.serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = withDatabaseName(target.serverUrl, name);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await migratePg(drizzlePg(client), { migrationsFolder: folder });
  await client.end();
  return {
    database: openPostgres(url, 2),
    async drop() {
      const cleanup = new pg.Client({ connectionString: target.serverUrl });
      await cleanup.connect();
      await cleanup.query(`drop database if exists ${name} with (force)`);
      await cleanup.end();
    },
  };
}
