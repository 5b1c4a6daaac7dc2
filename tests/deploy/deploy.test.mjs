// SPDX-License-Identifier: MIT
// The deployment files of deploy/, checked offline without Docker or
// kubectl: every YAML parses; every Kubernetes object (the base, the
// overlays rendered by a small Kustomize resolver, the example Secret)
// validates against the Kubernetes API schemas that kubernetes-models
// ships (pinned in tests/package.json); the Compose file validates against
// the Compose Specification schema dclint ships; every setting a manifest
// gives a program is in that program's settings table (`<binary> --help`
// of this build); probes are /health and /ready on the port the program
// listens on; every program of agora/ports.h has a Deployment and a
// Service; the NetworkPolicies allow exactly the calls listed below; the
// Dockerfile's runtime stage is Debian 12 based, non-root, shell-less,
// carries every shared library its binaries need (linked or dlopen()ed)
// and stays under 50 MB.
//
// Registered for release builds only (CMakeLists.txt): the image holds
// release binaries, and an ASan build links the sanitizer runtimes.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

import { GATEWAY_OPS_PORT, PORTS, PROGRAMS } from '../lib/ports.mjs';
import { buildDir, sourceDir } from '../lib/proc.mjs';

const ROOT = sourceDir();
const DEPLOY = path.join(ROOT, 'deploy');
const require = createRequire(path.join(ROOT, 'tests', 'package.json'));
const YAML = require('yaml');
const Ajv = require('ajv').default;

// ---- Facts the checks hold ---------------------------------------------------

// Programs of ports.h that are not deployed, and why.
const NOT_DEPLOYED = {
    bus: 'replaced by RabbitMQ (AGORA_EVENTS_URL) in Compose and Kubernetes',
    traces: 'the collector of one machine: in a cluster AGORA_OTLP_ENDPOINT names the cluster\'s OpenTelemetry Collector, Jaeger or Tempo (deploy/README.md); the image carries it for those who want it',
};
const DEPLOYED = PROGRAMS.filter((p) => !(p.name in NOT_DEPLOYED));
const SERVICES = DEPLOYED.map((p) => p.name).filter((n) => n !== 'registry' && n !== 'gateway');

// Settings manifests give before the programs list them: added by the
// PostgreSQL / RabbitMQ / identity work (removed from here once merged).
const PENDING_SETTINGS = new Set(['AGORA_DB_URL', 'AGORA_EVENTS_URL', 'AGORA_SERVICE_KEY', 'AGORA_SERVICE_PUBKEYS']);

// Every call between pods of the namespace, from the code: the gateway
// proxies to every service (and fetches the users' JWKS, probes their
// /health for /health/services) and watches gateway.routes in the
// registry (platform/gateway/main.c, proxy.c, auth.c, health.c), the only
// program that reads configuration there (ag_registry_watch_config); under
// AGORA_DISCOVERY=dns no service registers, so no other program calls the
// registry; every service uses its database and the broker; payments asks
// orders whether an order is payable; the gateway consumes the revocations
// (session.revoked, user.disabled) from the broker (services/payments/api.c,
// AGORA_PAYMENTS_ORDERS_URL); the dev init Job creates databases, roles
// and broker users (management API).
// [from, to, port]; postgres and rabbitmq pods exist in dev only.
const CALLS = [
    ...SERVICES.map((s) => ['gateway', s, PORTS[s]]),
    ['gateway', 'registry', PORTS.registry],
    ...SERVICES.map((s) => [s, 'postgres', 5432]),
    ...SERVICES.map((s) => [s, 'rabbitmq', 5672]),
    ['gateway', 'rabbitmq', 5672], // session.revoked / user.disabled, its own queue per pod
    ['payments', 'orders', PORTS.orders],
    ['agora-init', 'postgres', 5432],
    ['agora-init', 'rabbitmq', 15672],
];

// The runtime base image (deploy/Dockerfile): gcr.io/distroless/base-debian12.
// Its shared libraries: Debian 12's libc6 and libssl3 (the distroless
// base image = base-nossl + libssl3; GoogleContainerTools/distroless,
// base/README.md). linux-vdso is the kernel's.
const BASE_LIBS = new Set([
    'linux-vdso.so.1', 'ld-linux-x86-64.so.2', 'ld-linux-aarch64.so.1', 'libc.so.6', 'libm.so.6',
    'libresolv.so.2', 'libdl.so.2', 'libpthread.so.0', 'librt.so.1', 'libanl.so.1', 'libutil.so.1',
    'libnss_dns.so.2', 'libnss_files.so.2', 'libssl.so.3', 'libcrypto.so.3',
]);
// Its uncompressed size: about 20 MB (`docker images` shows 20.4MB for
// gcr.io/distroless/base-debian11:nonroot in keptn/lifecycle-toolkit issue
// #1087; the Debian 12 image is of the same make). Counted with margin.
const BASE_IMAGE_BYTES = 22 * 1024 * 1024;
const IMAGE_LIMIT_BYTES = 50 * 1000 * 1000;

