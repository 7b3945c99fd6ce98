import { useState, type ReactNode } from 'react';
import { Button, Card, Group, Modal, Stack, Table, Title } from '@mantine/core';
import { useMutation } from '@tanstack/react-query';
import { ApiErrorAlert } from './states.tsx';

/** A titled part of a page, as a landmark a screen reader can jump to. */
export function Section({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  return (
    <Card withBorder component="section" aria-label={title}>
      <Group justify="space-between" mb="sm" wrap="wrap">
        <Title order={2} size="h4">
          {title}
        </Title>
        {actions}
      </Group>
      {children}
    </Card>
  );
}

/** A short list as a plain table (no virtualisation), scrolling sideways on a phone. */
export function SimpleTable({
  caption,
  head,
  rows,
  rowKeys,
}: {
  caption: string;
  head: string[];
  rows: ReactNode[][];
  rowKeys?: string[];
}) {
  return (
    // Focusable, so a keyboard can scroll a narrow screen's table whose cells hold no link or button.
    <Table.ScrollContainer
      minWidth={560}
      scrollAreaProps={{ viewportProps: { tabIndex: 0, role: 'region', 'aria-label': caption } }}
    >
      <Table striped>
        <Table.Caption>{caption}</Table.Caption>
        <Table.Thead>
          <Table.Tr>
            {head.map((h) => (
              <Table.Th key={h} scope="col">
                {h}
              </Table.Th>
            ))}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rows.map((cells, i) => (
            <Table.Tr key={rowKeys?.[i] ?? i} data-row-id={rowKeys?.[i]}>
              {cells.map((cell, j) => (
                <Table.Td key={j}>{cell}</Table.Td>
              ))}
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

/**
 * An action behind a dialog: what will happen, in words (and any input it needs), before it happens; the API's
 * refusal is shown in the dialog with its request id.
 */
export function ConfirmAction({
  label,
  title,
  color,
  size = 'xs',
  children,
  onConfirm,
  disabled,
}: {
  label: string;
  title: string;
  color?: string;
  size?: string;
  children?: ReactNode;
  onConfirm: () => Promise<unknown>;
  disabled?: boolean;
}) {
  const [open, setOpen] = useState(false);
  const action = useMutation({ mutationFn: onConfirm, onSuccess: () => setOpen(false) });
  return (
    <>
      <Button
        color={color}
        variant="light"
        size={size}
        onClick={() => {
          action.reset();
          setOpen(true);
        }}
      >
        {label}
      </Button>
      {/* No scroll lock: its <style> element (react-remove-scroll) carries no CSP nonce and would be refused. */}
      <Modal
        opened={open}
        onClose={() => setOpen(false)}
        title={title}
        lockScroll={false}
        closeButtonProps={{ 'aria-label': 'Close' }}
      >
        <Stack>
          {children}
          {action.isError && <ApiErrorAlert error={action.error} />}
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setOpen(false)}>
              Keep it
            </Button>
            <Button color={color} loading={action.isPending} disabled={disabled} onClick={() => action.mutate()}>
              {title}
            </Button>
          </Group>
        </Stack>
      </Modal>
    </>
  );
}
