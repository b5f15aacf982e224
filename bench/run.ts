import { parseArgs } from 'node:util';
import { benchAudit } from './audit.ts';
import { benchChaos } from './chaos.ts';
import { benchIdentityRead } from './identity-read.ts';
import { benchIssuance } from './issuance.ts';
import { benchKeyserver } from './keyserver.ts';
import { benchScale } from './scale.ts';
import { benchStartup, startupTarget, type StartupRun } from './startup.ts';
import { runsRow, spread, type BenchResult } from './support.ts';
import { benchWebhooks } from './webhooks.ts';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '20' },
    events: { type: 'string', default: '10000' },
    rate: { type: 'string', default: '200' },
    'steady-seconds': { type: 'string', default: '10' },
    'chaos-seconds': { type: 'string', default: '60' },
    rounds: { type: 'string', default: '2' },
    runs: { type: 'string', default: '3' },
    checkout: { type: 'string', multiple: true },
    sizes: { type: 'string' },
    requests: { type: 'string', default: '50' },
  },
});
const databaseUrl = process.env.BENCH_DATABASE_URL;
const runs = (name: string) => values.only === undefined || values.only === name;
// Fault injection runs only when asked for: it needs PostgreSQL and terminates its backends.
const asked = (name: string) => values.only === name;
const repeat = Number(values.runs);

/** Runs `bench` `repeat` times, one after the other. */
async function repeated<T>(bench: () => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let run = 0; run < repeat; run++) results.push(await bench());
  return results;
}
const ratios = (full: BenchResult[], bare: BenchResult[]) =>
  spread(
    full.map((r, i) => r.requestsPerSecond / bare[i]!.requestsPerSecond),
    2,
  );
const TABLE_HEAD = `| target | req/s (min / median / max of ${values.runs} runs) | p50 ms | p99 ms | errors |\n|---|---|---|---|---|`;

if (runs('identity')) {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const results = await repeated(() => benchIdentityRead({ seconds, connections, databaseUrl }));
  const bare = results.map((r) => r.bare);
  const full = results.map((r) => r.full);
  console.log(
    `\nidentity read on the ${results[0]!.database} database, ${connections} connections, ${seconds} s each (loopback, same process)\n`,
  );
  console.log(TABLE_HEAD);
  console.log(runsRow(bare));
  console.log(runsRow(full));
  console.log(`\nratio full / bare: ${ratios(full, bare)}`);
}

if (runs('issuance')) {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const results = await repeated(() => benchIssuance({ seconds, connections, databaseUrl }));
  const pick = (key: 'listFloor' | 'list' | 'createFloor' | 'create') => results.map((r) => r[key]);
  console.log(
    `\nissuance on the ${results[0]!.database} database, ${connections} connections, ${seconds} s each (loopback, same process)\n`,
  );
  console.log(TABLE_HEAD);
  for (const key of ['listFloor', 'list', 'createFloor', 'create'] as const) console.log(runsRow(pick(key)));
  console.log(`\nratio offerings list full / bare: ${ratios(pick('list'), pick('listFloor'))}`);
  console.log(`ratio subscription create full / bare: ${ratios(pick('create'), pick('createFloor'))}`);
}

if (runs('audit')) {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const rounds = Number(values.rounds);
  const result = await benchAudit({ seconds, connections, rounds, databaseUrl });
  console.log(
    `\naudit write cost on the ${result.database} database, ${connections} connections, ${rounds} alternating rounds of ${seconds} s (loopback, same process)\n`,
  );
  console.log('| target | req/s | p50 ms | p99 ms | errors |');
  console.log('|---|---|---|---|---|');
  for (const r of [result.createWithout, result.createWith, result.loginWithout, result.loginWith]) console.log(runsRow([r]));
  console.log(
    `\nratio subscription create with / without audit: ${(result.createWith.requestsPerSecond / result.createWithout.requestsPerSecond).toFixed(2)}`,
  );
  console.log(
    `ratio key-server login with / without audit: ${(result.loginWith.requestsPerSecond / result.loginWithout.requestsPerSecond).toFixed(2)}`,
  );
}

