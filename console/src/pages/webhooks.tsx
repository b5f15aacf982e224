import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useParams } from 'wouter';
import { api, unwrap } from '../api.ts';
import { Badge, ErrorNote, formatDate, formatTotal, MoreRows, StatusFilter, usePagedList } from '../ui.tsx';
import { Endpoints } from './endpoints.tsx';

const DELIVERY_STATUSES = ['pending', 'sending', 'succeeded', 'exhausted', 'cancelled', 'skipped'] as const;
type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** The delivery log of the working org: each delivery, its attempts, and a manual retry. */
export function Webhooks({ orgId }: { orgId: string | undefined }) {
  const params = useParams<{ id?: string }>();
  const [status, setStatus] = useState<DeliveryStatus | ''>('');
  const list = usePagedList({
    queryKey: ['deliveries', orgId, status],
    fetchPage: (next) =>
      unwrap(
        api.GET('/notifications/deliveries', {
          params: { query: { limit: 100, ...(status ? { status } : {}), ...(next ? { cursor: String(next) } : {}) } },
        }),
      ),
    enabled: orgId !== undefined,
  });
  if (!orgId) return <p className="hint">Choose an org above to see its webhooks.</p>;
  const items = list.data?.items ?? [];
  // Of the deliveries shown that have been tried at least once, the share that got a 2xx.
  const succeeded = items.filter((item) => item.status === 'succeeded').length;
  const finished = items.filter((item) => item.attempt_count > 0).length;
  return (
    <div className="stack">
      <Endpoints orgId={orgId} />
      <div className="split">
        <section aria-labelledby="deliveries-title" className="queue">
          <h2 id="deliveries-title">
            Webhook deliveries <span className="count">{formatTotal(list.data?.meta)}</span>
          </h2>
          <p>
            Success rate of the deliveries shown: <strong>{finished ? `${Math.round((100 * succeeded) / finished)} %` : '—'}</strong>
          </p>
          {finished ? (
            <meter aria-label="Success rate" min={0} max={finished} value={succeeded}>
              {succeeded} of {finished}
            </meter>
          ) : null}
          <div className="toolbar">
            <StatusFilter<DeliveryStatus> label="Status" value={status} options={DELIVERY_STATUSES} onChange={setStatus} allowAll />
          </div>
          <ErrorNote error={list.error} />
          <table>
            <thead>
              <tr>
                <th scope="col">Delivery</th>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last code</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {items.map((item) => (
                <tr key={item.id} className={params.id === item.id ? 'selected' : ''}>
                  <td>
                    <Link href={`/webhooks/${item.id}`}>{item.id.slice(0, 8)}</Link>
                  </td>
                  <td>{item.event_type}</td>
                  <td>
                    <Badge value={item.status} />
                  </td>
                  <td>{item.attempt_count}</td>
                  <td>{item.last_status_code ?? item.last_error ?? '—'}</td>
                  <td>{formatDate(item.created_at)}</td>
                </tr>
              ))}
              {items.length === 0 ? (
                <tr>
                  <td colSpan={6}>No deliveries.</td>
                </tr>
              ) : null}
            </tbody>
          </table>
          <MoreRows list={list} label="deliveries" />
        </section>
        {params.id ? <Delivery id={params.id} orgId={orgId} /> : <p className="hint">Open a delivery to see its attempts.</p>}
      </div>
    </div>
  );
}

function Delivery({ id, orgId }: { id: string; orgId: string }) {
  const client = useQueryClient();
  const delivery = useQuery({
    queryKey: ['delivery', orgId, id],
    queryFn: () => unwrap(api.GET('/notifications/deliveries/{id}', { params: { path: { id } } })),
  });
  const retry = useMutation({
    mutationFn: () => unwrap(api.POST('/notifications/deliveries/{id}/retry', { params: { path: { id } } })),
    onSettled: async () => {
      await client.invalidateQueries({ queryKey: ['delivery', orgId, id] });
      await client.invalidateQueries({ queryKey: ['deliveries', orgId] });
    },
  });
  const item = delivery.data;
  return (
    <article className="case" aria-labelledby="delivery-title">
      <h2 id="delivery-title">Delivery {id.slice(0, 8)}</h2>
      <ErrorNote error={delivery.error} />
      {item ? (
        <>
          <p>
            {item.event_type} · <Badge value={item.status} /> · next attempt {formatDate(item.next_attempt_at)}
          </p>
          <div className="actions">
            <button type="button" disabled={retry.isPending} onClick={() => retry.mutate()}>
              Retry now
            </button>
          </div>
          {retry.data ? (
            <p role="status">
              Manual attempt {retry.data.attempt_number}: {retry.data.status_code ?? retry.data.error_kind} in {retry.data.duration_ms} ms
            </p>
          ) : null}
          <ErrorNote error={retry.error} />
          <h3>Attempts</h3>
          <table>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Trigger</th>
                <th scope="col">Status</th>
                <th scope="col">Duration</th>
                <th scope="col">Response excerpt</th>
                <th scope="col">At</th>
              </tr>
            </thead>
            <tbody>
              {item.attempts.map((attempt) => (
                <tr key={attempt.id}>
                  <td>{attempt.attempt_number}</td>
                  <td>{attempt.trigger}</td>
                  <td>{attempt.status_code ?? attempt.error_kind}</td>
                  <td>{attempt.duration_ms} ms</td>
                  <td>
                    <code>{(attempt.response_excerpt ?? attempt.error_message ?? '').slice(0, 200)}</code>
                  </td>
                  <td>{formatDate(attempt.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </article>
  );
}
