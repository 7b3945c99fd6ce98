import { Type, type Static } from 'typebox';
import { ListQuery, Nullable, StrictObject } from '../../http/schemas.js';

export const REPORT_TYPES = [
  'large_transactions',
  'structuring_alerts',
  'transaction_summary',
  'settlement_statement',
  'pci_access_review',
  'reconciliation_summary',
] as const;
export type ReportType = (typeof REPORT_TYPES)[number];
export const REPORT_FORMATS = ['csv', 'json', 'pdf', 'camt.053'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];
export const INTERVALS = ['daily', 'weekly', 'monthly'] as const;
export type Interval = (typeof INTERVALS)[number];

const Parameters = Type.Record(Type.String(), Type.Unknown(), {
  description: 'Depends on `type`; see the README’s table of report types.',
});

export const ReportSchema = Type.Object(
  {
    id: Type.String({ examples: ['rep_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('report'),
    type: Type.String({ enum: [...REPORT_TYPES] }),
    parameters: Parameters,
    format: Type.String({ enum: [...REPORT_FORMATS] }),
    status: Type.String({ enum: ['pending', 'succeeded', 'failed'] }),
    failure_message: Nullable(Type.String()),
    schedule: Nullable(Type.String({ description: 'The schedule that queued it, if any.' })),
    row_count: Nullable(Type.Integer({ description: 'Rows in the file, once it succeeded.' })),
    size: Nullable(Type.Integer({ description: 'Bytes in the file, once it succeeded.' })),
    filename: Type.String(),
    content_type: Type.String(),
    created: Type.Integer(),
    completed: Nullable(Type.Integer()),
    livemode: Type.Boolean(),
  },
  { $id: 'Report' },
);
export type Report = Static<typeof ReportSchema>;

export const CreateReportBody = StrictObject({
  type: Type.String({ enum: [...REPORT_TYPES] }),
  parameters: Type.Optional(Parameters),
  format: Type.Optional(Type.String({ enum: [...REPORT_FORMATS], default: 'csv' })),
});
export type CreateReportBody = Static<typeof CreateReportBody>;

export const ReportListQuery = StrictObject({
  ...ListQuery,
  type: Type.Optional(Type.String({ enum: [...REPORT_TYPES] })),
  status: Type.Optional(Type.String({ enum: ['pending', 'succeeded', 'failed'] })),
});
export type ReportListQuery = Static<typeof ReportListQuery>;

export const ReportScheduleSchema = Type.Object(
  {
    id: Type.String({ examples: ['rsch_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('report_schedule'),
    type: Type.String({ enum: [...REPORT_TYPES] }),
    parameters: Parameters,
    format: Type.String({ enum: [...REPORT_FORMATS] }),
    interval: Type.String({ enum: [...INTERVALS] }),
    next_run: Type.Integer({ description: 'When the worker queues the next report (Unix seconds).' }),
    last_run: Nullable(Type.Integer()),
    last_report: Nullable(Type.String()),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'ReportSchedule' },
);
export type ReportSchedule = Static<typeof ReportScheduleSchema>;

export const CreateScheduleBody = StrictObject({
  type: Type.String({ enum: [...REPORT_TYPES] }),
  parameters: Type.Optional(Parameters),
  format: Type.Optional(Type.String({ enum: [...REPORT_FORMATS], default: 'csv' })),
  interval: Type.String({ enum: [...INTERVALS] }),
});
export type CreateScheduleBody = Static<typeof CreateScheduleBody>;

export const UpdateScheduleBody = StrictObject({
  parameters: Type.Optional(Parameters),
  format: Type.Optional(Type.String({ enum: [...REPORT_FORMATS] })),
  interval: Type.Optional(Type.String({ enum: [...INTERVALS] })),
});
export type UpdateScheduleBody = Static<typeof UpdateScheduleBody>;

export const ScheduleListQuery = StrictObject({ ...ListQuery });
export type ScheduleListQuery = Static<typeof ScheduleListQuery>;