if (runs('keyserver')) {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const results = await repeated(() => benchKeyserver({ seconds, connections, databaseUrl }));
  const pick = (key: 'loginFloor' | 'login' | 'blobFloor' | 'blob') => results.map((r) => r[key]);
  console.log(
    `\nkey server on the ${results[0]!.database} database, ${connections} connections, ${seconds} s each (loopback, same process)\n`,
  );
  console.log(TABLE_HEAD);
  for (const key of ['loginFloor', 'login', 'blobFloor', 'blob'] as const) console.log(runsRow(pick(key)));
  console.log(`\nratio login full / bare: ${ratios(pick('login'), pick('loginFloor'))}`);
  console.log(`ratio signed blob read full / bare: ${ratios(pick('blob'), pick('blobFloor'))}`);
}

if (runs('webhooks')) {
  const result = await benchWebhooks({
    events: Number(values.events),
    databaseUrl,
    runs: Number(values.runs),
    rate: Number(values.rate),
    steadySeconds: Number(values['steady-seconds']),
  });
  const pickRounds = (key: 'raw' | 'dispatcher', figure: 'deliveriesPerSecond' | 'cpuMsPerThousand' | 'postgresCpuMsPerThousand') =>
    result.rounds.map((round) => round[key][figure]);
  console.log(
    `\nwebhooks on the ${result.database} database: a backlog of ${result.events} events x 10 endpoints = ${result.deliveries} deliveries, sends ${result.concurrency} at once; ${result.rounds.length} rounds (min / median / max)\n`,
  );
  console.log('| target | deliveries/s | node CPU ms per 1 000 deliveries | PostgreSQL CPU ms per 1 000 deliveries |');
  console.log('|---|---|---|---|');
  for (const [name, key] of [
    ['raw undici POST loop', 'raw'],
    ['dispatcher', 'dispatcher'],
  ] as const) {
    console.log(
      `| ${name} | ${spread(pickRounds(key, 'deliveriesPerSecond'))} | ${spread(pickRounds(key, 'cpuMsPerThousand'))} | ${spread(pickRounds(key, 'postgresCpuMsPerThousand'))} |`,
    );
  }
  console.log(
    `\nratio dispatcher / raw POST loop, per round: ${spread(
      result.rounds.map((round) => round.dispatcher.deliveriesPerSecond / round.raw.deliveriesPerSecond),
      2,
    )}`,
  );
  console.log('\n| steady rate | endpoints | commit-to-receipt p50 ms | p99 ms | max ms |');
  console.log('|---|---|---|---|---|');
  for (const s of result.steady) {
    console.log(
      `| ${s.eventsPerSecond} events/s for ${s.seconds} s | ${s.endpoints} | ${s.p50Ms.toFixed(1)} | ${s.p99Ms.toFixed(1)} | ${s.maxMs.toFixed(1)} |`,
    );
  }
  if (result.workerProcesses) {
    console.log('\n| worker processes | deliveries/s |');
    console.log('|---|---|');
    console.log(`| one | ${spread(result.workerProcesses.map((r) => r.one))} |`);
    console.log(`| two | ${spread(result.workerProcesses.map((r) => r.two))} |`);
    console.log(
      `\nratio two / one, per round: ${spread(
        result.workerProcesses.map((r) => r.two / r.one),
        2,
      )}`,
    );
  }
}

