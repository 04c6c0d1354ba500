/**
 * A small PDF 1.4 writer for transcripts: A4 pages of Helvetica text with automatic wrapping and
 * page breaks, and clickable http(s) links. The standard fonts cover Latin-1 only (WinAnsi), so
 * other characters print as "?"; the transcript's JSON twin keeps the exact text.
 */
export interface PdfLine {
  text: string;
  bold?: boolean;
  size?: number;
  link?: string;
  gapBefore?: number;
}

const PAGE_W = 595;
const PAGE_H = 842;
const MARGIN = 50;

const latin1 = (s: string) => [...s].map((ch) => (ch.charCodeAt(0) <= 0xff && ch.length === 1 ? ch : "?")).join("");
const escape = (s: string) => latin1(s).replace(/[\\()]/g, (c) => `\\${c}`).replace(/[\r\n\t]/g, " ");

/** Helvetica averages about half an em per character: wrap by an estimate, generously. */
function wrap(text: string, size: number): string[] {
  const max = Math.max(10, Math.floor((PAGE_W - 2 * MARGIN) / (size * 0.52)));
  const out: string[] = [];
  for (const para of text.split("\n")) {
    let line = "";
    for (const word of para.split(/\s+/)) {
      if (word.length > max) {
        if (line) out.push(line);
        for (let i = 0; i < word.length; i += max) out.push(word.slice(i, i + max));
        line = "";
        continue;
      }
      const next = line ? `${line} ${word}` : word;
      if (next.length > max) {
        out.push(line);
        line = word;
      } else line = next;
    }
    out.push(line);
  }
  return out;
}

export function renderPdf(lines: PdfLine[]): Uint8Array {
  type Page = { content: string[]; links: { x: number; y: number; w: number; h: number; uri: string }[] };
  const pages: Page[] = [{ content: [], links: [] }];
  let y = PAGE_H - MARGIN;
  for (const l of lines) {
    const size = l.size ?? 10;
    y -= l.gapBefore ?? 0;
    for (const part of wrap(l.text, size)) {
      if (y - size < MARGIN) {
        pages.push({ content: [], links: [] });
        y = PAGE_H - MARGIN;
      }
      y -= size * 1.35;
      const page = pages.at(-1)!;
      page.content.push(`BT /${l.bold ? "F2" : "F1"} ${size} Tf ${MARGIN} ${y.toFixed(1)} Td (${escape(part)}) Tj ET`);
      if (l.link && /^https?:\/\//i.test(l.link)) page.links.push({ x: MARGIN, y: y - 2, w: Math.min(PAGE_W - 2 * MARGIN, part.length * size * 0.52), h: size + 2, uri: l.link });
    }
  }

  const objects: string[] = [];
  const add = (body: string) => objects.push(body) && objects.length; // returns the object number
  const catalog = add(""); // filled below
  const pagesObj = add("");
  const f1 = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
  const f2 = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>");
  const kids: number[] = [];
  for (const p of pages) {
    const stream = p.content.join("\n");
    const contents = add(`<< /Length ${latin1(stream).length} >>\nstream\n${stream}\nendstream`);
    const annots = p.links.map((a) =>
      add(`<< /Type /Annot /Subtype /Link /Rect [${a.x} ${a.y.toFixed(1)} ${(a.x + a.w).toFixed(1)} ${(a.y + a.h).toFixed(1)}] /Border [0 0 0] /A << /S /URI /URI (${escape(a.uri)}) >> >>`),
    );
    kids.push(
      add(
        `<< /Type /Page /Parent ${pagesObj} 0 R /MediaBox [0 0 ${PAGE_W} ${PAGE_H}] /Resources << /Font << /F1 ${f1} 0 R /F2 ${f2} 0 R >> >> /Contents ${contents} 0 R${
          annots.length ? ` /Annots [${annots.map((n) => `${n} 0 R`).join(" ")}]` : ""
        } >>`,
      ),
    );
  }
  objects[catalog - 1] = `<< /Type /Catalog /Pages ${pagesObj} 0 R >>`;
  objects[pagesObj - 1] = `<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(" ")}] /Count ${kids.length} >>`;

  let out = "%PDF-1.4\n";
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, "0")} 00000 n \n`).join("")}`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root ${catalog} 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Uint8Array.from(out, (c) => c.charCodeAt(0));
}
