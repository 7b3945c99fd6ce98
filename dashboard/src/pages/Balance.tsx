import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function Balance() {
  return <NotBuiltYet title="Balance" />;
}