// ---- Helpers ------------------------------------------------------------------

function walk(dir, out = []) {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p, out);
        else out.push(p);
    }
    return out.sort();
}

// All documents of a YAML file (merge keys resolved), failing on any error.
function loadDocs(file) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'), { merge: true, uniqueKeys: true });
    for (const d of docs) {
        if (d.errors.length) throw new Error(`${path.relative(ROOT, file)}: ${d.errors.map((e) => e.message).join('; ')}`);
    }
    return docs.map((d) => d.toJS()).filter((d) => d !== null && d !== undefined);
}

// The settings table of a program: the NAME column of `<binary> --help`.
const settingsCache = new Map();
function settingsOf(program) {
    if (!settingsCache.has(program)) {
        const row = PROGRAMS.find((p) => p.name === program);
        assert.ok(row, `'${program}' is a program of agora/ports.h`);
        const bin = path.join(buildDir(), row.binary);
        assert.ok(fs.existsSync(bin), `${bin} is built`);
        const r = spawnSync(bin, ['--help'], { encoding: 'utf8', env: {} });
        const names = new Set([...r.stdout.matchAll(/^(AGORA_[A-Z0-9_]+)\s/gm)].map((m) => m[1]));
        assert.ok(names.size > 10, `${program} --help lists its settings`);
        settingsCache.set(program, names);
    }
    return settingsCache.get(program);
}

function checkSettings(where, program, names) {
    const known = settingsOf(program);
    const unknown = [...names].filter((n) => !known.has(n) && !PENDING_SETTINGS.has(n));
    assert.deepEqual(unknown, [], `${where}: settings not in ${program}'s --help`);
}

// ---- A Kustomize resolver for the features deploy/k8s uses --------------------

const KUSTOMIZATION_KEYS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'images', 'replicas', 'patches', 'configMapGenerator', 'generatorOptions']);
const CLUSTER_KINDS = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass', 'CustomResourceDefinition']);
// Strategic merge keys of the lists deploy/k8s patches.
const MERGE_KEYS = { containers: 'name', initContainers: 'name', env: 'name', volumes: 'name', volumeMounts: 'name', ports: 'containerPort' };

function strategicMerge(base, patch) {
    if (Array.isArray(patch) || patch === null || typeof patch !== 'object') return structuredClone(patch);
    const out = base && typeof base === 'object' && !Array.isArray(base) ? { ...base } : {};
    for (const [k, v] of Object.entries(patch)) {
        if (k.startsWith('$patch')) throw new Error(`unsupported patch directive ${k}`);
        if (Array.isArray(v) && MERGE_KEYS[k] && Array.isArray(out[k]) && v.every((x) => x && typeof x === 'object')) {
            const key = MERGE_KEYS[k];
            const list = out[k].map((x) => structuredClone(x));
            for (const item of v) {
                const i = list.findIndex((x) => x[key] === item[key]);
                if (i === -1) list.push(structuredClone(item));
                else list[i] = strategicMerge(list[i], item);
            }
            out[k] = list;
        } else {
            out[k] = strategicMerge(out[k], v);
        }
    }
    return out;
}

function podSpecs(obj) {
    if (obj.kind === 'Job') return [obj.spec.template.spec];
    if (['Deployment', 'StatefulSet', 'DaemonSet'].includes(obj.kind)) return [obj.spec.template.spec];
    return [];
}

function kustomize(dir) {
    const file = path.join(dir, 'kustomization.yaml');
    const [k] = loadDocs(file);
    for (const key of Object.keys(k)) {
        assert.ok(KUSTOMIZATION_KEYS.has(key), `${path.relative(ROOT, file)}: '${key}' is not supported by this resolver`);
    }
    let objs = [];
    for (const r of k.resources ?? []) {
        const p = path.join(dir, r);
        objs.push(...(fs.statSync(p).isDirectory() ? kustomize(p) : loadDocs(p)));
    }
    for (const g of k.configMapGenerator ?? []) {
        assert.equal(k.generatorOptions?.disableNameSuffixHash, true, 'generated names without a hash suffix');
        assert.deepEqual(Object.keys(g).filter((x) => !['name', 'files'].includes(x)), [], 'configMapGenerator: name and files only');
        const data = {};
        for (const f of g.files) data[path.basename(f)] = fs.readFileSync(path.join(dir, f), 'utf8');
        objs.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name }, data });
    }
    for (const p of k.patches ?? []) {
        assert.deepEqual(Object.keys(p), ['path'], 'patches: strategic merge files (path) only');
        for (const patch of loadDocs(path.join(dir, p.path))) {
            const i = objs.findIndex((o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name);
            assert.ok(i !== -1, `patch target ${patch.kind}/${patch.metadata.name} exists`);
            objs[i] = strategicMerge(objs[i], patch);
        }
    }
    for (const r of k.replicas ?? []) {
        const targets = objs.filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind) && o.metadata.name === r.name);
        assert.equal(targets.length, 1, `replicas: one workload named ${r.name}`);
        targets[0].spec.replicas = r.count;
    }
    for (const img of k.images ?? []) {
        for (const o of objs) {
            for (const spec of podSpecs(o)) {
                for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
                    const name = c.image.replace(/@.*$/, '').replace(/:[^/:]*$/, '');
                    if (name !== img.name) continue;
                    const tag = img.newTag ?? (c.image.slice(name.length + 1) || undefined);
                    c.image = `${img.newName ?? name}${tag ? `:${tag}` : ''}`;
                }
            }
        }
    }
    if (k.namespace) {
        objs = objs.map((o) => (CLUSTER_KINDS.has(o.kind) ? o : { ...o, metadata: { ...o.metadata, namespace: k.namespace } }));
    }
    return objs;
}

