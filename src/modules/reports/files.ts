import { Readable } from 'node:stream';
import PDFDocument from 'pdfkit';
import { stringify } from 'csv-stringify/sync';
import { XMLBuilder } from 'fast-xml-parser';
import { inScope, type Scope, type Sql } from '../../db/index.js';
import { currencyExponent } from '../../lib/currencies.js';
import type { Row } from './definitions.js';
import type { ReportFormat } from './schemas.js';

export const CONTENT_TYPES: Record<ReportFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  json: 'application/json',
  pdf: 'application/pdf',
  'camt.053': 'application/xml',
};
export const EXTENSIONS: Record<ReportFormat, string> = { csv: 'csv', json: 'json', pdf: 'pdf', 'camt.053': 'xml' };

/**
 * Collects a file's bytes and stores them as numbered chunks of `chunkBytes`, each in its own
 * short transaction: a file of any size passes through memory one chunk at a time.
 */
export class ChunkWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  size = 0;
  chunks = 0;

  constructor(
    private readonly sql: Sql,
    private readonly scope: Scope,
    private readonly reportId: string,
    private readonly chunkBytes: number,
  ) {}

  write(data: Buffer | string) {
    const buffer = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.pending.push(buffer);
    this.pendingBytes += buffer.length;
    this.size += buffer.length;
  }

  /** Stores every full chunk; with `all`, the remainder too. */
  async flush(all = false) {
    while (this.pendingBytes >= this.chunkBytes || (all && this.pendingBytes > 0)) {
      const joined = Buffer.concat(this.pending);
      const chunk = joined.subarray(0, Math.min(this.chunkBytes, joined.length));
      const rest = joined.subarray(chunk.length);
      this.pending = rest.length ? [rest] : [];
      this.pendingBytes = rest.length;
      const seq = this.chunks++;
      await inScope(
        this.sql,
        this.scope,
        (tx) => tx`
        INSERT INTO report_chunks (report_id, seq, tenant_id, livemode, data)
        VALUES (${this.reportId}, ${seq}, ${this.scope.tenantId}, ${this.scope.livemode}, ${chunk})`,
      );
    }
  }
}

/** A stored file read back a chunk per transaction, so a download holds neither memory nor a connection. */
export function readChunks(sql: Sql, scope: Scope, reportId: string): Readable {
  async function* chunks() {
    for (let seq = 0; ; seq++) {
      const [chunk] = await inScope(
        sql,
        scope,
        (tx) => tx<{ data: Buffer }[]>`
        SELECT data FROM report_chunks WHERE report_id = ${reportId} AND seq = ${seq}
          AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`,
      );
      if (!chunk) return;
      yield chunk.data;
    }
  }
  return Readable.from(chunks());
}

export interface FileHeader {
  reportId: string;
  title: string;
  tenantId: string;
  livemode: boolean;
  parameters: Record<string, unknown>;
  columns: string[];
  generated: Date;
}

/** Turns row batches into one format's bytes, written to the chunk writer as they come. */
export interface FormatWriter {
  rows(rows: Row[]): void;
  end(): Promise<void>;
}

export function formatWriter(format: ReportFormat, header: FileHeader, out: ChunkWriter): FormatWriter {
  switch (format) {
    case 'csv':
      return csvWriter(header, out);
    case 'json':
      return jsonWriter(header, out);
    case 'pdf':
      return pdfWriter(header, out);
    case 'camt.053':
      return camtWriter(header, out);
  }
}

function csvWriter(header: FileHeader, out: ChunkWriter): FormatWriter {
  out.write(stringify([], { header: true, columns: header.columns }));
  return {
    // Spreadsheets run cells starting with = + - @ as formulas; text cells are escaped.
    rows: (rows) => out.write(stringify(rows, { columns: header.columns, escape_formulas: true })),
    end: async () => {},
  };
}

function jsonWriter(header: FileHeader, out: ChunkWriter): FormatWriter {
  out.write(
    `{"object":"report_file","report":${JSON.stringify(header.reportId)},"title":${JSON.stringify(header.title)},` +
      `"parameters":${JSON.stringify(header.parameters)},"generated":${Math.floor(header.generated.getTime() / 1000)},` +
      `"livemode":${header.livemode},"columns":${JSON.stringify(header.columns)},"rows":[`,
  );
  let first = true;
  return {
    rows: (rows) => {
      for (const row of rows) {
        out.write(
          (first ? '' : ',') + JSON.stringify(Object.fromEntries(header.columns.map((c) => [c, row[c] ?? null]))),
        );
        first = false;
      }
    },
    end: async () => out.write(']}'),
  };
}

