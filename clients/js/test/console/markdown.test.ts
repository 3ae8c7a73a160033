import { describe, expect, it } from "vitest";
import { parseInline, parseMarkdown, safeHref, type Block, type Inline } from "../../console/src/markdown.js";

/** All the text of a tree, in order, as a reviewer would read it. */
function textOf(nodes: readonly (Block | Inline)[]): string {
  return nodes
    .map((node) => {
      switch (node.t) {
        case "text":
        case "code":
        case "pre":
          return node.v;
        case "br":
        case "hr":
          return "\n";
        case "list":
          return node.items.map((item) => textOf(item)).join("\n");
        case "table":
          return [node.head, ...node.rows].map((row) => row.map((cell) => textOf(cell)).join("|")).join("\n");
        default:
          return textOf(node.c);
      }
    })
    .join("");
}

function links(nodes: readonly (Block | Inline)[]): string[] {
  return nodes.flatMap((node) => {
    if (node.t === "link") return [node.href, ...links(node.c)];
    if (node.t === "list") return node.items.flatMap((item) => links(item));
    if (node.t === "table") return [...node.head, ...node.rows.flat()].flatMap((cell) => links(cell));
    return "c" in node ? links(node.c) : [];
  });
}

describe("parseMarkdown", () => {
  it("parses headings, paragraphs, lists, code and quotes", () => {
    const blocks = parseMarkdown(
      "# Refunds\n\nThe window is **30 days**, not _14_.\n\n- sale items\n- gift cards\n  - never\n\n1. ask\n2. wait\n\n```python\nprint('<b>')\n```\n\n> quoted *text*\n\n---",
    );
    expect(blocks.map((b) => b.t)).toEqual(["h", "p", "list", "list", "pre", "quote", "hr"]);
    expect(blocks[1]).toEqual({
      t: "p",
      c: [
        { t: "text", v: "The window is " },
        { t: "strong", c: [{ t: "text", v: "30 days" }] },
        { t: "text", v: ", not " },
        { t: "em", c: [{ t: "text", v: "14" }] },
        { t: "text", v: "." },
      ],
    });
    const bullets = blocks[2] as Extract<Block, { t: "list" }>;
    expect(bullets.ordered).toBe(false);
    expect(bullets.items).toHaveLength(2);
    expect(bullets.items[1]?.map((b) => b.t)).toEqual(["p", "list"]);
    expect(blocks[3]).toMatchObject({ t: "list", ordered: true, start: 1 });
    expect(blocks[4]).toEqual({ t: "pre", lang: "python", v: "print('<b>')" });
  });

  it("keeps raw HTML as the text it is", () => {
    const source = '<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">';
    const blocks = parseMarkdown(source);
    expect(textOf(blocks)).toBe('<script>alert(1)</script><img src=x onerror="alert(2)">');
    expect(links(blocks)).toEqual([]);
  });

  it("links only http, https and mailto targets", () => {
    const blocks = parseMarkdown(
      "[ok](https://example.com/a_(b)) [mail](mailto:a@b.c) [bad](javascript:alert(1)) [bad2](JaVaScRiPt:alert(1)) " +
        "[data](data:text/html,<b>) [rel](/admin) <https://auto.example> [spaced](java\tscript:alert(1))",
    );
    expect(links(blocks)).toEqual(["https://example.com/a_(b)", "mailto:a@b.c", "https://auto.example"]);
    expect(textOf(blocks)).toContain("[bad](javascript:alert(1))");
  });

  it("parses pipe tables", () => {
    const [table] = parseMarkdown("| a | b |\n|---|:-:|\n| 1 | **x** |\n| 2 | 3 \\| 4 |");
    expect(table?.t).toBe("table");
    expect(textOf([table as Block])).toBe("a|b\n1|x\n2|3 | 4");
  });

  it("survives deep nesting and odd input", () => {
    expect(() => parseMarkdown(">".repeat(10_000) + " deep")).not.toThrow();
    expect(() => parseMarkdown("*".repeat(5_000))).not.toThrow();
    expect(() => parseMarkdown("[".repeat(5_000) + "x")).not.toThrow();
    expect(textOf(parseMarkdown("a_b_c and 2 * 3 * 4"))).toBe("a_b_c and 2 * 3 * 4");
  });
});

describe("parseInline", () => {
  it("reads code spans, strikethrough, escapes and hard breaks", () => {
    expect(parseInline("`a <b>` ~~old~~ \\*lit\\* x  \ny")).toEqual([
      { t: "code", v: "a <b>" },
      { t: "text", v: " " },
      { t: "del", c: [{ t: "text", v: "old" }] },
      { t: "text", v: " *lit* x" },
      { t: "br" },
      { t: "text", v: "y" },
    ]);
  });
});

describe("safeHref", () => {
  it("refuses every scheme but http, https and mailto", () => {
    expect(safeHref(" https://x.example/p ")).toBe("https://x.example/p");
    for (const bad of ["javascript:alert(1)", "vbscript:x", "data:text/html,x", "//evil.example", "/x", "http:/x", "java\nscript:x"]) {
      expect(safeHref(bad), bad).toBeUndefined();
    }
  });
});
