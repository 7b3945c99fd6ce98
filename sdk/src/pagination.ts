/** A page of a list endpoint: `{ data, has_more }`, newest first. */
export interface Page<T> {
  data: T[];
  has_more: boolean;
}

/**
 * Every item of a list, page after page (each asked with `starting_after` the last id of the one before), as an
 * async iterator: `for await (const payment of payforward.payments.listAll({ limit: 100 }))`. Pages are fetched as
 * the loop reaches them, so breaking out early costs no further request.
 */
export async function* autoPaginate<T extends { id: string }>(
  fetchPage: (startingAfter: string | undefined) => Promise<Page<T>>,
): AsyncGenerator<T, void, undefined> {
  let startingAfter: string | undefined;
  for (;;) {
    const page = await fetchPage(startingAfter);
    yield* page.data;
    if (!page.has_more || page.data.length === 0) return;
    startingAfter = page.data[page.data.length - 1].id;
  }
}
