import { useState } from 'react';
import { Button, Group, Select, SimpleGrid, Stack, Text, TextInput, Title, VisuallyHidden } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api, can, type Schema } from '../lib/api.ts';
import { useSession } from '../session.tsx';
import { downloadText } from '../lib/csv.ts';
import { formatTime } from '../lib/format.ts';
import { ApiErrorAlert, Empty } from '../components/states.tsx';
import { afterLast, useCursorList } from '../lib/cursor-list.ts';
import { ConfirmAction, CursorSimpleTable, Section } from '../components/blocks.tsx';
import { StatusBadge } from '../components/StatusBadge.tsx';

type Report = Schema<'Report'>;
type ReportType = Report['type'];
type Format = Report['format'];
type Interval = Schema<'ReportSchedule'>['interval'];

/** Each report type: its name, its formats and the parameters a person fills in (the period aside). */
const TYPES: Record<ReportType, { label: string; formats: Format[]; period: 'days' | 'month' | 'none' }> = {
  large_transactions: { label: 'Large transactions', formats: ['csv', 'json', 'pdf'], period: 'days' },
  structuring_alerts: { label: 'Structuring alerts', formats: ['csv', 'json', 'pdf'], period: 'days' },
  transaction_summary: { label: 'Transaction summary', formats: ['csv', 'json', 'pdf'], period: 'month' },
  settlement_statement: { label: 'Settlement statement', formats: ['camt.053', 'csv', 'json'], period: 'days' },
  pci_access_review: { label: 'PCI access review', formats: ['csv', 'json', 'pdf'], period: 'none' },
  reconciliation_summary: { label: 'Reconciliation summary', formats: ['csv', 'json', 'pdf'], period: 'days' },
};
const TYPE_OPTIONS = Object.entries(TYPES).map(([value, t]) => ({ value, label: t.label }));

const yesterday = () => new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

function ReportForm() {
  const client = useQueryClient();
  const [type, setType] = useState<ReportType>('transaction_summary');
  const [format, setFormat] = useState<Format>('csv');
  const [from, setFrom] = useState(yesterday);
  const [to, setTo] = useState(yesterday);
  const [month, setMonth] = useState(() => new Date().toISOString().slice(0, 7));
  const [currency, setCurrency] = useState('usd');
  const [interval, setInterval] = useState<Interval | ''>('');
  const definition = TYPES[type];
  const parameters = (withPeriod: boolean): Record<string, unknown> => ({
    ...(withPeriod && definition.period === 'days' ? { from, to } : {}),
    ...(withPeriod && definition.period === 'month' ? { month } : {}),
    ...(type === 'settlement_statement' ? { currency } : {}),
  });
  const run = useMutation({
    mutationFn: async () => {
      if (interval)
        await api.POST('/v1/report_schedules', { body: { type, format, interval, parameters: parameters(false) } });
      else await api.POST('/v1/reports', { body: { type, format, parameters: parameters(true) } });
    },
    onSuccess: () =>
      client.invalidateQueries({ predicate: (q) => q.queryKey[0] === 'reports' || q.queryKey[0] === 'schedules' }),
  });
  return (
    <Section title="Run or schedule a report">
      <form
        onSubmit={(event) => {
          event.preventDefault();
          run.mutate();
        }}
      >
        <Stack>
          <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="sm">
            <Select
              label="Report"
              data={TYPE_OPTIONS}
              value={type}
              allowDeselect={false}
              onChange={(v) => {
                setType(v as ReportType);
                if (!TYPES[v as ReportType].formats.includes(format)) setFormat(TYPES[v as ReportType].formats[0]);
              }}
            />
            <Select
              label="Format"
              data={definition.formats}
              value={format}
              allowDeselect={false}
              onChange={(v) => setFormat(v as Format)}
            />
            <Select
              label="Repeat"
              data={[
                { value: '', label: 'Run once now' },
                { value: 'daily', label: 'Daily (the day before)' },
                { value: 'weekly', label: 'Weekly (the 7 days before)' },
                { value: 'monthly', label: 'Monthly (the month before)' },
              ]}
              value={interval}
              allowDeselect={false}
              onChange={(v) => setInterval((v ?? '') as Interval | '')}
            />
            {!interval && definition.period === 'days' && (
              <>
                <TextInput
                  label="From (UTC day)"
                  type="date"
                  required
                  value={from}
                  onChange={(e) => setFrom(e.currentTarget.value)}
                />
                <TextInput
                  label="To (UTC day, included)"
                  type="date"
                  required
                  value={to}
                  onChange={(e) => setTo(e.currentTarget.value)}
                />
              </>
            )}
            {!interval && definition.period === 'month' && (
              <TextInput
                label="Month"
                type="month"
                required
                value={month}
                onChange={(e) => setMonth(e.currentTarget.value)}
              />
            )}
            {type === 'settlement_statement' && (
              <TextInput
                label="Currency"
                required
                value={currency}
                onChange={(e) => setCurrency(e.currentTarget.value.toLowerCase())}
              />
            )}
          </SimpleGrid>
          {run.isError && <ApiErrorAlert error={run.error} title="The report was not queued" />}
          {run.isSuccess && (
            <Text size="sm" role="status" c="teal.9">
              {interval ? 'Schedule saved.' : 'Report queued; it appears below when it is ready.'}
            </Text>
          )}
          <Group justify="flex-end">
            <Button type="submit" loading={run.isPending}>
              {interval ? 'Schedule report' : 'Run report'}
            </Button>
          </Group>
        </Stack>
      </form>
    </Section>
  );
}

