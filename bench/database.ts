import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openEmbedded, openPostgres, type Database } from '../src/platform/db/database.ts';

/**
 * A fresh, migrated database for one benchmark: in memory on the embedded database, or a new
 * database on the server of `serverUrl`, dropped when the benchmark closes it.
 */
export async function benchDatabase(serverUrl: string | undefined, poolSize = 20): Promise<Database> {
  if (!serverUrl) {
    const database = await openEmbedded();
    await database.migrate();
    return database;
  }
  const name = `tranche_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const database = openPostgres(url.toString(), poolSize);
  await database.migrate();
  return {
    ...database,
    async close() {
      await database.close();
      const cleanup = new pg.Client({ connectionString: serverUrl });
      await cleanup.connect();
      await cleanup.query(`drop database if exists ${name} with (force)`);
      await cleanup.end();
    },
  };
}
