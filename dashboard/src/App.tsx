import { Component, Suspense, type ReactNode } from 'react';
import { createTheme, MantineProvider, type CSSVariablesResolver } from '@mantine/core';
import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { Redirect, Route, Router, Switch } from 'wouter';
import { setNonce } from 'get-nonce';
import { ROUTES, homeOf } from './routes.ts';
import { PayForwardError } from './lib/api.ts';
import { SESSION_KEY, SessionGate, useSession } from './session.tsx';
import { Layout } from './components/Layout.tsx';
import { ApiErrorAlert, Empty, Loading } from './components/states.tsx';
import { isOperator } from './lib/api.ts';

/**
 * The page's CSP nonce (the server writes it into index.html), for the <style> elements Mantine adds, and for the
 * one react-remove-scroll adds while a modal locks the page's scroll (it reads get-nonce).
 */
const nonce = document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content ?? '';
setNonce(nonce);

// Shade 8 keeps white-on-primary and primary-on-white text above WCAG AA contrast (4.5:1); Mantine's 6 does not.
// Transitions are skipped for people who ask their system for reduced motion (WCAG 2.3.3).
const theme = createTheme({ primaryColor: 'indigo', primaryShade: 8, defaultRadius: 'md', respectReducedMotion: true });

/**
 * Mantine's light variants write shade 6 on a pale background and its "dimmed" text is gray 6: both under 4.5:1.
 * The dark shades keep every badge, alert and secondary text readable (axe-core checks it in the browser tests).
 */
const readableColors: CSSVariablesResolver = (resolved) => ({
  variables: {},
  light: {
    '--mantine-color-dimmed': 'var(--mantine-color-gray-7)',
    ...Object.fromEntries(
      Object.keys(resolved.colors).map((color) => [
        `--mantine-color-${color}-light-color`,
        `var(--mantine-color-${color}-9)`,
      ]),
    ),
  },
  dark: {},
});

/** A 401 anywhere means the session ended (idle, signed out elsewhere): back to the sign-in. */
const onError = (error: unknown) => {
  if (error instanceof PayForwardError && error.status === 401)
    void queryClient.invalidateQueries({ queryKey: SESSION_KEY });
};

const queryClient = new QueryClient({
  queryCache: new QueryCache({ onError }),
  mutationCache: new MutationCache({ onError }),
  defaultOptions: {
    queries: {
      staleTime: 10_000,
      // An API refusal (4xx) will not change on retry; a network blip or a 5xx may.
      retry: (count, error) =>
        count < 2 && !(error instanceof PayForwardError && error.status >= 400 && error.status < 500),
      refetchOnWindowFocus: false,
    },
  },
});

/** A page that throws while rendering (or whose chunk fails to load) shows the error instead of a blank screen. */
class PageBoundary extends Component<{ children: ReactNode }, { error: unknown }> {
  state = { error: null as unknown };
  static getDerivedStateFromError(error: unknown) {
    return { error };
  }
  render() {
    return this.state.error ? <ApiErrorAlert error={this.state.error} title="This page failed" /> : this.props.children;
  }
}

function Pages() {
  const session = useSession();
  const audience = isOperator(session) ? 'operator' : 'tenant';
  return (
    <Layout>
      <PageBoundary>
        <Suspense fallback={<Loading />}>
          <Switch>
            {ROUTES.filter((route) => route.audience === audience).map((route) => (
              <Route key={route.path} path={route.path} component={route.page} />
            ))}
            {audience === 'operator' && (
              <Route path="/">
                <Redirect to={homeOf('operator')} replace />
              </Route>
            )}
            <Route>
              <Empty>No such page.</Empty>
            </Route>
          </Switch>
        </Suspense>
      </PageBoundary>
    </Layout>
  );
}

export function App() {
  return (
    <MantineProvider theme={theme} cssVariablesResolver={readableColors} getStyleNonce={() => nonce}>
      <QueryClientProvider client={queryClient}>
        <Router base="/dashboard">
          <SessionGate>
            <Pages />
          </SessionGate>
        </Router>
      </QueryClientProvider>
    </MantineProvider>
  );
}
