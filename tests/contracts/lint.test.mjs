// SPDX-License-Identifier: MIT
// Lint test: every services/*/openapi.yaml and platform/*/openapi.yaml, and
// the public bundle made from them, pass `redocly lint` (Redocly CLI pinned
// in tests/package.json, the recommended ruleset as redocly.yaml extends
// it) with no error and no warning. No services needed; a few seconds.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, bundle, loadSpecs } from '../lib/openapi.mjs';
import { makeTempDir, removeTempDir } from '../lib/proc.mjs';

const run = promisify(execFile);
const REDOCLY = path.join(ROOT, 'tests/node_modules/@redocly/cli/bin/cli.js');

// Lint 'file'; resolves with { totals, problems } of the JSON report.
async function lint(file) {
    let stdout;
    try {
        ({ stdout } = await run(process.execPath, [REDOCLY, 'lint', '--format=json', '--config', path.join(ROOT, 'redocly.yaml'), file], {
            cwd: ROOT,
            maxBuffer: 64 << 20,
        }));
    } catch (err) {
        // Exit status 1 with problems found: the report is still on stdout.
        if (err.stdout === undefined || err.stdout === '') throw err;
        stdout = err.stdout;
    }
    return JSON.parse(stdout);
}

function describeProblems(report) {
    return report.problems.map((p) => {
        const loc = p.location?.[0];
        const where = loc ? `${loc.pointer ?? ''}` : '';
        return `  ${p.severity} ${p.ruleId} ${where}: ${p.message}`;
    }).join('\n');
}

describe('redocly lint (recommended rules)', { concurrency: 2 }, () => {
    const tmp = makeTempDir('agora-lint-');
    after(() => removeTempDir(tmp));

    it('Redocly CLI is installed (scripts/bootstrap)', () => {
        assert.ok(fs.existsSync(REDOCLY), `${REDOCLY} missing: run scripts/bootstrap`);
    });

    it('redocly.yaml extends the recommended ruleset and says why for each rule it changes', () => {
        const text = fs.readFileSync(path.join(ROOT, 'redocly.yaml'), 'utf8');
        assert.match(text, /^extends:\s*\n\s*-\s*recommended\s*$/m);
        // A rule turned off or down must carry a comment on its line or the one above.
        const lines = text.split('\n');
        lines.forEach((l, i) => {
            if (/^\s+[a-z0-9/-]+:\s*(off|warn|error)\b/.test(l)) {
                const why = l.includes('#') || /^\s*#/.test(lines[i - 1] ?? '');
                assert.ok(why, `redocly.yaml line ${i + 1} changes a rule without saying why: ${l.trim()}`);
            }
        });
    });

    for (const spec of loadSpecs()) {
        it(`${spec.dir}/openapi.yaml has no error and no warning`, async () => {
            const report = await lint(spec.file);
            assert.deepEqual(report.totals, { errors: 0, warnings: 0, ignored: 0 }, describeProblems(report));
        });
    }

    it('the public bundle has no error and no warning', async () => {
        const file = path.join(tmp, 'openapi.json');
        fs.writeFileSync(file, JSON.stringify(bundle(), null, 2));
        const report = await lint(file);
        assert.deepEqual(report.totals, { errors: 0, warnings: 0, ignored: 0 }, describeProblems(report));
    });
});