function Download({ report }: { report: Report }) {
  const download = useMutation({
    mutationFn: async () => {
      const { data } = await api.GET('/v1/reports/{id}/file', {
        params: { path: { id: report.id } },
        parseAs: 'blob',
      });
      downloadText(report.filename, data as Blob, report.content_type);
    },
  });
  return (
    <Stack gap={4}>
      <Button size="xs" variant="default" loading={download.isPending} onClick={() => download.mutate()}>
        Download<VisuallyHidden> {report.filename}</VisuallyHidden>
      </Button>
      {download.isError && <ApiErrorAlert error={download.error} title="The download failed" />}
    </Stack>
  );
}

function ReportList() {
  const reports = useCursorList(
    ['reports'],
    afterLast(async (cursor) => (await api.GET('/v1/reports', { params: { query: { limit: 100, ...cursor } } })).data!),
    // A queued report is produced by the worker within moments: look again until none is pending.
    { refetchInterval: (rows) => (rows.some((r) => r.status === 'pending') ? 2000 : false) },
  );
  return (
    <Section title="Reports">
      <CursorSimpleTable
        list={reports}
        empty="No report has been run yet."
        caption="Reports, newest first"
        head={['Report', 'Period', 'Format', 'Status', 'Rows', 'Created', 'File']}
        rowKey={(r) => r.id}
        cells={(r) => [
          TYPES[r.type].label,
          String(r.parameters.month ?? (r.parameters.from ? `${r.parameters.from} – ${r.parameters.to}` : '—')),
          r.format,
          <Stack key="s" gap={0}>
            <StatusBadge status={r.status} />
            {r.failure_message && (
              <Text size="xs" c="red.9">
                {r.failure_message}
              </Text>
            )}
          </Stack>,
          r.row_count ?? '—',
          formatTime(r.created),
          r.status === 'succeeded' ? <Download key="d" report={r} /> : '—',
        ]}
      />
    </Section>
  );
}

function Schedules() {
  const session = useSession();
  const client = useQueryClient();
  const schedules = useCursorList(
    ['schedules'],
    afterLast(
      async (cursor) => (await api.GET('/v1/report_schedules', { params: { query: { limit: 100, ...cursor } } })).data!,
    ),
  );
  const writes = can(session, 'reports:write');
  return (
    <Section title="Schedules">
      <CursorSimpleTable
        list={schedules}
        empty="No report is scheduled."
        caption="Scheduled reports"
        head={['Report', 'Format', 'Every', 'Next run', 'Last run', ...(writes ? ['Stop'] : [])]}
        rowKey={(s) => s.id}
        cells={(s) => [
          TYPES[s.type].label,
          s.format,
          s.interval,
          formatTime(s.next_run),
          s.last_run ? formatTime(s.last_run) : '—',
          ...(writes
            ? [
                <ConfirmAction
                  key="d"
                  label="Delete"
                  title="Delete the schedule"
                  color="red"
                  onConfirm={async () => {
                    await api.DELETE('/v1/report_schedules/{id}', { params: { path: { id: s.id } } });
                    await client.invalidateQueries({ queryKey: ['schedules'] });
                  }}
                >
                  <Text size="sm">No more {TYPES[s.type].label.toLowerCase()} reports are run; past ones stay.</Text>
                </ConfirmAction>,
              ]
            : []),
        ]}
      />
    </Section>
  );
}

export default function Reports() {
  const session = useSession();
  return (
    <Stack>
      <Title order={1}>Reports</Title>
      {can(session, 'reports:write') && <ReportForm />}
      {can(session, 'reports:read') ? (
        <>
          <ReportList />
          <Schedules />
        </>
      ) : (
        <Empty>Your role does not include reports.</Empty>
      )}
    </Stack>
  );
}
