"""Writes BENCHMARKS.md and bench/ratios.png from the harness results (never by hand)."""
import statistics
from pathlib import Path

SECTIONS = [
    ("issuance", "1. Token issuance",
     "ES256 JWT access token, `client_credentials`, mTLS client authentication "
     "(`self_signed_tls_client_auth`), certificate-bound (`cnf.x5t#S256`), driven by the same load generator "
     "(`cb-bench loadgen`: reqwest + rustls with the client certificate, HTTP/1.1 keep-alive — oidc-provider's "
     "`https.createServer` speaks HTTP/1.1 only, so both get HTTP/1.1) at the same concurrency. The load generator "
     "checks the first token of every run: `alg` ES256 and `cnf.x5t#S256` equal to its certificate's thumbprint. "
     "Each round is a fresh load-generator process: 1 s warm-up, then a fixed-duration measurement; one whole "
     "round of each is run first and discarded (Node's JIT, connection pools). Both servers are pinned to CPU 0 and "
     "the load generator to CPU 1 (`taskset`), so each server gets the same single core (oidc-provider is a "
     "single-threaded Node process; the certbound authority runs its multi-threaded runtime on that one core).",
     "tokens/s", 5.0, "certbound ÷ oidc-provider (tokens/s)"),
    ("cache_hit", "2. Cache-hit token retrieval",
     "Each variant in its own process: acquire one real token from the certbound development authority, then time "
     "its own loop of cache hits for the same scope (after a 10 % warm-up). certbound, three ways to the same "
     "bound `mtls_pop` header (`HeaderOptions::mtls_pop()`): `App::authorization_header_for_app(scopes, options)` "
     "(scopes looked up on every call); a prepared `HeaderHandle::get` (made once per API with "
     "`App::header_handle`; returns an owned header, one reference count); `HeaderHandle::cached` (the same hit "
     "borrowed, no reference count; the summary's goal ratio uses the fastest certbound way). azure_identity "
     "1.0 `ClientCertificateCredential::get_token` (private_key_jwt with the PFX's RSA key, the flow that credential "
     "implements, pointed at the authority with `AZURE_AUTHORITY_HOST`; its cache is filled by that first real "
     "request). MSAL for Python `ConfidentialClientApplication.acquire_token_for_client` (`oidc_authority` = the "
     "authority's issuer, certificate credential). Every peer checks that the loop never fetched a new token.",
     "ns/op", 10.0, "fastest peer ns/op ÷ certbound ns/op"),
    ("validation", "3. Validation",
     "Same ES256 token, same P-256 key. certbound: `Validator::validate` — the full resource-side rules (strict "
     "JSON, `alg`/`typ`/`crit`, key lookup, signature, `iss`/`aud`/`exp`/`nbf`/`iat`) **plus the `cnf` binding check** "
     "against the client-certificate thumbprint. jsonwebtoken 10 (aws-lc-rs): `decode` with `iss`/`aud`/`exp` "
     "validation, no binding. PyJWT (`pyjwt[crypto]`): `jwt.decode` with `iss`/`aud`/`exp`, no binding.",
     "ns/op", 0.9, "jsonwebtoken ns/op ÷ certbound ns/op (throughput ratio)"),
    ("transport", "4. Bound-call overhead",
     "Requests/s against the same protected API (`certbound-resource` sample router, full validation on every "
     "request) over reused HTTP/2 connections: mtls_pop-bound calls over mTLS (client certificate presented, binding "
     "checked) against Bearer calls over plain HTTPS. Rounds interleaved inside one process "
     "(the code of `crates/certbound-downstream/benches/transport.rs`).",
     "requests/s", 0.8, "bound ÷ plain Bearer (requests/s)"),
]


def fmt(v, unit):
    if unit == "ns/op":
        return f"{v:,.0f}"
    return f"{v:,.0f}"


