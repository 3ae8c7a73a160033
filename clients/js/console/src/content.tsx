// An item's content as reviewers read it: Markdown rendered from the tree of markdown.ts into Preact
// elements, JSON pretty-printed, anything else as text. Every string of the content ends up as a text
// node (Preact escapes children); nothing is ever parsed as HTML, and the page's CSP (no inline
// script, trusted types required for every HTML sink) would stop it if it were.
import type { ComponentChildren } from "preact";
import { ContentFormat, type ItemContent } from "../../src/gen/feedback/v1/annotation_pb.js";
import { parseMarkdown, type Block, type Inline } from "./markdown.js";

function inlines(nodes: readonly Inline[]): ComponentChildren {
  return nodes.map((node, i) => {
    switch (node.t) {
      case "text":
        return node.v;
      case "code":
        return <code key={i}>{node.v}</code>;
      case "br":
        return <br key={i} />;
      case "strong":
        return <strong key={i}>{inlines(node.c)}</strong>;
      case "em":
        return <em key={i}>{inlines(node.c)}</em>;
      case "del":
        return <del key={i}>{inlines(node.c)}</del>;
      case "link":
        return (
          <a key={i} href={node.href} target="_blank" rel="noopener noreferrer nofollow">
            {inlines(node.c)}
          </a>
        );
    }
  });
}

function blocks(nodes: readonly Block[]): ComponentChildren {
  return nodes.map((node, i) => {
    switch (node.t) {
      case "p":
        return <p key={i}>{inlines(node.c)}</p>;
      case "h": {
        // Content headings sit below the page's own (h1-h3): h4 to h6.
        const Tag = (["h4", "h4", "h5", "h6", "h6", "h6"] as const)[node.level - 1] ?? "h6";
        return <Tag key={i}>{inlines(node.c)}</Tag>;
      }
      case "pre":
        return (
          <pre key={i}>
            <code>{node.v}</code>
          </pre>
        );
      case "quote":
        return <blockquote key={i}>{blocks(node.c)}</blockquote>;
      case "hr":
        return <hr key={i} />;
      case "list": {
        const items = node.items.map((item, j) => <li key={j}>{blocks(item)}</li>);
        return node.ordered ? (
          <ol key={i} start={node.start}>
            {items}
          </ol>
        ) : (
          <ul key={i}>{items}</ul>
        );
      }
      case "table":
        return (
          <div key={i} class="table-scroll">
            <table>
              <thead>
                <tr>
                  {node.head.map((cell, j) => (
                    <th key={j}>{inlines(cell)}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {node.rows.map((row, j) => (
                  <tr key={j}>
                    {row.map((cell, k) => (
                      <td key={k}>{inlines(cell)}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        );
    }
  });
}

/** JSON pretty-printed with two-space indents; text that is not JSON as it is. */
export function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** One text of an item in its format. */
export function Formatted({ text, format }: { text: string; format: ContentFormat }) {
  if (format === ContentFormat.MARKDOWN) return <div class="markdown">{blocks(parseMarkdown(text))}</div>;
  if (format === ContentFormat.JSON) return <pre class="json">{prettyJson(text)}</pre>;
  return <div class="plain">{text}</div>;
}

/** Input, output and named context of an item. */
export function Content({ content }: { content: ItemContent }) {
  const context = Object.entries(content.context).sort(([a], [b]) => a.localeCompare(b));
  return (
    <div class="content">
      {content.input ? (
        <section class="content-part" aria-label="Input">
          <h3>Input</h3>
          <Formatted text={content.input} format={content.format} />
        </section>
      ) : null}
      {content.output ? (
        <section class="content-part output" aria-label="Output">
          <h3>Output</h3>
          <Formatted text={content.output} format={content.format} />
        </section>
      ) : null}
      {context.map(([name, value]) => (
        <details class="content-part context" key={name}>
          <summary>{name}</summary>
          <Formatted text={value} format={content.format} />
        </details>
      ))}
    </div>
  );
}
