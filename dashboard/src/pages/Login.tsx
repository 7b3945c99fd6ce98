import { useState } from 'react';
import { PasswordInput, SegmentedControl, Text, TextInput } from '@mantine/core';
import { api } from '../lib/api.ts';
import { useUrlFilters } from '../lib/url-state.ts';
import { SignInSteps } from '../components/SecondFactor.tsx';

/** Email and password, then the second factor. The mode picks the session's mode (?mode=live preselects it). */
export default function Login() {
  const [filters] = useUrlFilters(['mode'] as const);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [mode, setMode] = useState(filters.mode === 'live' ? 'live' : 'test');
  return (
    <SignInSteps
      title="Sign in"
      failure="Sign-in failed"
      start={async () =>
        (await api.POST('/v1/sessions', { body: { email, password, livemode: mode === 'live' } })).data!
      }
    >
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
    </SignInSteps>
  );
}
