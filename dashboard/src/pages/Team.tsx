import { useState } from 'react';
import { Badge, Button, Group, Select, SimpleGrid, Stack, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api, can, type Schema } from '../lib/api.ts';
import { useSession } from '../session.tsx';
import { formatTime } from '../lib/format.ts';
import { ApiErrorAlert, Empty } from '../components/states.tsx';
import { afterLast, useCursorList } from '../lib/cursor-list.ts';
import { ConfirmAction, CursorSimpleTable, Section } from '../components/blocks.tsx';

type User = Schema<'User'>;
const ROLES = ['owner', 'admin', 'developer', 'analyst', 'compliance', 'support', 'view_only'];

/** Only an owner makes, changes or deactivates an owner; the API refuses anyone else (403 role_beyond_caller). */
const rolesFor = (session: { role: string }) => (session.role === 'owner' ? ROLES : ROLES.slice(1));

function mfaOf(user: User) {
  const methods = [user.mfa.totp ? 'TOTP' : null, user.mfa.passkeys > 0 ? `${user.mfa.passkeys} passkey(s)` : null];
  const shown = methods.filter(Boolean).join(' + ');
  return shown || 'none';
}

function Invite() {
  const session = useSession();
  const client = useQueryClient();
  const [email, setEmail] = useState('');
  const [role, setRole] = useState('analyst');
  const [sent, setSent] = useState<string | null>(null);
  const invite = useMutation({
    mutationFn: () => api.POST('/v1/users', { body: { email, role: role as 'analyst' } }),
    onSuccess: async () => {
      setSent(email);
      setEmail('');
      await client.invalidateQueries({ queryKey: ['users'] });
    },
  });
  return (
    <Section title="Invite a member">
      <form
        onSubmit={(event) => {
          event.preventDefault();
          setSent(null);
          invite.mutate();
        }}
      >
        <Stack>
          <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="sm">
            <TextInput
              label="Email"
              type="email"
              required
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
            />
            <Select
              label="Role"
              data={rolesFor(session)}
              value={role}
              allowDeselect={false}
              onChange={(v) => setRole(v!)}
            />
            <Button type="submit" mt={{ sm: 'xl' }} loading={invite.isPending}>
              Send invitation
            </Button>
          </SimpleGrid>
          {sent && (
            <Text size="sm" role="status" c="teal.9">
              Invitation sent to {sent}; the link is valid for 72 hours.
            </Text>
          )}
          {invite.isError && <ApiErrorAlert error={invite.error} title="The invitation was not sent" />}
        </Stack>
      </form>
    </Section>
  );
}

function Members() {
  const session = useSession();
  const client = useQueryClient();
  const [roles, setRoles] = useState<Record<string, string>>({});
  const users = useCursorList(
    ['users'],
    afterLast(async (cursor) => (await api.GET('/v1/users', { params: { query: { limit: 100, ...cursor } } })).data!),
  );
  const refresh = () => client.invalidateQueries({ queryKey: ['users'] });
  const writes = can(session, 'users:write');
  return (
    <Section title="Members">
      <CursorSimpleTable
        list={users}
        empty="Nobody is on the team yet."
        caption="Team members and invitations"
        head={['Email', 'Role', 'Status', 'MFA', 'Last sign-in', 'Invited', ...(writes ? ['Actions'] : [])]}
        rowKey={(u) => u.id}
        cells={(u) => [
          u.email,
          u.role,
          <Badge
            key="s"
            variant="dot"
            tt="none"
            color={u.status === 'active' ? 'green' : u.status === 'invited' ? 'blue' : 'gray'}
          >
            {u.status}
            {u.locked_until ? ' (locked)' : ''}
          </Badge>,
          mfaOf(u),
          u.last_login ? formatTime(u.last_login) : '—',
          formatTime(u.created),
          ...(writes
            ? [
                u.status === 'deactivated' || (u.role === 'owner' && session.role !== 'owner') ? (
                  '—'
                ) : (
                  <Group key="a" gap={4} wrap="nowrap">
                    {u.status === 'invited' && (
                      <ConfirmAction
                        label="Resend"
                        title="Resend the invitation"
                        onConfirm={async () => {
                          await api.POST('/v1/users/{id}/resend_invitation', {
                            params: { path: { id: u.id } },
                            body: {},
                          });
                          await refresh();
                        }}
                      >
                        <Text size="sm">
                          A new link valid for 72 hours goes to {u.email}; the previous one stops working.
                        </Text>
                      </ConfirmAction>
                    )}
                    <ConfirmAction
                      label="Change role"
                      title="Save the role"
                      onConfirm={async () => {
                        await api.PATCH('/v1/users/{id}', {
                          params: { path: { id: u.id } },
                          body: { role: (roles[u.id] ?? u.role) as 'analyst' },
                        });
                        await refresh();
                      }}
                    >
                      <Text size="sm">A role change signs {u.email} out everywhere.</Text>
                      <Select
                        label="Role"
                        data={rolesFor(session)}
                        value={roles[u.id] ?? u.role}
                        allowDeselect={false}
                        onChange={(v) => setRoles({ ...roles, [u.id]: v! })}
                      />
                    </ConfirmAction>
                    <ConfirmAction
                      label={u.status === 'invited' ? 'Revoke' : 'Deactivate'}
                      title={u.status === 'invited' ? 'Revoke the invitation' : 'Deactivate the member'}
                      color="red"
                      onConfirm={async () => {
                        await api.DELETE('/v1/users/{id}', { params: { path: { id: u.id } } });
                        await refresh();
                      }}
                    >
                      <Text size="sm">{u.email} can no longer sign in; the account is kept for access reviews.</Text>
                    </ConfirmAction>
                  </Group>
                ),
              ]
            : []),
        ]}
      />
    </Section>
  );
}

export default function Team() {
  const session = useSession();
  return (
    <Stack>
      <Title order={1}>Team</Title>
      {can(session, 'users:write') && <Invite />}
      {can(session, 'users:read') ? <Members /> : <Empty>Only owners and admins see the team.</Empty>}
    </Stack>
  );
}
