import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function Team() {
  return <NotBuiltYet title="Team" />;
}
