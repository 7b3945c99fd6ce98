import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function OperatorOverview() {
  return <NotBuiltYet title="Overview" />;
}
