import { stringify } from 'csv-stringify/browser/esm/sync';

/** A table's rows as CSV (RFC 4180 quoting by csv-stringify), with the header row. */
export function toCsv(header: string[], rows: string[][]): string {
  return stringify([header, ...rows]);
}

/** Hands the text (or a file the API served, as a Blob) to the browser as a file download. */
export function downloadText(filename: string, text: string | Blob, type = 'text/csv;charset=utf-8') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  link.click();
  // The click has started the download synchronously; the object URL is no longer needed.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}
