// Checks that web/static/lib, the library's build that the browser client
// imports (committed, since the Go binary embeds web/static with no build
// step), is exactly what compiling src/ gives now: byte for byte, and no
// file more or less. Fails with the files that drifted; `npm run build`
// brings them back in step.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const committed = path.resolve(root, '..', '..', 'web', 'static', 'lib');
const fresh = mkdtempSync(path.join(tmpdir(), 'chatclient-web-'));
try {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.web.json'), '--outDir', fresh], { stdio: 'inherit' });
  const list = (dir) => readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => path.relative(dir, path.join(d.parentPath ?? d.path, d.name))).sort();
  const want = list(fresh);
  const have = list(committed);
  const problems = [];
  for (const f of want) {
    if (!have.includes(f)) problems.push(`missing: web/static/lib/${f}`);
    else if (!readFileSync(path.join(fresh, f)).equals(readFileSync(path.join(committed, f)))) problems.push(`differs from the source: web/static/lib/${f}`);
  }
  for (const f of have) if (!want.includes(f)) problems.push(`not built from the source: web/static/lib/${f}`);
  if (problems.length) {
    console.error(problems.join('\n'));
    console.error('web/static/lib is out of step with clients/ts/src: run `npm run build` in clients/ts and commit the result.');
    process.exit(1);
  }
  console.log(`web/static/lib: ${want.length} files, identical to a fresh build`);
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
