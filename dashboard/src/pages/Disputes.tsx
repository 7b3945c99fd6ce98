import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function Disputes() {
  return <NotBuiltYet title="Disputes" />;
}
