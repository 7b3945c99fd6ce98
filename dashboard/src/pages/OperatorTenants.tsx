import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function OperatorTenants() {
  return <NotBuiltYet title="Tenants" />;
}
