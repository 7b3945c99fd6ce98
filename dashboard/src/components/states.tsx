import type { ReactNode } from 'react';
import { Alert, Center, Code, Loader, Stack, Text } from '@mantine/core';
import type { UseQueryResult } from '@tanstack/react-query';
import { PayForwardError } from '../lib/api.ts';

/** What went wrong, in words, with the request id to quote to support. */
export function ApiErrorAlert({ error, title = 'The request failed' }: { error: unknown; title?: string }) {
  const apiError = error instanceof PayForwardError ? error : null;
  return (
    <Alert color="red" title={title} role="alert" data-testid="api-error">
      <Stack gap={4}>
        <Text size="sm">{error instanceof Error ? error.message : String(error)}</Text>
        {apiError && (
          <Text size="xs" c="dimmed">
            {apiError.status > 0 ? `HTTP ${apiError.status} · ` : ''}
            {apiError.code}
            {apiError.requestId && (
              <>
                {' · request id '}
                <Code data-testid="request-id">{apiError.requestId}</Code>
              </>
            )}
          </Text>
        )}
      </Stack>
    </Alert>
  );
}

export function Loading({ label = 'Loading' }: { label?: string }) {
  return (
    <Center py="xl" role="status" aria-live="polite">
      <Loader size="sm" aria-hidden />
      <Text ml="sm" size="sm" c="dimmed">
        {label}…
      </Text>
    </Center>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return (
    <Center py="xl" data-testid="empty">
      <Text c="dimmed">{children}</Text>
    </Center>
  );
}

/**
 * The three states of every query in one place: loading, the error (in words, with its request id), and the data;
 * `isEmpty` turns an empty answer into the `empty` message.
 */
export function QueryState<T>({
  query,
  empty,
  isEmpty,
  children,
}: {
  query: UseQueryResult<T>;
  empty?: ReactNode;
  isEmpty?: (data: T) => boolean;
  children: (data: T) => ReactNode;
}) {
  if (query.isPending) return <Loading />;
  if (query.isError) return <ApiErrorAlert error={query.error} />;
  if (empty !== undefined && isEmpty?.(query.data)) return <Empty>{empty}</Empty>;
  return <>{children(query.data)}</>;
}
