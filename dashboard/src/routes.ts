import { lazy, type ComponentType, type LazyExoticComponent } from 'react';

/**
 * Every page of the dashboard, in one table: its path (under /dashboard), its name in the navigation (none for a
 * detail page), who sees it (a tenant's team or the operator's staff) and its lazily loaded module, so each page is a
 * chunk of its own and the first load carries only the shell.
 */
export interface PageRoute {
  path: string;
  title: string;
  audience: 'tenant' | 'operator';
  nav: boolean;
  page: LazyExoticComponent<ComponentType>;
}

const page = (
  path: string,
  title: string,
  audience: PageRoute['audience'],
  load: () => Promise<{ default: ComponentType }>,
  nav = true,
): PageRoute => ({ path, title, audience, nav, page: lazy(load) });

export const ROUTES: PageRoute[] = [
  page('/', 'Home', 'tenant', () => import('./pages/Home.tsx')),
  page('/payments', 'Payments', 'tenant', () => import('./pages/Payments.tsx')),
  page('/payments/:id', 'Payment', 'tenant', () => import('./pages/PaymentDetail.tsx'), false),
  page('/customers', 'Customers', 'tenant', () => import('./pages/Customers.tsx')),
  page('/analytics', 'Analytics', 'tenant', () => import('./pages/Analytics.tsx')),
  page('/balance', 'Balance', 'tenant', () => import('./pages/Balance.tsx')),
  page('/disputes', 'Disputes', 'tenant', () => import('./pages/Disputes.tsx')),
  page('/fraud', 'Fraud', 'tenant', () => import('./pages/Fraud.tsx')),
  page('/webhooks', 'Webhooks', 'tenant', () => import('./pages/Webhooks.tsx')),
  page('/developers', 'Developers', 'tenant', () => import('./pages/Developers.tsx')),
  page('/reports', 'Reports', 'tenant', () => import('./pages/Reports.tsx')),
  page('/team', 'Team', 'tenant', () => import('./pages/Team.tsx')),
  page('/audit-log', 'Audit log', 'tenant', () => import('./pages/AuditLog.tsx')),
  page('/operator', 'Overview', 'operator', () => import('./pages/OperatorOverview.tsx')),
  page('/operator/tenants', 'Tenants', 'operator', () => import('./pages/OperatorTenants.tsx')),
  page('/operator/processors', 'Processor health', 'operator', () => import('./pages/OperatorProcessors.tsx')),
  page('/operator/reconciliation', 'Reconciliation', 'operator', () => import('./pages/OperatorReconciliation.tsx')),
  page('/operator/reviews', 'Review backlog', 'operator', () => import('./pages/OperatorReviews.tsx')),
];

/** Where a person lands after signing in. */
export const homeOf = (audience: PageRoute['audience']) => (audience === 'operator' ? '/operator' : '/');
