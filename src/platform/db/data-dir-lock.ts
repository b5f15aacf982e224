import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The data directory is held by another live process. */
export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
}

type Holder = { pid: number; startedAt: string | null; host: string };

/** Longer than any takeover can last: a takeover marker this old was left by a process that died mid-takeover. */
const TAKEOVER_STALE_MS = 10_000;

/**
 * Takes the embedded database's data directory for this process, atomically, or throws
 * `DataDirLockedError`. Returns the release function (idempotent).
 *
 * The lock file `DATA_DIR/tranche.lock` is published with `link(2)`, which fails if the file
 * exists, so of two processes starting at the same instant exactly one gets it, and nobody ever
 * reads a half-written file. It names the holder's pid, host and (on Linux) the kernel's start
 * time of that pid, so a lock left by a dead process is taken over even when its pid now belongs
 * to an unrelated process. Taking over a stale lock is itself guarded by an exclusive `mkdir`, so
 * two processes finding the same stale lock cannot both take it.
 */
export function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const lockFile = path.join(dataDir, 'tranche.lock');
  const me: Holder = { pid: process.pid, startedAt: processStartTime(process.pid), host: os.hostname() };
  const mine = JSON.stringify(me);
  const release = () => {
    if (readFile(lockFile) === mine) fs.rmSync(lockFile, { force: true });
  };
  if (publish(lockFile, mine)) return release;

  const seen = readFile(lockFile);
  const holder = parseHolder(seen);
  if (holder && isHeld(holder)) throw locked(dataDir, holder.pid);

  const takeover = `${lockFile}.takeover`;
  if (!tryMkdir(takeover)) {
    const age = Date.now() - (statMtime(takeover) ?? Date.now());
    if (age < TAKEOVER_STALE_MS) throw locked(dataDir, holder?.pid);
    fs.rmSync(takeover, { recursive: true, force: true });
    if (!tryMkdir(takeover)) throw locked(dataDir, holder?.pid);
  }
  try {
    // Only the stale lock we judged may be removed: if it changed meanwhile, someone else won.
    if (readFile(lockFile) !== seen) throw locked(dataDir, parseHolder(readFile(lockFile))?.pid);
    fs.rmSync(lockFile, { force: true });
    if (!publish(lockFile, mine)) throw locked(dataDir, parseHolder(readFile(lockFile))?.pid);
    return release;
  } finally {
    fs.rmSync(takeover, { recursive: true, force: true });
  }
}

function locked(dataDir: string, pid: number | undefined) {
  return new DataDirLockedError(
    `The embedded database in ${dataDir} is in use${pid ? ` by process ${pid}` : ''}. ` +
      'Stop that process first, or run against PostgreSQL by setting DATABASE_URL.',
  );
}

/** Writes `content` to a private file, then links it into place: atomic and exclusive. */
function publish(lockFile: string, content: string): boolean {
  const staging = `${lockFile}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  fs.writeFileSync(staging, content, { flag: 'wx' });
  try {
    fs.linkSync(staging, lockFile);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    fs.rmSync(staging, { force: true });
  }
}

function isHeld(holder: Holder): boolean {
  if (holder.host !== os.hostname()) return true; // a shared volume: we cannot see that host's processes
  if (!isAlive(holder.pid)) return false;
  const startedAt = processStartTime(holder.pid);
  // Where start times are unknown (not Linux), a live pid has to count as the holder.
  return holder.startedAt === null || startedAt === null || startedAt === holder.startedAt;
}

/** The kernel's start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat), or null off Linux. */
function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseHolder(text: string | undefined): Holder | undefined {
  if (text === undefined) return undefined;
  try {
    const holder = JSON.parse(text) as Holder;
    return Number.isInteger(holder.pid) ? holder : undefined;
  } catch {
    return undefined;
  }
}

function readFile(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function tryMkdir(dir: string): boolean {
  try {
    fs.mkdirSync(dir);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

function statMtime(file: string): number | undefined {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}
