/**
 * Every relative link in the user documentation points at a file of the repository, and every
 * `#anchor` at a heading of the page it names (issue 11: the README became a front door that
 * links into docs/, and links rot silently when a page or heading is renamed).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** README.md, docs/*.md and bench/README.md. */
function documentationFiles(): string[] {
  const docs = readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(root, 'docs', f));
  return [join(root, 'README.md'), ...docs, join(root, 'bench', 'README.md')];
}

/** Markdown without fenced code blocks and inline code, where `[x](y)` is not a link. */
function withoutCode(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as hyphens. */
export function headingAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a Markdown file's headings. */
function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, 'utf8').replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '');
  return new Set([...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => headingAnchor(m[1]!)));
}

/** Every relative link target (`[text](target)`) of a file, without http(s) and mailto links. */
function relativeLinks(file: string): string[] {
  const text = withoutCode(readFileSync(file, 'utf8'));
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

describe('documentation links', () => {
  it('knows GitHub heading anchors', () => {
    expect(headingAnchor('Shutdown (SIGTERM or SIGINT)')).toBe('shutdown-sigterm-or-sigint');
    expect(headingAnchor('Design note: the forwarding core')).toBe(
      'design-note-the-forwarding-core',
    );
    expect(headingAnchor('Draining, shutdown and timeouts')).toBe('draining-shutdown-and-timeouts');
  });

  it('issue 11: every relative link in README.md, docs/ and bench/README.md resolves', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const file of documentationFiles()) {
      for (const target of relativeLinks(file)) {
        checked += 1;
        const [path = '', anchor] = target.split('#', 2);
        const where = `${relative(root, file)}: ${target}`;
        const linked = path === '' ? file : resolve(dirname(file), decodeURI(path));
        if (!existsSync(linked)) {
          broken.push(`${where} (no such file)`);
          continue;
        }
        if (anchor !== undefined && anchor !== '') {
          if (statSync(linked).isDirectory() || !linked.endsWith('.md')) {
            broken.push(`${where} (an anchor into a file that is not Markdown)`);
          } else if (!anchorsOf(linked).has(anchor)) {
            broken.push(`${where} (no heading with that anchor)`);
          }
        }
      }
    }
    expect(broken).toEqual([]);
    expect(checked).toBeGreaterThan(20);
  });
});
