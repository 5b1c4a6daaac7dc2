// SPDX-License-Identifier: MIT
// The shop's programs and their default ports, read from the one table in
// chassis/include/agora/ports.h (AG_PROGRAMS), so no test keeps a copy.
//
//   PORTS     { registry: 8500, bus: 8400, users: 8082, ... } every program,
//             the reserved ports of services not written yet included
//   GATEWAY_OPS_PORT  the gateway's operator listener (8090)
//   PROGRAMS  [{ name, port, binary }] the programs `agora up` starts, in
//             start-up order (binary relative to the build directory)

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HEADER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../chassis/include/agora/ports.h');
const ROW = /^\s*X\((\w+), "([a-z][a-z0-9-]*)", (\d+), (NULL|"([^"]+)")\)/;

function load() {
    const rows = [];
    for (const line of fs.readFileSync(HEADER, 'utf8').split('\n')) {
        const m = ROW.exec(line);
        if (m) rows.push({ name: m[2], port: Number(m[3]), binary: m[5] ?? null });
    }
    if (rows.length === 0) throw new Error(`no program rows in ${HEADER}`);
    return rows;
}

const ROWS = load();

export const PORTS = Object.freeze(Object.fromEntries(ROWS.map((r) => [r.name, r.port])));

// The gateway's operator listener (AG_PORT_GATEWAY_OPS): not a program.
const OPS = /^#define AG_PORT_GATEWAY_OPS (\d+)$/m.exec(fs.readFileSync(HEADER, 'utf8'));
if (OPS === null) throw new Error(`no AG_PORT_GATEWAY_OPS in ${HEADER}`);
export const GATEWAY_OPS_PORT = Number(OPS[1]);
export const PROGRAMS = Object.freeze(ROWS.filter((r) => r.binary !== null).map((r) => Object.freeze(r)));
