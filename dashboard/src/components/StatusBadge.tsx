import { Badge } from '@mantine/core';

const COLORS: Record<string, string> = {
  succeeded: 'green',
  requires_capture: 'blue',
  processing: 'blue',
  canceled: 'gray',
  requires_payment_method: 'red',
  requires_action: 'yellow',
  requires_confirmation: 'gray',
  failed: 'red',
  pending: 'yellow',
  needs_response: 'red',
  won: 'green',
  lost: 'red',
};

export function StatusBadge({ status }: { status: string }) {
  return (
    <Badge color={COLORS[status] ?? 'gray'} variant="dot" tt="none">
      {status.replaceAll('_', ' ')}
    </Badge>
  );
}
