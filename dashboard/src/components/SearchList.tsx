import type { ReactNode } from 'react';
import { Button, Group, SimpleGrid, Stack, TextInput, Title } from '@mantine/core';
import type { CursorList } from '../lib/cursor-list.ts';
import { DataTable, type TextColumn } from './DataTable.tsx';
import { CursorState } from './blocks.tsx';
import { ApiErrorAlert } from './states.tsx';

/** An export other than walking the list's own pages (the audit log's, which the API audits). */
export interface Exporter {
  run: () => void;
  pending: boolean;
  error: unknown;
}

/** A text field bound to one of the page's URL filters. */
export const filterField =
  <K extends string>(filters: Record<K, string>, setFilters: (changes: Partial<Record<K, string>>) => void) =>
  (key: K, label: string, { type, placeholder }: { type?: string; placeholder?: string } = {}) => (
    <TextInput
      label={label}
      type={type}
      placeholder={placeholder}
      value={filters[key]}
      onChange={(event) => setFilters({ [key]: event.currentTarget.value } as Partial<Record<K, string>>)}
    />
  );

/**
 * A searchable list page (payments, customers, audit log): its filters, "Export CSV" of exactly the filtered set
 * (`csv` names the file of the list's own pages, or is the page's own exporter), the filters' mistake in words, and
 * the list in the virtualised table with its states and "Load more".
 */
export function SearchList<T>({
  title,
  intro,
  columnsMd,
  fields,
  csv,
  invalid = null,
  list,
  loading,
  empty,
  caption,
  columns,
  rowKey,
}: {
  title: string;
  intro?: ReactNode;
  columnsMd: number;
  fields: ReactNode;
  csv: string | Exporter;
  invalid?: string | null;
  list: CursorList<T>;
  loading: string;
  empty: ReactNode;
  caption: string;
  columns: TextColumn<T>[];
  rowKey: (row: T) => string;
}) {
  const exporter: Exporter & { disabled?: boolean } =
    typeof csv === 'string'
      ? {
          run: () => list.exportCsv(csv, columns),
          pending: list.exporting,
          error: list.exportError,
          disabled: invalid !== null || list.rows.length === 0,
        }
      : csv;
  return (
    <Stack>
      <Title order={1}>{title}</Title>
      {intro}
      <form role="search" aria-label={title} onSubmit={(event) => event.preventDefault()}>
        <SimpleGrid cols={{ base: 1, xs: 2, md: columnsMd }} spacing="sm">
          {fields}
        </SimpleGrid>
      </form>
      <Group justify="flex-end">
        <Button variant="default" onClick={exporter.run} loading={exporter.pending} disabled={exporter.disabled}>
          Export CSV
        </Button>
      </Group>
      {exporter.error != null && <ApiErrorAlert error={exporter.error} title="The export failed" />}
      {invalid ? (
        <ApiErrorAlert error={new Error(invalid)} title="Check the filters" />
      ) : (
        <CursorState list={list} empty={empty} loading={loading}>
          {() => <DataTable caption={caption} columns={columns} list={list} rowKey={rowKey} />}
        </CursorState>
      )}
    </Stack>
  );
}
