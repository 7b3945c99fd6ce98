import { Group, SegmentedControl, Stack, Text } from '@mantine/core';
import { useMediaQuery } from '@mantine/hooks';
import { useId } from 'react';

const PRESETS = [
  { value: 'today', label: 'Today' },
  { value: '7d', label: '7 days' },
  { value: '30d', label: '30 days' },
  { value: '12m', label: '12 months' },
];

export type Preset = 'today' | '7d' | '30d' | '12m';

/** The operator pages' period, interval and mode as the URL gives them (defaults: 7 days, daily, test). */
export function operatorPeriod(filters: { range: string; interval: string; mode: string }) {
  const range = (PRESETS.some((p) => p.value === filters.range) ? filters.range : '7d') as Preset;
  const interval: 'hour' | 'day' = range !== '12m' && filters.interval === 'hour' ? 'hour' : 'day';
  return { range, interval, livemode: filters.mode === 'live' };
}

function Segments({
  label,
  value,
  data,
  onChange,
  narrow,
}: {
  label: string;
  value: string;
  data: { value: string; label: string; disabled?: boolean }[];
  onChange: (value: string) => void;
  narrow: boolean;
}) {
  const id = useId();
  return (
    <Stack gap={4}>
      <Text size="sm" fw={500} id={id}>
        {label}
      </Text>
      <SegmentedControl
        aria-labelledby={id}
        orientation={narrow && data.length > 3 ? 'vertical' : 'horizontal'}
        value={value}
        data={data}
        onChange={onChange}
      />
    </Stack>
  );
}

/** Period, interval and mode pickers of the operator pages; each change goes to the URL. */
export function PeriodControls({
  period,
  onChange,
}: {
  period: ReturnType<typeof operatorPeriod>;
  onChange: (changes: { range?: string; interval?: string; mode?: string }) => void;
}) {
  const narrow = useMediaQuery('(max-width: 36em)') ?? false;
  return (
    <Group gap="sm" align="end" wrap="wrap">
      <Segments
        label="Period"
        value={period.range}
        data={PRESETS}
        onChange={(range) => onChange({ range })}
        narrow={narrow}
      />
      <Segments
        label="Interval"
        value={period.interval}
        data={[
          { value: 'hour', label: 'Hourly', disabled: period.range === '12m' },
          { value: 'day', label: 'Daily' },
        ]}
        onChange={(interval) => onChange({ interval })}
        narrow={narrow}
      />
      <Segments
        label="Mode"
        value={period.livemode ? 'live' : 'test'}
        data={[
          { value: 'test', label: 'Test' },
          { value: 'live', label: 'Live' },
        ]}
        onChange={(mode) => onChange({ mode })}
        narrow={narrow}
      />
    </Group>
  );
}
