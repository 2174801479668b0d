/**
 * A small RFC 4180 parser for previews: quoted fields, doubled quotes, delimiters and newlines inside
 * quotes, CRLF/LF/CR line ends and a leading BOM. It stops after `maxRows` rows so a huge file costs
 * no more than what is shown, and can drop a trailing partial row when the text was cut by a Range.
 */
export interface CsvParseOptions {
  /** Field separator: "," for CSV, "\t" for TSV. */
  delimiter?: string;
  /** Stop after this many rows (header included). */
  maxRows?: number;
  /** The text is a prefix of a larger file: the last row may be cut, so it is dropped. */
  truncated?: boolean;
}

/** Parsed rows plus whether more rows exist than were returned. */
export interface CsvParseResult {
  rows: string[][];
  /** True when rows were cut off (maxRows reached or the text was a prefix). */
  more: boolean;
}

/** Parses delimited text into rows of fields. */
export function parseDelimited(text: string, options: CsvParseOptions = {}): CsvParseResult {
  const delimiter = options.delimiter ?? ",";
  const maxRows = options.maxRows ?? Number.POSITIVE_INFINITY;
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let inQuotes = false;
  let fieldStarted = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = text.length;

  const endField = () => {
    row.push(field);
    field = "";
    fieldStarted = false;
  };
  const endRow = () => {
    endField();
    rows.push(row);
    row = [];
  };

  while (i < n) {
    const c = text[i]!;
    if (inQuotes) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        inQuotes = false;
        i += 1;
        continue;
      }
      field += c;
      i += 1;
      continue;
    }
    if (c === '"' && !fieldStarted && field === "") {
      inQuotes = true;
      fieldStarted = true;
      i += 1;
      continue;
    }
    if (c === delimiter) {
      endField();
      i += 1;
      continue;
    }
    if (c === "\r" || c === "\n") {
      endRow();
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      if (rows.length >= maxRows) {
        return { rows, more: i < n || Boolean(options.truncated) };
      }
      continue;
    }
    field += c;
    fieldStarted = true;
    i += 1;
  }
  // Text ended without a final newline: the last row is complete unless the text was cut.
  const pending = fieldStarted || field !== "" || row.length > 0 || inQuotes;
  if (pending) {
    if (options.truncated) {
      return { rows, more: true };
    }
    endRow();
  }
  return { rows, more: Boolean(options.truncated) };
}

/** The delimiter for a media type or file name; null when it is not a delimited-text file. */
export function delimiterFor(mediaType: string, path: string): string | null {
  const lower = path.toLowerCase();
  if (mediaType === "text/tab-separated-values" || lower.endsWith(".tsv")) return "\t";
  if (mediaType === "text/csv" || lower.endsWith(".csv")) return ",";
  return null;
}
