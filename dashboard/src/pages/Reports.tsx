import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function Reports() {
  return <NotBuiltYet title="Reports" />;
}
