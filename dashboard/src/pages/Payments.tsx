import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function Payments() {
  return <NotBuiltYet title="Payments" />;
}
