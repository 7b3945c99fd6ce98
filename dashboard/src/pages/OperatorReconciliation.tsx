import { Alert, Stack, Text, Title } from '@mantine/core';

export default function OperatorReconciliation() {
  return (
    <Stack gap="md">
      <Title order={1}>Reconciliation</Title>
      <Alert color="gray" title="Not available to the operator yet" data-testid="reconciliation-unavailable">
        <Text size="sm">
          Reconciliation reports are kept per tenant under row-level security, and the API offers them to each tenant
          only (GET /v1/reconciliation_reports, scope reconciliation:read). Without an operator endpoint across tenants,
          this page cannot list discrepancies; each tenant sees its own on its Balance page.
        </Text>
      </Alert>
    </Stack>
  );
}
