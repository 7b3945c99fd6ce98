import type { ReactNode } from 'react';
import { AppShell, Badge, Burger, Button, Group, NavLink, ScrollArea, Text, Tooltip } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { Link, useLocation, useRoute } from 'wouter';
import { homeOf, ROUTES, type PageRoute } from '../routes.ts';
import { isOperator } from '../lib/api.ts';
import { useSession, useSignOut } from '../session.tsx';

function NavItem({ route, onNavigate }: { route: PageRoute; onNavigate: () => void }) {
  // A home page ('/', '/operator') is the prefix of its audience's other pages: it is active only on itself.
  const [active] = useRoute(route.path === homeOf(route.audience) ? route.path : `${route.path}/*?`);
  return (
    <NavLink
      component={Link}
      href={route.path}
      label={route.title}
      active={active}
      aria-current={active ? 'page' : undefined}
      onClick={onNavigate}
    />
  );
}

/**
 * The frame of every page: the navigation of the person's audience (a tenant's team or the operator's staff), the
 * mode the session acts in, and sign-out. Switching mode signs in again: a session's mode is fixed at sign-in.
 */
export function Layout({ children }: { children: ReactNode }) {
  const session = useSession();
  const signOut = useSignOut();
  const [, navigate] = useLocation();
  const [opened, { toggle, close }] = useDisclosure();
  const audience: PageRoute['audience'] = isOperator(session) ? 'operator' : 'tenant';
  const otherMode = session.livemode ? 'test' : 'live';

  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !opened } }}
      padding="md"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Open the navigation" />
            <Text fw={700} visibleFrom="xs">
              PayForward
            </Text>
            {audience === 'tenant' && (
              <Badge
                color={session.livemode ? 'teal.9' : 'dark.6'}
                variant="outline"
                data-testid="mode"
                style={{ flexShrink: 0 }}
              >
                {session.livemode ? 'Live' : 'Test'}
              </Badge>
            )}
          </Group>
          <Group gap="xs" wrap="nowrap">
            <Text size="sm" c="dimmed" visibleFrom="sm" data-testid="role">
              {session.role}
            </Text>
            {audience === 'tenant' && (
              <Tooltip label={`Signs you out, then in again for ${otherMode} data`}>
                <Button
                  variant="subtle"
                  size="compact-sm"
                  onClick={() => {
                    // The sign-in reads its mode from the URL when it appears, so the URL changes first.
                    navigate(`/?mode=${otherMode}`);
                    void signOut();
                  }}
                >
                  {session.livemode ? 'Switch to test' : 'Switch to live'}
                </Button>
              </Tooltip>
            )}
            <Button variant="default" size="compact-sm" onClick={() => signOut().then(() => navigate('/'))}>
              Sign out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Pages">
        <ScrollArea>
          {ROUTES.filter((route) => route.nav && route.audience === audience).map((route) => (
            <NavItem key={route.path} route={route} onNavigate={close} />
          ))}
        </ScrollArea>
      </AppShell.Navbar>
      <AppShell.Main>{children}</AppShell.Main>
    </AppShell>
  );
}