// ---- Kubernetes schemas -------------------------------------------------------

async function validateK8s(obj, where) {
    const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
    const modPath = `kubernetes-models/${group ? `${group}/` : ''}${version}/${obj.kind}`;
    let Model;
    try {
        Model = (await import(modPath))[obj.kind];
    } catch (err) {
        assert.fail(`${where}: no schema for ${obj.apiVersion} ${obj.kind} (${err.code ?? err.message})`);
    }
    try {
        new Model(obj).validate();
    } catch (err) {
        assert.fail(`${where}: ${obj.kind}/${obj.metadata?.name} is not valid: ${err.message}`);
    }
}

// ---- Workloads ------------------------------------------------------------------

// The Agora program a container runs: the basename of its command.
function programOf(container) {
    const cmd = container.command?.[0] ?? '';
    const m = /^\/usr\/local\/bin\/([a-z-]+)$/.exec(cmd);
    return m && PROGRAMS.some((p) => p.name === m[1]) ? m[1] : null;
}

function agoraContainers(objs) {
    const out = [];
    for (const o of objs) {
        for (const spec of podSpecs(o)) {
            for (const c of spec.containers) {
                const program = programOf(c);
                if (program) out.push({ obj: o, spec, container: c, program });
            }
        }
    }
    return out;
}

function envNames(container, objs) {
    const names = new Set((container.env ?? []).map((e) => e.name));
    for (const ef of container.envFrom ?? []) {
        assert.ok(ef.configMapRef, 'envFrom: ConfigMaps only');
        const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === ef.configMapRef.name);
        assert.ok(cm, `ConfigMap ${ef.configMapRef.name} is rendered`);
        for (const k of Object.keys(cm.data ?? {})) names.add(k);
    }
    return names;
}

function envValue(container, objs, name) {
    const e = (container.env ?? []).find((x) => x.name === name);
    if (e) return e.value;
    for (const ef of container.envFrom ?? []) {
        const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === ef.configMapRef.name);
        if (cm?.data?.[name] !== undefined) return cm.data[name];
    }
    return undefined;
}

function portNumber(container, port) {
    if (typeof port === 'number') return port;
    const p = (container.ports ?? []).find((x) => x.name === port);
    assert.ok(p, `container ${container.name} has a port named '${port}'`);
    return p.containerPort;
}

