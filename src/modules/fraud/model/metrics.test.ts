import { describe, expect, it } from 'vitest';
import { atThreshold, auc, averagePrecision, cardPrecisionAtK } from './metrics.js';

// Six payments, hand-computed: three frauds (F) and three legitimate (L), with a tie at 0.5.
//   0.9 F, 0.8 L, 0.7 F, 0.6 L, 0.5 L, 0.5 F
const items = [
  { score: 0.9, isFraud: true, amount: 1000 },
  { score: 0.8, isFraud: false, amount: 200 },
  { score: 0.7, isFraud: true, amount: 3000 },
  { score: 0.6, isFraud: false, amount: 400 },
  { score: 0.5, isFraud: false, amount: 500 },
  { score: 0.5, isFraud: true, amount: 6000 },
];

describe('fraud evaluation metrics', () => {
  it('AUC counts the pairs a fraud wins, a tie as half: (3 + 2 + 0.5) / 9', () => {
    expect(auc(items)).toBeCloseTo(5.5 / 9, 12);
    expect(auc([...items].reverse())).toBeCloseTo(5.5 / 9, 12);
    expect(auc(items.map((i) => ({ ...i, score: 1 })))).toBe(0.5);
  });

  it('average precision sums recall steps times precision, a tie as one step: 1/3·1 + 1/3·2/3 + 1/3·3/6', () => {
    expect(averagePrecision(items)).toBeCloseTo(1 / 3 + 2 / 9 + 1 / 6, 12);
    expect(averagePrecision(items.filter((i) => i.isFraud))).toBe(1);
  });

  it('card precision at k ranks cards per day by their riskiest payment', () => {
    const cards = [
      // Day 1: A (fraud) 0.9, B 0.8 with a later fraud on it at 0.3, C 0.1 → top 2 both fraud cards: 2/2.
      { day: 'd1', card: 'A', score: 0.9, isFraud: true },
      { day: 'd1', card: 'B', score: 0.8, isFraud: false },
      { day: 'd1', card: 'B', score: 0.3, isFraud: true },
      { day: 'd1', card: 'C', score: 0.1, isFraud: false },
      // Day 2: D 0.5, E (fraud) 0.4 → 1/2.
      { day: 'd2', card: 'D', score: 0.5, isFraud: false },
      { day: 'd2', card: 'E', score: 0.4, isFraud: true },
    ];
    expect(cardPrecisionAtK(cards, 2)).toBe(0.75);
    // A day with fewer cards than k still divides by k: day 1 → 2/4, day 2 → 1/4.
    expect(cardPrecisionAtK(cards, 4)).toBe(0.375);
  });

  it('measures caught fraud amount, false positives and declines at a threshold', () => {
    // At 0.7: flagged 0.9 F, 0.8 L, 0.7 F → fraud amount caught 4000 of 10000, 1 of 3 legit, 3 of 6 declined.
    expect(atThreshold(items, 0.7)).toEqual({ fraud_caught_share: 0.4, false_positive_rate: 1 / 3, decline_rate: 0.5 });
    expect(atThreshold(items, 2)).toEqual({ fraud_caught_share: 0, false_positive_rate: 0, decline_rate: 0 });
  });
});
