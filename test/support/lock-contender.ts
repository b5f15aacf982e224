// A process that takes and releases the data-dir lock when told on stdin, so a test can make two
// processes race for one directory many times without paying a process start per round.
import readline from 'node:readline';
import { lockDataDir } from '../../src/platform/db/data-dir-lock.ts';

let release: (() => void) | undefined;
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [command, dir] = line.split(' ');
  if (command === 'lock') {
    try {
      release = lockDataDir(dir!);
      console.log('won');
    } catch (error) {
      console.log(`lost ${(error as Error).name}`);
    }
  } else if (command === 'release') {
    release?.();
    release = undefined;
    console.log('released');
  }
});
console.log('ready');
