import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api, unwrap } from '../api.ts';
import { Badge, ErrorNote, formatDate } from '../ui.tsx';

/** Platform staff: every org with its IdP settings and API keys (create, shown once; revoke). */
export function Orgs() {
  const orgs = useQuery({ queryKey: ['orgs'], queryFn: () => unwrap(api.GET('/admin/orgs')) });
  return (
    <div className="stack">
      <section aria-labelledby="orgs-title">
        <h2 id="orgs-title">
          Orgs <span className="count">{orgs.data?.items.length ?? '…'}</span>
        </h2>
        <ErrorNote error={orgs.error} />
        <table>
          <thead>
            <tr>
              <th scope="col">Org</th>
              <th scope="col">IdP issuer (or JWKS URL)</th>
              <th scope="col">Audience</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {(orgs.data?.items ?? []).map((org) => (
              <tr key={org.id}>
                <td>
                  {org.name}
                  <br />
                  <code>{org.id}</code>
                </td>
                <td>{org.idp_issuer ?? '—'}</td>
                <td>{org.idp_audience}</td>
                <td>{formatDate(org.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      {(orgs.data?.items ?? []).map((org) => (
        <ApiKeys key={org.id} orgId={org.id} name={org.name} />
      ))}
    </div>
  );
}

function ApiKeys({ orgId, name }: { orgId: string; name: string }) {
  const client = useQueryClient();
  const [label, setLabel] = useState('');
  const keys = useQuery({
    queryKey: ['api-keys', orgId],
    queryFn: () => unwrap(api.GET('/admin/orgs/{id}/api-keys', { params: { path: { id: orgId } } })),
  });
  const refresh = () => client.invalidateQueries({ queryKey: ['api-keys', orgId] });
  const create = useMutation({
    mutationFn: () => unwrap(api.POST('/admin/orgs/{id}/api-keys', { params: { path: { id: orgId } }, body: label ? { label } : {} })),
    onSuccess: async () => {
      setLabel('');
      await refresh();
    },
  });
  const revoke = useMutation({
    mutationFn: async (keyId: string) => {
      const { error } = await api.POST('/admin/orgs/{id}/api-keys/{keyId}/revoke', { params: { path: { id: orgId, keyId } } });
      if (error) throw new Error(error.error.message);
    },
    onSettled: refresh,
  });
  const labelId = `key-label-${orgId}`;
  return (
    <section aria-labelledby={`keys-${orgId}`}>
      <h2 id={`keys-${orgId}`}>API keys of {name}</h2>
      {create.data ? (
        <p role="status" className="secret">
          New key, shown once: <code>{create.data.key}</code>
        </p>
      ) : null}
      <table>
        <thead>
          <tr>
            <th scope="col">Hint</th>
            <th scope="col">Label</th>
            <th scope="col">Created</th>
            <th scope="col">Status</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {(keys.data?.items ?? []).map((key) => (
            <tr key={key.id}>
              <td>
                <code>{key.hint}</code>
              </td>
              <td>{key.label ?? '—'}</td>
              <td>{formatDate(key.created_at)}</td>
              <td>
                <Badge value={key.revoked_at ? 'revoked' : 'active'} />
              </td>
              <td>
                {key.revoked_at ? null : (
                  <button
                    type="button"
                    className="danger"
                    onClick={() => {
                      // Revoking cannot be undone: every integration using the key stops at once.
                      if (window.confirm(`Revoke ${key.label ?? 'this key'}? Integrations using it stop at once; this cannot be undone.`))
                        revoke.mutate(key.id);
                    }}
                  >
                    Revoke {key.label ?? `key …${key.hint.slice(-4)}`}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        className="toolbar"
        onSubmit={(event) => {
          event.preventDefault();
          create.mutate();
        }}
      >
        <div className="filter">
          <label htmlFor={labelId}>Label of a new key</label>
          <input id={labelId} value={label} onChange={(event) => setLabel(event.target.value)} />
        </div>
        <button type="submit" disabled={create.isPending}>
          Create API key for {name}
        </button>
      </form>
      <ErrorNote error={keys.error ?? create.error ?? revoke.error} />
    </section>
  );
}
