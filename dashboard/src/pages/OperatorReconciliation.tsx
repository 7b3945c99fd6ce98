import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function OperatorReconciliation() {
  return <NotBuiltYet title="Reconciliation" />;
}
