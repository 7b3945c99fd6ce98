import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function Home() {
  return <NotBuiltYet title="Home" />;
}
