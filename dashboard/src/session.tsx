import { createContext, lazy, Suspense, useContext, type ReactNode } from 'react';
import { Button, Group, Stack } from '@mantine/core';
import { useQuery, useQueryClient, type QueryClient } from '@tanstack/react-query';
import { useLocation, useRoute } from 'wouter';
import { api, PayForwardError, setCsrfToken, type Session } from './lib/api.ts';
import { ApiErrorAlert, Loading } from './components/states.tsx';

const Login = lazy(() => import('./pages/Login.tsx'));
const AcceptInvitation = lazy(() => import('./pages/AcceptInvitation.tsx'));

const SessionContext = createContext<Session | null>(null);

/** The signed-in member's session (role, scopes, mode); only rendered inside the gate, so never null there. */
export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside SessionGate');
  return session;
}

export const SESSION_KEY = ['session'];

async function currentSession(): Promise<Session | null> {
  let session: Session;
  try {
    session = (await api.GET('/v1/sessions/current')).data!;
  } catch (error) {
    if (error instanceof PayForwardError && error.status === 401) return null;
    throw error;
  }
  if (session.account_suspended) {
    // Kept for signing out, the one thing the session can still do; the gate shows the API's own refusal (its
    // reason and request id), which any other route answers.
    setCsrfToken(session.csrf_token);
    await api.GET('/v1/users/me');
  }
  return session;
}

/**
 * Shows the sign-in (or an invitation's acceptance) until there is a session, then its children with the session
 * in context. The session comes from GET /v1/sessions/current, so a reload keeps the person signed in.
 */
export function SessionGate({ children }: { children: ReactNode }) {
  const [invited, params] = useRoute<{ token: string }>('/invitations/:token');
  const query = useQuery({ queryKey: SESSION_KEY, queryFn: currentSession, staleTime: Infinity, retry: false });
  if (invited)
    return (
      <Suspense fallback={<Loading />}>
        <AcceptInvitation token={params.token} />
      </Suspense>
    );
  if (query.isPending) return <Loading label="Loading your session" />;
  if (query.isError)
    return query.error instanceof PayForwardError && query.error.code === 'account_suspended' ? (
      <Suspended error={query.error} />
    ) : (
      <ApiErrorAlert error={query.error} title="The dashboard could not reach the API" />
    );
  setCsrfToken(query.data?.csrf_token ?? null);
  if (!query.data)
    return (
      <Suspense fallback={<Loading />}>
        <Login />
      </Suspense>
    );
  return <SessionContext.Provider value={query.data}>{children}</SessionContext.Provider>;
}

/**
 * A suspended tenant's member: the operator's reason in words, and a way back to the sign-in page (to sign in to
 * another account), which ends the session on the server first (a suspended tenant's session can still sign out).
 */
function Suspended({ error }: { error: PayForwardError }) {
  const signOut = useSignOut();
  return (
    <Stack p="md" maw={640}>
      <ApiErrorAlert error={error} title="This account is suspended" />
      <Group>
        <Button variant="default" onClick={() => void signOut()}>
          Back to sign-in
        </Button>
      </Group>
    </Stack>
  );
}

function forgetSession(client: QueryClient) {
  setCsrfToken(null);
  // The session query is set, not removed: its observer in SessionGate keeps watching the same entry.
  client.setQueryData(SESSION_KEY, null);
  client.removeQueries({ predicate: (q) => q.queryKey[0] !== SESSION_KEY[0] });
}

/** After a successful second factor: the new session replaces the old state, and every cached answer goes. */
export function useSignedIn() {
  const client = useQueryClient();
  const [location, navigate] = useLocation();
  return (session: Session) => {
    client.removeQueries({ predicate: (q) => q.queryKey[0] !== SESSION_KEY[0] });
    setCsrfToken(session.csrf_token);
    client.setQueryData(SESSION_KEY, session);
    // An accepted invitation's link has done its work; any other URL is where the person wanted to go.
    if (location.startsWith('/invitations/')) navigate('/', { replace: true });
  };
}

export function useSignOut() {
  const client = useQueryClient();
  return async () => {
    try {
      await api.DELETE('/v1/sessions/current');
    } finally {
      forgetSession(client);
    }
  };
}
