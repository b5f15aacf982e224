import { sql } from 'drizzle-orm';
import { queryRows } from '../src/platform/db/database.ts';
import { startBenchServer } from './support.ts';

/** The p50 of each list and get at each size: `figures[size][name]` is the p50 of each of `runs` rounds. */
export type ScaleResult = { database: string; sizes: number[]; runs: number; figures: Map<number, Map<string, number[]>> };

const EVENT_TYPES = ['kyc.verification.approved', 'accreditation.approved', 'subscription.funded', 'share.issued', 'offering.opened'];

/**
 * Deliveries log at 10 k and 1 M rows of one org (one endpoint), seeded with set-based SQL
 * (`generate_series`: 90 % succeeded, the rest exhausted, pending and skipped; five event types;
 * one a second going back in time), then `vacuum analyze`. Each round asks every request `requests`
 * times in a row and takes the p50; `runs` rounds. The deep page is the 5 000th delivery, by
 * `offset` and by `cursor` (ignored by servers without cursor paging, which then answer page 1).
 */
export async function benchScale(options: { databaseUrl?: string; sizes: number[]; runs: number; requests: number }): Promise<ScaleResult> {
  const server = await startBenchServer({ databaseUrl: options.databaseUrl });
  const { db } = server.database;
  const figures = new Map<number, Map<string, number[]>>();
  try {
    const [endpoint] = await queryRows<{ id: string }>(
      db,
      sql`insert into webhook_endpoints (org_id, url, event_types, status) values (${server.org.id}, 'https://hooks.example.com/x', '{*}', 'disabled') returning id`,
    );
    let seeded = 0;
    for (const size of options.sizes) {
      await seed(seeded, size);
      seeded = size;
      // As autovacuum would have by then: statistics, and a visibility map for index-only counts.
      await db.execute(sql`vacuum analyze webhook_deliveries`);
      const [deep] = await queryRows<{ id: string }>(
        db,
        sql`select id from webhook_deliveries where org_id = ${server.org.id} order by created_at desc, id desc offset 4999 limit 1`,
      );
      const [one] = await queryRows<{ id: string }>(db, sql`select id from webhook_deliveries where org_id = ${server.org.id} limit 1`);
      const requests: [string, string][] = [
        ['list, first page', '/notifications/deliveries?limit=20'],
        ['list, status=exhausted', '/notifications/deliveries?limit=20&status=exhausted'],
        ['list, event_type', `/notifications/deliveries?limit=20&event_type=${EVENT_TYPES[3]}`],
        ['list, endpoint_id', `/notifications/deliveries?limit=20&endpoint_id=${endpoint!.id}`],
        ['list, offset 5 000', '/notifications/deliveries?limit=20&offset=5000'],
        ['list, cursor at 5 000', `/notifications/deliveries?limit=20&cursor=${deep!.id}`],
        ['get one delivery', `/notifications/deliveries/${one!.id}`],
      ];
      const bySize = new Map<string, number[]>();
      figures.set(size, bySize);
      // One unmeasured pass warms the plan cache and the pages the requests read.
      for (const [, path] of requests)
        await (await fetch(`${server.url}${path}`, { headers: { 'x-api-key': server.apiKey } })).arrayBuffer();
      for (let run = 0; run < options.runs; run++) {
        for (const [name, path] of requests) {
          const times: number[] = [];
          for (let i = 0; i < options.requests; i++) {
            const started = performance.now();
            const response = await fetch(`${server.url}${path}`, { headers: { 'x-api-key': server.apiKey } });
            await response.arrayBuffer();
            if (response.status !== 200) throw new Error(`${path}: ${response.status}`);
            times.push(performance.now() - started);
          }
          times.sort((a, b) => a - b);
          bySize.set(name, [...(bySize.get(name) ?? []), times[Math.floor(times.length / 2)]!]);
        }
      }
    }
    return { database: server.database.kind, sizes: options.sizes, runs: options.runs, figures };
  } finally {
    await server.close();
  }

  async function seed(from: number, to: number) {
    const types = sql.raw(`array[${EVENT_TYPES.map((type) => `'${type}'`).join(',')}]`);
    // Batches of 100 000 keep each statement's memory small on the embedded database.
    for (let start = from + 1; start <= to; start += 100_000) {
      const end = Math.min(to, start + 99_999);
      await db.execute(sql`
        insert into webhook_deliveries (org_id, endpoint_id, event_id, event_type, payload, status, attempt_count, created_at, updated_at)
        select ${server.org.id}, e.id, gen_random_uuid(), (${types})[1 + i % 5], '{}'::jsonb,
          case when i % 10 < 9 then 'succeeded' when i % 30 = 9 then 'exhausted' when i % 30 = 19 then 'pending' else 'skipped' end,
          1, now() - make_interval(secs => i), now() - make_interval(secs => i)
        from generate_series(${start}::int, ${end}::int) as i, (select id from webhook_endpoints where org_id = ${server.org.id}) as e`);
    }
  }
}
