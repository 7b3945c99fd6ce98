import { Button, Group, Text } from '@mantine/core';
import type { CursorList } from '../lib/cursor-list.ts';

/** How many rows are loaded, and "Load more" while the cursor has another page: every list reaches every row. */
export function LoadMore<T>({ list }: { list: CursorList<T> }) {
  const count = list.rows.length;
  const more = list.query.hasNextPage;
  return (
    <Group justify="space-between" mt="sm">
      <Text size="sm" c="dimmed" data-testid="row-count">
        {count} {count === 1 ? 'row' : 'rows'} loaded{more ? ', more available' : ''}
      </Text>
      {more && (
        <Button variant="default" onClick={() => list.query.fetchNextPage()} loading={list.query.isFetchingNextPage}>
          Load more
        </Button>
      )}
    </Group>
  );
}
