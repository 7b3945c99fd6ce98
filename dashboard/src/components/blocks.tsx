import { useState, type ReactNode } from 'react';
import { Button, Card, Group, Modal, Stack, Table, Title } from '@mantine/core';
import { useMutation } from '@tanstack/react-query';
import { ApiErrorAlert, Empty, Loading } from './states.tsx';
import { DataTable, type TextColumn } from './DataTable.tsx';
import { useCursorList, type CursorList, type FetchPage } from '../lib/cursor-list.ts';
import { LoadMore } from './LoadMore.tsx';

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
 * The confirmation of an action: what will happen, in words (and any input it needs), before it happens; the API's
 * refusal is shown in the dialog with its request id. Controlled, so a table can keep one dialog outside its cells
 * (DataTable redraws its cells, which would lose a dialog's state kept inside one).
 */
export function ConfirmDialog({
  opened,
  onClose,
  title,
  color,
  children,
  onConfirm,
  disabled,
}: {
  opened: boolean;
  onClose: () => void;
  title: string;
  color?: string;
  children?: ReactNode;
  onConfirm: () => Promise<unknown>;
  disabled?: boolean;
}) {
  const action = useMutation({ mutationFn: onConfirm, onSuccess: () => close() });
  const close = () => {
    action.reset();
    onClose();
  };
  return (
    // No scroll lock: its <style> element (react-remove-scroll) carries no CSP nonce and would be refused.
    <Modal
      opened={opened}
      onClose={close}
      title={title}
      lockScroll={false}
      closeButtonProps={{ 'aria-label': 'Close' }}
    >
      <Stack>
        {children}
        {action.isError && <ApiErrorAlert error={action.error} />}
        <Group justify="flex-end">
          <Button variant="default" onClick={close}>
            Keep it
          </Button>
          <Button color={color} loading={action.isPending} disabled={disabled} onClick={() => action.mutate()}>
            {title}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

/**
 * A button and its confirmation dialog, for actions outside a DataTable. `color` is a colour's name without a shade
 * ("red"): the light variant paints a shade-given one ("red.9") as background and text alike, unreadable.
 */
export function ConfirmAction({
  label,
  size = 'xs',
  ...dialog
}: Omit<Parameters<typeof ConfirmDialog>[0], 'opened' | 'onClose'> & { label: string; size?: string }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <Button color={dialog.color} variant="light" size={size} onClick={() => setOpen(true)}>
        {label}
      </Button>
      <ConfirmDialog {...dialog} opened={open} onClose={() => setOpen(false)} />
    </>
  );
}

/**
 * A cursor list's loading, error (in words, with its request id) and empty states, else its rows: the
 * QueryState of lists.
 */
export function CursorState<T>({
  list,
  empty,
  loading,
  children,
}: {
  list: CursorList<T>;
  empty: ReactNode;
  loading?: string;
  children: (rows: T[]) => ReactNode;
}) {
  if (list.query.isPending) return <Loading label={loading} />;
  if (list.query.isError) return <ApiErrorAlert error={list.query.error} />;
  if (list.rows.length === 0) return <Empty>{empty}</Empty>;
  return children(list.rows);
}

/**
 * A list that may grow without bound (reviews, disputes, payouts, deliveries…): cursor pages of 100 in the
 * virtualised DataTable with "Load more", and the loading, error and empty states.
 */
export function CursorTable<T>({
  queryKey,
  fetchPage,
  empty,
  ...table
}: {
  queryKey: unknown[];
  fetchPage: FetchPage<T>;
  columns: TextColumn<T>[];
  rowKey: (row: T) => string;
  caption: string;
  empty: ReactNode;
  height?: number;
}) {
  const list = useCursorList(queryKey, fetchPage);
  return (
    <CursorState list={list} empty={empty}>
      {() => <DataTable list={list} height={480} {...table} />}
    </CursorState>
  );
}

/**
 * A list whose rows hold actions or several lines (keys, members, endpoints, reports…) as a plain table, followed
 * by "Load more" while the cursor has another page, so a long one is reached to its end all the same.
 */
export function CursorSimpleTable<T>({
  list,
  empty,
  caption,
  head,
  rowKey,
  cells,
}: {
  list: CursorList<T>;
  empty: ReactNode;
  caption: string;
  head: string[];
  rowKey: (row: T) => string;
  cells: (row: T) => ReactNode[];
}) {
  return (
    <CursorState list={list} empty={empty}>
      {(rows) => (
        <div>
          <SimpleTable caption={caption} head={head} rowKeys={rows.map(rowKey)} rows={rows.map(cells)} />
          <LoadMore list={list} />
        </div>
      )}
    </CursorState>
  );
}
