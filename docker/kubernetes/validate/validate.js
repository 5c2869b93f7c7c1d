#!/usr/bin/env node
// docker/kubernetes/validate/validate.js: checks Kubernetes manifests against the Kubernetes API
// schemas (npm's kubernetes-models, generated from the API's OpenAPI document) and the
// Prometheus Operator's CRD schemas (@kubernetes-models/prometheus-operator, generated from the
// CRDs it publishes), the versions pinned in package-lock.json.
//
//   node validate.js [--json OUT] FILE_OR_DIR...
//
// For each YAML document of each file (a directory: its *.yaml files):
//  1. the YAML parses, with no duplicate keys;
//  2. apiVersion and kind name a model the packages have (anything else is an error, so a
//     kind that nothing checks cannot slip through);
//  3. the document validates against that kind's schema (types, required fields, enums,
//     formats such as quantities and ports);
//  4. no field is unknown to the schema, as `kubectl apply --validate=strict` would say: the
//     schema validators of kubernetes-models read every field they know, so the document is
//     validated through proxies that record each field read, and a field never read is one
//     the schema does not have (a misspelled `readinesProbe` would otherwise pass, since the
//     Kubernetes schemas allow additional properties);
//  5. a kustomization.yaml lists exactly the other manifests of its directory, each existing.
// Errors name file:line, the kind/name and the field. With --json OUT, every document is
// written to OUT as a JSON array ({file, doc}) for the checks that follow (48-kubernetes.sh).
// Exit 0 when all is valid, 1 when not, 2 on usage errors.
'use strict';
const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

const MODEL_PACKAGES = ['kubernetes-models', '@kubernetes-models/prometheus-operator'];
let errors = 0;
const report = (where, msg) => {
    errors++;
    console.log(`${where}: ${msg}`);
};

// The model class for apiVersion/kind: the core group is kubernetes-models/v1, a named group
// is <package>/<group>/<version>.
function modelFor(apiVersion, kind) {
    for (const pkg of MODEL_PACKAGES) {
        let mod;
        try {
            mod = require(`${pkg}/${apiVersion}`);
        } catch (e) {
            if (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') continue;
            throw e;
        }
        if (typeof mod[kind] === 'function') return mod[kind];
    }
    return null;
}

// A copy of `value` whose objects are proxies that record the fields read; `records` gets one
// {path, keys, read} per object.
function tracked(value, at, records) {
    if (Array.isArray(value)) return value.map((v, i) => tracked(v, at.concat(i), records));
    if (value === null || typeof value !== 'object') return value;
    // Parents before children: the unknown-field report skips what lies below an unknown field.
    const rec = {path: at, keys: Object.keys(value), read: new Set()};
    records.push(rec);
    const inner = {};
    for (const k of Object.keys(value)) inner[k] = tracked(value[k], at.concat(k), records);
    return new Proxy(inner, {
        get(t, k, r) {
            if (typeof k === 'string') rec.read.add(k);
            return Reflect.get(t, k, r);
        },
    });
}

// The 1-based line of the node at `at` in `doc` (a key's own line when `key` is set).
function lineOf(doc, lc, at, key) {
    let node = doc.contents;
    let line = node && node.range ? lc.linePos(node.range[0]).line : 1;
    for (let i = 0; i < at.length && node; i++) {
        const seg = at[i];
        if (YAML.isMap(node)) {
            const pair = node.items.find((p) => p.key && p.key.value === seg);
            if (!pair) break;
            if (key && i === at.length - 1 && pair.key.range) return lc.linePos(pair.key.range[0]).line;
            node = pair.value;
        } else if (YAML.isSeq(node)) {
            node = node.items[seg];
        } else {
            break;
        }
        if (node && node.range) line = lc.linePos(node.range[0]).line;
    }
    return line;
}

const ptr = (at) => '/' + at.join('/');

function checkDoc(file, doc, lc, obj) {
    const where0 = `${file}:${lineOf(doc, lc, [])}`;
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
        report(where0, 'a manifest must be a mapping');
        return;
    }
    const {apiVersion, kind} = obj;
    if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
        report(where0, 'apiVersion and kind are required strings');
        return;
    }
    const name = (obj.metadata && obj.metadata.name) || '(no name)';
    const what = `${kind}/${name}`;
    if (apiVersion === 'kustomize.config.k8s.io/v1beta1' && kind === 'Kustomization') {
        checkKustomization(file, doc, lc, obj);
        return;
    }
    const Model = modelFor(apiVersion, kind);
    if (!Model) {
        report(where0, `${what}: no schema for ${apiVersion} ${kind} in ${MODEL_PACKAGES.join(', ')}`);
        return;
    }
    if (!obj.metadata || typeof obj.metadata.name !== 'string' || obj.metadata.name === '') {
        report(where0, `${what}: metadata.name is required`);
    }
    const records = [];
    try {
        Model.prototype.validate.call(tracked(obj, [], records));
    } catch (e) {
        if (!Array.isArray(e.errors)) throw e;
        for (const err of e.errors) {
            const at = err.instancePath.split('/').slice(1).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
            report(`${file}:${lineOf(doc, lc, at)}`, `${what}: ${ptr(at)} ${err.message}`);
        }
        return; // a failed validation may stop reading early: the unknown-field check would lie
    }
    // Only the outermost unknown field: everything below it is unknown too.
    const unknown = [];
    for (const rec of records) {
        for (const k of rec.keys) {
            if (rec.read.has(k)) continue;
            const at = rec.path.concat(k);
            if (unknown.some((u) => u.length < at.length && u.every((s, i) => s === at[i]))) continue;
            unknown.push(at);
            report(`${file}:${lineOf(doc, lc, at, true)}`, `${what}: ${ptr(at)}: unknown field "${k}" (not in the ${apiVersion} ${kind} schema)`);
        }
    }
}

