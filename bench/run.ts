import { parseArgs } from 'node:util';
import { benchIdentityRead } from './identity-read.ts';
import { benchIssuance } from './issuance.ts';
import { benchKeyserver } from './keyserver.ts';
import { resultRow } from './support.ts';
import { benchWebhooks } from './webhooks.ts';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '20' },
    events: { type: 'string', default: '10000' },
  },
});
const databaseUrl = process.env.BENCH_DATABASE_URL;
const runs = (name: string) => values.only === undefined || values.only === name;

if (runs('identity')) {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const result = await benchIdentityRead({ seconds, connections, databaseUrl });
  console.log(
    `\nidentity read on the ${result.database} database, ${connections} connections, ${seconds} s each (loopback, same process)\n`,
  );
  console.log('| target | req/s | p50 ms | p99 ms | errors |');
  console.log('|---|---|---|---|---|');
  console.log(resultRow(result.bare));
  console.log(resultRow(result.full));
  console.log(`\nratio full / bare: ${result.ratio.toFixed(2)}`);
}

if (runs('issuance')) {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const result = await benchIssuance({ seconds, connections, databaseUrl });
  console.log(`\nissuance on the ${result.database} database, ${connections} connections, ${seconds} s each (loopback, same process)\n`);
  console.log('| target | req/s | p50 ms | p99 ms | errors |');
  console.log('|---|---|---|---|---|');
  for (const r of [result.listFloor, result.list, result.createFloor, result.create]) console.log(resultRow(r));
  console.log(`\nratio offerings list full / bare: ${(result.list.requestsPerSecond / result.listFloor.requestsPerSecond).toFixed(2)}`);
  console.log(
    `ratio subscription create full / bare: ${(result.create.requestsPerSecond / result.createFloor.requestsPerSecond).toFixed(2)}`,
  );
}

if (runs('keyserver')) {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const result = await benchKeyserver({ seconds, connections, databaseUrl });
  console.log(`\nkey server on the ${result.database} database, ${connections} connections, ${seconds} s each (loopback, same process)\n`);
  console.log('| target | req/s | p50 ms | p99 ms | errors |');
  console.log('|---|---|---|---|---|');
  for (const r of [result.loginFloor, result.login, result.blobFloor, result.blob]) console.log(resultRow(r));
  console.log(`\nratio login full / bare: ${(result.login.requestsPerSecond / result.loginFloor.requestsPerSecond).toFixed(2)}`);
  console.log(`ratio signed blob read full / bare: ${(result.blob.requestsPerSecond / result.blobFloor.requestsPerSecond).toFixed(2)}`);
}

if (runs('webhooks')) {
  const result = await benchWebhooks({ events: Number(values.events), databaseUrl });
  const d = result.dispatcher;
  console.log(
    `\nwebhooks on the ${result.database} database: ${result.events} events x 10 endpoints = ${result.deliveries} deliveries, concurrency 32\n`,
  );
  console.log('| target | deliveries/s | events/s | commit-to-receipt p50 ms | p99 ms | seconds |');
  console.log('|---|---|---|---|---|---|');
  console.log(`| raw undici POST loop | ${Math.round(result.floor.postsPerSecond)} | — | — | — | ${result.floor.seconds.toFixed(1)} |`);
  console.log(
    `| dispatcher | ${Math.round(d.deliveriesPerSecond)} | ${Math.round(d.eventsPerSecond)} | ${Math.round(d.p50Ms)} | ${Math.round(d.p99Ms)} | ${d.seconds.toFixed(1)} |`,
  );
  console.log(`\nratio dispatcher / raw POST loop: ${result.ratio.toFixed(2)}`);
}
