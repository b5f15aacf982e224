import { QueryClient, QueryClientProvider, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { Link, Redirect, Route, Router, Switch, useLocation } from 'wouter';
import { api, ApiError, setCsrfToken, setWorkingOrg, unwrap, type Session } from './api.ts';
import { AccreditationQueue, KycQueue, SubscriptionQueue } from './pages/review.tsx';
import { Ledger } from './pages/ledger.tsx';
import { Webhooks } from './pages/webhooks.tsx';
import { Offerings } from './pages/offerings.tsx';
import { Mail } from './pages/mail.tsx';
import { Orgs } from './pages/orgs.tsx';
import { ErrorNote } from './ui.tsx';
import './styles.css';

const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false, refetchOnWindowFocus: false } } });

function SignIn({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const [adminKey, setAdminKey] = useState('');
  const signIn = useMutation({
    mutationFn: () => unwrap(api.POST('/admin/console/session', { body: { adminKey } })),
    onSuccess: (session) => {
      setAdminKey('');
      onSignedIn(session);
    },
  });
  return (
    <main className="sign-in">
      <h1>Tranche console</h1>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          signIn.mutate();
        }}
      >
        <h2>Platform staff</h2>
        <label htmlFor="admin-key">Admin key</label>
        <input
          id="admin-key"
          type="password"
          autoComplete="off"
          required
          value={adminKey}
          onChange={(event) => setAdminKey(event.target.value)}
        />
        <p className="hint">
          From <code>tranche admin-key create</code> or the first start's output. It is exchanged for a session cookie and not kept in the
          browser.
        </p>
        <button type="submit" disabled={signIn.isPending}>
          Sign in
        </button>
        <ErrorNote error={signIn.error} />
      </form>
      <form method="get" action="/admin/console/oidc/start">
        <h2>Org admins</h2>
        <label htmlFor="org-id">Org id</label>
        <input
          id="org-id"
          name="org_id"
          required
          pattern="[0-9a-fA-F\-]{36}"
          defaultValue={new URLSearchParams(window.location.search).get('org') ?? ''}
        />
        <p className="hint">You sign in at your organisation&apos;s identity provider; you see only your org.</p>
        <button type="submit">Sign in with your identity provider</button>
      </form>
    </main>
  );
}

function OrgPicker({ orgId, onChange }: { orgId: string | undefined; onChange: (orgId: string) => void }) {
  const orgs = useQuery({ queryKey: ['orgs'], queryFn: () => unwrap(api.GET('/admin/orgs')) });
  useEffect(() => {
    const first = orgs.data?.items[0];
    if (!orgId && first) onChange(first.id);
  }, [orgs.data, orgId, onChange]);
  return (
    <div className="filter org-picker">
      <label htmlFor="org">Org</label>
      <select id="org" value={orgId ?? ''} onChange={(event) => onChange(event.target.value)}>
        {(orgs.data?.items ?? []).map((org) => (
          <option key={org.id} value={org.id}>
            {org.name}
          </option>
        ))}
      </select>
    </div>
  );
}

function Shell({ session, onSignedOut }: { session: Session; onSignedOut: () => void }) {
  const client = useQueryClient();
  const [orgId, setOrgId] = useState<string | undefined>(session.org_id ?? undefined);
  const [location] = useLocation();
  const chooseOrg = (id: string) => {
    setWorkingOrg(session.kind === 'platform_admin' ? id : undefined);
    setOrgId(id);
    // Every page reads through the working org (X-Tranche-Org): refetch all of them for the new one.
    void client.invalidateQueries();
  };
  const signOut = useMutation({
    mutationFn: () => api.DELETE('/admin/console/session'),
    onSettled: () => {
      client.clear();
      onSignedOut();
    },
  });
  const nav: [string, string][] = [
    ['/kyc', 'KYC'],
    ['/accreditations', 'Accreditations'],
    ['/subscriptions', 'Subscriptions'],
    ['/offerings', 'Offerings'],
    ['/ledger', 'Ledger'],
    ['/webhooks', 'Webhooks'],
    ...(session.kind === 'platform_admin'
      ? ([
          ['/orgs', 'Orgs & keys'],
          ['/mail', 'Mail'],
        ] as [string, string][])
      : []),
  ];
  return (
    <>
      <header>
        <span className="brand">Tranche console</span>
        <nav aria-label="Main">
          <ul>
            {nav.map(([href, label]) => (
              <li key={href}>
                <Link href={href} aria-current={location.startsWith(href) ? 'page' : undefined}>
                  {label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        {session.kind === 'platform_admin' ? <OrgPicker orgId={orgId} onChange={chooseOrg} /> : null}
        <span className="who">{session.kind === 'platform_admin' ? 'Platform staff' : 'Org admin'}</span>
        <button type="button" onClick={() => signOut.mutate()}>
          Sign out
        </button>
      </header>
      <main>
        <Switch>
          <Route path="/kyc/:id?" component={KycQueue} />
          <Route path="/accreditations/:id?" component={AccreditationQueue} />
          <Route path="/subscriptions/:id?" component={SubscriptionQueue} />
          <Route path="/offerings">{() => <Offerings orgId={session.kind === 'platform_admin' ? orgId : undefined} />}</Route>
          <Route path="/ledger" component={Ledger} />
          <Route path="/mail" component={Mail} />
          <Route path="/orgs" component={Orgs} />
          <Route path="/webhooks/:id?">{() => <Webhooks orgId={orgId} />}</Route>
          <Route>
            <Redirect to="/kyc" />
          </Route>
        </Switch>
      </main>
    </>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  useEffect(() => {
    unwrap(api.GET('/admin/console/session')).then(
      (current) => adopt(current),
      (error: unknown) => {
        if (!(error instanceof ApiError)) console.error(error);
        setSession(null);
      },
    );
  }, []);
  const adopt = (current: Session) => {
    setCsrfToken(current.csrf_token);
    setSession(current);
  };
  if (session === undefined) return <p className="hint">Loading…</p>;
  if (session === null) return <SignIn onSignedIn={adopt} />;
  return (
    <Shell
      session={session}
      onSignedOut={() => {
        setCsrfToken(undefined);
        setWorkingOrg(undefined);
        setSession(null);
      }}
    />
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <Router base="/console">
        <App />
      </Router>
    </QueryClientProvider>
  </StrictMode>,
);
