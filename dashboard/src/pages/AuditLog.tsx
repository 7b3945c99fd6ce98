import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function AuditLog() {
  return <NotBuiltYet title="Audit log" />;
}
