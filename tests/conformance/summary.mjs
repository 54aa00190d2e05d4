// Counts a cache-tests result file the way cache-tests.fyi shows it
// (lib/display.mjs determineTestResult: dependencies honoured), by test group.
// Usage: node summary.mjs PACKAGE_DIR RESULTS.json [--failures] [--known FILE]
// --known: exit 1 when a required test fails (fail or setup) that FILE does
// not list (its first word per line; # comments).
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [pkg, file] = process.argv.slice(2)
const load = p => import(pathToFileURL(path.join(pkg, p)).href)
const tests = (await load('tests/index.mjs')).default
tests.push((await load('tests/surrogate-control.mjs')).default)
const display = await load('lib/display.mjs')
const results = JSON.parse(fs.readFileSync(file, 'utf8'))

const kinds = { '✅': 'pass', '⛔️': 'fail', '⚠️': 'optional-fail', Y: 'yes', N: 'no', '🔹': 'setup', '⁉️': 'harness', '⚪️': 'dep-fail', '↻': 'retry', '-': 'untested' }
const cols = ['pass', 'fail', 'optional-fail', 'setup', 'dep-fail', 'harness', 'retry', 'yes', 'no', 'untested']
const total = Object.fromEntries(cols.map(c => [c, 0]))
const lines = []
const failures = []
const pad = (s, n) => String(s).padEnd(n)
lines.push(pad('group', 28) + cols.map(c => pad(c, 9)).join(''))
for (const suite of tests) {
  const row = Object.fromEntries(cols.map(c => [c, 0]))
  for (const test of suite.tests) {
    if (test.browser_only === true) continue
    const kind = kinds[display.determineTestResult(tests, test.id, results)[2]] || 'harness'
    row[kind]++
    total[kind]++
    if (['fail', 'setup', 'harness', 'retry', 'optional-fail', 'dep-fail'].includes(kind)) {
      const r = results[test.id]
      failures.push(`${pad(kind, 14)} ${pad(suite.id, 20)} ${test.id}: ${Array.isArray(r) ? r.slice(0, 2).join(': ') : r}`)
    }
  }
  lines.push(pad(suite.id, 28) + cols.map(c => pad(row[c], 9)).join(''))
}
lines.push(pad('TOTAL', 28) + cols.map(c => pad(total[c], 9)).join(''))
console.log(lines.join('\n'))
if (process.argv.includes('--failures')) console.log('\n' + failures.join('\n'))
const k = process.argv.indexOf('--known')
if (k > 0) {
  const known = new Set(fs.readFileSync(process.argv[k + 1], 'utf8').split('\n')
    .map(l => l.replace(/#.*/, '').trim().split(/\s+/)[0]).filter(Boolean))
  const unexpected = failures.map(l => l.split(/\s+/)).filter(w => ['fail', 'setup'].includes(w[0]))
    .map(w => w[2].replace(/:$/, '')).filter(id => !known.has(id))
  if (unexpected.length) {
    console.log(`\nrequired tests failing that known-failures.txt does not list: ${unexpected.join(' ')}`)
    process.exit(1)
  }
  console.log('\nno required test fails beyond known-failures.txt')
}