function checkWorkloads(objs, where) {
    const workloads = agoraContainers(objs);
    for (const p of DEPLOYED) {
        const d = objs.filter((o) => o.kind === 'Deployment' && o.metadata.name === p.name);
        assert.equal(d.length, 1, `${where}: a Deployment for ${p.name}`);
        const svc = objs.find((o) => o.kind === 'Service' && o.metadata.name === p.name);
        assert.ok(svc, `${where}: a Service for ${p.name}`);
        assert.deepEqual(svc.spec.selector, d[0].spec.selector.matchLabels, `${where}: Service ${p.name} selects its pods`);
        // DNS discovery reaches a service at {service}:{port of ports.h}.
        if (p.name !== 'gateway') {
            assert.ok(svc.spec.ports.some((sp) => sp.port === p.port), `${where}: Service ${p.name} serves port ${p.port}`);
        }
    }
    for (const [name] of Object.entries(NOT_DEPLOYED)) {
        assert.ok(!objs.some((o) => o.kind === 'Deployment' && o.metadata.name === name), `${where}: ${name} is not deployed`);
    }
    for (const { obj, spec, container: c, program } of workloads) {
        const at = `${where}: ${obj.kind}/${obj.metadata.name}`;
        checkSettings(at, program, envNames(c, objs));
        // Listening port: AGORA_HTTP_PORT, which must be the ports.h default.
        const httpPort = Number(envValue(c, objs, 'AGORA_HTTP_PORT') ?? PORTS[program]);
        assert.equal(httpPort, PORTS[program], `${at}: AGORA_HTTP_PORT is ${program}'s port of ports.h`);
        assert.equal(envValue(c, objs, 'AGORA_HTTP_HOST'), '0.0.0.0', `${at}: listens on every address`);
        assert.equal(envValue(c, objs, 'AGORA_DISCOVERY'), 'dns', `${at}: DNS discovery`);
        assert.equal(envValue(c, objs, 'AGORA_REGISTRY_URL'), program === 'gateway' ? `http://registry:${PORTS.registry}` : undefined, `${at}: only the gateway reads the registry`);
        if (program === 'gateway') {
            // Revocations reach every replica: the broker, and a queue per pod.
            assert.ok(envNames(c, objs).has('AGORA_EVENTS_URL'), `${at}: the gateway consumes revocations from RabbitMQ`);
            assert.match(envValue(c, objs, 'AGORA_GATEWAY_REVOCATIONS_SUBSCRIPTION') ?? '', /\$\(AGORA_INSTANCE_ID\)/, `${at}: a revocations queue per pod`);
        }
        assert.equal(portNumber(c, 'http'), httpPort, `${at}: containerPort 'http' = AGORA_HTTP_PORT`);
        assert.equal(c.readinessProbe?.httpGet?.path, '/ready', `${at}: readiness on /ready`);
        assert.equal(c.livenessProbe?.httpGet?.path, '/health', `${at}: liveness on /health`);
        assert.equal(portNumber(c, c.readinessProbe.httpGet.port), httpPort, `${at}: readiness probe port`);
        assert.equal(portNumber(c, c.livenessProbe.httpGet.port), httpPort, `${at}: liveness probe port`);
        // Metrics: on the ops listener when AGORA_OPS_ADDRESS is set.
        const ops = envValue(c, objs, 'AGORA_OPS_ADDRESS');
        let metricsPort = httpPort;
        if (ops) {
            metricsPort = Number(ops.slice(ops.lastIndexOf(':') + 1));
            assert.equal(portNumber(c, 'ops'), metricsPort, `${at}: containerPort 'ops' = AGORA_OPS_ADDRESS's port`);
            if (program === 'gateway') assert.equal(metricsPort, GATEWAY_OPS_PORT, `${at}: the gateway's ops port`);
        }
        const ann = obj.spec.template.metadata.annotations ?? {};
        assert.equal(Number(ann['prometheus.io/port']), metricsPort, `${at}: Prometheus scrapes the metrics port`);
        // Security context.
        assert.equal(spec.securityContext?.runAsNonRoot, true, `${at}: runAsNonRoot`);
        assert.notEqual(spec.securityContext?.runAsUser, 0, `${at}: not uid 0`);
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${at}: read-only root filesystem`);
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${at}: no privilege escalation`);
        assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], `${at}: drops every capability`);
        assert.ok(c.resources?.requests && c.resources?.limits, `${at}: resources`);
        assert.ok(c.volumeMounts?.some((m) => m.mountPath === envValue(c, objs, 'AGORA_DATA_DIR')), `${at}: AGORA_DATA_DIR is a writable volume`);
    }
    for (const name of ['gateway', 'catalog', 'orders']) {
        const hpa = objs.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.metadata.name === name);
        assert.ok(hpa, `${where}: an HPA for ${name}`);
        assert.equal(hpa.spec.scaleTargetRef.name, name);
    }
    for (const d of objs.filter((o) => o.kind === 'Deployment' && o.metadata.name !== 'registry')) {
        assert.ok(objs.some((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === d.metadata.name), `${where}: a PDB for ${d.metadata.name}`);
    }
    for (const o of objs) {
        if (!CLUSTER_KINDS.has(o.kind)) assert.equal(o.metadata.namespace, 'agora', `${where}: ${o.kind}/${o.metadata.name} in namespace agora`);
    }
}

// ---- NetworkPolicy evaluation ---------------------------------------------------

function matchSelector(sel, labels) {
    for (const [k, v] of Object.entries(sel?.matchLabels ?? {})) if (labels[k] !== v) return false;
    for (const e of sel?.matchExpressions ?? []) {
        const has = e.key in labels;
        const ok = {
            In: has && e.values.includes(labels[e.key]),
            NotIn: !has || !e.values.includes(labels[e.key]),
            Exists: has,
            DoesNotExist: !has,
        }[e.operator];
        assert.ok(ok !== undefined, `selector operator ${e.operator}`);
        if (!ok) return false;
    }
    return true;
}

// Does 'peer' (a NetworkPolicy peer) match 'pod' ({ ns, labels })? ipBlock
// peers never match a pod here (pod addresses are not modelled; the only
// ipBlocks are for addresses outside the cluster).
function peerMatches(peer, pod) {
    if (peer.ipBlock) return false;
    const nsOk = peer.namespaceSelector ? matchSelector(peer.namespaceSelector, { 'kubernetes.io/metadata.name': pod.ns }) : pod.ns === 'agora';
    return nsOk && (!peer.podSelector || matchSelector(peer.podSelector, pod.labels));
}

function portMatches(rulePorts, port, protocol = 'TCP') {
    if (!rulePorts || rulePorts.length === 0) return true;
    return rulePorts.some((p) => (p.protocol ?? 'TCP') === protocol && (p.port === undefined || p.port === port || (p.endPort !== undefined && port >= p.port && port <= p.endPort)));
}

