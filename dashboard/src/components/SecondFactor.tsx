import { useState, type ReactNode } from 'react';
import { Anchor, Button, Code, List, PinInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useMutation } from '@tanstack/react-query';
import { api, type Session } from '../lib/api.ts';
import type { ResponseBody } from '../../../sdk/src/index.ts';
import { ApiErrorAlert } from './states.tsx';
import { useSignedIn } from '../session.tsx';
import { AuthCard } from './AuthCard.tsx';

export type LoginChallenge = ResponseBody<'/v1/sessions', 'post'>;

/**
 * The second step of every sign-in: a TOTP code (after adding the secret to an authenticator app on the first
 * sign-in of an invited member), or a recovery code. A first enrolment answers with ten recovery codes, shown once.
 */
export function SecondFactor({ challenge }: { challenge: LoginChallenge }) {
  const signedIn = useSignedIn();
  const [code, setCode] = useState('');
  const [useRecovery, setUseRecovery] = useState(false);
  const [recoveryCodes, setRecoveryCodes] = useState<{ codes: string[]; session: Session } | null>(null);
  const enrolment = challenge.totp_enrolment;
  const verify = useMutation({
    mutationFn: async () =>
      (
        await api.POST('/v1/sessions/mfa', {
          body: useRecovery
            ? { login_token: challenge.login_token, recovery_code: code.trim() }
            : { login_token: challenge.login_token, code },
        })
      ).data!,
    onSuccess: (session) => {
      if (session.recovery_codes?.length) setRecoveryCodes({ codes: session.recovery_codes, session });
      else signedIn(session);
    },
  });

  if (recoveryCodes)
    return (
      <Stack>
        <Title order={2}>Save your recovery codes</Title>
        <Text size="sm">
          Each code signs you in once if you lose your authenticator. They are shown only now: store them safely.
        </Text>
        <List data-testid="recovery-codes">
          {recoveryCodes.codes.map((c) => (
            <List.Item key={c}>
              <Code>{c}</Code>
            </List.Item>
          ))}
        </List>
        <Button onClick={() => signedIn(recoveryCodes.session)}>I have saved them, continue</Button>
      </Stack>
    );

  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        verify.mutate();
      }}
    >
      <Stack>
        <Title order={2}>{enrolment ? 'Set up two-factor authentication' : 'Two-factor authentication'}</Title>
        {enrolment && (
          <Text size="sm">
            Add this secret to your authenticator app (or open{' '}
            <Anchor href={enrolment.otpauth_url} size="sm">
              the otpauth link
            </Anchor>
            ), then enter the code it shows: <Code data-testid="totp-secret">{enrolment.secret}</Code>
          </Text>
        )}
        {useRecovery ? (
          <TextInput
            label="Recovery code"
            value={code}
            onChange={(event) => setCode(event.currentTarget.value)}
            autoComplete="one-time-code"
            required
          />
        ) : (
          <div>
            <Text component="label" htmlFor="totp-code" size="sm" fw={500}>
              Code from your authenticator app
            </Text>
            <PinInput
              id="totp-code"
              length={6}
              type="number"
              oneTimeCode
              value={code}
              onChange={setCode}
              aria-label="Code from your authenticator app"
              autoFocus
            />
          </div>
        )}
        {verify.isError && <ApiErrorAlert error={verify.error} title="The code was not accepted" />}
        <Button type="submit" loading={verify.isPending}>
          Verify
        </Button>
        {!enrolment && challenge.methods.includes('recovery_code') && (
          <Anchor
            component="button"
            type="button"
            size="sm"
            onClick={() => {
              setUseRecovery(!useRecovery);
              setCode('');
            }}
          >
            {useRecovery ? 'Use the authenticator app instead' : 'Use a recovery code instead'}
          </Anchor>
        )}
      </Stack>
    </form>
  );
}

/**
 * A sign-in in two steps: the page's own first form (email and password, or an invitation's new password) sent by
 * `start`, which answers with the second factor's challenge, then SecondFactor. `ready` holds the form back (two
 * passwords that differ).
 */
export function SignInSteps({
  title,
  start,
  failure,
  ready = true,
  children,
}: {
  title: string;
  start: () => Promise<LoginChallenge>;
  failure: string;
  ready?: boolean;
  children: ReactNode;
}) {
  const [challenge, setChallenge] = useState<LoginChallenge | null>(null);
  const first = useMutation({ mutationFn: start, onSuccess: setChallenge });
  return (
    <AuthCard>
      {challenge ? (
        <SecondFactor challenge={challenge} />
      ) : (
        <form
          onSubmit={(event) => {
            event.preventDefault();
            if (ready) first.mutate();
          }}
        >
          <Stack>
            <Title order={1} size="h2">
              {title}
            </Title>
            {children}
            {first.isError && <ApiErrorAlert error={first.error} title={failure} />}
            <Button type="submit" loading={first.isPending}>
              Continue
            </Button>
          </Stack>
        </form>
      )}
    </AuthCard>
  );
}
