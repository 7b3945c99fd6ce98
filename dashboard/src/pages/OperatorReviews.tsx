import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function OperatorReviews() {
  return <NotBuiltYet title="Review backlog" />;
}
