// Builds the widget into the files the API serves (api/assets/widget/): one minified script
// for browsers since 2020 (es2019) and its stylesheet. The same sources and the locked
// esbuild give the same bytes, so `--check` (CI) fails when the served files are not what the
// sources build to.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'api', 'assets', 'widget');
const check = process.argv.includes('--check');

const script = await build({
  entryPoints: [join(here, 'src', 'index.js')],
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2019',
  legalComments: 'none',
  write: false,
});
const css = await build({
  entryPoints: [join(here, 'src', 'widget.css')],
  bundle: true,
  minify: true,
  write: false,
});
const files = {
  'widget.js': script.outputFiles[0].contents,
  'widget.css': css.outputFiles[0].contents,
};

// The size budget the README states: a script that grows past it fails the build.
const BUDGET = { 'widget.js': 8192, 'widget.css': 2048 };

let stale = false;
mkdirSync(out, { recursive: true });
for (const [name, bytes] of Object.entries(files)) {
  const path = join(out, name);
  if (check) {
    let current = null;
    try {
      current = readFileSync(path);
    } catch {}
    if (!current || Buffer.compare(current, Buffer.from(bytes)) !== 0) {
      console.error(`${path} is not what widget/src builds to: run (cd widget && npm ci && npm run build)`);
      stale = true;
    }
  } else {
    writeFileSync(path, bytes);
  }
  console.log(`${name}: ${bytes.length} bytes (budget ${BUDGET[name]})`);
  if (bytes.length > BUDGET[name]) {
    console.error(`${name} is over its size budget of ${BUDGET[name]} bytes`);
    stale = true;
  }
}
process.exit(stale ? 1 : 0);
