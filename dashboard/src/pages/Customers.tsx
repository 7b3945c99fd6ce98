import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function Customers() {
  return <NotBuiltYet title="Customers" />;
}
