import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function Developers() {
  return <NotBuiltYet title="Developers" />;
}
