// After `vite build`: record in the build which source it came from, and the build's own id.
// source_hash: SHA-256 over the source files (SOURCES below, sorted, each as "path\0bytes\0"),
// recomputed by tests/dashboard/test_build.py without Node, so a source edit without a rebuild
// fails the tests.  build_id: SHA-256 over the emitted files; /scale/api/build-id answers it.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const here = new URL('.', import.meta.url).pathname;
const SOURCES = ['index.html', 'package.json', 'package-lock.json', 'vite.config.js', 'stamp.mjs', 'src'];
const out = join(here, '../control/dashboard_assets/site');

function walk(path) {
  if (statSync(path).isDirectory()) {
    return readdirSync(path).flatMap((name) => walk(join(path, name)));
  }
  return [path];
}

function digest(root, paths) {
  const files = paths.flatMap((p) => walk(join(root, p)))
    .map((p) => relative(root, p).split('\\').join('/'))
    .filter((p) => p !== 'build.json')
    .sort();
  const h = createHash('sha256');
  for (const f of files) {
    h.update(f); h.update('\0'); h.update(readFileSync(join(root, f))); h.update('\0');
  }
  return { hash: h.digest('hex'), files };
}

const source = digest(here, SOURCES);
const built = digest(out, ['.']);
writeFileSync(join(out, 'build.json'), JSON.stringify({
  source_hash: source.hash,
  build_id: built.hash,
  sources: source.files,
  files: built.files,
}, null, 1) + '\n');
console.log(`dashboard build ${built.hash.slice(0, 12)} from source ${source.hash.slice(0, 12)}`);