if (asked('chaos')) {
  const r = await benchChaos({ serverUrl: databaseUrl, seconds: Number(values['chaos-seconds']) });
  console.log(
    `\nchaos on PostgreSQL: ${r.seconds.toFixed(0)} s of POST /notifications/webhooks/:id/test from 8 clients, every backend of the database terminated every 3 s (${r.terminations} times, ${r.backendsTerminated} backends)\n`,
  );
  console.log('| requests | 2xx | 503 | other 5xx | other status | network errors |');
  console.log('|---|---|---|---|---|---|');
  console.log(`| ${r.requests} | ${r.ok} | ${r.unavailable503} | ${r.other5xx} | ${r.otherStatus} | ${r.networkErrors} |`);
  console.log(
    '\n| events committed (2xx) | delivered | duplicated | lost | delivered, request not 2xx | recovery p50 ms | recovery max ms | last delivery after load s |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  console.log(
    `| ${r.eventsCommitted} | ${r.eventsDelivered} | ${r.duplicates} | ${r.lost} | ${r.deliveredUncommitted} | ${Math.round(r.recoveryP50Ms)} | ${Math.round(r.recoveryMaxMs)} | ${r.drainSeconds.toFixed(1)} |`,
  );
  console.log(`\nserver exit code after SIGTERM: ${r.serverExitCode}`);
}

if (asked('startup')) {
  // This checkout from source and from its build (`npm run build` first), plus any `--checkout <dir>` from source.
  const targets = [
    ...(values.checkout ?? []).map((checkout) => startupTarget({ checkout, name: `${checkout} (source)` })),
    startupTarget({ name: 'this checkout (source)' }),
    startupTarget({ name: 'this checkout (dist)', dist: true }),
  ];
  // The one-time build of this checkout's embedded template is not part of a cold start.
  const { ensureTemplate } = await import('../src/platform/db/embedded-template.ts');
  const built = performance.now();
  console.log(`embedded template ${await ensureTemplate()} ready in ${Math.round(performance.now() - built)} ms`);
  const results = await benchStartup({ runs: Number(values.runs), targets });
  const figures = (runs: StartupRun[], pick: (r: StartupRun) => number) => {
    const sorted = runs.map(pick).sort((a, b) => a - b);
    return [sorted[0], sorted[Math.floor(sorted.length / 2)], sorted.at(-1)].map((n) => Math.round(n ?? NaN)).join(' / ');
  };
  console.log(`\nembedded server start, ${values.runs} runs each, targets taking turns (min / median / max)\n`);
  console.log(
    '| target | cold start to first 200 ms | its CPU ms | restart to first 200 ms | its CPU ms | idle RSS MiB | RSS after 5 s of load MiB |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const { target, runs } of results) {
    console.log(
      `| ${target.name} | ${figures(runs, (r) => r.coldMs)} | ${figures(runs, (r) => r.coldCpuMs)} | ${figures(runs, (r) => r.restartMs)} | ${figures(runs, (r) => r.restartCpuMs)} | ${figures(runs, (r) => r.idleRssMb)} | ${figures(runs, (r) => r.loadRssMb)} |`,
    );
  }
}

if (asked('scale')) {
  const sizes = (values.sizes ?? '10000,1000000').split(',').map(Number);
  const result = await benchScale({ databaseUrl, sizes, runs: Number(values.runs), requests: Number(values.requests) });
  const [small, large] = [sizes[0]!, sizes.at(-1)!];
  console.log(
    `\nlists and gets at ${sizes.join(' and ')} rows (deliveries, users with KYC and accreditation, subscriptions over 100 offerings) of one org on the ${result.database} database: p50 ms of ${values.requests} sequential requests, min / median / max of ${result.runs} rounds\n`,
  );
  console.log(`| request | ${sizes.map((size) => `${size} rows`).join(' | ')} | median ${large} / median ${small} |`);
  console.log(`|---|${sizes.map(() => '---|').join('')}---|`);
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  for (const name of result.figures.get(small)!.keys()) {
    const cells = sizes.map((size) => {
      const runs = [...result.figures.get(size)!.get(name)!].sort((a, b) => a - b);
      return `${runs[0]!.toFixed(1)} / ${median(runs).toFixed(1)} / ${runs.at(-1)!.toFixed(1)}`;
    });
    const ratio = median(result.figures.get(large)!.get(name)!) / median(result.figures.get(small)!.get(name)!);
    console.log(`| ${name} | ${cells.join(' | ')} | ${ratio.toFixed(2)} |`);
  }
}
