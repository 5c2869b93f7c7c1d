#!/usr/bin/env bash
# 48-kubernetes: the manifests in docker/kubernetes/ against the Kubernetes API schemas, and
# what they tell weir against the real binary.
#  1. docker/kubernetes/validate/validate.js (npm's kubernetes-models and
#     @kubernetes-models/prometheus-operator, versions pinned by its package-lock.json,
#     installed by `./bootstrap deps test` or here with `npm ci`) validates every document:
#     schema (types, required fields, formats), fields unknown to the schema, the kustomization.
#  2. Broken copies fail it, each with its own message: a wrong field type, a misspelled field,
#     a ServiceMonitor interval that is not a duration string, a kind nothing checks, a manifest
#     the kustomization leaves out.
#  3. The objects agree with each other and with weir: non-root uid of the image, read-only root
#     filesystem, a memory limit, WEIR_WORKERS from requests.cpu, the config mounted as a
#     directory (no subPath), the probes run `weir health` (liveness with --live), the grace
#     period covers the preStop sleep plus the config's drain_timeout, every selector matches
#     the pod labels, the Secret and its key are the same in the Deployment and the ServiceMonitor.
#  4. The ConfigMap's weir.yaml, laid out as the kubelet does (..data symlink), passes
#     `weir --check-config` and runs with the Deployment's environment; the probe commands,
#     taken from the manifest, answer 0, also with a broken file swapped in (they read none);
#     the worker count is the CPU request; after SIGTERM with a request in flight the readiness
#     probe fails (503 draining) while the liveness probe still passes, and the request completes.
#  5. As root: `workers: auto` in a child cgroup with a quota of one CPU starts one worker.
source "$(dirname "$0")/lib.sh"
need node
need curl

K8S="$WEIR_SRC/docker/kubernetes"
VAL="$K8S/validate"
if [ ! -d "$VAL/node_modules/kubernetes-models" ]; then
    need npm
    (cd "$VAL" && npm ci --no-audit --no-fund --silent) >"$T/npm.log" 2>&1 ||
        fail "npm ci in $VAL: $(tail -n 5 "$T/npm.log")"
fi
validate() { node "$VAL/validate.js" "$@"; }

# --- 1. the manifests as committed -------------------------------------------------------------
validate --json "$T/m.json" "$K8S" >"$T/val.out" 2>&1 || fail "validate: $(cat "$T/val.out")"
pass "$(tail -n 1 "$T/val.out")"