/** A plain document: title, scope and parameters, then one block of "column: value" lines per row. */
function pdfWriter(header: FileHeader, out: ChunkWriter): FormatWriter {
  const doc = new PDFDocument({ size: 'A4', margin: 40, compress: true, info: { Title: header.title } });
  const ended = new Promise<void>((resolve, reject) => {
    doc.on('end', resolve);
    doc.on('error', reject);
  });
  doc.on('data', (chunk: Buffer) => out.write(chunk));
  doc.font('Helvetica-Bold').fontSize(16).text(`PayForward: ${header.title}`);
  doc
    .font('Helvetica')
    .fontSize(9)
    .text(`Report ${header.reportId}, tenant ${header.tenantId} (${header.livemode ? 'live' : 'test'} mode)`)
    .text(`Generated ${header.generated.toISOString()}`)
    .text(`Parameters: ${JSON.stringify(header.parameters)}`)
    .moveDown();
  let count = 0;
  return {
    rows: (rows) => {
      for (const row of rows) {
        count++;
        doc.font('Helvetica-Bold').fontSize(9).text(`#${count}`);
        doc.font('Helvetica').fontSize(8);
        for (const column of header.columns) {
          const value = row[column];
          if (value !== null && value !== undefined && value !== '') doc.text(`${column}: ${String(value)}`);
        }
        doc.moveDown(0.5);
      }
    },
    end: async () => {
      doc.font('Helvetica-Bold').fontSize(9).text(`${count} rows.`);
      doc.end();
      await ended;
    },
  };
}

const xml = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  format: true,
  suppressEmptyNode: true,
});

/** Minor units as the decimal text ISO 20022 amounts use (1234 USD → "12.34"). */
export function decimalAmount(minor: number, currency: string): string {
  const exponent = currencyExponent(currency) ?? 2;
  const sign = minor < 0 ? '-' : '';
  const digits = String(Math.abs(minor)).padStart(exponent + 1, '0');
  return exponent ? `${sign}${digits.slice(0, -exponent)}.${digits.slice(-exponent)}` : `${sign}${digits}`;
}

/**
 * ISO 20022 camt.053.001.08 (BankToCustomerStatement): one Stmt per day of the period, each with
 * the opening and closing booked balance (OPBD, CLBD) of the tenant's available balance in the
 * currency, and one Ntry per settlement, payout, returned payout or instantly settled charge.
 * Takes the settlement statement's rows: each day's opening row, entries and closing row.
 */
function camtWriter(header: FileHeader, out: ChunkWriter): FormatWriter {
  const currency = String(header.parameters.currency);
  const ccy = currency.toUpperCase();
  const amount = (minor: number) => ({ '@_Ccy': ccy, '#text': decimalAmount(Math.abs(minor), currency) });
  const indicator = (minor: number) => (minor < 0 ? 'DBIT' : 'CRDT');
  const balance = (code: string, minor: number, date: string) => ({
    Tp: { CdOrPrtry: { Cd: code } },
    Amt: amount(minor),
    CdtDbtInd: indicator(minor),
    Dt: { Dt: date },
  });
  const created = header.generated.toISOString().replace(/\.\d{3}Z$/, 'Z');
  out.write(
    '<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">\n' +
      `<BkToCstmrStmt>\n${xml.build({ GrpHdr: { MsgId: header.reportId, CreDtTm: created } })}`,
  );
  let sequence = 0;
  let opening = 0;
  let entries: Row[] = [];
  const statement = (date: string, closing: number) => {
    sequence++;
    const credits = entries.filter((e) => e.credit_debit === 'credit');
    const debits = entries.filter((e) => e.credit_debit === 'debit');
    const sum = (list: Row[]) => list.reduce((total, e) => total + Number(e.amount), 0);
    const net = sum(credits) - sum(debits);
    return xml.build({
      Stmt: {
        Id: `${header.reportId}-${date}`,
        ElctrncSeqNb: sequence,
        CreDtTm: created,
        FrToDt: { FrDtTm: `${date}T00:00:00Z`, ToDtTm: `${date}T23:59:59Z` },
        Acct: {
          Id: { Othr: { Id: `${header.tenantId}-${header.livemode ? 'live' : 'test'}-${currency}` } },
          Ccy: ccy,
          Nm: 'PayForward available balance',
          Svcr: { FinInstnId: { Othr: { Id: 'PAYFORWARD' } } },
        },
        Bal: [balance('OPBD', opening, date), balance('CLBD', closing, date)],
        TxsSummry: {
          TtlNtries: {
            NbOfNtries: entries.length,
            Sum: decimalAmount(sum(entries), currency),
            TtlNetNtry: { Amt: decimalAmount(Math.abs(net), currency), CdtDbtInd: indicator(net) },
          },
          TtlCdtNtries: { NbOfNtries: credits.length, Sum: decimalAmount(sum(credits), currency) },
          TtlDbtNtries: { NbOfNtries: debits.length, Sum: decimalAmount(sum(debits), currency) },
        },
        Ntry: entries.map((e) => ({
          NtryRef: e.reference,
          Amt: amount(Number(e.amount)),
          CdtDbtInd: e.credit_debit === 'credit' ? 'CRDT' : 'DBIT',
          RvslInd: e.kind === 'payout_failure' ? 'true' : 'false',
          Sts: { Cd: 'BOOK' },
          BookgDt: { Dt: date },
          ValDt: { Dt: date },
          AcctSvcrRef: e.reference,
          BkTxCd: { Prtry: { Cd: String(e.kind).toUpperCase(), Issr: 'PAYFORWARD' } },
          AddtlNtryInf: `${String(e.kind)} ${String(e.reference)}`,
        })),
      },
    });
  };
  return {
    rows: (rows) => {
      for (const row of rows) {
        if (row.kind === 'opening_balance') {
          opening = Number(row.balance);
          entries = [];
        } else if (row.kind === 'closing_balance') out.write(statement(String(row.date), Number(row.balance)));
        else entries.push(row);
      }
    },
    end: async () => out.write('</BkToCstmrStmt>\n</Document>\n'),
  };
}
