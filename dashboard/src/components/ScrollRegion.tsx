import type { ReactNode } from 'react';
import { Box } from '@mantine/core';

/**
 * A horizontally scrolling wrapper for wide tables on narrow screens: focusable and named, so a keyboard user can
 * scroll it too (axe: scrollable-region-focusable).
 */
export function ScrollRegion({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Box tabIndex={0} role="region" aria-label={label} style={{ overflowX: 'auto' }}>
      {children}
    </Box>
  );
}
