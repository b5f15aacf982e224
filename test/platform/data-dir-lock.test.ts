import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataDirLockedError, openEmbedded } from '../../src/platform/db/database.ts';

const root = path.resolve(import.meta.dirname, '../..');
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-lock-'));

type Contender = { process: ChildProcess; send(line: string): Promise<string> };

async function startContender(): Promise<Contender> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/lock-contender.ts'], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const answers: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    const next = waiting.shift();
    if (next) next(line);
    else answers.push(line);
  });
  const nextLine = () => new Promise<string>((resolve) => (answers.length > 0 ? resolve(answers.shift()!) : waiting.push(resolve)));
  expect(await nextLine()).toBe('ready');
  return {
    process: child,
    send(line: string) {
      child.stdin.write(`${line}\n`);
      return nextLine();
    },
  };
}

let contenders: Contender[] = [];
beforeAll(async () => {
  contenders = await Promise.all([startContender(), startContender()]);
});
afterAll(() => {
  for (const contender of contenders) contender.process.kill('SIGKILL');
  fs.rmSync(base, { recursive: true, force: true });
});

describe('embedded data dir lock', () => {
  it('two processes racing for one data dir: exactly one wins, 20 times out of 20', async () => {
    for (let round = 0; round < 20; round++) {
      const dir = path.join(base, `race-${round}`);
      const answers = await Promise.all(contenders.map((contender) => contender.send(`lock ${dir}`)));
      expect(answers.filter((answer) => answer === 'won')).toHaveLength(1);
      expect(answers.filter((answer) => answer === 'lost DataDirLockedError')).toHaveLength(1);
      await contenders[answers.indexOf('won')]!.send('release');
    }
  }, 60_000);

  it('a lock left by a dead process is taken over', async () => {
    const dir = path.join(base, 'dead');
    const doomed = await startContender();
    expect(await doomed.send(`lock ${dir}`)).toBe('won');
    expect(await contenders[0]!.send(`lock ${dir}`)).toBe('lost DataDirLockedError');
    doomed.process.kill('SIGKILL');
    await new Promise((resolve) => doomed.process.once('exit', resolve));
    expect(await contenders[0]!.send(`lock ${dir}`)).toBe('won');
    await contenders[0]!.send('release');
  });

  it('a stale lock whose pid now belongs to an unrelated live process does not block', async () => {
    const dir = path.join(base, 'reused');
    fs.mkdirSync(dir);
    // This test process is alive and is not the holder: its start time differs from the recorded one.
    fs.writeFileSync(path.join(dir, 'tranche.lock'), JSON.stringify({ pid: process.pid, startedAt: '1', host: os.hostname() }));
    expect(await contenders[1]!.send(`lock ${dir}`)).toBe('won');
    await contenders[1]!.send('release');
    expect(fs.existsSync(path.join(dir, 'tranche.lock'))).toBe(false);
  });

  it('the embedded database does not open a data dir another process holds', async () => {
    const dir = path.join(base, 'embedded');
    expect(await contenders[0]!.send(`lock ${dir}`)).toBe('won');
    await expect(openEmbedded({ dataDir: dir })).rejects.toThrow(DataDirLockedError);
    await contenders[0]!.send('release');
  });
});
