import { useState } from 'react';
import { useInfiniteQuery, type InfiniteData } from '@tanstack/react-query';
import { toCsv, downloadText } from './csv.ts';
import type { TextColumn } from '../components/DataTable.tsx';

/** One page of a list: its rows and the cursor of the next page (null at the end). */
export interface Page<T> {
  rows: T[];
  next: string | null;
}

export type FetchPage<T> = (cursor: string | null) => Promise<Page<T>>;

/**
 * A cursor-paginated list (a list endpoint's `starting_after` or a search's `next_page`) as an infinite query, and
 * its CSV export: the export walks every page of the very same `fetchPage`, so the file holds exactly the filtered
 * set, in the table's columns and text. `refetchInterval` looks at the rows loaded so far (e.g. poll while one is
 * pending).
 */
export function useCursorList<T>(
  queryKey: unknown[],
  fetchPage: FetchPage<T>,
  { enabled = true, refetchInterval }: { enabled?: boolean; refetchInterval?: (rows: T[]) => number | false } = {},
) {
  const query = useInfiniteQuery<Page<T>, Error, InfiniteData<Page<T>>, unknown[], string | null>({
    queryKey,
    queryFn: ({ pageParam }) => fetchPage(pageParam),
    initialPageParam: null,
    getNextPageParam: (last) => last.next,
    enabled,
    refetchInterval: (q) => refetchInterval?.(q.state.data?.pages.flatMap((page) => page.rows) ?? []) ?? false,
  });
  const rows = query.data?.pages.flatMap((page) => page.rows) ?? [];
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<unknown>(null);

  async function exportCsv(filename: string, columns: TextColumn<T>[]) {
    setExporting(true);
    setExportError(null);
    try {
      const all: T[] = [];
      let cursor: string | null = null;
      do {
        const page: Page<T> = await fetchPage(cursor);
        all.push(...page.rows);
        cursor = page.next;
      } while (cursor);
      downloadText(
        filename,
        toCsv(
          columns.map((c) => c.header),
          all.map((row) => columns.map((c) => c.text(row))),
        ),
      );
    } catch (error) {
      setExportError(error);
    } finally {
      setExporting(false);
    }
  }

  return { query, rows, exportCsv, exporting, exportError };
}

export type CursorList<T> = ReturnType<typeof useCursorList<T>>;

/** A list endpoint's page (`data`, `has_more`) as a cursor page: the next one starts after the last row. */
export const afterLast =
  <T extends { id: string }>(
    load: (cursor: { starting_after?: string }) => Promise<{ data: T[]; has_more: boolean }>,
  ): FetchPage<T> =>
  async (cursor) => {
    const page = await load(cursor ? { starting_after: cursor } : {});
    return { rows: page.data, next: page.has_more ? (page.data.at(-1)?.id ?? null) : null };
  };