def headline(comp, key):
    """The ratio that the goal is about (and its paired-round range)."""
    vs = comp["variants"]
    names = list(vs)
    if not names:
        return None
    base = names[0]
    if key == "cache_hit":
        # The fastest certbound way against the fastest peer (both certbound ways are in the table).
        ours = [n for n in names if n.startswith("certbound")]
        peers = [n for n in names if not n.startswith("certbound")]
        if not peers or not ours:
            return None
        best = min(ours, key=lambda n: vs[n]["median"])
        fastest = min(peers, key=lambda n: vs[n]["median"])
        raw = comp.get("values", {})
        if best != base and raw.get(best) and raw.get(fastest):
            paired = [p / o for p, o in zip(raw[fastest], raw[best])]
        else:
            paired = comp["paired"].get(fastest, [])
        return {"against": fastest, "ratio": vs[fastest]["median"] / vs[best]["median"],
                "paired": paired, "ours": best}
    other = names[1] if len(names) > 1 else None
    if other is None:
        return None
    if comp["metric"] == "per_s":
        r = vs[base]["median"] / vs[other]["median"]
    else:
        r = vs[other]["median"] / vs[base]["median"]
    return {"against": other, "ratio": r, "paired": comp["paired"].get(other, [])}


def write(res, root):
    root = Path(root)
    m = res["machine"]
    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("Generated by `bash bench/run.sh` (do not edit by hand). Every comparison runs **interleaved** "
      f"(A, B, A, B, … {res['rounds']} rounds) on the same machine in the same run; the tables give the median, min "
      "and max over rounds and the **ratio of medians** (with the range of the per-round paired ratios).")
    w("")
    w("> **The machine is shared with other engineers compiling at the same time**: absolute numbers are noisy "
      "and low; read the ratios, which are taken round by round under the same load.")
    w("")
    w("## Machine")
    w("")
    w(f"- CPUs (`nproc`): {m['nproc']} — {m['cpu']}")
    w(f"- Memory: {m['memory_gib']} GiB; kernel {m['kernel']}; load average at start {m['loadavg_at_start']}")
    w(f"- {m['rustc']}; Node {m['node']}; Python {m['python']}")
    w(f"- Date: {m['date']}")
    w("")
    w("## Peers")
    w("")
    w("| peer | installed from | status |")
    w("|---|---|---|")
    for name, p in res["peers"].items():
        w(f"| {name} | {p.get('from', '')} | {'installed ' + p.get('version', '') if p.get('ok') else 'NOT INSTALLED: ' + p.get('error', '')} |")
    w("")
    w("## Summary")
    w("")
    w("| comparison | ratio (median) | paired-round range | goal | met |")
    w("|---|---:|---:|---:|:---:|")
    chart = []
    for key, title, _, unit, goal, label in SECTIONS:
        comp = res["comparisons"].get(key)
        h = headline(comp, key) if comp else None
        if not h:
            w(f"| {title} | n/a | | ≥ {goal}× | — |")
            continue
        pr = h["paired"]
        rng = f"{min(pr):.2f}–{max(pr):.2f}×" if pr else ""
        met = "yes" if h["ratio"] >= goal else "**no**"
        ours = f"{h['ours']} " if h.get("ours") else ""
        w(f"| {title}: {label} ({ours}vs {h['against']}) | **{h['ratio']:.2f}×** | {rng} | ≥ {goal}× | {met} |")
        chart.append((title.split(". ", 1)[1], h["ratio"], goal, pr))
    w("")
    unmet = [(t, r, g) for (t, r, g, _) in chart if r < g]
    if unmet:
        w("### Goals not met, and why")
        w("")
        for t, r, g in unmet:
            w(f"- **{t}: {r:.2f}× against a goal of {g}×.** " + explain(t, res))
        w("")
    w("![ratios](bench/ratios.png)")
    w("")
    for key, title, desc, unit, goal, label in SECTIONS:
        comp = res["comparisons"].get(key)
        w(f"## {title}")
        w("")
        w(desc)
        w("")
        if not comp:
            w("Not run.")
            w("")
            continue
        vs = comp["variants"]
        names = list(vs)
        w(f"| variant | median {unit} | min | max | ratio (certbound vs this) |")
        w("|---|---:|---:|---:|---:|")
        for i, n in enumerate(names):
            s = vs[n]
            if i == 0:
                ratio = "—"
            else:
                base = vs[names[0]]["median"]
                r = base / s["median"] if comp["metric"] == "per_s" else s["median"] / base
                ratio = f"{r:.2f}×"
            w(f"| {n} | {fmt(s['median'], unit)} | {fmt(s['min'], unit)} | {fmt(s['max'], unit)} | {ratio} |")
        w("")
        w("Ratios > 1 mean certbound is faster (throughput ratio; for ns/op the other variant's time ÷ certbound's).")
        ipo = comp.get("instructions_per_op")
        if ipo:
            w("")
            w("Profile (callgrind, instructions per call, independent of machine load): "
              + "; ".join(f"{n}: **{v:,.0f}**" for n, v in ipo.items()) + ".")
        for n, e in comp.get("errors", {}).items():
            w("")
            w(f"**{n} failed and was left out:** `{e}`")
        w("")
    mem = res["comparisons"].get("memory")
    w("## 5. Memory")
    w("")
    if mem:
        w("Resident memory from `/proc/PID/status` (VmRSS / VmHWM), three runs each.")
        w("")
        w("| process | before (VmRSS kB) | after (VmRSS kB) | VmHWM kB | growth | per item |")
        w("|---|---:|---:|---:|---:|---:|")
        for r in mem["memcache"]:
            g = r["after"]["VmRSS_kB"] - r["before"]["VmRSS_kB"]
            w(f"| `cb-bench memcache`: {r['entries']:,} bound tokens ({r['token_bytes']} B each) in `MemoryTokenCache` "
              f"| {r['before']['VmRSS_kB']:,} | {r['after']['VmRSS_kB']:,} | {r['after']['VmHWM_kB']:,} | {g/1024:,.1f} MiB "
              f"| {g*1024/r['entries']:,.0f} B/token |")
        for r in mem["idleconn"]:
            g = r["after"]["VmRSS_kB"] - r["before"]["VmRSS_kB"]
            w(f"| `certbound api serve` with {r['conns']} idle mTLS connections (each completed one request) "
              f"| {r['before']['VmRSS_kB']:,} | {r['after']['VmRSS_kB']:,} | {r['after']['VmHWM_kB']:,} | {g/1024:,.1f} MiB "
              f"| {g/r['conns']:,.1f} kB/conn |")
        w("")
        w("The token cache figure includes the cache keys (authority, tenant, client, scope, scheme, thumbprint) and "
          "moka's bookkeeping; a 900-byte token is the size of a real bound token from the authority plus headroom.")
    else:
        w("Not run.")
    w("")
    if res.get("notes"):
        w("## Notes")
        w("")
        for n in res["notes"]:
            w(f"- {n}")
        w("")
    w("## Reproduce")
    w("")
    w("`bash bench/run.sh` installs the peers (npm `oidc-provider`, PyPI `msal`, `pyjwt[crypto]`, `matplotlib`, "
      "crates.io `azure_identity`) into `bench/.work/`, builds everything in release mode, runs the comparisons and "
      "rewrites this file, `bench/ratios.png` and `bench/results.json` (raw per-round values). Knobs: `ROUNDS`, "
      "`LOAD_SECONDS`, `CONCURRENCY`.")
    w("")
    (root / "BENCHMARKS.md").write_text("\n".join(out))
    chart_png(chart, root / "bench/ratios.png", res)


