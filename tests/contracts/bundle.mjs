#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// Writes the public API description: one OpenAPI 3.1 document of the
// gateway's /api/v1 surface, bundled from platform/gateway/routes.json and
// every services/*/openapi.yaml and platform/*/openapi.yaml (see bundle()
// in tests/lib/openapi.mjs). The build runs it (CMake target `openapi`,
// output <build>/openapi.json); the gateway serves the result at
// /api/v1/openapi.json and web/api.html renders it.
//
//   node tests/contracts/bundle.mjs [--source DIR] [--out FILE]
//
// Without --out the document goes to stdout. The file is replaced
// atomically, so a reader never sees half of it.
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, bundle } from '../lib/openapi.mjs';

function main(argv) {
    let source = ROOT;
    let out = null;
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--source' && i + 1 < argv.length) source = path.resolve(argv[++i]);
        else if (argv[i] === '--out' && i + 1 < argv.length) out = path.resolve(argv[++i]);
        else {
            process.stderr.write('usage: bundle.mjs [--source DIR] [--out FILE]\n');
            return 2;
        }
    }
    let doc;
    try {
        doc = bundle(source);
    } catch (err) {
        process.stderr.write(`bundle.mjs: ${err.message}\n`);
        return 1;
    }
    const text = `${JSON.stringify(doc, null, 2)}\n`;
    if (out === null) {
        process.stdout.write(text);
        return 0;
    }
    const tmp = `${out}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, out);
    return 0;
}

process.exitCode = main(process.argv.slice(2));
