import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, ref } from '../../http/route-schemas.js';
import { analyticsCsv } from './csv.js';
import {
  BreakdownQuery,
  OperatorBacklogQuery,
  OperatorProcessorQuery,
  OperatorVolumeQuery,
  SummaryQuery,
  TimeseriesQuery,
} from './schemas.js';

const tags = ['Analytics'];
const config = { auth: 'tenant', scope: 'analytics:read' } as const;
const platform = { auth: 'platform' } as const;
const csvResponse = {
  200: {
    description: 'The same figures as the JSON answer, one line each, with a header line.',
    content: { 'text/csv': { schema: { type: 'string' } } },
  },
  ...errors,
};
const csv = (reply: FastifyReply, name: string, body: string) =>
  reply
    .header('content-type', 'text/csv; charset=utf-8')
    .header('content-disposition', `attachment; filename="${name}.csv"`)
    .send(body);

const PERIOD_HELP =
  'Figures come from hourly rollups kept as payments change: the period is whole UTC hours (`from` rounded down, ' +
  '`until` up) and is echoed in the answer. `compare=previous` adds the period of the same length just before.';

export const analyticsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { analytics } = app.platform;

  const summary = {
    config,
    schema: {
      tags,
      summary: 'Analytics summary',
      description: `Count, amount, approvals and declines (with their reasons), captured volume, fees, refunds, disputes, fraud rate and net, per currency. ${PERIOD_HELP}`,
      querystring: SummaryQuery,
    },
  };
  app.get(
    '/v1/analytics/summary',
    { ...summary, schema: { ...summary.schema, response: { 200: ref('AnalyticsSummary'), ...errors } } },
    async (request) => analytics.summary(tenantScope(request), request.query),
  );
  app.get(
    '/v1/analytics/summary.csv',
    { ...summary, schema: { ...summary.schema, summary: 'Analytics summary as CSV', response: csvResponse } },
    async (request, reply) =>
      csv(
        reply,
        'analytics-summary',
        analyticsCsv.summary(await analytics.summary(tenantScope(request), request.query)),
      ),
  );

  const timeseries = {
    config,
    schema: {
      tags,
      summary: 'Analytics time series',
      description: `One metric per hour or UTC day, every bucket of the period present (zero when empty). Amount metrics need \`currency\`. ${PERIOD_HELP}`,
      querystring: TimeseriesQuery,
    },
  };
  app.get(
    '/v1/analytics/timeseries',
    { ...timeseries, schema: { ...timeseries.schema, response: { 200: ref('AnalyticsTimeseries'), ...errors } } },
    async (request) => analytics.timeseries(tenantScope(request), request.query),
  );
  app.get(
    '/v1/analytics/timeseries.csv',
    { ...timeseries, schema: { ...timeseries.schema, summary: 'Analytics time series as CSV', response: csvResponse } },
    async (request, reply) =>
      csv(
        reply,
        `analytics-${request.query.metric}`,
        analyticsCsv.timeseries(await analytics.timeseries(tenantScope(request), request.query)),
      ),
  );

  const breakdown = {
    config,
    schema: {
      tags,
      summary: 'Analytics breakdown',
      description: `Payments by card brand, card country, currency or decline reason, most frequent first. ${PERIOD_HELP}`,
      querystring: BreakdownQuery,
    },
  };
  app.get(
    '/v1/analytics/breakdown',
    { ...breakdown, schema: { ...breakdown.schema, response: { 200: ref('AnalyticsBreakdown'), ...errors } } },
    async (request) => analytics.breakdown(tenantScope(request), request.query),
  );
  app.get(
    '/v1/analytics/breakdown.csv',
    { ...breakdown, schema: { ...breakdown.schema, summary: 'Analytics breakdown as CSV', response: csvResponse } },
    async (request, reply) =>
      csv(
        reply,
        `analytics-by-${request.query.dimension}`,
        analyticsCsv.breakdown(await analytics.breakdown(tenantScope(request), request.query)),
      ),
  );

  const volume = {
    config: platform,
    schema: {
      tags,
      summary: 'Platform volume and approval rate (operator)',
      description: `Every tenant's payments together, per hour or UTC day and currency. The platform operator only. ${PERIOD_HELP}`,
      querystring: OperatorVolumeQuery,
    },
  };
  app.get(
    '/v1/analytics/platform/volume',
    { ...volume, schema: { ...volume.schema, response: { 200: ref('AnalyticsPlatformVolume'), ...errors } } },
    async (request) => analytics.platformVolume(request.query),
  );
  app.get(
    '/v1/analytics/platform/volume.csv',
    { ...volume, schema: { ...volume.schema, summary: 'Platform volume as CSV (operator)', response: csvResponse } },
    async (request, reply) =>
      csv(reply, 'platform-volume', analyticsCsv.platformVolume(await analytics.platformVolume(request.query))),
  );

  const processors = {
    config: platform,
    schema: {
      tags,
      summary: 'Processor health (operator)',
      description: `Calls to each processor (every tenant's) by the hour or UTC day they began: outcomes, error rate and mean latency. The platform operator only. ${PERIOD_HELP}`,
      querystring: OperatorProcessorQuery,
    },
  };
  app.get(
    '/v1/analytics/platform/processors',
    {
      ...processors,
      schema: { ...processors.schema, response: { 200: ref('AnalyticsProcessorHealth'), ...errors } },
    },
    async (request) => analytics.processorHealth(request.query),
  );
  app.get(
    '/v1/analytics/platform/processors.csv',
    {
      ...processors,
      schema: { ...processors.schema, summary: 'Processor health as CSV (operator)', response: csvResponse },
    },
    async (request, reply) =>
      csv(reply, 'processor-health', analyticsCsv.processorHealth(await analytics.processorHealth(request.query))),
  );

  app.get(
    '/v1/analytics/platform/review_backlog',
    {
      config: platform,
      schema: {
        tags,
        summary: 'Fraud review backlog (operator)',
        description: 'Fraud reviews open across every tenant. The platform operator only.',
        querystring: OperatorBacklogQuery,
        response: { 200: ref('AnalyticsReviewBacklog'), ...errors },
      },
    },
    async (request) => analytics.reviewBacklog(request.query),
  );
};
