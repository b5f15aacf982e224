import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { processCpuMs } from './support.ts';

/**
 * One cold start and restart of the server: wall time from spawn to the first 200 of
 * `/health/ready`, the CPU time (user + system) the process had used by then (which the load of
 * other processes on the machine does not inflate), and the process's RSS.
 */
export type StartupRun = {
  coldMs: number;
  coldCpuMs: number;
  restartMs: number;
  restartCpuMs: number;
  idleRssMb: number;
  loadRssMb: number;
};

/** How to start one server: the checkout it runs in and the command (program first). */
export type StartupTarget = { name: string; cwd: string; command: [string, ...string[]] };

/** The figures of `runs` starts of each target: each a cold start on an empty data directory, then a restart on it. */
export type StartupResult = { target: StartupTarget; runs: StartupRun[] };

const root = path.resolve(import.meta.dirname, '..');

/** This checkout from source (what `npm start` ran before it preferred a fresh build), or from its build. */
export function startupTarget(options: { checkout?: string; dist?: boolean; name?: string }): StartupTarget {
  const cwd = options.checkout ?? root;
  const command: [string, ...string[]] = options.dist
    ? [process.execPath, 'dist/main.js', 'serve']
    : [process.execPath, '--import', 'tsx', 'src/main.ts', 'serve'];
  return { name: options.name ?? `${cwd} ${options.dist ? 'dist' : 'source'}`, cwd, command };
}

/** Resident set size of a process in MiB, from `/proc/<pid>/status` (Linux only). */
function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

async function waitForReady(url: string, child: ChildProcess, started: number): Promise<number> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before it was ready`);
    try {
      const response = await fetch(`${url}/health/ready`);
      if (response.status === 200) return performance.now() - started;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function start(target: StartupTarget, dataDir: string, port: number): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'info', NODE_ENV: 'development' };
  delete env.DATABASE_URL;
  const [program, ...args] = target.command;
  return spawn(program, args, {
    cwd: target.cwd,
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/**
 * Cold start (empty data directory) and restart of the embedded server, `runs` times per target,
 * the targets taking turns so that they share the machine's changing load: time from spawn to the
 * first 200 of `/health/ready`, RSS when idle a second after the restart, and RSS after 5 s of load
 * on `/health/ready` (10 connections, one query per request). Each start gets a new temporary
 * data directory; the servers are stopped with SIGTERM and awaited.
 */
export async function benchStartup(options: { runs: number; targets: StartupTarget[]; port?: number }): Promise<StartupResult[]> {
  const port = options.port ?? 3917;
  const results: StartupResult[] = options.targets.map((target) => ({ target, runs: [] }));
  for (let i = 0; i < options.runs; i++) {
    for (const result of results) result.runs.push(await startOnce(result.target, port));
  }
  return results;
}

async function startOnce(target: StartupTarget, port: number): Promise<StartupRun> {
  const url = `http://127.0.0.1:${port}`;
  {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-startup-'));
    try {
      let started = performance.now();
      let child = start(target, dataDir, port);
      const coldMs = await waitForReady(url, child, started);
      const coldCpuMs = processCpuMs(child.pid!);
      await stop(child);
      started = performance.now();
      child = start(target, dataDir, port);
      const restartMs = await waitForReady(url, child, started);
      const restartCpuMs = processCpuMs(child.pid!);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const idleRssMb = rssMb(child.pid!);
      await autocannon({ url: `${url}/health/ready`, connections: 10, duration: 5 });
      const loadRssMb = rssMb(child.pid!);
      await stop(child);
      return { coldMs, coldCpuMs, restartMs, restartCpuMs, idleRssMb, loadRssMb };
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }
}
