"""Turn bench.py's raw figures into the markdown table, latest.json and the chart.

Usage on its own (re-render from a saved run):  python3 bench/report.py bench/results/latest.json
"""
import json
import os
import shutil
import subprocess
import sys


def _rows(r):
    """(primary rows with targets, informational rows)."""
    h, sh, ssh, mem, ps = r["http"], r["shell"], r["ssh"], r["memory"], r["psrp"]
    rps = lambda x: "%.0f req/s%s" % (x["median"], " (steady state)" if x.get("steady") else "")  # noqa: E731
    ms = lambda x: "%.2f ms (p95 %.2f)" % (x["median"], x["p95"])  # noqa: E731
    mbs = lambda x: "%.1f MB/s (worst %.1f)" % (x["median"], x["p95"])  # noqa: E731
    prim = [
        dict(key="identify", name="Identify, unauthenticated, HTTP keep-alive",
             winrmd=rps(h["identify_http"]), ref="nginx static POST, HTTP: " + rps(h["nginx_http"]),
             ratio=h["identify_http"]["median"] / h["nginx_http"]["median"],
             how="winrmd req/s ÷ nginx req/s", op=">=", target=0.5, target_text="≥ 0.5"),
        dict(key="get", name="config Get, Basic, HTTP keep-alive (AllowUnencrypted)",
             winrmd=rps(h["get_http"]), ref="nginx static POST, HTTP: " + rps(h["nginx_http"]),
             ratio=h["get_http"]["median"] / h["nginx_http"]["median"],
             how="winrmd req/s ÷ nginx req/s", op=">=", target=0.4, target_text="≥ 0.4"),
        dict(key="shell_rtt", name="Shell round trip `true`: Create+Command+Receive+Signal+Delete, HTTPS",
             winrmd=ms(sh["rtt_https"]), ref="`ssh` multiplexed (ControlMaster) `true`: " + ms(ssh["mux"]),
             ratio=sh["rtt_https"]["median"] / ssh["mux"]["median"],
             how="winrmd median ms ÷ ssh-mux median ms", op="<=", target=0.1, target_text="≤ 0.1"),
        dict(key="stream", name="stdout streaming, %d MiB of `head -c` /dev/zero, HTTPS" % r["params"]["stream_mib"],
             winrmd=mbs(sh["stream_https"]), ref="ssh (multiplexed) `head -c`: " + mbs(ssh["stream"]),
             ratio=sh["stream_https"]["median"] / ssh["stream"]["median"],
             how="winrmd MB/s ÷ ssh MB/s", op=">=", target=0.8, target_text="≥ 0.8"),
        dict(key="memory", name="Daemon memory per idle shell (%d shells, %s of monitor + worker)"
             % (mem["shells"], mem["metric"]),
             winrmd="%.1f KiB (monitor %.1f + worker %.1f)" % (mem["per_shell_kib"], mem["monitor_per_shell_kib"],
                                                               mem["worker_per_shell_kib"]),
             ref="budget 64 KiB", ratio=mem["per_shell_kib"] / 64.0,
             how="KiB per shell ÷ 64 KiB", op="<=", target=1.0, target_text="≤ 1 (≤ 64 KiB)"),
    ]
    for p in prim:
        p["met"] = p["ratio"] >= p["target"] if p["op"] == ">=" else p["ratio"] <= p["target"]
    info = [
        ("Identify, unauthenticated, HTTPS keep-alive", rps(h["identify_https"]),
         "nginx HTTPS: " + rps(h["nginx_https"]), h["identify_https"]["median"] / h["nginx_https"]["median"],
         "winrmd ÷ nginx"),
        ("config Get, Basic, HTTPS keep-alive", rps(h["get_https"]),
         "nginx HTTPS: " + rps(h["nginx_https"]), h["get_https"]["median"] / h["nginx_https"]["median"],
         "winrmd ÷ nginx"),
        ("Shell round trip `true` (Create..Delete), HTTP", ms(sh["rtt_http"]), "ssh mux: " + ms(ssh["mux"]),
         sh["rtt_http"]["median"] / ssh["mux"]["median"], "winrmd ms ÷ ssh-mux ms"),
        ("Command `true` on an open shell (Command+Receive+Signal), HTTPS", ms(sh["cmd_https"]),
         "ssh mux: " + ms(ssh["mux"]), sh["cmd_https"]["median"] / ssh["mux"]["median"], "winrmd ms ÷ ssh-mux ms"),
        ("Command `true` on an open shell, HTTP", ms(sh["cmd_http"]),
         "ssh mux: " + ms(ssh["mux"]), sh["cmd_http"]["median"] / ssh["mux"]["median"], "winrmd ms ÷ ssh-mux ms"),
        ("Round trip with a fresh client (TCP + TLS + PAM each run), HTTPS", ms(sh["rtt_fresh_https"]),
         "fresh `ssh` (new connection + key auth): " + ms(ssh["fresh"]),
         sh["rtt_fresh_https"]["median"] / ssh["fresh"]["median"], "winrmd ms ÷ ssh-fresh ms"),
        ("stdout streaming, HTTP", mbs(sh["stream_http"]), "ssh: " + mbs(ssh["stream"]),
         sh["stream_http"]["median"] / ssh["stream"]["median"], "winrmd ÷ ssh"),
    ]
    if ps:                      # None where pypsrp (PyPI) was not available
        info += [
            ("PSRP pipeline round trip (pypsrp, `Write-Output x`, open pool), HTTP", ms(ps),
             "ssh mux `true`: " + ms(ssh["mux"]), ps["median"] / ssh["mux"]["median"], "winrmd ms ÷ ssh-mux ms"),
            ("PSRP RunspacePool open (spawns psrp_runspace.py)", "%.0f ms" % ps["open_ms"], "—", None, ""),
        ]
    else:
        info.append(("PSRP pipeline round trip (pypsrp)", "not measured: pypsrp needs PyPI", "—", None, ""))
    pw = r.get("pwsh")
    if pw:
        info += [
            ("PowerShell round trip `Invoke-Command -Session { 1 }`, real pwsh runspace, HTTPS",
             ms(pw["remote"]), "the same script in a local in-process runspace: %.3f ms" % pw["local"]["median"],
             pw["remote"]["median"] / pw["local"]["median"], "remote ms ÷ local ms (the floor)"),
            ("`Copy-Item -ToSession` of %d MiB, HTTPS" % pw["copy"]["mib"], "%.2f s" % pw["copy"]["median"],
             "`scp` of the same file (multiplexed ssh): %.2f s" % ssh["scp"]["median"],
             pw["copy"]["median"] / ssh["scp"]["median"], "winrmd s ÷ scp s"),
            ("PSSession open (New-PSSession: Create, pwsh start, pool open)", "%.0f ms" % pw["open_ms"], "—", None,
             ""),
        ]
    elif "pwsh" in r:
        info.append(("PowerShell round trip and Copy-Item (real pwsh)",
                     "not measured: PowerShell is not installed (it comes from NuGet)", "—", None, ""))
    if "local_sh" in ssh:       # results from before this figure existed lack it
        info.append(("Floor: `/bin/sh -c true` started locally by the same timer (no network, no daemon)",
                     ms(ssh["local_sh"]), "ssh mux: " + ms(ssh["mux"]),
                     ssh["local_sh"]["median"] / ssh["mux"]["median"], "local ms ÷ ssh-mux ms"))
    return prim, info