# --- 2. broken copies fail, each for its reason ----------------------------------------------------
broken() { # NAME FILE SED_EXPR WANT: a copy of the directory with FILE edited must fail with WANT
    local d="$T/broken-$1"
    rm -rf "$d"; mkdir -p "$d"; cp "$K8S"/*.yaml "$d/"
    sed -i -e "$3" "$d/$2"
    cmp -s "$K8S/$2" "$d/$2" && fail "$1: the edit changed nothing in $2"
    local rc=0
    validate "$d" >"$d.out" 2>&1 || rc=$?
    [ "$rc" = 1 ] || fail "$1: validate exited $rc, want 1: $(cat "$d.out")"
    grep -qF -- "$4" "$d.out" || fail "$1: no '$4' in: $(cat "$d.out")"
    pass "$1 fails: $(grep -m1 -F -- "$4" "$d.out" | sed "s|$d/||")"
}
broken wrong-type deployment.yaml 's/^  replicas: 3$/  replicas: "3"/' '/spec/replicas must be integer'
broken misspelled deployment.yaml 's/readinessProbe:/readinesProbe:/' 'unknown field "readinesProbe"'
broken bad-quantity deployment.yaml 's/memory: 512Mi/memory: 512 megs/' 'must match format "quantity"'
broken crd-type servicemonitor.yaml 's/interval: 15s/interval: 15/' '/spec/endpoints/0/interval must be string'
broken no-schema pdb.yaml 's|policy/v1|policy/v1beta7|' 'no schema for policy/v1beta7 PodDisruptionBudget'
broken kustomize kustomization.yaml '/- pdb.yaml/d' 'pdb.yaml is in'

# --- 3. the objects agree with each other and with weir ---------------------------------------------
$PY - "$T/m.json" "$WEIR_SRC/docker/Dockerfile" "$T" <<'PYEOF' || fail "manifest checks"
import json, math, re, sys
docs = [d["doc"] for d in json.load(open(sys.argv[1]))]
dockerfile = open(sys.argv[2]).read()
out = sys.argv[3]
by = {}
for d in docs:
    by.setdefault(d["kind"], []).append(d)
def one(kind, name=None):
    c = [d for d in by.get(kind, []) if name is None or d["metadata"]["name"] == name]
    assert len(c) == 1, f"want one {kind} {name or ''}, have {len(c)}"
    return c[0]
for k in ("Deployment", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor"):
    one(k)
dep = one("Deployment"); pod = dep["spec"]["template"]["spec"]; labels = dep["spec"]["template"]["metadata"]["labels"]
c = [x for x in pod["containers"] if x["name"] == "weir"][0]
def matches(sel):
    return sel and all(labels.get(k) == v for k, v in sel.items())
assert matches(dep["spec"]["selector"]["matchLabels"]), "Deployment selector"
assert matches(one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]), "PDB selector"
assert matches(one("Service", "weir")["spec"]["selector"]), "Service weir selector"
admin_svc = one("Service", "weir-admin")
assert matches(admin_svc["spec"]["selector"]), "Service weir-admin selector"
ref = one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
assert (ref["kind"], ref["name"]) == ("Deployment", dep["metadata"]["name"]), "HPA target"
# Non-root: the uid the image's Dockerfile creates, read-only root, nothing to escalate.
uid = int(re.search(r"useradd [^\n]*--uid (\d+)", dockerfile).group(1))
psc, csc = pod["securityContext"], c["securityContext"]
assert psc["runAsNonRoot"] is True and psc["runAsUser"] == uid, f"runAsUser {psc.get('runAsUser')} != image uid {uid}"
assert csc["readOnlyRootFilesystem"] is True and csc["allowPrivilegeEscalation"] is False
assert csc["capabilities"]["drop"] == ["ALL"]
# Memory limit (the budget follows it through the cgroup); workers from requests.cpu.
res = c["resources"]
assert "memory" in res["limits"], "no memory limit"
env = {e["name"]: e for e in c["env"]}
rf = env["WEIR_WORKERS"]["valueFrom"]["resourceFieldRef"]
assert rf["resource"] == "requests.cpu" and rf["divisor"] in ("1", 1), rf
cpu = str(res["requests"]["cpu"])
workers = math.ceil(int(cpu[:-1]) / 1000) if cpu.endswith("m") else math.ceil(float(cpu))
# The admin token from a Secret, the same one the ServiceMonitor sends.
skr = env["WEIR_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
sm = one("ServiceMonitor")
cred = sm["spec"]["endpoints"][0]["authorization"]["credentials"]
assert (cred["name"], cred["key"]) == (skr["name"], skr["key"]), f"ServiceMonitor secret {cred} != {skr}"
assert all(admin_svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()), "ServiceMonitor selector"
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
assert sm["spec"]["endpoints"][0]["port"] in [p["name"] for p in admin_svc["spec"]["ports"]]
for svc in by["Service"]:
    for p in svc["spec"]["ports"]:
        assert p["targetPort"] in ports, f"Service {svc['metadata']['name']} targetPort {p['targetPort']}"
ann = dep["spec"]["template"]["metadata"]["annotations"]
assert int(ann["prometheus.io/port"]) == ports["admin"] and ann["prometheus.io/scrape"] == "true"
# The config: a ConfigMap mounted as a directory (subPath mounts never see updates).
cm = one("ConfigMap")
vol = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == cm["metadata"]["name"]][0]
mnt = [m for m in c["volumeMounts"] if m["name"] == vol["name"]][0]
assert "subPath" not in mnt and "subPathExpr" not in mnt, "config mounted with subPath"
cfgfile = c["args"][c["args"].index("-c") + 1]
assert cfgfile.startswith(mnt["mountPath"].rstrip("/") + "/"), f"{cfgfile} not under {mnt['mountPath']}"
key = cfgfile[len(mnt["mountPath"].rstrip("/")) + 1:]
assert key in cm["data"], f"ConfigMap has no key {key}"
# Probes: weir health on the admin port, liveness on /healthz (--live), readiness and startup
# on /ready; no -c (a probe that read the file would fail on a bad ConfigMap edit).
rp, lp = c["readinessProbe"]["exec"]["command"], c["livenessProbe"]["exec"]["command"]
assert c["startupProbe"]["exec"]["command"] == rp, "startup and readiness probes differ"
assert rp[1] == "health" and "--live" not in rp, rp
assert lp[1] == "health" and "--live" in lp, lp
m = re.search(r"^admin:[ \t]*\n[ \t]+address:[ \t]*(\S+)", cm["data"][key], re.M)
admin_port = int(m.group(1).rsplit(":", 1)[1])
assert admin_port == ports["admin"], f"admin.address port {admin_port} != containerPort {ports['admin']}"
for cmd in (rp, lp):
    assert "-c" not in cmd and not any(a.startswith("--config") for a in cmd), f"probe reads the config: {cmd}"
    assert cmd[-1] == f"127.0.0.1:{admin_port}", f"probe address {cmd[-1]} != 127.0.0.1:{admin_port}"
# Grace period: preStop sleep + drain_timeout (+ a margin of at least 5 s).
stop = c["lifecycle"]["preStop"]["exec"]["command"]
assert stop[0].endswith("sleep"), stop
m = re.search(r"^drain_timeout: *(\d+)(ms|s|m)\b", cm["data"][key], re.M)
drain_s = int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)] if m else 30
grace = pod["terminationGracePeriodSeconds"]
assert grace >= int(stop[1]) + drain_s + 5, f"grace {grace} < preStop {stop[1]} + drain {drain_s} + 5"
open(f"{out}/weir.yaml", "w").write(cm["data"][key])
open(f"{out}/vars", "w").write(f"CFG_MOUNT={mnt['mountPath']}\nCFG_FILE={cfgfile}\nCFG_KEY={key}\nWORKERS={workers}\n"
                               f"GRACE={grace}\nDRAIN_S={drain_s}\nPRESTOP_S={stop[1]}\nADMIN_CPORT={admin_port}\n")
open(f"{out}/ready.cmd", "w").write("\0".join(rp))
open(f"{out}/live.cmd", "w").write("\0".join(lp))
PYEOF
source "$T/vars"
pass "manifests agree: workers $WORKERS (requests.cpu), grace ${GRACE}s >= preStop ${PRESTOP_S}s + drain_timeout ${DRAIN_S}s"

# --- 4. the ConfigMap's config on the real binary ---------------------------------------------------
start_upstream up --proto http1   # the ConfigMap's cluster is protocol: http1
# The kubelet's layout: DIR/KEY -> ..data/KEY, ..data -> ..<timestamp>/ (updates swap ..data).
ETC="$T/etc-weir"
mkdir -p "$ETC/..2026_01_01_00_00_00.1"
# The one line that names a service of the cluster: weir resolves endpoints when it loads.
grep -q 'app.default.svc.cluster.local:80' "$T/weir.yaml" || fail "the ConfigMap's cluster endpoint changed: update this test"
sed "s/app.default.svc.cluster.local:80/127.0.0.1:$up_PORT/" "$T/weir.yaml" >"$ETC/..2026_01_01_00_00_00.1/$CFG_KEY"
ln -s ..2026_01_01_00_00_00.1 "$ETC/..data"
ln -s "..data/$CFG_KEY" "$ETC/$CFG_KEY"
host_path() { sed "s|^$CFG_MOUNT/|$ETC/|; s|^/usr/local/bin/weir\$|$WEIR_BIN|; s|^127.0.0.1:$ADMIN_CPORT\$|127.0.0.1:${ADMIN_PORT:-}|"; }
CFG=$(echo "$CFG_FILE" | host_path)

# The Deployment's environment; the listener and admin addresses move to loopback port 0.
export WEIR_ADMIN_TOKEN="k8s-test-$$" WEIR_WORKERS="$WORKERS"
"$WEIR_BIN" --check-config "$CFG" >"$T/check.out" 2>&1 || fail "weir --check-config: $(cat "$T/check.out")"
pass "weir --check-config on the ConfigMap's $CFG_KEY: $(cat "$T/check.out")"
WEIR_LISTEN=127.0.0.1:0 WEIR_ADMIN=127.0.0.1:0 start_weir -c "$CFG"
export WEIR_ADMIN="127.0.0.1:$ADMIN_PORT"

probe() { # ready|live: runs the manifest's probe command; prints its exit status
    local cmd=() rc=0
    while IFS= read -r -d '' a; do cmd+=("$(printf '%s' "$a" | host_path)"); done < <(cat "$T/$1.cmd"; printf '\0')
    "${cmd[@]}" >>"$T/probe.log" 2>&1 || rc=$?
    echo "$rc"
}
[ "$(probe ready)" = 0 ] || fail "readiness probe failed: $(tail -n 2 "$T/probe.log")"
[ "$(probe live)" = 0 ] || fail "liveness probe failed: $(tail -n 2 "$T/probe.log")"
pass "probes from the manifest: $(grep -c . "$T/probe.log") answers, $(tail -n 2 "$T/probe.log" | tr '\n' ' ')"
# A broken ConfigMap edit, swapped in as the kubelet does: the probes do not read the file, so
# they keep answering 0 (a probe that did would have the kubelet restart a healthy pod).
mkdir "$ETC/..2026_01_01_00_01_00.2"
printf 'listeners: [\n  - {name: main, address: 0.0.0.0:8080\n' >"$ETC/..2026_01_01_00_01_00.2/$CFG_KEY"
ln -s ..2026_01_01_00_01_00.2 "$ETC/..data_tmp" && mv -T "$ETC/..data_tmp" "$ETC/..data"
"$WEIR_BIN" --check-config "$CFG" >/dev/null 2>&1 && fail "the broken config passed --check-config"
[ "$(probe ready)" = 0 ] || fail "readiness probe failed with a broken config file: $(tail -n 2 "$T/probe.log")"
[ "$(probe live)" = 0 ] || fail "liveness probe failed with a broken config file: $(tail -n 2 "$T/probe.log")"
ln -s ..2026_01_01_00_00_00.1 "$ETC/..data_tmp" && mv -T "$ETC/..data_tmp" "$ETC/..data"
pass "with a broken $CFG_KEY swapped in, both probes still answer 0"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/metrics")
[ "$code" = 401 ] || fail "/metrics without the token answered $code, want 401"
# (to a file: grep -q would close the pipe early and curl's write error fail the pipeline)
curl -sf -H "Authorization: Bearer $WEIR_ADMIN_TOKEN" -o "$T/metrics" "http://127.0.0.1:$ADMIN_PORT/metrics" ||
    fail "/metrics with the token"
grep -q '^weir_' "$T/metrics" || fail "/metrics has no weir_ family: $(head -c 300 "$T/metrics")"
got=$(curl -sf -H "Authorization: Bearer $WEIR_ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT/memory" |
    $PY -c 'import json,sys; print(len(json.load(sys.stdin)["workers"]))')
[ "$got" = "$WORKERS" ] || fail "$got workers, want $WORKERS (requests.cpu)"
code=$(h2get "http://127.0.0.1:$WEIR_PORT/bytes/1000" -o "$T/b" -w "%{http_code}" 2>&1) || true
[ "$code" = 200 ] || fail "proxied GET: $code"
pass "$got workers from WEIR_WORKERS=$WORKERS; /metrics 401 without the token, 200 with it; proxied GET 200"

# SIGTERM with a request in flight: readiness 503 (draining), liveness still 200.
curl -sS --max-time 60 --http2-prior-knowledge -o "$T/slow" -w '%{http_code}' \
    "http://127.0.0.1:$WEIR_PORT/slow?ms=8000&bytes=100000" >"$T/slow.code" 2>"$T/slow.err" &
slow=$!
active() {
    curl -sf -H "Authorization: Bearer $WEIR_ADMIN_TOKEN" -o "$T/stats" "http://127.0.0.1:$ADMIN_PORT/stats" &&
        tr -d ' \n' <"$T/stats" | grep -q '"streams_active":[1-9]'
}
wait_for 20 active || fail "the slow request never became active"
kill -TERM "$WEIR_PID"
wait_for 10 grep -q 'draining' "$T/weir.log" || fail "no drain after SIGTERM"
r=$(probe ready); l=$(probe live)
[ "$r" = 1 ] || fail "readiness probe answered $r while draining, want 1: $(tail -n 2 "$T/probe.log")"
[ "$l" = 0 ] || fail "liveness probe answered $l while draining, want 0: $(tail -n 2 "$T/probe.log")"
pass "draining: readiness exits $r ($(grep '/ready' "$T/probe.log" | tail -n 1)), liveness exits $l ($(grep '/healthz' "$T/probe.log" | tail -n 1))"
wait "$slow" || fail "in-flight request failed: $(cat "$T/slow.err")"
[ "$(cat "$T/slow.code")" = 200 ] && [ "$(stat -c %s "$T/slow")" = 100000 ] || fail "in-flight request cut"
rc=0
wait "$WEIR_PID" || rc=$?
[ "$rc" = 0 ] || fail "weir exited $rc after the drain"
pass "the in-flight request completed (100000 bytes), weir exited 0"

# --- 5. with a CPU limit, `workers: auto` follows the quota of weir's own cgroup --------------------
# A pod's limits.cpu is a CPU quota on the container's cgroup (or the pod's, above it). weir
# is started in a child cgroup with a quota of one CPU (v2 cpu.max, or v1 cpu.cfs_quota_us),
# without WEIR_WORKERS: it must start one worker although the affinity mask has more CPUs.
# Skipped (this part only) where no cgroup can be made: not root, or no cpu controller.
unset WEIR_WORKERS WEIR_ADMIN
CG= CG_WHY=
NCPU=$(nproc)
if [ "$(id -u)" != 0 ]; then
    CG_WHY="creating a cgroup needs root"
elif [ "$NCPU" -lt 2 ]; then
    CG_WHY="one CPU in the affinity mask: a quota of one CPU would change nothing"
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    if grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null && mkdir "/sys/fs/cgroup/weir-e2e48-$$" 2>/dev/null; then
        CG="/sys/fs/cgroup/weir-e2e48-$$"
        echo "100000 100000" >"$CG/cpu.max" || CG_WHY="cannot write $CG/cpu.max"
    else
        CG_WHY="cgroup v2 without the cpu controller for children, or read-only"
    fi
else
    for d in /sys/fs/cgroup/cpu /sys/fs/cgroup/cpu,cpuacct; do
        [ -f "$d/cpu.cfs_quota_us" ] && mkdir "$d/weir-e2e48-$$" 2>/dev/null && CG="$d/weir-e2e48-$$" && break
    done
    if [ -n "$CG" ]; then
        { echo 100000 >"$CG/cpu.cfs_period_us" && echo 100000 >"$CG/cpu.cfs_quota_us"; } ||
            CG_WHY="cannot write $CG/cpu.cfs_quota_us"
    else
        CG_WHY="no writable cgroup v1 cpu hierarchy"
    fi
fi
if [ -n "$CG" ] && [ -z "$CG_WHY" ]; then
    cg_cleanup() { e2e_cleanup; rmdir "$CG" 2>/dev/null || true; }
    trap cg_cleanup EXIT
    REAL_BIN=$WEIR_BIN
    printf '#!/usr/bin/env bash\necho $$ >"%s/cgroup.procs" || exit 3\nexec "%s" "$@"\n' "$CG" "$REAL_BIN" >"$T/in-cgroup.sh"
    chmod +x "$T/in-cgroup.sh"
    WEIR_BIN="$T/in-cgroup.sh" WEIR_LISTEN=127.0.0.1:0 WEIR_ADMIN=127.0.0.1:0 start_weir -c "$CFG"
    grep -q "weir-e2e48-$$" "/proc/$WEIR_PID/cgroup" || fail "weir is not in $CG: $(cat "/proc/$WEIR_PID/cgroup")"
    got=$(curl -sf -H "Authorization: Bearer $WEIR_ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT/memory" |
        $PY -c 'import json,sys; print(len(json.load(sys.stdin)["workers"]))')
    [ "$got" = 1 ] || fail "workers: auto in $CG (a quota of one CPU) started $got workers, want 1 ($NCPU CPUs in the mask)"
    pass "a quota of one CPU on weir's own cgroup ($CG): 1 worker of $NCPU CPUs"
    stop_weir TERM || fail "weir exited $? after SIGTERM"
else
    echo "skip (part 5 only): $CG_WHY"
fi
