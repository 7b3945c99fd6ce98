import { useState } from 'react';
import { Button, PasswordInput, SegmentedControl, Stack, Text, TextInput, Title } from '@mantine/core';
import { useMutation } from '@tanstack/react-query';
import { api } from '../lib/api.ts';
import { useUrlFilters } from '../lib/url-state.ts';
import { ApiErrorAlert } from '../components/states.tsx';
import { AuthCard } from '../components/AuthCard.tsx';
import { SecondFactor, type LoginChallenge } from '../components/SecondFactor.tsx';

/** Email and password, then the second factor. The mode picks the session's mode (?mode=live preselects it). */
export default function Login() {
  const [filters] = useUrlFilters(['mode'] as const);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [mode, setMode] = useState(filters.mode === 'live' ? 'live' : 'test');
  const [challenge, setChallenge] = useState<LoginChallenge | null>(null);
  const start = useMutation({
    mutationFn: async () =>
      (await api.POST('/v1/sessions', { body: { email, password, livemode: mode === 'live' } })).data!,
    onSuccess: setChallenge,
  });

  return (
    <AuthCard>
      {challenge ? (
        <SecondFactor challenge={challenge} />
      ) : (
        <form
          onSubmit={(event) => {
            event.preventDefault();
            start.mutate();
          }}
        >
          <Stack>
            <Title order={1} size="h2">
              Sign in
            </Title>
            <TextInput
              label="Email"
              type="email"
              autoComplete="username"
              value={email}
              onChange={(event) => setEmail(event.currentTarget.value)}
              required
            />
            <PasswordInput
              label="Password"
              autoComplete="current-password"
              value={password}
              onChange={(event) => setPassword(event.currentTarget.value)}
              required
            />
            <div>
              <Text size="sm" fw={500} id="mode-label">
                Mode
              </Text>
              <SegmentedControl
                aria-labelledby="mode-label"
                value={mode}
                onChange={setMode}
                data={[
                  { label: 'Test data', value: 'test' },
                  { label: 'Live data', value: 'live' },
                ]}
              />
            </div>
            {start.isError && <ApiErrorAlert error={start.error} title="Sign-in failed" />}
            <Button type="submit" loading={start.isPending}>
              Continue
            </Button>
          </Stack>
        </form>
      )}
    </AuthCard>
  );
}
