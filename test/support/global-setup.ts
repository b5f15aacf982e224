import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { openEmbedded, openPostgres } from '../../src/platform/db/database.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    database: { kind: 'postgres'; serverUrl: string; template: string; prefix: string } | { kind: 'embedded'; snapshotFile: string };
  }
}

export function withDatabaseName(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

/**
 * Migrates one database per run; each test file then starts from a copy of it: a PostgreSQL
 * database created from the template, or a PGlite instance loaded from a data-dir snapshot (taken
 * from a copy of the embedded database's cached template, see `embedded-template.ts`).
 */
export default async function setup(project: TestProject) {
  const serverUrl = process.env.TEST_DATABASE_URL;
  if (serverUrl) {
    const template = `tranche_tpl_${process.pid}`;
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${template}`);
    await admin.query(`create database ${template}`);
    const database = openPostgres(withDatabaseName(serverUrl, template), 1);
    await database.migrate();
    await database.close();
    project.provide('database', { kind: 'postgres', serverUrl, template, prefix: `tranche_t${process.pid}_` });
    return async () => {
      const { rows } = await admin.query<{ datname: string }>(`select datname from pg_database where datname = $1 or datname like $2`, [
        template,
        `tranche_t${process.pid}_%`,
      ]);
      for (const row of rows) await admin.query(`drop database if exists ${row.datname} with (force)`);
      await admin.end();
    };
  }
  // A data directory opened on disk starts as a copy of the cached pre-migrated template, so no
  // initdb and no migrations run here once the template exists.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-test-'));
  const database = await openEmbedded({ dataDir: path.join(dir, 'db') });
  await database.migrate();
  const snapshot = await database.pglite.dumpDataDir('none');
  await database.close();
  fs.rmSync(path.join(dir, 'db'), { recursive: true, force: true });
  const snapshotFile = path.join(dir, 'snapshot.tar');
  fs.writeFileSync(snapshotFile, Buffer.from(await snapshot.arrayBuffer()));
  project.provide('database', { kind: 'embedded', snapshotFile });
  return () => fs.rmSync(dir, { recursive: true, force: true });
}