function allowed(policies, type, self, other, port) {
    const key = type === 'Ingress' ? 'from' : 'to';
    const applying = policies.filter((np) => self.ns === 'agora' && matchSelector(np.spec.podSelector, self.labels) && (np.spec.policyTypes ?? ['Ingress']).includes(type));
    if (applying.length === 0) return true;
    return applying.some((np) => (np.spec[type.toLowerCase()] ?? []).some((rule) => (!rule[key] || rule[key].length === 0 || rule[key].some((peer) => peerMatches(peer, other))) && portMatches(rule.ports, port)));
}

function pods(objs) {
    const out = [];
    for (const o of objs) {
        for (const spec of podSpecs(o)) {
            const ports = spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
            out.push({ name: o.spec.template.metadata.labels['app.kubernetes.io/name'], ns: 'agora', labels: o.spec.template.metadata.labels, ports });
        }
    }
    return out;
}

function checkNetworkPolicies(objs, where) {
    const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
    const all = pods(objs);
    const got = new Set();
    for (const src of all) {
        for (const dst of all) {
            for (const port of dst.ports) {
                if (allowed(policies, 'Egress', src, dst, port) && allowed(policies, 'Ingress', dst, src, port)) got.add(`${src.name} -> ${dst.name}:${port}`);
            }
        }
    }
    const names = new Set(all.map((p) => p.name));
    const want = new Set(CALLS.filter(([a, b]) => names.has(a) && names.has(b)).map(([a, b, p]) => `${a} -> ${b}:${p}`));
    assert.deepEqual([...got].sort(), [...want].sort(), `${where}: the calls NetworkPolicies allow between Agora pods`);
    // From outside: anyone reaches the gateway's public port; Prometheus
    // (namespace monitoring) reaches every program's metrics port; DNS.
    const outside = { ns: 'ingress', labels: {} };
    const prometheus = { ns: 'monitoring', labels: { 'app.kubernetes.io/name': 'prometheus' } };
    const gw = all.find((p) => p.name === 'gateway');
    assert.ok(allowed(policies, 'Ingress', gw, outside, PORTS.gateway), `${where}: the public reaches the gateway`);
    assert.ok(!allowed(policies, 'Ingress', gw, outside, GATEWAY_OPS_PORT), `${where}: the public does not reach the ops port`);
    for (const a of agoraContainers(objs)) {
        const pod = all.find((p) => p.name === a.program);
        const port = Number(a.obj.spec.template.metadata.annotations['prometheus.io/port']);
        assert.ok(allowed(policies, 'Ingress', pod, prometheus, port), `${where}: Prometheus scrapes ${a.program}:${port}`);
        const dns = { ns: 'kube-system', labels: { 'k8s-app': 'kube-dns' } };
        assert.ok(allowed(policies, 'Egress', pod, dns, 53), `${where}: ${a.program} resolves names`);
    }
}

// ---- The tests ------------------------------------------------------------------

const K8S = path.join(DEPLOY, 'k8s');
const OVERLAYS = ['dev', 'prod'];