def chart_png(chart, path, res):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"matplotlib unavailable, no chart: {e}")
        return
    fig, ax = plt.subplots(figsize=(9, 4.5))
    labels = [c[0] for c in chart]
    ratios = [c[1] for c in chart]
    goals = [c[2] for c in chart]
    colors = ["tab:green" if r >= g else "tab:red" for r, g in zip(ratios, goals)]
    xs = range(len(chart))
    ax.bar(xs, ratios, color=colors, width=0.55, label="certbound ratio (median)")
    for i, c in enumerate(chart):
        if c[3]:
            ax.vlines(i, min(c[3]), max(c[3]), colors="black", linewidth=1.5)
        ax.hlines(c[2], i - 0.35, i + 0.35, colors="black", linestyles="dashed")
        ax.text(i + 0.3, c[1] * 1.03, f"{c[1]:.2f}×", ha="left")
    ax.set_xticks(list(xs), labels)
    ax.set_yscale("log")
    ax.set_ylabel("ratio (> 1: certbound faster)")
    ax.set_title(f"certbound vs peers — goals dashed, paired-round range as bars ({res['machine']['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def explain(title, res):
    """The measured reason for a missed goal (figures from this run's profile)."""
    if title.startswith("Cache-hit"):
        comp = res["comparisons"]["cache_hit"]
        ipo = comp.get("instructions_per_op", {})
        cb = next((v for n, v in ipo.items() if n.startswith("certbound")), None)
        az = next((v for n, v in ipo.items() if n.startswith("azure")), None)
        vs = comp["variants"]
        plain = vs.get("certbound App::authorization_header_for_app", {}).get("median")
        handle = vs.get("certbound HeaderHandle::get", {}).get("median")
        borrowed = vs.get("certbound HeaderHandle::cached (borrowed)", {}).get("median")
        hb = ipo.get("certbound HeaderHandle::get")
        hbb = ipo.get("certbound HeaderHandle::cached (borrowed)")
        text = ("The fastest peer is not a network client but azure_identity's own in-process cache: an "
                "`RwLock<HashMap>` lookup plus a clone of the token, already a few hundred nanoseconds. ")
        if plain and handle:
            text += (f"certbound has three cache-hit paths: `authorization_header_for_app(scopes, options)` "
                     f"({plain:,.0f} ns: it hashes and compares the scopes on every call), a prepared "
                     f"`HeaderHandle::get` ({handle:,.0f} ns: one `ArcSwap` load, a credential-generation check, "
                     "a coarse-clock read and one reference-count increment for the owned header)")
            text += (f" and `HeaderHandle::cached` ({borrowed:,.0f} ns: the same without the reference count, "
                     "the header borrowed). " if borrowed else ". ")
        if cb and az:
            text += (f"Under callgrind a certbound `authorization_header_for_app` hit costs {cb:,.0f} instructions "
                     f"against azure_identity's {az:,.0f}")
            text += f", a `HeaderHandle::get` hit {hb:,.0f}" if hb else ""
            text += f", a borrowed hit {hbb:,.0f}" if hbb else ""
            text += ". "
        text += ("10× would need a hit in about a tenth of the peer's time (~"
                 + (f"{vs[min((n for n in vs if not n.startswith('certbound')), key=lambda n: vs[n]['median'])]['median'] / 10:,.0f}" if any(not n.startswith('certbound') for n in vs) else "20")
                 + " ns). What is left in a handle's hit is atomic read-modify-write traffic — the `ArcSwap` "
                 "debt slot and, for the owned header, its reference count (increment, and the decrement when "
                 "the caller drops it) — several nanoseconds each on these shared virtual cores, plus the "
                 "instruction count above. "
                 "Against MSAL for Python the ratio is far above 10× (see the table).")
        return text
    if title.startswith("Token issuance"):
        return ("Ratios vary with the other engineers' load on the shared cores; the paired-round range shows the "
                "spread. The load generator runs on its own core, so the ratio is per server core.")
    if title.startswith("Validation"):
        return ("Both spend almost all their time in the same ES256 verification (aws-lc-rs); the difference is "
                "parsing and claim checks.")
    return "See the per-round values in bench/results.json."
