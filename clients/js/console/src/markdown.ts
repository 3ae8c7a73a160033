// Markdown for reviewers, parsed into a small tree that the console renders with Preact elements
// (content.tsx): text only ever becomes text nodes, so nothing in the content can become HTML.
//
// The subset is what AI outputs use: ATX headings, paragraphs, fenced and indented code, block quotes,
// bullet and numbered lists (nested by indentation), thematic breaks, pipe tables; inline code, strong,
// emphasis, strikethrough, links and autolinks, hard line breaks. Raw HTML is not interpreted: it shows as
// the text it is. Links keep only http, https and mailto targets; any other (javascript:, data:,
// relative) stays plain text.

export type Inline =
  | { t: "text"; v: string }
  | { t: "code"; v: string }
  | { t: "strong" | "em" | "del"; c: Inline[] }
  | { t: "link"; href: string; c: Inline[] }
  | { t: "br" };

export type Block =
  | { t: "p"; c: Inline[] }
  | { t: "h"; level: number; c: Inline[] }
  | { t: "pre"; lang: string; v: string }
  | { t: "quote"; c: Block[] }
  | { t: "list"; ordered: boolean; start: number; items: Block[][] }
  | { t: "table"; head: Inline[][]; rows: Inline[][][] }
  | { t: "hr" };

const MAX_DEPTH = 16; // nesting of quotes and lists; deeper content is shown as text

/** The http, https or mailto URL of a link target, or undefined for any other (unsafe or relative) one. */
export function safeHref(raw: string): string | undefined {
  const href = raw.trim();
  // Browsers strip tabs and newlines inside URLs, and a control character could disguise a scheme.
  if (/[\u0000-\u001f\u007f\s]/.test(href)) return undefined;
  return /^(https?:\/\/[^/]|mailto:[^/])/i.test(href) ? href : undefined;
}

/** Parses Markdown into blocks. */
export function parseMarkdown(source: string): Block[] {
  const lines = source.replace(/\r\n?/g, "\n").replace(/\t/g, "    ").split("\n");
  return parseBlocks(lines, 0);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const BULLET = /^( {0,3})([-*+])( +|$)(.*)$/;
const ORDERED = /^( {0,3})(\d{1,9})([.)])( +|$)(.*)$/;
const TABLE_RULE = /^ *\|? *:?-+:? *(\| *:?-+:? *)*\|? *$/;

function blank(line: string): boolean {
  return line.trim() === "";
}

function startsBlock(line: string): boolean {
  return FENCE.test(line) || HEADING.test(line) || HR.test(line) || QUOTE.test(line) || BULLET.test(line) || ORDERED.test(line);
}