describe('deploy/', () => {
    it('every YAML file parses', () => {
        const files = walk(DEPLOY).filter((f) => /\.ya?ml$/.test(f));
        assert.ok(files.length > 10, 'YAML files found');
        for (const f of files) assert.ok(loadDocs(f).length > 0, `${path.relative(ROOT, f)} has a document`);
    });

    it('every Kubernetes object, as written and as rendered, validates against the API schemas', async () => {
        const files = walk(K8S).filter((f) => /\.ya?ml$/.test(f) && path.basename(f) !== 'kustomization.yaml');
        let n = 0;
        for (const f of files) {
            for (const obj of loadDocs(f)) {
                // Patches are partial objects: validated once rendered.
                if (obj.spec && !obj.spec.selector && !obj.spec.scaleTargetRef && ['Deployment', 'HorizontalPodAutoscaler'].includes(obj.kind)) continue;
                await validateK8s(obj, path.relative(ROOT, f));
                n++;
            }
        }
        for (const o of OVERLAYS) {
            for (const obj of kustomize(path.join(K8S, 'overlays', o))) {
                await validateK8s(obj, `overlays/${o} rendered`);
                n++;
            }
        }
        assert.ok(n > 50, `${n} objects validated`);
        // The schemas reject what is wrong.
        const bad = kustomize(path.join(K8S, 'overlays', 'dev')).find((x) => x.kind === 'Deployment');
        bad.spec.template.spec.containers[0].ports[0].containerPort = 'http';
        await assert.rejects(validateK8s(bad, 'bad'), /containerPort/);
    });

    it('the overlays render the workloads, probes, settings and security each program needs', () => {
        for (const o of OVERLAYS) checkWorkloads(kustomize(path.join(K8S, 'overlays', o)), `overlays/${o}`);
        const dev = kustomize(path.join(K8S, 'overlays', 'dev'));
        for (const name of ['postgres', 'rabbitmq']) assert.ok(dev.some((x) => x.kind === 'StatefulSet' && x.metadata.name === name), `dev: ${name} StatefulSet`);
        const prod = kustomize(path.join(K8S, 'overlays', 'prod'));
        assert.ok(!prod.some((x) => x.kind === 'StatefulSet'), 'prod: external PostgreSQL and RabbitMQ');
        assert.ok(prod.every((x) => podSpecs(x).every((s) => s.containers.every((c) => c.image === 'registry.example.com/agora:0.1.0'))), 'prod: the image of the registry');
    });

    it('the checks catch a misspelled setting and a wrong probe port', () => {
        const objs = kustomize(path.join(K8S, 'overlays', 'dev'));
        const cat = objs.find((x) => x.kind === 'Deployment' && x.metadata.name === 'catalog');
        cat.spec.template.spec.containers[0].env.push({ name: 'AGORA_CATALOG_SEEDS', value: 'x' });
        assert.throws(() => checkWorkloads(objs, 'bad'), /AGORA_CATALOG_SEEDS/);
        const objs2 = kustomize(path.join(K8S, 'overlays', 'dev'));
        const ord = objs2.find((x) => x.kind === 'Deployment' && x.metadata.name === 'orders');
        ord.spec.template.spec.containers[0].readinessProbe.httpGet.port = 8083;
        assert.throws(() => checkWorkloads(objs2, 'bad'), /readiness probe port/);
        const objs3 = kustomize(path.join(K8S, 'overlays', 'dev'));
        objs3.find((x) => x.kind === 'NetworkPolicy' && x.metadata.name === 'orders').spec.ingress[0].from.push({ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'shipping' } } });
        objs3.find((x) => x.kind === 'NetworkPolicy' && x.metadata.name === 'shipping').spec.egress.push({ to: [{ podSelector: {} }] });
        assert.throws(() => checkNetworkPolicies(objs3, 'bad'), /shipping -> orders:8084/);
    });

    it('NetworkPolicies allow exactly the calls Agora makes', () => {
        for (const o of OVERLAYS) checkNetworkPolicies(kustomize(path.join(K8S, 'overlays', o)), `overlays/${o}`);
    });

    it('the Secret every workload reads has an example with each key, and make-secret makes them all', () => {
        const [example] = loadDocs(path.join(K8S, 'secret.example.yaml'));
        const keys = new Set(Object.keys(example.stringData));
        for (const o of OVERLAYS) {
            for (const obj of kustomize(path.join(K8S, 'overlays', o))) {
                for (const spec of podSpecs(obj)) {
                    for (const c of spec.containers) {
                        for (const e of c.env ?? []) {
                            const ref = e.valueFrom?.secretKeyRef;
                            if (ref && !ref.optional) assert.ok(keys.has(ref.key), `${o}: ${obj.metadata.name} reads ${ref.key}, in secret.example.yaml`);
                        }
                    }
                }
            }
        }
        for (const v of Object.values(example.stringData)) assert.ok(v === '' || /</.test(v), 'placeholders only');
        const made = YAML.parse(execFileSync(path.join(K8S, 'make-secret'), ['--postgres-host', 'db.internal'], { encoding: 'utf8' }));
        assert.deepEqual(Object.keys(made.stringData).filter((k) => k !== 'AGORA_ADMIN_EMAIL').sort(), [...keys].sort());
        assert.match(made.stringData.CATALOG_DB_URL, /^postgres:\/\/catalog:[0-9a-f]{48}@db\.internal:5432\/catalog$/);
        assert.match(made.stringData.AGORA_INTERNAL_KEY, /^[0-9a-f]{64}$/);
        // The dev init scripts are Compose's, byte for byte.
        for (const s of ['postgres.sh', 'rabbitmq.sh']) {
            assert.equal(fs.readFileSync(path.join(K8S, 'overlays/dev/init', s), 'utf8'), fs.readFileSync(path.join(DEPLOY, 'compose/init', s), 'utf8'), `init/${s} copies agree`);
        }
    });

    it('the Compose file validates against the Compose Specification and gives each program its settings', () => {
        const schema = JSON.parse(fs.readFileSync(path.join(path.dirname(require.resolve('dclint/package.json')), 'schemas', 'compose.schema.json'), 'utf8'));
        delete schema.$schema;
        const validate = new Ajv({ strict: false, allErrors: true, logger: false }).compile(schema);
        const [compose] = loadDocs(path.join(DEPLOY, 'compose', 'compose.yaml'));
        assert.ok(validate(compose), JSON.stringify(validate.errors, null, 1));
        assert.ok(!validate({ services: { a: { image: 'x', helthcheck: {} } } }), 'the schema rejects an unknown key');
        const services = compose.services;
        for (const p of DEPLOYED) assert.ok(services[p.name], `compose: a service for ${p.name}`);
        assert.ok(!services.bus, `compose: no bus (${NOT_DEPLOYED.bus})`);
        for (const [name, s] of Object.entries(services)) {
            const program = s.command ? programOf({ command: s.command }) : null;
            if (!program) continue;
            const env = s.environment ?? {};
            assert.ok(!Array.isArray(env), `${name}: environment as a map`);
            checkSettings(`compose ${name}`, program, Object.keys(env));
            assert.equal(env.AGORA_DISCOVERY, 'dns', `compose ${name}: DNS discovery`);
            assert.equal(env.AGORA_REGISTRY_URL, program === 'gateway' ? `http://registry:${PORTS.registry}` : undefined, `compose ${name}: only the gateway reads the registry`);
            if (program === 'gateway') assert.match(env.AGORA_EVENTS_URL ?? '', /^amqp:\/\/gateway:/, `compose ${name}: the gateway consumes revocations as broker user 'gateway'`);
            const port = Number(env.AGORA_HTTP_PORT);
            assert.equal(port, PORTS[program], `compose ${name}: AGORA_HTTP_PORT is ports.h's`);
            assert.deepEqual(s.healthcheck.test, ['CMD', '/usr/local/bin/agora', 'probe', `http://127.0.0.1:${port}/health`], `compose ${name}: health check on /health at its port`);
            assert.equal(s.user, '65532:65532', `compose ${name}: non-root`);
            assert.equal(s.read_only, true, `compose ${name}: read-only`);
            assert.deepEqual(s.cap_drop, ['ALL'], `compose ${name}: no capabilities`);
            assert.ok(s.deploy?.resources?.limits?.cpus && s.deploy.resources.limits.memory, `compose ${name}: limits`);
            assert.ok(s.restart, `compose ${name}: restart policy`);
            if (SERVICES.includes(program)) assert.equal(s.deploy.replicas, 2, `compose ${name}: two replicas`);
        }
        assert.equal(services.registry.deploy.replicas, 1, 'one registry');
        assert.deepEqual(services.gateway.ports, ['${AGORA_PUBLIC_PORT:-8080}:8080']);
        for (const b of ['postgres', 'rabbitmq']) assert.ok(services[b].healthcheck && services[b].volumes?.length, `${b}: health check and volume`);
        assert.match(services.postgres.image, /^postgres:15/);
        assert.match(services.rabbitmq.image, /^rabbitmq:3\.10/);
        // .env.example names every variable compose.yaml requires.
        const required = new Set([...fs.readFileSync(path.join(DEPLOY, 'compose', 'compose.yaml'), 'utf8').matchAll(/\$\{([A-Z0-9_]+)(?::[?-][^}]*)?\}/g)].map((m) => m[1]));
        const example = new Set([...fs.readFileSync(path.join(DEPLOY, 'compose', '.env.example'), 'utf8').matchAll(/^([A-Z0-9_]+)=/gm)].map((m) => m[1]));
        assert.deepEqual([...required].filter((v) => !example.has(v)), [], '.env.example lists every variable');
    });

    it('the Compose Prometheus configuration passes promtool', () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agora-prom-'));
        try {
            fs.copyFileSync(path.join(DEPLOY, 'compose', 'prometheus.yml'), path.join(dir, 'prometheus.yml'));
            fs.copyFileSync(path.join(DEPLOY, 'observability', 'alerts.yml'), path.join(dir, 'alerts.yml'));
            const r = spawnSync('promtool', ['check', 'config', path.join(dir, 'prometheus.yml')], { encoding: 'utf8' });
            assert.equal(r.status, 0, r.stdout + r.stderr);
            const jobs = YAML.parse(fs.readFileSync(path.join(dir, 'prometheus.yml'), 'utf8')).scrape_configs.map((j) => j.job_name);
            assert.deepEqual(jobs.sort(), DEPLOYED.map((p) => p.name).sort(), 'every deployed program is scraped');
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it('the Dockerfile: Debian 12 images, non-root, no shell, every library, under 50 MB', () => {
        const text = fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
        const stages = text.split(/^FROM /m).slice(1).map((s) => `FROM ${s}`);
        assert.equal(stages.length, 2, 'a build and a runtime stage');
        const [build, runtime] = stages;
        assert.match(build, /^FROM debian:12(\.\d+)? AS build/);
        const base = /^FROM (\S+)/.exec(runtime)[1];
        assert.match(base, /^gcr\.io\/distroless\/base-debian12:[a-z0-9.-]+$/, 'Debian 12 based, pinned by tag');
        assert.doesNotMatch(base, /:latest$/);
        assert.doesNotMatch(runtime, /^RUN /m, 'the runtime stage runs no shell');
        const user = /^USER (\S+)/m.exec(runtime)?.[1];
        assert.ok(user && !/^(0|root)(:|$)/.test(user), `runs as a non-root user (${user})`);
        // ENV settings exist in some program.
        const envs = [...runtime.matchAll(/\b(AGORA_[A-Z0-9_]+)=/g)].map((m) => m[1]);
        for (const e of envs) assert.ok(DEPLOYED.some((p) => settingsOf(p.name).has(e)), `Dockerfile ENV ${e} is a setting`);
        const programs = /ARG PROGRAMS="([^"]+)"/.exec(build)[1].split(/\s+/);
        assert.deepEqual([...programs].sort(), PROGRAMS.filter((p) => p.binary).map((p) => p.name).sort(), 'PROGRAMS: every program of ports.h');
        const libs = /ARG RUNTIME_LIBS="([^"]+)"/.exec(build)[1].split(/\s+/).filter(Boolean);
        // ldd: every library of every binary (and of every copied library)
        // is the base image's or copied; so is every library they dlopen().
        const binaries = programs.map((n) => path.join(buildDir(), PROGRAMS.find((p) => p.name === n).binary)).concat(path.join(buildDir(), 'cli', 'agora'));
        const libPath = new Map();
        const need = (file) =>
            execFileSync('ldd', [file], { encoding: 'utf8' })
                .split('\n')
                .map((l) => /^\s*(\S+)(?: => (\S+))?/.exec(l))
                .filter(Boolean)
                .map((m) => {
                    const name = path.basename(m[1]);
                    if (m[2] && m[2] !== 'not') libPath.set(name, m[2]);
                    return name;
                });
        const missing = new Set();
        for (const b of binaries) for (const l of need(b)) if (!BASE_LIBS.has(l) && !libs.includes(l)) missing.add(`${l} (${path.basename(b)})`);
        // Libraries a binary dlopen()s (agora/dynlib.h: libpq, librabbitmq, libcurl)
        // are in no DT_NEEDED entry, so ldd misses them: every soname
        // written in a binary as a string ("libpq.so.5", NUL-terminated; the
        // start is not looked at, as the linker may place a string right
        // after an unterminated array) must be copied too, and its own
        // libraries are checked with the copied ones below.
        const dlopened = new Map();
        for (const b of binaries) {
            const bytes = fs.readFileSync(b).toString('latin1');
            for (const m of bytes.matchAll(/(lib[A-Za-z0-9_+-]*\.so\.\d+(?:\.\d+)*)\0/g)) {
                if (!dlopened.has(m[1])) dlopened.set(m[1], new Set());
                dlopened.get(m[1]).add(path.basename(b));
            }
        }
        for (const l of ['libpq.so.5', 'librabbitmq.so.4', 'libcurl.so.4']) {
            assert.ok(dlopened.has(l), `${l}: found as a dlopen()ed soname in the binaries`);
            for (const b of binaries) assert.ok(!need(b).includes(l), `${path.basename(b)} has ${l} as DT_NEEDED: it is loaded on demand`);
        }
        for (const [l, users] of dlopened) if (!BASE_LIBS.has(l) && !libs.includes(l)) missing.add(`${l} (dlopen()ed by ${[...users].join(' ')})`);
        for (const l of libs) {
            const p = libPath.get(l) ?? ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu'].map((d) => path.join(d, l)).find((x) => fs.existsSync(x));
            assert.ok(p && fs.existsSync(p), `${l} exists on this machine`);
            libPath.set(l, p);
            for (const d of need(p)) if (!BASE_LIBS.has(d) && !libs.includes(d)) missing.add(`${d} (${l})`);
        }
        assert.deepEqual([...missing], [], 'libraries neither in the base image nor in RUNTIME_LIBS');
        // Size of the runtime stage: base + binaries (stripped, as the
        // build stage does) + libraries + static files.
        const stripped = fs.mkdtempSync(path.join(os.tmpdir(), 'agora-strip-'));
        let binBytes = 0;
        try {
            for (const b of binaries) {
                const out = path.join(stripped, path.basename(b));
                execFileSync('strip', ['-o', out, b]);
                binBytes += fs.statSync(out).size;
            }
        } finally {
            fs.rmSync(stripped, { recursive: true, force: true });
        }
        const du = (p) => (fs.statSync(p).isDirectory() ? fs.readdirSync(p).reduce((s, e) => s + du(path.join(p, e)), 0) : fs.statSync(p).size);
        const parts = {
            base: BASE_IMAGE_BYTES,
            binaries: binBytes,
            libraries: libs.reduce((s, l) => s + fs.statSync(libPath.get(l)).size, 0),
            web: du(path.join(ROOT, 'web')),
            other: ['platform/gateway/routes.json', 'services/catalog/demo/catalog.json'].reduce((s, f) => s + du(path.join(ROOT, f)), 0) + (fs.existsSync(path.join(buildDir(), 'openapi.json')) ? du(path.join(buildDir(), 'openapi.json')) : 1 << 20),
        };
        const total = Object.values(parts).reduce((a, b) => a + b, 0);
        const mb = (n) => (n / 1e6).toFixed(1);
        console.log(`image estimate: ${mb(total)} MB = ${Object.entries(parts).map(([k, v]) => `${k} ${mb(v)}`).join(' + ')}`);
        assert.ok(total < IMAGE_LIMIT_BYTES, `runtime image ${mb(total)} MB < 50 MB`);
        const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8');
        for (const p of ['.git', 'build*/', '**/node_modules/']) assert.ok(ignore.split('\n').includes(p), `.dockerignore has ${p}`);
    });
});
