import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function Webhooks() {
  return <NotBuiltYet title="Webhooks" />;
}