function checkKustomization(file, doc, lc, obj) {
    const dir = path.dirname(file);
    const listed = Array.isArray(obj.resources) ? obj.resources : [];
    for (const r of listed) {
        if (!fs.existsSync(path.join(dir, r))) report(`${file}:${lineOf(doc, lc, ['resources'])}`, `resource ${r} does not exist`);
    }
    for (const f of fs.readdirSync(dir)) {
        if (/\.ya?ml$/.test(f) && f !== path.basename(file) && !listed.includes(f)) {
            report(`${file}:${lineOf(doc, lc, ['resources'])}`, `${f} is in ${dir} but not in resources`);
        }
    }
}

function main(argv) {
    let jsonOut = null;
    const inputs = [];
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--json') jsonOut = argv[++i];
        else inputs.push(argv[i]);
    }
    if (inputs.length === 0 || (jsonOut === undefined)) {
        console.error('usage: node validate.js [--json OUT] FILE_OR_DIR...');
        return 2;
    }
    const files = [];
    for (const p of inputs) {
        if (fs.statSync(p).isDirectory()) {
            for (const f of fs.readdirSync(p).sort()) if (/\.ya?ml$/.test(f)) files.push(path.join(p, f));
        } else {
            files.push(p);
        }
    }
    const all = [];
    let docs = 0;
    for (const file of files) {
        const lc = new YAML.LineCounter();
        const parsed = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'), {lineCounter: lc, uniqueKeys: true});
        for (const doc of Array.isArray(parsed) ? parsed : [parsed]) {
            if (doc.errors.length) {
                for (const e of doc.errors) report(`${file}:${e.linePos ? e.linePos[0].line : 1}`, `YAML: ${e.message.split('\n')[0]}`);
                continue;
            }
            const obj = doc.toJS();
            if (obj === null) continue; // an empty document (a trailing ---)
            docs++;
            checkDoc(file, doc, lc, obj);
            all.push({file: path.basename(file), doc: obj});
        }
    }
    if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(all, null, 1));
    console.log(`validate: ${docs} documents in ${files.length} files, ${errors} errors`);
    return errors ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
