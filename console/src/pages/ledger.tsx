import { useQuery } from '@tanstack/react-query';
import { useEffect, useMemo, useState } from 'react';
import { useSearch } from 'wouter';
import { api, unwrap } from '../api.ts';
import { Badge, ErrorNote, formatTotal } from '../ui.tsx';

const page = (offeringId: string, userId: string, pageNumber: number) =>
  unwrap(
    api.GET('/admin/shares', {
      params: {
        query: { limit: 100, page: pageNumber, ...(offeringId ? { offering_id: offeringId } : {}), ...(userId ? { user_id: userId } : {}) },
      },
    }),
  );
type Entry = Awaited<ReturnType<typeof page>>['items'][number];

/** Most entries the page loads (and exports); beyond it the page says the view is partial. */
const MAX_ENTRIES = 10_000;

/**
 * The whole ledger for the filters, page after page (100 each), up to MAX_ENTRIES: the CSV is a cap
 * table, not one page of it. Pages follow `has_next_page`, not `total_pages`: past 1 000 entries the
 * total is capped (`total_capped`) and `total_pages` stops at 10. `partial`: entries remain unread.
 */
async function ledger(offeringId: string, userId: string) {
  const first = await page(offeringId, userId, 1);
  const items = [...first.items];
  let last = first;
  for (let next = 2; last.meta.has_next_page && items.length < MAX_ENTRIES; next++) {
    last = await page(offeringId, userId, next);
    items.push(...last.items);
  }
  return { items, meta: first.meta, partial: last.meta.has_next_page };
}

const CSV_COLUMNS: [string, (entry: Entry) => string | number | boolean | null][] = [
  ['share_id', (entry) => entry.id],
  ['offering', (entry) => entry.offering.name],
  ['security', (entry) => entry.security.name],
  ['investor', (entry) => entry.user_id],
  ['units', (entry) => entry.units],
  ['price_per_unit', (entry) => entry.price_per_unit],
  ['cost_basis', (entry) => entry.total_cost_basis],
  ['currency', (entry) => entry.currency],
  ['acquired', (entry) => entry.acquisition_date],
  ['restricted_until', (entry) => entry.restricted_until],
  ['status', (entry) => entry.status],
];
/**
 * One CSV cell (RFC 4180 quoting). A text starting with `=`, `+`, `-`, `@`, tab or CR is prefixed
 * with `'` so a spreadsheet shows it instead of running it as a formula (OWASP CSV injection);
 * offering and class names are typed by org admins.
 */
const csvCell = (value: string | number | boolean | null) => {
  const raw = value === null ? '' : String(value);
  const text = typeof value === 'string' && /^[=+\-@\t\r]/.test(raw) ? `'${raw}` : raw;
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
};

/** Holdings per offering and per investor, with their Rule 144 restriction; CSV of the whole ledger for the filters. */
export function Ledger() {
  const search = new URLSearchParams(useSearch());
  const [offeringId, setOfferingId] = useState(search.get('offering') ?? '');
  const [userId, setUserId] = useState('');
  const valid = (value: string) => value === '' || /^[0-9a-f-]{36}$/i.test(value);
  const list = useQuery({
    queryKey: ['ledger', offeringId, userId],
    queryFn: () => ledger(offeringId, userId),
    enabled: valid(offeringId) && valid(userId),
  });
  const entries = useMemo(() => list.data?.items ?? [], [list.data]);
  const csv = useMemo(
    () =>
      new Blob(
        [
          [
            CSV_COLUMNS.map(([name]) => name).join(','),
            ...entries.map((entry) => CSV_COLUMNS.map(([, cell]) => csvCell(cell(entry))).join(',')),
          ].join('\n') + '\n',
        ],
        { type: 'text/csv' },
      ),
    [entries],
  );
  const [csvHref, setCsvHref] = useState('');
  useEffect(() => {
    const href = URL.createObjectURL(csv);
    setCsvHref(href);
    return () => URL.revokeObjectURL(href);
  }, [csv]);
  return (
    <section aria-labelledby="ledger-title">
      <h2 id="ledger-title">
        {/* Every entry up to MAX_ENTRIES is loaded, so the count is exact unless more remain (the API's own total stops at 1 000). */}
        Share ledger{' '}
        <span className="count">{formatTotal(list.data && { total: list.data.items.length, total_capped: list.data.partial })}</span>
      </h2>
      <div className="toolbar">
        <div className="filter">
          <label htmlFor="offering">Offering id</label>
          <input id="offering" value={offeringId} onChange={(event) => setOfferingId(event.target.value.trim())} />
        </div>
        <div className="filter">
          <label htmlFor="investor">Investor (user id)</label>
          <input id="investor" value={userId} onChange={(event) => setUserId(event.target.value.trim())} />
        </div>
        <a className="button" href={csvHref} download="share-ledger.csv">
          Export CSV
        </a>
      </div>
      <ErrorNote error={list.error} />
      {list.data?.partial ? (
        <p role="status" className="hint">
          Showing (and exporting) the newest {list.data.items.length} entries; more follow: filter by offering or investor, or use the OCF
          export, for the rest.
        </p>
      ) : null}
      <table>
        <thead>
          <tr>
            <th scope="col">Offering</th>
            <th scope="col">Security</th>
            <th scope="col">Investor</th>
            <th scope="col">Units</th>
            <th scope="col">Cost basis</th>
            <th scope="col">Acquired</th>
            <th scope="col">Restricted until (Rule 144)</th>
            <th scope="col">Status</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((entry) => (
            <tr key={entry.id}>
              <td>{entry.offering.name}</td>
              <td>{entry.security.name}</td>
              <td>{entry.user_id.slice(0, 8)}</td>
              <td>{entry.units}</td>
              <td>
                {entry.total_cost_basis} {entry.currency}
              </td>
              <td>{entry.acquisition_date}</td>
              <td>{entry.restricted ? (entry.restricted_until ?? 'restricted') : 'unrestricted'}</td>
              <td>
                <Badge value={entry.status} />
              </td>
            </tr>
          ))}
          {entries.length === 0 ? (
            <tr>
              <td colSpan={8}>No holdings.</td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </section>
  );
}
