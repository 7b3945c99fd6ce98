import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function Analytics() {
  return <NotBuiltYet title="Analytics" />;
}
