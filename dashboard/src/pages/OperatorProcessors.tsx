import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function OperatorProcessors() {
  return <NotBuiltYet title="Processor health" />;
}
