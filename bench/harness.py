#!/usr/bin/env python3
"""certbound benchmark harness (started by bench/run.sh, which installs peers and builds).

Runs every comparison interleaved (A, B, A, B, … for several rounds), each variant in its own
process timing its own loop, and writes BENCHMARKS.md, bench/ratios.png and bench/results.json.
Environment knobs: ROUNDS (default 5), LOAD_SECONDS (4), CONCURRENCY (16).
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROUNDS = int(os.environ.get("ROUNDS", "5"))
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "4"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "16"))
SCOPE = "api://bench/.default"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_json(cmd, env=None, timeout=300):
    """Runs one measuring process; returns its JSON line (raises with its stderr on failure)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=full_env, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{Path(str(cmd[0])).name} failed ({p.returncode}): {p.stderr.strip()[-600:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


class Server:
    """A server process that prints one JSON ready line on stdout."""

    def __init__(self, cmd, cwd=None, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=cwd, env=full_env)
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            raise RuntimeError(f"{Path(str(cmd[0])).name} did not start: {err.strip()[-600:]}")
        self.ready = json.loads(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pin(cpu):
    """`taskset -c CPU` prefix (issuance only: server on CPU 0, load generator on CPU 1)."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def machine():
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, shell=True, timeout=20).stdout.strip()
        except Exception as e:  # noqa: BLE001 — description only
            return f"unavailable ({e})"
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": sh("nproc"),
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p' | head -1"),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "rustc": sh("rustc --version"),
        "node": sh("node --version"),
        "python": platform.python_version(),
        "loadavg_at_start": sh("cut -d' ' -f1-3 /proc/loadavg"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--peers", required=True, help="peers.json written by run.sh")
    ap.add_argument("--root", required=True)
    a = ap.parse_args()
    work, bindir, root = Path(a.work), Path(a.bin), Path(a.root)
    peers = json.loads(Path(a.peers).read_text())
    cb = bindir / "cb-bench"
    certbound = bindir / "certbound"
    py = sys.executable
    res = {"machine": machine(), "peers": peers, "rounds": ROUNDS, "concurrency": CONCURRENCY,
           "load_seconds": LOAD_SECONDS, "comparisons": {}, "notes": []}
    notes = res["notes"]

    notes.append("azure_identity 1.0 puts the certificate's SHA-1 thumbprint in the assertion's `x5t` header in the "
                 "standard base64 alphabet (with padding); the development authority matches `x5t` against the "
                 "base64url spelling, so `cb-bench setup` draws the RSA certificate until both spellings agree "
                 "(no '+' or '/'). This affects only which certificate the peer uses, not its cache-hit path.")
    notes.append("oidc-provider prints `Unsupported runtime` on Node 20 (it asks for Node 22 LTS) and uses its "
                 "in-memory adapter; JWT-format client_credentials tokens are not stored, so the adapter is not on "
                 "the issuance path. It runs with NODE_ENV=production, the interop script unmodified.")
    notes.append("Memory: the first table row counts are the whole process (VmRSS includes the binary and runtime); "
                 "'per item' is the growth divided by the number of tokens or connections.")
    d = work / "state"
    shutil.rmtree(d, ignore_errors=True)
    s = run_json([cb, "setup", "--dir", d])
    ca, ccert, ckey = d / "ca.pem", d / "client.pem", d / "client.key"
    log("starting the certbound authority")
    auth = Server([*pin(0), certbound, "authority", "serve", "--dir", d / "authority"])
    servers = [auth]
    try:
        issuer, token_ep = auth.ready["issuer"], auth.ready["token_endpoint"]
        authority_host = "https://" + auth.ready["addr"]

        # 1. Token issuance.
        oidc = None
        if peers.get("oidc-provider", {}).get("ok"):
            try:
                oidc = Server([*pin(0), "node", "server.mjs", "--tls-cert", d / "server.pem", "--tls-key", d / "server.key",
                               "--client-cert", ccert, "--client-id", "bench"],
                              cwd=peers["oidc-provider"]["dir"], env={"NODE_ENV": "production"})
                servers.append(oidc)
            except Exception as e:  # noqa: BLE001
                notes.append(f"oidc-provider did not start: {e}")
        common = ["--cert", ccert, "--key", ckey, "--ca", ca, "--concurrency", CONCURRENCY,
                  "--seconds", LOAD_SECONDS, "--warmup", "1"]
        variants = {"certbound authority": [*pin(1), cb, "loadgen", "--url", token_ep, *common,
                                            "--form", "grant_type=client_credentials", "--form", "client_id=bench",
                                            "--form", f"scope={SCOPE}", "--form", "token_type=mtls_pop"]}
        if oidc:
            variants["oidc-provider (npm)"] = [*pin(1), cb, "loadgen", "--url", oidc.ready["issuer"] + "/token", *common,
                                               "--form", "grant_type=client_credentials", "--form", "client_id=bench",
                                               "--form", "scope=" + oidc.ready["scope"],
                                               "--form", "resource=" + oidc.ready["resource"]]
        res["comparisons"]["issuance"] = interleave("token issuance", variants, "per_s", warmup_rounds=1)
        if oidc:
            oidc.stop()
        # The authority keeps serving the cache-hit clients' first requests: unpin it.
        if pin(0):
            subprocess.run(["taskset", "-pc", "0-%d" % ((os.cpu_count() or 1) - 1), str(auth.proc.pid)],
                           capture_output=True)

        # 2. Cache-hit token retrieval.
        # (The loop length stays the last argument: the callgrind profile below replaces it.)
        hit = [cb, "cachehit", "--issuer", issuer, "--ca", ca, "--cert", ccert, "--key", ckey,
               "--client-id", "bench"]
        variants = {"certbound App::authorization_header_for_app": hit + ["--iters", "2000000"],
                    "certbound HeaderHandle::get": hit + ["--handle", "1", "--iters", "2000000"],
                    "certbound HeaderHandle::cached (borrowed)": hit + ["--handle", "borrowed", "--iters", "2000000"]}
        envs = {}
        if peers.get("azure_identity", {}).get("ok"):
            name = "azure_identity ClientCertificateCredential::get_token"
            variants[name] = [bindir / "azure-identity-peer", authority_host, s["tenant"], "bench-rsa", d / "rsa.pfx",
                              "bench", ca, SCOPE, "500000"]
            envs[name] = {"AZURE_AUTHORITY_HOST": authority_host}
        if peers.get("msal", {}).get("ok"):
            name = "MSAL for Python acquire_token_for_client"
            variants[name] = [py, root / "bench/py/msal_cachehit.py", issuer, "bench-rsa", d / "rsa.pem", d / "rsa.key",
                              ca, SCOPE, "20000"]
            envs[name] = {"REQUESTS_CA_BUNDLE": str(ca)}
        res["comparisons"]["cache_hit"] = interleave("cache-hit retrieval", variants, "ns_per_op", envs)
        # Profile (machine-independent): instructions per cache hit under callgrind, from the
        # difference between two loop lengths (setup and the first real request cancel out).
        if shutil.which("valgrind") and os.environ.get("PROFILE", "1") != "0":
            prof = {}
            for name, cmd in variants.items():
                if not str(cmd[0]).startswith(str(bindir)):
                    continue  # Python peers: the interpreter's instructions say little
                try:
                    prof[name] = callgrind_per_op(cmd, envs.get(name), work)
                    log(f"callgrind: {name}: {prof[name]:.0f} instructions per cache hit")
                except Exception as e:  # noqa: BLE001
                    notes.append(f"callgrind profile of {name} failed: {e}")
            res["comparisons"]["cache_hit"]["instructions_per_op"] = prof

        # 3. Validation.
        fx = d / "validate.json"
        variants = {
            "certbound Validator::validate (with binding)": [cb, "validate", "--fixture", fx, "--mode", "certbound",
                                                             "--iters", "20000"],
            "jsonwebtoken::decode (no binding)": [cb, "validate", "--fixture", fx, "--mode", "jsonwebtoken",
                                                  "--iters", "20000"],
        }
        if peers.get("pyjwt", {}).get("ok"):
            variants["PyJWT jwt.decode (no binding)"] = [py, root / "bench/py/pyjwt_validate.py", fx, "3000"]
        res["comparisons"]["validation"] = interleave("validation", variants, "ns_per_op")

        # 4. Bound-call overhead (interleaved inside one process against one server).
        log("bound-call overhead")
        t = run_json([cb, "transport", "--rounds", str(max(ROUNDS, 5)), "--requests", "3000",
                      "--concurrency", str(CONCURRENCY)], timeout=400)
        res["comparisons"]["transport"] = {
            "metric": "per_s",
            "variants": {"mtls_pop over mTLS (bound, binding checked)": stats(t["bound_mtls"]),
                         "Bearer over plain HTTPS": stats(t["bearer_https"])},
            "errors": {},
            "paired": {"Bearer over plain HTTPS": [x / y for x, y in zip(t["bound_mtls"], t["bearer_https"])]},
        }

        # 5. Memory.
        log("memory")
        mc = [run_json([cb, "memcache", "--entries", "100000", "--token-bytes", "900"]) for _ in range(3)]
        ic = []
        for _ in range(3):
            api = Server([certbound, "api", "serve", "--authority", issuer, "--audience", "api://bench",
                          "--ca-cert", ca, "--tls-cert", d / "server.pem", "--tls-key", d / "server.key"])
            try:
                time.sleep(0.3)
                ic.append(run_json([cb, "idleconn", "--addr", api.ready["addr"], "--ca", ca, "--cert", ccert,
                                    "--key", ckey, "--pid", api.proc.pid, "--conns", "500"]))
            finally:
                api.stop()
        res["comparisons"]["memory"] = {"memcache": mc, "idleconn": ic}
    finally:
        for srv in servers:
            srv.stop()

    (root / "bench/results.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    import report
    report.write(res, root)


def callgrind_per_op(cmd, env, work):
    """Instructions per loop iteration: callgrind totals at two loop lengths (the drivers run
    iters/10 warm-up iterations plus iters timed ones)."""
    import re
    totals = {}
    for n in (20000, 60000):
        full_env = dict(os.environ)
        full_env.update(env or {})
        c = [str(x) for x in cmd[:-1]] + [str(n)]
        p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/callgrind.out"] + c,
                           capture_output=True, text=True, env=full_env, timeout=300)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.strip()[-400:])
        m = re.search(r"Collected : (\d+)", p.stderr)
        if not m:
            raise RuntimeError("no callgrind total")
        totals[n] = int(m.group(1))
    return (totals[60000] - totals[20000]) / ((60000 - 20000) * 1.1)


def interleave(title, variants, metric, envs=None, warmup_rounds=0):
    """A, B, C, A, B, C, … ROUNDS times (after `warmup_rounds` discarded ones: JIT, pools);
    a failing variant is reported and dropped."""
    envs = envs or {}
    values = {k: [] for k in variants}
    errors = {}
    for r in range(-warmup_rounds, ROUNDS):
        for name, cmd in variants.items():
            if name in errors:
                continue
            try:
                out = run_json(cmd, env=envs.get(name))
                if out.get("errors"):
                    raise RuntimeError(f"{out['errors']} failed requests (first: {out.get('first_error')})")
                if r < 0:
                    continue
                values[name].append(out[metric])
                if r == 0:
                    log(f"{title}: {name}: {out}")
            except Exception as e:  # noqa: BLE001 — reported in BENCHMARKS.md
                errors[name] = str(e)
                log(f"{title}: {name} FAILED: {e}")
    base = next(iter(variants))
    paired = {}
    for name in variants:
        if name == base or name in errors:
            continue
        n = min(len(values[base]), len(values[name]))
        paired[name] = [(values[base][i] / values[name][i]) if metric == "per_s" else (values[name][i] / values[base][i])
                        for i in range(n)]
    return {"metric": metric,
            "variants": {k: stats(v) for k, v in values.items() if v},
            "errors": errors, "paired": paired, "values": values}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
