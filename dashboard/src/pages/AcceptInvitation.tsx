import { useState } from 'react';
import { PasswordInput, Text } from '@mantine/core';
import { api } from '../lib/api.ts';
import { SignInSteps } from '../components/SecondFactor.tsx';

/** The invitation link's page: choose a password, then enrol TOTP (the first sign-in). */
export default function AcceptInvitation({ token }: { token: string }) {
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');
  const mismatch = repeat !== '' && repeat !== password;
  return (
    <SignInSteps
      title="Join your team"
      failure="The invitation could not be accepted"
      ready={!mismatch}
      start={async () =>
        (await api.POST('/v1/invitations/{token}/accept', { params: { path: { token } }, body: { password } })).data!
      }
    >
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
    </SignInSteps>
  );
}