function parseBlocks(lines: string[], depth: number): Block[] {
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] as string;
    if (blank(line)) {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1] as string;
      const indent = line.length - line.trimStart().length;
      const body: string[] = [];
      i++;
      while (i < lines.length && !new RegExp(`^ {0,3}${marker[0] === "`" ? "`" : "~"}{${marker.length},}\\s*$`).test(lines[i] as string)) {
        body.push((lines[i] as string).replace(new RegExp(`^ {0,${indent}}`), ""));
        i++;
      }
      i++; // the closing fence (or the end)
      blocks.push({ t: "pre", lang: fence[2] ?? "", v: body.join("\n") });
      continue;
    }
    if (line.startsWith("    ")) {
      const body: string[] = [];
      while (i < lines.length && ((lines[i] as string).startsWith("    ") || blank(lines[i] as string))) {
        body.push((lines[i] as string).slice(4));
        i++;
      }
      while (body.length && blank(body[body.length - 1] as string)) body.pop();
      blocks.push({ t: "pre", lang: "", v: body.join("\n") });
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      blocks.push({ t: "h", level: (heading[1] as string).length, c: parseInline(heading[2] ?? "") });
      i++;
      continue;
    }
    if (HR.test(line)) {
      blocks.push({ t: "hr" });
      i++;
      continue;
    }
    if (QUOTE.test(line) && depth < MAX_DEPTH) {
      const body: string[] = [];
      while (i < lines.length && !blank(lines[i] as string)) {
        const quoted = QUOTE.exec(lines[i] as string);
        if (!quoted && startsBlock(lines[i] as string)) break;
        body.push(quoted ? (quoted[1] as string) : (lines[i] as string));
        i++;
      }
      blocks.push({ t: "quote", c: parseBlocks(body, depth + 1) });
      continue;
    }
    const bullet = BULLET.exec(line);
    const ordered = ORDERED.exec(line);
    if ((bullet || ordered) && depth < MAX_DEPTH) {
      const list = parseList(lines, i, depth);
      blocks.push(list.block);
      i = list.next;
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1] as string) && (lines[i + 1] as string).includes("-")) {
      const head = cells(line);
      i += 2;
      const rows: Inline[][][] = [];
      while (i < lines.length && !blank(lines[i] as string) && (lines[i] as string).includes("|")) {
        rows.push(cells(lines[i] as string).slice(0, head.length));
        i++;
      }
      blocks.push({ t: "table", head, rows });
      continue;
    }
    const paragraph: string[] = [];
    while (i < lines.length && !blank(lines[i] as string) && (paragraph.length === 0 || !startsBlock(lines[i] as string))) {
      paragraph.push(lines[i] as string);
      i++;
    }
    blocks.push({ t: "p", c: parseInline(paragraph.map((l) => l.trimStart()).join("\n")) });
  }
  return blocks;
}

function cells(line: string): Inline[][] {
  const trimmed = line.trim().replace(/^\|/, "").replace(/(?<!\\)\|$/, "");
  return trimmed.split(/(?<!\\)\|/).map((cell) => parseInline(cell.trim().replace(/\\\|/g, "|")));
}

function parseList(lines: string[], from: number, depth: number): { block: Block; next: number } {
  const first = lines[from] as string;
  const ordered = !BULLET.exec(first);
  const firstMatch = ORDERED.exec(first);
  const start = ordered && firstMatch ? Number(firstMatch[2]) : 1;
  const items: Block[][] = [];
  let i = from;
  while (i < lines.length) {
    const line = lines[i] as string;
    const match = ordered ? ORDERED.exec(line) : BULLET.exec(line);
    if (!match) break;
    const text = (ordered ? match[5] : match[4]) ?? "";
    // Continuation lines are indented at least as far as the item's text starts.
    const width = line.length - text.length;
    const body = [text];
    i++;
    while (i < lines.length) {
      const next = lines[i] as string;
      if (blank(next)) {
        // A blank line ends the item unless indented content follows it.
        const after = lines[i + 1];
        if (after !== undefined && !blank(after) && after.length - after.trimStart().length >= Math.min(width, 4)) {
          body.push("");
          i++;
          continue;
        }
        break;
      }
      const indent = next.length - next.trimStart().length;
      if (indent >= Math.min(width, 4)) body.push(next.slice(Math.min(indent, width)));
      else if (!startsBlock(next) && body.length > 0 && !blank(body[body.length - 1] as string)) body.push(next.trimStart()); // lazy continuation
      else break;
      i++;
    }
    items.push(parseBlocks(body, depth + 1));
    // One blank line between items keeps the list going.
    if (i < lines.length && blank(lines[i] as string)) {
      const after = lines[i + 1];
      if (after !== undefined && (ordered ? ORDERED : BULLET).test(after)) i++;
    }
  }
  return { block: { t: "list", ordered, start, items }, next: i };
}

const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/;

