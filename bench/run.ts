import { parseArgs } from 'node:util';
import { benchIdentityRead, type BenchResult } from './identity-read.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '20' },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const databaseUrl = process.env.BENCH_DATABASE_URL;

const row = (r: BenchResult) => `| ${r.name} | ${Math.round(r.requestsPerSecond)} | ${r.p50Ms} | ${r.p99Ms} | ${r.errors} |`;

const result = await benchIdentityRead({ seconds, connections, databaseUrl });
console.log(`\nidentity read on the ${result.database} database, ${connections} connections, ${seconds} s each (loopback, same process)\n`);
console.log('| target | req/s | p50 ms | p99 ms | errors |');
console.log('|---|---|---|---|---|');
console.log(row(result.bare));
console.log(row(result.full));
console.log(`\nratio full / bare: ${result.ratio.toFixed(2)}`);
