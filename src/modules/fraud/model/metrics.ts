// Evaluation metrics of a fraud score, on labelled decisions. Scores are any numbers (higher = riskier);
// ties are handled as scikit-learn does (roc_auc_score, average_precision_score).

export interface Scored {
  score: number;
  isFraud: boolean;
}

/** Area under the ROC curve: the chance a random fraud outscores a random legitimate payment (ties half). */
export function auc(items: readonly Scored[]): number {
  const sorted = [...items].sort((a, b) => a.score - b.score);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j < sorted.length && sorted[j]!.score === sorted[i]!.score) j++;
    const averageRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++)
      if (sorted[k]!.isFraud) {
        positives++;
        rankSum += averageRank;
      }
    i = j;
  }
  const negatives = sorted.length - positives;
  if (positives === 0 || negatives === 0) return NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** Average precision: sum over distinct score thresholds of (recall gained) x (precision there). */
export function averagePrecision(items: readonly Scored[]): number {
  const sorted = [...items].sort((a, b) => b.score - a.score);
  const positives = sorted.filter((item) => item.isFraud).length;
  if (positives === 0) return NaN;
  let truePositives = 0;
  let ap = 0;
  for (let i = 0; i < sorted.length;) {
    let j = i;
    let gained = 0;
    while (j < sorted.length && sorted[j]!.score === sorted[i]!.score) {
      if (sorted[j]!.isFraud) gained++;
      j++;
    }
    truePositives += gained;
    ap += (gained / positives) * (truePositives / j);
    i = j;
  }
  return ap;
}

export interface CardScored extends Scored {
  /** The day of the decision (e.g. 2026-01-05), cards are ranked per day. */
  day: string;
  card: string;
}

/**
 * Card precision top-k, averaged over days: each day, cards are ranked by their riskiest payment of the
 * day; of the k riskiest cards, the share with at least one fraudulent payment that day. A day with fewer
 * than k cards still divides by k, as investigators have k cards of capacity whatever the day brings.
 */
export function cardPrecisionAtK(items: readonly CardScored[], k: number): number {
  const days = new Map<string, Map<string, { score: number; fraud: boolean }>>();
  for (const item of items) {
    let cards = days.get(item.day);
    if (!cards) days.set(item.day, (cards = new Map()));
    const card = cards.get(item.card);
    if (!card) cards.set(item.card, { score: item.score, fraud: item.isFraud });
    else {
      card.score = Math.max(card.score, item.score);
      card.fraud ||= item.isFraud;
    }
  }
  if (days.size === 0) return NaN;
  let sum = 0;
  for (const cards of days.values()) {
    const top = [...cards.values()].sort((a, b) => b.score - a.score).slice(0, k);
    sum += top.filter((card) => card.fraud).length / k;
  }
  return sum / days.size;
}

export interface AmountScored extends Scored {
  amount: number;
}

export interface ThresholdMetrics {
  /** Share of the fraudulent amount in payments at or above the threshold. */
  fraud_caught_share: number;
  /** Share of legitimate payments at or above the threshold. */
  false_positive_rate: number;
  /** Share of all payments at or above the threshold. */
  decline_rate: number;
}

export function atThreshold(items: readonly AmountScored[], threshold: number): ThresholdMetrics {
  let fraudAmount = 0;
  let caughtAmount = 0;
  let legit = 0;
  let falsePositives = 0;
  let declined = 0;
  for (const item of items) {
    const flagged = item.score >= threshold;
    if (flagged) declined++;
    if (item.isFraud) {
      fraudAmount += item.amount;
      if (flagged) caughtAmount += item.amount;
    } else {
      legit++;
      if (flagged) falsePositives++;
    }
  }
  return {
    fraud_caught_share: fraudAmount === 0 ? NaN : caughtAmount / fraudAmount,
    false_positive_rate: legit === 0 ? NaN : falsePositives / legit,
    decline_rate: items.length === 0 ? NaN : declined / items.length,
  };
}