/** Parses the inline Markdown of one block. */
export function parseInline(text: string, depth = 0): Inline[] {
  const out: Inline[] = [];
  let buffer = "";
  const flush = (): void => {
    if (buffer) {
      const last = out[out.length - 1];
      if (last && last.t === "text") last.v += buffer;
      else out.push({ t: "text", v: buffer });
      buffer = "";
    }
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === "\\" && i + 1 < text.length) {
      const next = text[i + 1] as string;
      if (next === "\n") {
        flush();
        out.push({ t: "br" });
        i += 2;
        continue;
      }
      if (PUNCTUATION.test(next)) {
        buffer += next;
        i += 2;
        continue;
      }
    }
    if (c === "\n") {
      if (buffer.endsWith("  ")) {
        buffer = buffer.replace(/ +$/, "");
        flush();
        out.push({ t: "br" });
      } else {
        buffer = buffer.replace(/ +$/, "") + " ";
      }
      i++;
      continue;
    }
    if (c === "`") {
      const run = /^`+/.exec(text.slice(i))?.[0] ?? "`";
      const end = text.indexOf(run, i + run.length);
      if (end > 0) {
        flush();
        let code = text.slice(i + run.length, end).replace(/\n/g, " ");
        if (code.startsWith(" ") && code.endsWith(" ") && code.trim()) code = code.slice(1, -1);
        out.push({ t: "code", v: code });
        i = end + run.length;
        continue;
      }
      buffer += run;
      i += run.length;
      continue;
    }
    if (c === "<") {
      const auto = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(text.slice(i));
      const href = auto ? safeHref(auto[1] as string) : undefined;
      if (auto && href) {
        flush();
        out.push({ t: "link", href, c: [{ t: "text", v: auto[1] as string }] });
        i += auto[0].length;
        continue;
      }
    }
    if (c === "[" && depth < MAX_DEPTH) {
      const link = matchLink(text, i);
      if (link) {
        const href = safeHref(link.href);
        if (href) {
          flush();
          out.push({ t: "link", href, c: parseInline(link.label, depth + 1) });
          i = link.end;
          continue;
        }
      }
    }
    if ((c === "*" || c === "_" || c === "~") && depth < MAX_DEPTH) {
      const emphasis = matchEmphasis(text, i);
      if (emphasis) {
        flush();
        out.push({ t: emphasis.kind, c: parseInline(emphasis.inner, depth + 1) });
        i = emphasis.end;
        continue;
      }
    }
    buffer += c;
    i++;
  }
  flush();
  return out;
}

function matchLink(text: string, at: number): { label: string; href: string; end: number } | undefined {
  let level = 0;
  let close = -1;
  for (let j = at; j < text.length; j++) {
    const ch = text[j];
    if (ch === "\\") {
      j++;
      continue;
    }
    if (ch === "[") level++;
    else if (ch === "]" && --level === 0) {
      close = j;
      break;
    }
  }
  if (close < 0 || text[close + 1] !== "(") return undefined;
  const target = /^\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/.exec(text.slice(close + 1));
  if (!target) return undefined;
  const href = (target[1] as string).replace(/^<|>$/g, "");
  return { label: text.slice(at + 1, close), href, end: close + 1 + target[0].length };
}

function matchEmphasis(text: string, at: number): { kind: "strong" | "em" | "del"; inner: string; end: number } | undefined {
  const c = text[at] as string;
  const double = text[at + 1] === c;
  if (c === "~" && !double) return undefined;
  const marker = double ? c + c : c;
  const after = text[at + marker.length];
  if (after === undefined || /\s/.test(after)) return undefined; // "* item" or "a * b" is not emphasis
  const before = at > 0 ? (text[at - 1] as string) : " ";
  if (c === "_" && /[\p{L}\p{N}]/u.test(before)) return undefined; // snake_case_names stay as they are
  for (let j = at + marker.length + 1; j <= text.length - marker.length; j++) {
    if (text[j - 1] === "\\") continue;
    if (text.startsWith(marker, j) && !/\s/.test(text[j - 1] as string) && (double || text[j + 1] !== c)) {
      if (c === "_" && /[\p{L}\p{N}]/u.test(text[j + marker.length] ?? " ")) continue;
      if (!double && text[j - 1] === c) continue;
      return { kind: c === "~" ? "del" : double ? "strong" : "em", inner: text.slice(at + marker.length, j), end: j + marker.length };
    }
  }
  return undefined;
}
