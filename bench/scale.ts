import { sql, type SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { queryRows } from '../src/platform/db/database.ts';
import { johnSmith } from '../test/support/fixtures.ts';
import { apiCaller, startBenchServer } from './support.ts';

/** The p50 of each list and get at each size: `figures[size][name]` is the p50 of each of `runs` rounds. */
export type ScaleResult = { database: string; sizes: number[]; runs: number; figures: Map<number, Map<string, number[]>> };

const EVENT_TYPES = ['kyc.verification.approved', 'accreditation.approved', 'subscription.funded', 'share.issued', 'offering.opened'];
/** The offerings the subscriptions are spread over, whatever the size: each holds size / 100 of them. */
const OFFERINGS = 100;
/** The first this many subscriptions are the measured investor's (two per offering), at every size. */
const INVESTOR_SUBSCRIPTIONS = 200;
/** The measured create: one unit at 1.00. */
const SUBSCRIPTION = {
  unitsSubscribed: 1,
  paymentMethod: 'card',
  accreditationStatus: 'non_accredited',
  suitabilityConfirmed: true,
  riskAcknowledgmentSigned: true,
};
/** Rows per seeding statement: keeps each statement's memory small. */
const CHUNK = 100_000;

/** A deterministic UUID v4 (version and variant digits set) for row `i` of `kind`, in SQL. */
const uid = (kind: string, i: ReturnType<typeof sql.raw>) =>
  sql`overlay(overlay(md5(${kind} || ${i}::text) placing '4' from 13) placing '8' from 17)::uuid`;

/**
 * Lists and gets at 10 k and 1 M rows of one org, seeded with set-based SQL (`generate_series`, in
 * statements of 100 000 rows, then `vacuum analyze` as autovacuum would have): at each size that
 * many webhook deliveries (one endpoint; 90 % succeeded, the rest exhausted, pending and skipped;
 * five event types), users, each with one KYC verification (85 % approved, 5 % in needs_review)
 * and one accreditation (65 % approved, 5 % pending_review), and subscriptions spread evenly over
 * 100 open offerings of one class each (65 % completed, 15 % cancelled, 5 % each pending_signature,
 * pending_payment, pending_review and rejected), the first 200 of them the measured investor's;
 * one a second going back in time. Where the schema keeps running totals (`units_held`), they are
 * filled from the seeded subscriptions, as the migration that adds them does.
 *
 * Each round asks every request `requests` times in a row and takes the p50; `runs` rounds (the
 * create adds a subscription each time, to an offering already holding size / 100). Callers:
 * the org's API key, the investor and the org admin (Bearer), a platform admin key (every org). The
 * deep pages are the 5 000th item, by `offset` (or `page`) and by `cursor` (ignored by servers
 * without cursor paging, which then answer page 1).
 */
export async function benchScale(options: { databaseUrl?: string; sizes: number[]; runs: number; requests: number }): Promise<ScaleResult> {
  const server = await startBenchServer({ databaseUrl: options.databaseUrl });
  const { db } = server.database;
  const org = server.org.id;
  const call = apiCaller(server.url);
  const figures = new Map<number, Map<string, number[]>>();
  let investorId = '';
  let firstClassId = '';
  const maintenance = await maintenanceConnection();
  try {
    const [endpoint] = await queryRows<{ id: string }>(
      db,
      sql`insert into webhook_endpoints (org_id, url, event_types, status) values (${org}, 'https://hooks.example.com/x', '{*}', 'disabled') returning id`,
    );
    const investor = await server.signIn('investor@bench.example');
    investorId = investor.userId;
    const kyc = (await call('POST', '/identity/kyc-verifications', investor.accessToken, johnSmith)) as unknown as {
      verification_id: string;
    };
    await call('PUT', '/identity/accreditations', investor.accessToken, {
      accreditationStatus: 'accredited',
      accreditationBasis: 'income',
    });
    const platformKey = (await server.modules.identity.orgs.createAdminKey('bench')).key;
    const [issuer] = await queryRows<{ id: string }>(
      db,
      sql`insert into issuers (org_id, legal_name) values (${org}, 'Bench Inc.') returning id`,
    );
    await db.execute(sql`
      insert into offerings (org_id, issuer_id, name, exemption_type, target_amount_cents, maximum_amount_cents, minimum_investment_cents,
        deadline, status, opened_at, created_at)
      select ${org}, ${issuer!.id}, 'Offering ' || lpad(k::text, 3, '0'), 'reg_d_506b', 100000000, 900000000000, 100, '2030-12-31', 'open',
        now(), now() - make_interval(days => k)
      from generate_series(1, ${OFFERINGS}) as k`);
    await db.execute(sql`
      insert into security_classes (org_id, offering_id, name, category, price_per_unit_cents, units_authorized)
      select ${org}, id, 'Common', 'equity', 100, 1000000000 from offerings where org_id = ${org}`);
    const [offering] = await queryRows<{ id: string; classId: string }>(
      db,
      sql`select o.id, c.id as "classId" from offerings o join security_classes c on c.offering_id = o.id where o.org_id = ${org} order by o.name limit 1`,
    );
    firstClassId = offering!.classId;
    const runningTotals =
      (
        await queryRows<{ n: number }>(
          db,
          sql`select count(*)::int as n from information_schema.columns where table_name = 'security_classes' and column_name = 'units_held'`,
        )
      )[0]!.n > 0;

    let seeded = 0;
    for (const size of options.sizes) {
      for (let start = seeded + 1; start <= size; start += CHUNK) await seed(start, Math.min(size, start + CHUNK - 1));
      seeded = size;
      if (runningTotals) await fillTotals();
      // As autovacuum would have by then: statistics, and a visibility map for index-only counts.
      for (const table of [
        'webhook_messages',
        'webhook_deliveries',
        'users',
        'kyc_verifications',
        'accreditations',
        'subscriptions',
        'offerings',
        'security_classes',
      ])
        await maintenance.execute(sql`vacuum analyze ${sql.identifier(table)}`);

      const nth = async (query: ReturnType<typeof sql>) => (await queryRows<{ id: string }>(db, query))[0]!.id;
      const deepDelivery = await nth(
        sql`select id from webhook_deliveries where org_id = ${org} order by created_at desc, id desc offset 4999 limit 1`,
      );
      const deepKyc = await nth(
        sql`select id from kyc_verifications where org_id = ${org} and status = 'approved' order by created_at desc, id desc offset 4999 limit 1`,
      );
      const deepAccreditation = await nth(
        sql`select id from accreditations where org_id = ${org} and review_status = 'approved' order by submitted_at, id offset 4999 limit 1`,
      );
      const oneDelivery = await nth(sql`select id from webhook_deliveries where org_id = ${org} limit 1`);
      const oneSubscription = await nth(
        sql`select id from subscriptions where user_id = ${investor.userId} order by created_at desc limit 1`,
      );
      type Caller = 'apiKey' | 'investor' | 'admin' | 'platform';
      const requests: [string, Caller, string][] = [
        ['deliveries: list, first page', 'apiKey', '/notifications/deliveries?limit=20'],
        ['deliveries: list, status=exhausted', 'apiKey', '/notifications/deliveries?limit=20&status=exhausted'],
        ['deliveries: list, event_type', 'apiKey', `/notifications/deliveries?limit=20&event_type=${EVENT_TYPES[3]}`],
        ['deliveries: list, endpoint_id', 'apiKey', `/notifications/deliveries?limit=20&endpoint_id=${endpoint!.id}`],
        ['deliveries: list, offset 5 000', 'apiKey', '/notifications/deliveries?limit=20&offset=5000'],
        ['deliveries: list, cursor at 5 000', 'apiKey', `/notifications/deliveries?limit=20&cursor=${deepDelivery}`],
        ['deliveries: get one', 'apiKey', `/notifications/deliveries/${oneDelivery}`],
        ['offerings: list with totals', 'apiKey', '/issuance/offerings?limit=20'],
        ['offerings: list, sort_by=deadline', 'apiKey', '/issuance/offerings?limit=20&sort_by=deadline'],
        ['offerings: admin list', 'admin', '/admin/offerings?limit=20'],
        ['offerings: get one', 'apiKey', `/issuance/offerings/${offering!.id}`],
        ['offerings: securities of one', 'apiKey', `/issuance/offerings/${offering!.id}/securities`],
        ["subscriptions: investor's list", 'investor', '/issuance/subscriptions?limit=20'],
        ["subscriptions: investor's, offering_id", 'investor', `/issuance/subscriptions?limit=20&offering_id=${offering!.id}`],
        ["subscriptions: investor's, status=completed", 'investor', '/issuance/subscriptions?limit=20&status=completed'],
        ['subscriptions: get one', 'investor', `/issuance/subscriptions/${oneSubscription}`],
        // A new subscription of one unit to the first offering, which holds size / 100 of them.
        ['subscriptions: create (POST)', 'investor', `/issuance/offerings/${offering!.id}/subscriptions`],
        ['subscriptions: review queue (org admin)', 'admin', '/admin/subscriptions?limit=20'],
        ['subscriptions: status=completed (org admin)', 'admin', '/admin/subscriptions?limit=20&status=completed'],
        ['subscriptions: status=completed, page 251', 'admin', '/admin/subscriptions?limit=20&status=completed&page=251'],
        ['subscriptions: review queue (platform)', 'platform', '/admin/subscriptions?limit=20'],
        ['kyc: review queue (org admin)', 'admin', '/admin/kyc-verifications?limit=20'],
        ['kyc: review queue (platform)', 'platform', '/admin/kyc-verifications?limit=20'],
        ['kyc: status=approved', 'admin', '/admin/kyc-verifications?limit=20&status=approved'],
        ['kyc: status=approved, offset 5 000', 'admin', '/admin/kyc-verifications?limit=20&status=approved&offset=5000'],
        ['kyc: status=approved, cursor at 5 000', 'admin', `/admin/kyc-verifications?limit=20&status=approved&cursor=${deepKyc}`],
        ['kyc: get one', 'investor', `/identity/kyc-verifications/${kyc.verification_id}`],
        ['accreditations: review queue (org admin)', 'admin', '/admin/accreditations?limit=20'],
        ['accreditations: review queue (platform)', 'platform', '/admin/accreditations?limit=20'],
        ['accreditations: approved, offset 5 000', 'admin', '/admin/accreditations?limit=20&review_status=approved&offset=5000'],
        [
          'accreditations: approved, cursor at 5 000',
          'admin',
          `/admin/accreditations?limit=20&review_status=approved&cursor=${deepAccreditation}`,
        ],
        ['accreditations: get own', 'investor', '/identity/accreditations'],
      ];
      const bySize = new Map<string, number[]>();
      figures.set(size, bySize);
      // Access tokens live five minutes: new ones for each round.
      const callers = async (): Promise<Record<Caller, Record<string, string>>> => ({
        apiKey: { 'x-api-key': server.apiKey },
        investor: { authorization: `Bearer ${(await server.signIn('investor@bench.example')).accessToken}` },
        admin: { authorization: `Bearer ${(await server.signIn('admin@bench.example')).accessToken}` },
        // Without X-Tranche-Org: every org's queue.
        platform: { 'x-admin-key': platformKey },
      });
      // One unmeasured pass warms the plan cache and the pages the requests read.
      let headers = await callers();
      for (const [, caller, path] of requests) await ask(path, headers[caller]);
      for (let run = 0; run < options.runs; run++) {
        headers = await callers();
        for (const [name, caller, path] of requests) {
          const times: number[] = [];
          for (let i = 0; i < options.requests; i++) {
            const started = performance.now();
            await ask(path, headers[caller]);
            times.push(performance.now() - started);
          }
          times.sort((a, b) => a - b);
          bySize.set(name, [...(bySize.get(name) ?? []), times[Math.floor(times.length / 2)]!]);
        }
      }
    }
    return { database: server.database.kind, sizes: options.sizes, runs: options.runs, figures };
  } finally {
    await maintenance.close();
    await server.close();
  }

  /**
   * Where seeding and vacuum run: they take longer than the server's statement timeout, so on
   * PostgreSQL on a connection of their own without one.
   */
  async function maintenanceConnection(): Promise<{ execute(query: SQL): Promise<unknown>; close(): Promise<void> }> {
    if (!options.databaseUrl) return { execute: (query) => db.execute(query), close: async () => undefined };
    const [current] = await queryRows<{ name: string }>(db, sql`select current_database() as name`);
    const url = new URL(options.databaseUrl);
    url.pathname = `/${current!.name}`;
    const client = new pg.Client({ connectionString: url.toString(), statement_timeout: 0 });
    await client.connect();
    const connection = drizzle(client);
    return { execute: (query) => connection.execute(query), close: () => client.end() };
  }

  /** GET `path`, or POST a subscription when it is an offering's subscriptions; throws unless 200 (201). */
  async function ask(path: string, headers: Record<string, string>) {
    const create = path.endsWith('/subscriptions') && path.startsWith('/issuance/offerings/');
    const response = await fetch(`${server.url}${path}`, {
      headers: create ? { ...headers, 'content-type': 'application/json' } : headers,
      ...(create ? { method: 'POST', body: JSON.stringify({ ...SUBSCRIPTION, securityClassId: firstClassId }) } : {}),
    });
    await response.arrayBuffer();
    if (response.status !== (create ? 201 : 200)) throw new Error(`${path}: ${response.status}`);
  }

  /** Rows `start` to `end` (1-based) of every seeded table. */
  async function seed(start: number, end: number) {
    const types = sql.raw(`array[${EVENT_TYPES.map((type) => `'${type}'`).join(',')}]`);
    const i = sql.raw('i');
    // One message (the event's body, sent to every endpoint) per delivery: this org has one endpoint.
    await maintenance.execute(sql`
      insert into webhook_messages (id, org_id, event_type, body, created_at)
      select ${uid('message', i)}, ${org}, (${types})[1 + i % 5], '{}', now() - make_interval(secs => i)
      from generate_series(${start}::int, ${end}::int) as i`);
    await maintenance.execute(sql`
      insert into webhook_deliveries (org_id, endpoint_id, event_id, event_type, status, attempt_count, created_at, updated_at)
      select ${org}, e.id, ${uid('message', i)}, (${types})[1 + i % 5],
        case when i % 10 < 9 then 'succeeded' when i % 30 = 9 then 'exhausted' when i % 30 = 19 then 'pending' else 'skipped' end,
        1, now() - make_interval(secs => i), now() - make_interval(secs => i)
      from generate_series(${start}::int, ${end}::int) as i, (select id from webhook_endpoints where org_id = ${org}) as e`);
    await maintenance.execute(sql`
      insert into users (id, org_id, subject_digest, role, created_at, updated_at)
      select ${uid('user', i)}, ${org}, 'bench-subject-' || i, 'user', now() - make_interval(secs => i), now() - make_interval(secs => i)
      from generate_series(${start}::int, ${end}::int) as i`);
    await maintenance.execute(sql`
      insert into kyc_verifications (org_id, user_id, status, identity_check, document_check, provider, provider_reference,
        submitted_at, completed_at, expires_at, created_at, updated_at)
      select ${org}, ${uid('user', i)}, s.status,
        case s.status when 'approved' then 'passed' when 'rejected' then 'failed' else 'needs_review' end,
        case s.status when 'approved' then 'passed' when 'rejected' then 'failed' else 'needs_review' end,
        'sandbox', 'bench-' || i, now() - make_interval(secs => i), now() - make_interval(secs => i), now() + interval '1 year',
        now() - make_interval(secs => i), now() - make_interval(secs => i)
      from generate_series(${start}::int, ${end}::int) as i,
        lateral (select case when i % 20 < 16 then 'approved' when i % 20 = 16 then 'rejected' when i % 20 = 17 then 'needs_review'
          when i % 20 = 18 then 'expired' else 'approved' end as status) as s`);
    await maintenance.execute(sql`
      insert into accreditations (org_id, user_id, status, basis, review_status, submitted_at, reviewed_at, created_at, updated_at)
      select ${org}, ${uid('user', i)},
        case r.review_status when 'approved' then 'accredited' when 'denied' then 'non_accredited' when 'not_required' then 'non_accredited'
          when 'expired' then 'expired' else 'pending' end,
        'income', r.review_status, now() - make_interval(secs => i), now() - make_interval(secs => i),
        now() - make_interval(secs => i), now() - make_interval(secs => i)
      from generate_series(${start}::int, ${end}::int) as i,
        lateral (select case when i % 20 < 12 then 'approved' when i % 20 < 14 then 'not_required' when i % 20 = 14 then 'pending_review'
          when i % 20 = 15 then 'under_review' when i % 20 = 16 then 'more_info_needed' when i % 20 = 17 then 'denied'
          when i % 20 = 18 then 'expired' else 'approved' end as review_status) as r`);
    await maintenance.execute(sql`
      insert into subscriptions (org_id, offering_id, security_class_id, user_id, units, price_per_unit_cents, amount_cents, currency,
        payment_method, accreditation_status, suitability_confirmed, risk_acknowledgment_signed, status, payment_status, created_at, updated_at)
      select ${org}, c.offering_ids[1 + i % ${OFFERINGS}], c.class_ids[1 + i % ${OFFERINGS}],
        case when i <= ${INVESTOR_SUBSCRIPTIONS} then ${investorId}::uuid else ${uid('user', i)} end,
        10, 100, 1000, 'USD', 'card', case when i / 100 % 3 = 0 then 'accredited' else 'non_accredited' end, true, true, s.status,
        case when s.status in ('pending_review', 'completed') then 'paid' when s.status = 'rejected' then 'refunded' else 'none' end,
        now() - make_interval(secs => i), now() - make_interval(secs => i)
      from generate_series(${start}::int, ${end}::int) as i,
        (select array_agg(offering_id order by offering_id) as offering_ids, array_agg(id order by offering_id) as class_ids
          from security_classes where org_id = ${org}) as c,
        -- Statuses by i / 100, so that every offering (i % 100) has subscriptions of every status.
        lateral (select case when i / 100 % 20 < 12 then 'completed' when i / 100 % 20 < 15 then 'cancelled'
          when i / 100 % 20 = 15 then 'pending_signature' when i / 100 % 20 = 16 then 'pending_payment'
          when i / 100 % 20 = 17 then 'pending_review' when i / 100 % 20 = 18 then 'rejected' else 'completed' end as status) as s`);
  }

  /** The running totals from the subscriptions, set-based, as migration `running_totals` fills them. */
  async function fillTotals() {
    const holding = sql.raw(`('draft', 'pending_signature', 'pending_payment', 'pending_review', 'approved', 'completed')`);
    await maintenance.execute(sql`delete from offering_investors`);
    await maintenance.execute(sql`
      insert into offering_investors (offering_id, user_id, holding_subscriptions, accredited_subscriptions, committed_cents)
      select offering_id, user_id, count(*), count(*) filter (where accreditation_status = 'accredited'), sum(amount_cents)
      from subscriptions where status in ${holding} group by offering_id, user_id`);
    await maintenance.execute(sql`
      update offerings as o set committed_cents = s.committed, investors = s.investors, accredited_investors = s.accredited
      from (
        select offering_id, sum(committed_cents) as committed, count(*) as investors,
          count(*) filter (where accredited_subscriptions > 0) as accredited
        from offering_investors group by offering_id
      ) as s
      where o.id = s.offering_id`);
    await maintenance.execute(sql`
      update offerings as o set raised_cents = s.raised
      from (select offering_id, sum(amount_cents) as raised from subscriptions
        where status in ('pending_review', 'approved', 'completed') group by offering_id) as s
      where o.id = s.offering_id`);
    await maintenance.execute(sql`
      update security_classes as c set units_held = s.units
      from (select security_class_id, sum(units) as units from subscriptions where status in ${holding} group by security_class_id) as s
      where c.id = s.security_class_id`);
  }
}