def markdown(r):
    prim, info = _rows(r)
    m, p, h, mem = r["machine"], r["params"], r["http"], r["memory"]
    out = []
    out.append("# winrmd benchmark — %s\n" % r["date"])
    out.append("Command: `make bench` (bench/run.sh → bench/bench.py), as root, from the top of the tree.")
    out.append("")
    out.append("Machine: %s, %d CPUs, kernel %s; %s. Load average at the end: %s. winrmd %s (git %s). "
               "%s; %s; %s; %s." % (m["cpu"], m["cpus"], m["kernel"], m["pinning"], " ".join(m["loadavg"]),
                                    m["winrmd"], m["git"], m["nginx"], m["openssh"], m["wrk"], m["go"]))
    out.append("")
    out.append("Parameters: wrk -t1 -c%d, %d runs × %d s after a 2 s warm-up (median of the runs); "
               "%d round trips after 3 warm-ups (median, p95); %d × %d MiB streamed after 1 warm-up; "
               "%d idle shells. The whole run took %.0f s."
               % (p["conns"], p["runs"], p["duration_s"], p["n"], p["stream_runs"], p["stream_mib"], p["shells"],
                  r["elapsed_s"]))
    out.append("")
    out.append("## Targets (issue 7)\n")
    out.append("| # | measurement | winrmd | reference | ratio | how the ratio is computed | target | met? |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for i, row in enumerate(prim, 1):
        out.append("| %d | %s | %s | %s | **%.3f** | %s | %s | %s |" % (
            i, row["name"], row["winrmd"], row["ref"], row["ratio"], row["how"], row["target_text"],
            "**yes**" if row["met"] else "**NO**"))
    out.append("")
    out.append("## Other figures (no target)\n")
    out.append("| measurement | winrmd | reference | ratio | ratio is |")
    out.append("| --- | --- | --- | --- | --- |")
    for name, w, ref, ratio, how in info:
        out.append("| %s | %s | %s | %s | %s |" % (name, w, ref, "—" if ratio is None else "%.3f" % ratio, how))
    out.append("")
    out.append("## Details\n")
    out.append("- Reply sizes: Identify %d bytes (nginx returns a body of exactly these bytes), config Get %d bytes."
               % (h["identify_reply_bytes"], h["get_reply_bytes"]))
    out.append("- wrk runs are interleaved (nginx, Identify, Get, nginx, ...) so that other load on the machine "
               "hits all alike. The config Get figures are steady state: responses counted after the first "
               "%.1f s of each run, when every connection has made its one PAM check (32 connections × one "
               "PAM password check each, run in parallel children of the monitor); wrk's whole-run req/s is listed too."
               % h.get("steady_skip_s", 0))
    for k in ("nginx_http", "identify_http", "get_http", "nginx_https", "identify_https", "get_https"):
        x = h[k]
        lat = ", ".join("p50 %s p99 %s" % (l.get("50", "?"), l.get("99", "?")) for l in x["latency"])
        out.append("- wrk %s: runs %s req/s%s; latency per run: %s%s" % (
            k, ", ".join("%.0f" % v for v in x["runs"]),
            (" (steady state; whole run %s)" % ", ".join("%.0f" % v for v in x["whole_runs"]) if x.get("steady")
             else "") + ("; winrmd worker CPU use %s" % ", ".join("%.0f%%" % (100 * c) for c in x["worker_cpu"])
                         if x.get("worker_cpu") else ""),
            lat,
            "; socket errors: " + "; ".join(x["socket_errors"]) if x["socket_errors"] else ""))
    k = mem["metric"]
    c2 = mem.get("after_cycle2", mem["after_delete"])
    out.append("- Memory (%s, KiB): monitor %d → %d with the shells open → %d after Delete of all → %d after a second "
               "open+delete cycle of %d shells; worker %d → %d → %d → %d. Monitor children (worker + processes) "
               "%d → %d (idle shells start no process). %d shells opened in %.1f s, deleted in %.1f s."
               % (k, mem["before"]["monitor"][k], mem["after"]["monitor"][k], mem["after_delete"]["monitor"][k],
                  c2["monitor"][k], mem["shells"], mem["before"]["worker"][k], mem["after"]["worker"][k],
                  mem["after_delete"]["worker"][k], c2["worker"][k], mem["children_before"], mem["children_after"],
                  mem["shells"], mem["create_seconds"], mem["delete_seconds"]))
    for tr in ("https", "http"):
        c = r["shell"]["stream_" + tr].get("cpu")
        if c:
            out.append("- Streaming over %s: CPU seconds during %.1f s of streaming (warm-up included): Go client %.1f, "
                       "winrmd worker %.1f, monitor %.1f, the commands (`head`) %.1f." % (
                           tr.upper(), c["wall"], c["client"], c["worker"], c["monitor"], c["commands"]))
    out.append("- The shell round trip is masterzen/winrm's `client.Run(\"true\")` on one client (HTTP keep-alive, "
               "so one PAM check per connection): Create, Command, Receive until the exit code, Signal "
               "(terminate), Delete — 5 HTTP requests. The ssh figures are the wall time of the `ssh` client "
               "process, including its own start-up, as a script would see it.")
    out.append("- Servers (winrmd monitor + worker + the processes it starts, nginx with 1 worker process, sshd) "
               "share one pinned CPU; every client (wrk -t1, the Go client, ssh, python) the other.")
    out.append("")
    return "\n".join(out)


def chart(r, out_dir):
    gp = shutil.which("gnuplot")
    if not gp:
        return None
    prim, _ = _rows(r)
    labels = ["Identify HTTP\\n/ nginx", "config Get, Basic, HTTP\\n/ nginx", "shell round trip\\n/ ssh mux",
              "streaming\\n/ ssh", "memory per shell\\n/ 64 KiB"]
    dat = os.path.join(out_dir, ".latest-chart.dat")
    with open(dat, "w") as f:
        for i, (row, lab) in enumerate(zip(prim, labels)):
            color = 0x2CA02C if row["met"] else 0xD62728
            f.write('%d "%s" %.6g %.6g %d "%s"\n' % (i, lab, row["ratio"], row["target"], color,
                                                     ("%s %.2g" % ("≥" if row["op"] == ">=" else "≤",
                                                                    row["target"]))))
    ymax = max([p["ratio"] for p in prim] + [p["target"] for p in prim]) * 3
    ymin = min([p["ratio"] for p in prim] + [p["target"] for p in prim]) / 3
    png = os.path.join(out_dir, "latest.png")
    script = """
set terminal pngcairo size 1000,600 font "DejaVu Sans,10"
set bmargin 5
set output '%(png)s'
set title "winrmd / reference ratios (%(date)s) — green: target met, red: missed; dashed: target"
set logscale y
set yrange [%(ymin)g:%(ymax)g]
set xrange [-0.6:4.6]
set ylabel "ratio (log scale)"
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
unset key
set xtics nomirror
plot '%(dat)s' using 1:3:5:xtic(2) with boxes lc rgb variable, \\
     '' using ($1-0.4):4:(0.8):(0) with vectors nohead dt 2 lw 3 lc rgb "black", \\
     '' using 1:3:(sprintf("%%.3g", $3)) with labels offset 0,0.8, \\
     '' using ($1+0.42):4:6 with labels left offset 0,0.6 font ",9"
""" % dict(png=png, date=r["date"], ymin=ymin, ymax=ymax, dat=dat)
    p = subprocess.run([gp], input=script, capture_output=True, text=True, timeout=60)
    os.unlink(dat)
    if p.returncode != 0:
        sys.stderr.write("gnuplot failed: %s\n" % p.stderr)
        return None
    return png


def write(results, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    md = markdown(results)
    with open(os.path.join(out_dir, "latest.md"), "w") as f:
        f.write(md)
    png = chart(results, out_dir)
    print(md)
    print("Written: %s, %s%s" % (os.path.join(out_dir, "latest.md"), os.path.join(out_dir, "latest.json"),
                                 ", " + png if png else " (no chart: gnuplot missing)"))


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        res = json.load(f)
    write(res, os.path.dirname(os.path.abspath(sys.argv[1])))
