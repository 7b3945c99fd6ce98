import { useState } from 'react';
import { Button, PasswordInput, Stack, Text, Title } from '@mantine/core';
import { useMutation } from '@tanstack/react-query';
import { api } from '../lib/api.ts';
import { ApiErrorAlert } from '../components/states.tsx';
import { AuthCard } from '../components/AuthCard.tsx';
import { SecondFactor, type LoginChallenge } from '../components/SecondFactor.tsx';

/** The invitation link's page: choose a password, then enrol TOTP (the first sign-in). */
export default function AcceptInvitation({ token }: { token: string }) {
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');
  const [challenge, setChallenge] = useState<LoginChallenge | null>(null);
  const accept = useMutation({
    mutationFn: async () =>
      (await api.POST('/v1/invitations/{token}/accept', { params: { path: { token } }, body: { password } })).data!,
    onSuccess: setChallenge,
  });
  const mismatch = repeat !== '' && repeat !== password;

  return (
    <AuthCard>
      {challenge ? (
        <SecondFactor challenge={challenge} />
      ) : (
        <form
          onSubmit={(event) => {
            event.preventDefault();
            if (!mismatch) accept.mutate();
          }}
        >
          <Stack>
            <Title order={1} size="h2">
              Join your team
            </Title>
            <Text size="sm">Choose a password of at least 12 characters that is not a common one.</Text>
            <PasswordInput
              label="New password"
              autoComplete="new-password"
              value={password}
              onChange={(event) => setPassword(event.currentTarget.value)}
              required
            />
            <PasswordInput
              label="Repeat the password"
              autoComplete="new-password"
              value={repeat}
              onChange={(event) => setRepeat(event.currentTarget.value)}
              error={mismatch ? 'The passwords differ' : undefined}
              required
            />
            {accept.isError && <ApiErrorAlert error={accept.error} title="The invitation could not be accepted" />}
            <Button type="submit" loading={accept.isPending}>
              Continue
            </Button>
          </Stack>
        </form>
      )}
    </AuthCard>
  );
}
