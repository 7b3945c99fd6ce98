import type { FeeDetail } from '../pricing/schemas.js';
import type { LedgerEntryInput, LedgerTransactionInput } from './service.js';

/**
 * Every posting the platform makes, in one place. Amounts are signed (an account gains what is
 * positive); each transaction sums to zero per currency. The accounts of a tenant, mode and currency:
 *
 * - processor_clearing: the counterpart of money crossing the platform's edge. A capture takes the
 *   gross from it (the processor owes it to us); refunds, lost disputes and paid-out payouts give
 *   back to it (the money left for the cardholder or the tenant's bank).
 * - pending: the tenant's captured funds not yet settled; refunds and disputes are taken from it
 *   too, so they settle with the same day's charges and may make it negative for a while.
 * - available: settled funds the tenant can pay out. Never negative (the database refuses it).
 * - fees: what the platform earned from this tenant.
 * - disputes: disputed amounts withheld until the dispute is decided.
 * - payouts_in_transit: payouts on their way to the bank.
 * - reserve: funds withheld by the operator (none of the flows below use it yet).
 *
 * Authorization posts nothing: the money moves at capture.
 */

const entry = (accountType: LedgerEntryInput['accountType'], currency: string, amount: number): LedgerEntryInput[] =>
  amount === 0 ? [] : [{ accountType, currency, amount }];

export interface ChargePosting {
  paymentId: string;
  transactionId: string;
  currency: string;
  amount: number;
  fee: number;
  feeDetails: FeeDetail[];
  /** Instant settlement credits available funds directly. */
  instant: boolean;
  availableOn: Date;
}

export function chargeTransaction(charge: ChargePosting): LedgerTransactionInput {
  const { currency, amount, fee } = charge;
  // A fixed fee can exceed a tiny amount. Such a negative net goes through pending even when
  // settlement is instant, so that it can never drive available below zero (which the database
  // would refuse, failing every payment in the batch).
  const balanceType = charge.instant && amount >= fee ? 'available' : 'pending';
  return {
    id: charge.transactionId,
    type: 'charge',
    sourceId: charge.paymentId,
    description: `Payment ${charge.paymentId} captured`,
    entries: [
      ...entry('processor_clearing', currency, -amount),
      ...entry(balanceType, currency, amount - fee),
      ...entry('fees', currency, fee),
    ],
    balance: { balanceType, currency, amount, fee, feeDetails: charge.feeDetails, availableOn: charge.availableOn },
  };
}

/**
 * A refund or an opened dispute: the amount and its fee are taken from pending (refunds and disputes settle with the
 * same day's charges), the amount goes to `to` and the fee to the platform.
 */
function takenFromPending(
  to: 'processor_clearing' | 'disputes',
  posting: { currency: string; amount: number; fee: number; feeDetails: FeeDetail[]; availableOn: Date },
): Pick<LedgerTransactionInput, 'entries' | 'balance'> {
  const { currency, amount, fee } = posting;
  return {
    entries: [
      ...entry('pending', currency, -(amount + fee)),
      ...entry(to, currency, amount),
      ...entry('fees', currency, fee),
    ],
    balance: {
      balanceType: 'pending',
      currency,
      amount: -amount,
      fee,
      feeDetails: posting.feeDetails,
      availableOn: posting.availableOn,
    },
  };
}

export function refundTransaction(refund: {
  id: string;
  transactionId: string;
  paymentId: string;
  currency: string;
  amount: number;
  fee: number;
  feeDetails: FeeDetail[];
  availableOn: Date;
}): LedgerTransactionInput {
  return {
    id: refund.transactionId,
    type: 'refund',
    sourceId: refund.id,
    description: `Refund ${refund.id} of payment ${refund.paymentId}`,
    ...takenFromPending('processor_clearing', refund),
  };
}

/** Opening a dispute withholds the disputed amount and charges the dispute fee. */
export function disputeTransaction(dispute: {
  id: string;
  currency: string;
  amount: number;
  fee: number;
  feeDetails: FeeDetail[];
  availableOn: Date;
}): LedgerTransactionInput {
  return {
    type: 'dispute',
    sourceId: dispute.id,
    description: `Dispute ${dispute.id} opened: amount withheld`,
    ...takenFromPending('disputes', dispute),
  };
}

/** A won dispute gives the withheld amount back; the dispute fee is not refunded. */
export function disputeWonTransaction(dispute: {
  id: string;
  currency: string;
  amount: number;
  availableOn: Date;
}): LedgerTransactionInput {
  const { currency, amount } = dispute;
  return {
    type: 'dispute_reversal',
    sourceId: dispute.id,
    description: `Dispute ${dispute.id} won: amount returned`,
    entries: [...entry('disputes', currency, -amount), ...entry('pending', currency, amount)],
    balance: { balanceType: 'pending', currency, amount, fee: 0, feeDetails: [], availableOn: dispute.availableOn },
  };
}

/** A lost dispute's withheld amount goes back to the cardholder through the processor. */
export function disputeLostTransaction(dispute: {
  id: string;
  currency: string;
  amount: number;
}): LedgerTransactionInput {
  const { currency, amount } = dispute;
  return {
    type: 'dispute_loss',
    sourceId: dispute.id,
    description: `Dispute ${dispute.id} lost: amount returned to the cardholder`,
    entries: [...entry('disputes', currency, -amount), ...entry('processor_clearing', currency, amount)],
  };
}

export function settlementTransaction(settlement: {
  id: string;
  currency: string;
  net: number;
}): LedgerTransactionInput {
  const { currency, net } = settlement;
  return {
    type: 'settlement',
    sourceId: settlement.id,
    description: `Settlement ${settlement.id}: pending funds made available`,
    entries: [...entry('pending', currency, -net), ...entry('available', currency, net)],
  };
}

export function payoutTransaction(payout: {
  id: string;
  currency: string;
  amount: number;
  created: Date;
}): LedgerTransactionInput {
  const { currency, amount } = payout;
  return {
    type: 'payout',
    sourceId: payout.id,
    description: `Payout ${payout.id} to the bank`,
    entries: [...entry('available', currency, -amount), ...entry('payouts_in_transit', currency, amount)],
    balance: {
      balanceType: 'available',
      currency,
      amount: -amount,
      fee: 0,
      feeDetails: [],
      availableOn: payout.created,
    },
  };
}

export function payoutPaidTransaction(payout: {
  id: string;
  currency: string;
  amount: number;
}): LedgerTransactionInput {
  const { currency, amount } = payout;
  return {
    type: 'payout_paid',
    sourceId: payout.id,
    description: `Payout ${payout.id} arrived at the bank`,
    entries: [...entry('payouts_in_transit', currency, -amount), ...entry('processor_clearing', currency, amount)],
  };
}

/** A failed payout returns its funds to available. */
export function payoutFailedTransaction(payout: {
  id: string;
  currency: string;
  amount: number;
  failed: Date;
}): LedgerTransactionInput {
  const { currency, amount } = payout;
  return {
    type: 'payout_failure',
    sourceId: payout.id,
    description: `Payout ${payout.id} failed: funds returned`,
    entries: [...entry('payouts_in_transit', currency, -amount), ...entry('available', currency, amount)],
    balance: { balanceType: 'available', currency, amount, fee: 0, feeDetails: [], availableOn: payout.failed },
  };
}
