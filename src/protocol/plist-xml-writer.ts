// XML plist output, written here rather than by the plist package's build(),
// whose xmlbuilder is 34 of the files a daemon loads before its socket is up
// (seconds of the USB lab's start-up). The bytes are build()'s with a tab
// indent, which test/plist-writer.test.ts holds to, value by value: the
// declaration and DOCTYPE, one element per line, `<x/>` for an empty string,
// data, array or dict, &amp; &lt; &gt; and &#xD; escaped in text, base64 on
// one line, dates to the second. Values reach here checked by plist-codec.ts
// (no null, no unsafe integral numbers, valid dates).

const HEADER =
  '<?xml version="1.0" encoding="UTF-8"?>\n' +
  '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' +
  '<plist version="1.0">';

// What XML 1.0 cannot carry (https://www.w3.org/TR/xml/#charsets): C0
// controls but tab, LF and CR; U+FFFE, U+FFFF; unpaired surrogates.
const ILLEGAL = /[\0-\x08\x0B\f\x0E-\x1F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:[^\uD800-\uDBFF]|^)[\uDC00-\uDFFF]/;

function text(s: string): string {
  const bad = ILLEGAL.exec(s);
  if (bad) {
    // A two-character match is "any character, then a lone low surrogate".
    const char = bad[0].length === 2 ? bad[0][1]! : bad[0][0]!;
    const code = char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    throw new Error(`a string holds U+${code}, which XML 1.0 cannot carry`);
  }
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#xD;');
}

function bytesOf(v: ArrayBuffer | ArrayBufferView): Buffer {
  return v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function element(name: string, content: string, indent: string): string {
  return content === '' ? `\n${indent}<${name}/>` : `\n${indent}<${name}>${content}</${name}>`;
}

function write(v: unknown, indent: string, out: string[]): void {
  if (v === undefined || v === null) return;
  if (Array.isArray(v)) {
    const items = v.filter((item) => item !== undefined && item !== null);
    container('array', items, indent, out, (item, inner) => write(item, inner, out));
  } else if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    out.push(element('data', bytesOf(v).toString('base64'), indent));
  } else if (v instanceof Date) {
    out.push(element('date', v.toISOString().replace(/\.\d{3}Z$/, 'Z'), indent));
  } else if (typeof v === 'object') {
    const entries = Object.entries(v).filter(([, item]) => item !== undefined && item !== null);
    container('dict', entries, indent, out, ([key, item], inner) => {
      out.push(element('key', text(key), inner));
      write(item, inner, out);
    });
  } else if (typeof v === 'number') {
    out.push(element(v % 1 === 0 ? 'integer' : 'real', String(v), indent));
  } else if (typeof v === 'bigint') {
    out.push(element('integer', v.toString(), indent));
  } else if (typeof v === 'boolean') {
    out.push(`\n${indent}<${v}/>`);
  } else if (typeof v === 'string') {
    out.push(element('string', text(v), indent));
  }
}

function container<T>(name: string, items: T[], indent: string, out: string[], each: (item: T, inner: string) => void): void {
  if (items.length === 0) {
    out.push(`\n${indent}<${name}/>`);
    return;
  }
  out.push(`\n${indent}<${name}>`);
  for (const item of items) each(item, `${indent}\t`);
  out.push(`\n${indent}</${name}>`);
}

/** The XML plist document of `value`, without a final newline (as build() writes it). */
export function writeXmlPlist(value: unknown): string {
  const out = [HEADER];
  write(value, '\t', out);
  out.push('\n</plist>');
  return out.join('');
}
