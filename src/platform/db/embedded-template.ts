import { fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';

/**
 * A pre-migrated data directory of the embedded database, copied into every new `DATA_DIR`.
 *
 * PGlite's initdb takes 4-9 s and grows the WASM memory of the process that runs it to ~850 MB,
 * which WebAssembly never gives back. So a new data directory is not initialised in place: it is a
 * copy of a template, a plain PGlite data directory built once (initdb, then every migration) in a
 * child process that exits afterwards, and cached on disk under a key of the migrations and the
 * PGlite version. Opening a copy takes well under a second, and the server that opens it never
 * pays initdb's memory. The server still runs `migrate()` after opening; on a template of the same
 * key it finds nothing to apply.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const migrationsFolder = path.join(root, 'migrations');

/**
 * PostgreSQL settings of the embedded database, on top of PGlite's own. `shared_buffers` is 128 MB
 * by default and lives in the WASM memory, which never shrinks: 32 MB keeps an idle server about
 * 120 MB smaller, and the data files stay in the operating system's page cache anyway.
 */
export const embeddedStartParams: string[] = [...PGlite.defaultStartParams, '-c', 'shared_buffers=32MB'];

/**
 * Where templates are kept: `node_modules/.cache/tranche` in the installation, the conventional
 * place for a tool's cache (it goes with `rm -rf node_modules` and is never in a data directory).
 */
export function templateCacheDir(): string {
  return path.join(root, 'node_modules', '.cache', 'tranche');
}

/** Every file under `dir` (relative paths, sorted), for hashing. */
function listFiles(dir: string, prefix = ''): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) =>
      entry.isDirectory() ? listFiles(path.join(dir, entry.name), `${prefix}${entry.name}/`) : [`${prefix}${entry.name}`],
    )
    .sort();
}

/** The installed PGlite's version, from its package.json (which its `exports` do not expose). */
function pgliteVersion(): string {
  let dir = path.dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'));
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * The template's key: the first 16 hex digits of SHA-256 over the PGlite version and every file
 * of `migrations/` (names and contents). Any change to either makes a new template.
 */
export function templateKey(): string {
  const hash = createHash('sha256');
  hash.update(`pglite ${pgliteVersion()}\0`);
  for (const file of listFiles(migrationsFolder)) {
    hash.update(`${file}\0`);
    hash.update(fs.readFileSync(path.join(migrationsFolder, file)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

/** Builds a migrated data directory at `pgdata` (which must not exist) in this process. */
export async function buildTemplateHere(pgdata: string): Promise<void> {
  const pglite = await PGlite.create({ dataDir: pgdata, startParams: embeddedStartParams });
  try {
    await migrate(drizzle(pglite), { migrationsFolder });
  } finally {
    await pglite.close();
  }
}

/** Runs `buildTemplateHere(pgdata)` in a child process, so that its memory goes when it exits. */
async function buildTemplateInChild(pgdata: string): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const child = fork(self, ['build', pgdata], {
    execArgv: self.endsWith('.ts') ? ['--import', 'tsx'] : [],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) throw new Error(`building the embedded database template failed (exit ${code}): ${stderr.trim().slice(-2000)}`);
}

/**
 * The path of the current template's data directory, building it first if the cache has none
 * (4-9 s, once per installation and set of migrations). Concurrent builders are safe: each builds
 * in a directory of its own and publishes it with an atomic rename; the first rename wins.
 * Throws when the cache directory cannot be written or the build fails.
 */
export async function ensureTemplate(cacheDir = templateCacheDir()): Promise<string> {
  const target = path.join(cacheDir, `pgdata-${templateKey()}`);
  if (fs.existsSync(path.join(target, 'PG_VERSION'))) return target;
  fs.mkdirSync(cacheDir, { recursive: true });
  const work = path.join(cacheDir, `.building-${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(work);
  try {
    await buildTemplateInChild(path.join(work, 'pgdata'));
    try {
      fs.renameSync(path.join(work, 'pgdata'), target);
    } catch (error) {
      if (!fs.existsSync(path.join(target, 'PG_VERSION'))) throw error;
    }
    return target;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Fills an absent or empty `pgdata` with a copy of the template (copied beside it, then renamed,
 * so a crash mid-copy leaves no half directory). Returns false, changing nothing, when `pgdata`
 * already holds a database or no template can be had; PGlite then runs initdb in place as before.
 */
export async function seedFromTemplate(pgdata: string): Promise<boolean> {
  if (fs.existsSync(path.join(pgdata, 'PG_VERSION'))) return false;
  if (fs.existsSync(pgdata) && fs.readdirSync(pgdata).length > 0) return false;
  let template: string;
  try {
    template = await ensureTemplate();
  } catch {
    return false;
  }
  const staging = `${pgdata}.copying`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.cpSync(template, staging, { recursive: true });
  fs.rmSync(pgdata, { recursive: true, force: true });
  fs.renameSync(staging, pgdata);
  return true;
}

// `node embedded-template.(ts|js) build <pgdata>`: the child of `buildTemplateInChild`.
// `node embedded-template.(ts|js)`: builds the cached template now (install and image builds).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === 'build' && process.argv[3]) {
    await buildTemplateHere(process.argv[3]);
  } else {
    console.log(`Embedded database template: ${await ensureTemplate()}`);
  }
}
