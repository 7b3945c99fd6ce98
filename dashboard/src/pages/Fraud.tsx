import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function Fraud() {
  return <NotBuiltYet title="Fraud" />;
}
