import { useRef, type ReactNode } from 'react';
import { ScrollArea, Table } from '@mantine/core';
import { flexRender, getCoreRowModel, useReactTable, type ColumnDef } from '@tanstack/react-table';
import { useVirtualizer } from '@tanstack/react-virtual';
import type { CursorList } from '../lib/cursor-list.ts';
import { LoadMore } from './LoadMore.tsx';

/**
 * A column whose text is the same in the table and in its CSV export: `text` gives it, `cell` may dress it up (a
 * link, a badge) without changing it.
 */
export interface TextColumn<T> {
  id: string;
  header: string;
  text: (row: T) => string;
  cell?: (row: T) => ReactNode;
}

const ROW_HEIGHT = 41;

/**
 * A long list as a real <table>: TanStack Table lays out the columns, TanStack Virtual renders only the rows in
 * view (spacer rows keep the scroll height), so ten thousand loaded rows cost what forty do. "Load more" fetches
 * the next cursor page.
 */
export function DataTable<T>({
  columns,
  list,
  rowKey,
  caption,
  height = 520,
}: {
  columns: TextColumn<T>[];
  list: CursorList<T>;
  rowKey: (row: T) => string;
  caption: string;
  height?: number;
}) {
  const rows = list.rows;
  const defs: ColumnDef<T>[] = columns.map((column) => ({
    id: column.id,
    header: column.header,
    accessorFn: column.text,
    cell: (context) => (column.cell ? column.cell(context.row.original) : column.text(context.row.original)),
  }));
  const table = useReactTable({ data: rows, columns: defs, getCoreRowModel: getCoreRowModel(), getRowId: rowKey });
  const viewport = useRef<HTMLDivElement>(null);
  const tableRows = table.getRowModel().rows;
  const virtualizer = useVirtualizer({
    count: tableRows.length,
    getScrollElement: () => viewport.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
  });
  const items = virtualizer.getVirtualItems();
  const top = items[0]?.start ?? 0;
  const bottom = virtualizer.getTotalSize() - (items.at(-1)?.end ?? 0);

  return (
    <>
      {/* Focusable, so a keyboard can scroll a table whose cells hold no link or button. */}
      <ScrollArea.Autosize
        mah={height}
        viewportRef={viewport}
        viewportProps={{ tabIndex: 0, role: 'region', 'aria-label': caption }}
        type="auto"
      >
        <Table striped highlightOnHover stickyHeader data-testid="data-table" miw={640}>
          <Table.Caption>{caption}</Table.Caption>
          <Table.Thead>
            {table.getHeaderGroups().map((group) => (
              <Table.Tr key={group.id}>
                {group.headers.map((header) => (
                  <Table.Th key={header.id} scope="col">
                    {flexRender(header.column.columnDef.header, header.getContext())}
                  </Table.Th>
                ))}
              </Table.Tr>
            ))}
          </Table.Thead>
          <Table.Tbody>
            {top > 0 && (
              <tr aria-hidden>
                <td colSpan={columns.length} style={{ height: top, padding: 0 }} />
              </tr>
            )}
            {items.map((item) => {
              const row = tableRows[item.index];
              return (
                <Table.Tr key={row.id} data-row-id={row.id} style={{ height: ROW_HEIGHT }}>
                  {row.getVisibleCells().map((cell) => (
                    <Table.Td key={cell.id}>{flexRender(cell.column.columnDef.cell, cell.getContext())}</Table.Td>
                  ))}
                </Table.Tr>
              );
            })}
            {bottom > 0 && (
              <tr aria-hidden>
                <td colSpan={columns.length} style={{ height: bottom, padding: 0 }} />
              </tr>
            )}
          </Table.Tbody>
        </Table>
      </ScrollArea.Autosize>
      <LoadMore list={list} />
    </>
  );
}
