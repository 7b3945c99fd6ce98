import { NotBuiltYet } from '../components/NotBuiltYet.tsx';

export default function PaymentDetail() {
  return <NotBuiltYet title="Payment" />;
}
