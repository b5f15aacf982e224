import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api, unwrap } from '../api.ts';
import { Badge, ErrorNote, formatTotal, MoreRows, usePagedList } from '../ui.tsx';

type Endpoint = Awaited<ReturnType<typeof listEndpoints>>['items'][number];
/** One page of 100 endpoints, from `offset`. */
const listEndpoints = (offset = 0) => unwrap(api.GET('/notifications/webhooks', { params: { query: { limit: 100, offset } } }));

/** The working org's webhook endpoints: create, send a test, rotate the secret, recover, disable or enable. */
export function Endpoints({ orgId }: { orgId: string }) {
  const client = useQueryClient();
  const list = usePagedList({ queryKey: ['endpoints', orgId], fetchPage: (next) => listEndpoints(Number(next ?? 0)) });
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState('*');
  const [secret, setSecret] = useState<string | undefined>();
  const refresh = async () => {
    await client.invalidateQueries({ queryKey: ['endpoints', orgId] });
    await client.invalidateQueries({ queryKey: ['deliveries', orgId] });
  };
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST('/notifications/webhooks', {
          body: {
            url,
            eventTypes: events
              .split(',')
              .map((type) => type.trim())
              .filter(Boolean),
          },
        }),
      ),
    onSuccess: async (created) => {
      setSecret(`${created.url}: ${created.signing_secret}`);
      setUrl('');
      await refresh();
    },
  });
  return (
    <section aria-labelledby="endpoints-title">
      <h2 id="endpoints-title">
        Endpoints <span className="count">{formatTotal(list.data?.meta)}</span>
      </h2>
      <ErrorNote error={list.error} />
      {secret ? (
        <p role="status" className="secret">
          Signing secret, shown once: <code>{secret}</code>
        </p>
      ) : null}
      <table>
        <thead>
          <tr>
            <th scope="col">URL</th>
            <th scope="col">Events</th>
            <th scope="col">Status</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {(list.data?.items ?? []).map((endpoint) => (
            <EndpointRow key={endpoint.id} endpoint={endpoint} onSecret={setSecret} onChanged={refresh} />
          ))}
        </tbody>
      </table>
      <MoreRows list={list} label="endpoints" />
      <form
        className="toolbar"
        onSubmit={(event) => {
          event.preventDefault();
          create.mutate();
        }}
      >
        <div className="filter">
          <label htmlFor="endpoint-url">Endpoint URL</label>
          <input id="endpoint-url" type="url" required value={url} onChange={(event) => setUrl(event.target.value)} />
        </div>
        <div className="filter">
          <label htmlFor="endpoint-events">Event types (comma-separated, * for all)</label>
          <input id="endpoint-events" required value={events} onChange={(event) => setEvents(event.target.value)} />
        </div>
        <button type="submit" disabled={create.isPending}>
          Add endpoint
        </button>
      </form>
      <ErrorNote error={create.error} />
    </section>
  );
}

function EndpointRow({
  endpoint,
  onSecret,
  onChanged,
}: {
  endpoint: Endpoint;
  onSecret: (secret: string) => void;
  onChanged: () => Promise<void>;
}) {
  const [since, setSince] = useState(() => new Date(Date.now() - 86_400_000).toISOString().slice(0, 16));
  const path = { params: { path: { id: endpoint.id } } };
  const act = useMutation({
    mutationFn: async (action: 'test' | 'rotate' | 'recover' | 'toggle') => {
      if (action === 'test') return unwrap(api.POST('/notifications/webhooks/{id}/test', path)).then(() => undefined);
      if (action === 'rotate') {
        const rotated = await unwrap(api.POST('/notifications/webhooks/{id}/rotate-secret', { ...path, body: {} }));
        onSecret(`${endpoint.url}: ${rotated.signing_secret}`);
        return undefined;
      }
      if (action === 'recover')
        return unwrap(api.POST('/notifications/webhooks/{id}/recover', { ...path, body: { since: new Date(since).toISOString() } })).then(
          (result) => `${result.recovered} deliveries queued again`,
        );
      return unwrap(
        api.PATCH('/notifications/webhooks/{id}', { ...path, body: { status: endpoint.status === 'active' ? 'disabled' : 'active' } }),
      ).then(() => undefined);
    },
    onSuccess: onChanged,
  });
  const sinceId = `since-${endpoint.id}`;
  return (
    <tr>
      <td>{endpoint.url}</td>
      <td>{endpoint.event_types.join(', ')}</td>
      <td>
        <Badge value={endpoint.status} />
        {endpoint.disabled_reason ? ` (${endpoint.disabled_reason})` : ''}
      </td>
      <td>
        <div className="actions">
          <button type="button" onClick={() => act.mutate('test')}>
            Send test
          </button>
          <button type="button" onClick={() => act.mutate('rotate')}>
            Rotate secret
          </button>
          <button type="button" onClick={() => act.mutate('toggle')}>
            {endpoint.status === 'active' ? 'Disable' : 'Enable'}
          </button>
        </div>
        <div className="actions">
          <label htmlFor={sinceId}>Recover since</label>
          <input id={sinceId} type="datetime-local" value={since} onChange={(event) => setSince(event.target.value)} />
          <button type="button" onClick={() => act.mutate('recover')}>
            Recover
          </button>
        </div>
        {act.data ? <p role="status">{act.data}</p> : null}
        <ErrorNote error={act.error} />
      </td>
    </tr>
  );
}
