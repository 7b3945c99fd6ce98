import { useCallback, useMemo } from 'react';
import { useLocation, useSearch } from 'wouter';

/**
 * A page's filters, in the URL's query string so any view can be shared and survives a reload. `keys` are the
 * filters the page knows; `set` merges changes (an empty string or null removes one) and replaces the history entry,
 * so typing in a filter does not flood the back button.
 */
export function useUrlFilters<K extends string>(
  keys: readonly K[],
): [Record<K, string>, (changes: Partial<Record<K, string | null>>) => void] {
  const search = useSearch();
  const [location, navigate] = useLocation();
  const filters = useMemo(() => {
    const params = new URLSearchParams(search);
    return Object.fromEntries(keys.map((key) => [key, params.get(key) ?? ''])) as Record<K, string>;
    // keys is a constant list per page: the query string alone decides the filters.
  }, [search]);
  const set = useCallback(
    (changes: Partial<Record<K, string | null>>) => {
      const params = new URLSearchParams(search);
      for (const [key, value] of Object.entries(changes) as [K, string | null | undefined][])
        if (value) params.set(key, value);
        else params.delete(key);
      const query = params.toString();
      navigate(query ? `${location}?${query}` : location, { replace: true });
    },
    [search, location, navigate],
  );
  return [filters, set];
}
