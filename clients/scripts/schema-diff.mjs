#!/usr/bin/env node
// Breaking-change report: the working tree's schema.graphql against the schema of a base
// git ref, classified by @graphql-inspector/core as breaking, dangerous or safe.
//
// Base ref: $SCHEMA_BASE_REF if set; else the latest release tag (`v*`) reachable from
// HEAD; else HEAD itself (no release yet: the report then shows only uncommitted edits of
// schema.graphql, and is empty in a clean tree).
//
// Exit status: 0 whatever the changes (it reports); 1 when SCHEMA_BREAKING=fail and some
// change is breaking; 2 when the base schema cannot be read.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSchema } from 'graphql';
import { CriticalityLevel, diff } from '@graphql-inspector/core';

const SCHEMA_PATH = 'schema.graphql'; // relative to the repository's root

function git(args, cwd) {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function tryGit(args, cwd) {
  try {
    return git(args, cwd);
  } catch {
    return null;
  }
}

const root = git(['rev-parse', '--show-toplevel'], process.cwd());

let base = process.env.SCHEMA_BASE_REF?.trim();
let why = 'SCHEMA_BASE_REF';
if (!base) {
  base = tryGit(['describe', '--tags', '--abbrev=0', '--match', 'v*', 'HEAD'], root);
  why = 'latest v* tag';
  if (!base) {
    base = 'HEAD';
    why = 'no v* tag yet, so HEAD';
  }
}

const commit = tryGit(['rev-parse', '--short', `${base}^{commit}`], root);
let oldSdl;
try {
  oldSdl = git(['show', `${base}:${SCHEMA_PATH}`], root);
} catch (e) {
  console.error(`schema-diff: cannot read ${SCHEMA_PATH} at ${base} (${why}): ${String(e.stderr ?? e.message).trim()}`);
  process.exit(2);
}
const newSdl = readFileSync(join(root, SCHEMA_PATH), 'utf8');

const changes = await diff(buildSchema(oldSdl), buildSchema(newSdl));

const groups = [
  { level: CriticalityLevel.Breaking, title: 'Breaking', mark: '✖' },
  { level: CriticalityLevel.Dangerous, title: 'Dangerous', mark: '⚠' },
  { level: CriticalityLevel.NonBreaking, title: 'Safe', mark: '✔' },
];

console.log(`Schema diff: ${SCHEMA_PATH} at ${base}${commit ? ` (${commit})` : ''} [${why}] -> working tree`);
const indent = (text) => text.replace(/\n/g, '\n      ');
const counts = {};
for (const { level, title, mark } of groups) {
  const these = changes.filter((c) => c.criticality.level === level);
  counts[level] = these.length;
  console.log(`\n${title} changes: ${these.length}`);
  for (const c of these) {
    console.log(`  ${mark} ${indent(c.message)}${c.path ? `  [${c.path}]` : ''}`);
    if (c.criticality.reason) console.log(`      ${indent(c.criticality.reason)}`);
  }
}
const breaking = counts[CriticalityLevel.Breaking];
console.log(
  `\nSummary: ${breaking} breaking, ${counts[CriticalityLevel.Dangerous]} dangerous, ` +
    `${counts[CriticalityLevel.NonBreaking]} safe`,
);

if (breaking > 0 && process.env.SCHEMA_BREAKING === 'fail') {
  console.log('SCHEMA_BREAKING=fail: failing on breaking changes.');
  process.exit(1);
}
