/**
 * The bench's check of payments committed against answers given. A request still in flight when
 * a run ends is cut off by the load generator: its outcome is unknown. It may never have left the
 * client, reached the server after the client stopped listening and been committed, or anything
 * in between. So every payment answered 2xx must be committed, and beyond those the database may
 * hold between none and all of the cut-off requests, at most one payment each: anything outside
 * that range is a lost or a doubled payment.
 */
export function reconcilePayments(counts: {
  /** 2xx answers to payment-creating requests. */
  answered: number;
  /** Payment ids read from those answers that the database holds as succeeded. */
  answeredCommitted: number;
  /** Succeeded payments in the database. */
  committed: number;
  /** Requests sent without an answer when a run ended. */
  unanswered: number;
}): { ok: boolean; detail: string } {
  const { answered, answeredCommitted, committed, unanswered } = counts;
  const unknownCommitted = committed - answeredCommitted;
  const ok = answeredCommitted === answered && unknownCommitted >= 0 && unknownCommitted <= unanswered;
  const verdict =
    answeredCommitted !== answered
      ? `${answered - answeredCommitted} answered payments missing from the database`
      : unknownCommitted < 0
        ? 'fewer payments than answers'
        : unknownCommitted > unanswered
          ? `${unknownCommitted - unanswered} more payments than requests could have made`
          : 'within bounds';
  return {
    ok,
    detail:
      `database succeeded = ${committed}: ${answeredCommitted} of the ${answered} answered 2xx, plus ${unknownCommitted} ` +
      `from the ${unanswered} requests cut off unanswered when a run ended (each committed at most once, or never ` +
      `if it did not reach the server): ${verdict}`,
  };
}
