# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Shared helpers for bench/*/run scripts (bash). Source it; it defines
# functions only. See bench/README.md and docs BENCHMARKING.md for the method.

# bench_die MSG...: print to stderr and exit 1 (the caller's EXIT trap cleans up).
bench_die() {
    echo "bench: error: $*" >&2
    exit 1
}

bench_log() {
    echo "bench: $*" >&2
}

# bench_need_tools TOOL...: abort naming every missing tool.
bench_need_tools() {
    local t missing=()
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        bench_die "missing tools: ${missing[*]} (scripts/bootstrap --bench installs them)"
    fi
}

# bench_is_uint VALUE: true when VALUE is a positive integer.
bench_is_uint() {
    [[ "$1" =~ ^[1-9][0-9]*$ ]]
}

# bench_cpu_jiffies CPU: non-idle jiffies of one CPU from /proc/stat
# (user + nice + system + irq + softirq + steal; idle and iowait excluded).
bench_cpu_jiffies() {
    awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9; found = 1 }
        END { if (!found) exit 1 }' /proc/stat
}

# bench_proc_jiffies PID...: utime + stime (all threads) summed over PIDs.
# A PID that vanished counts 0.
bench_proc_jiffies() {
    local pid total=0 rest
    local -a f
    for pid in "$@"; do
        rest=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${rest##*) }           # drop "pid (comm) ", comm may hold spaces
        read -r -a f <<<"$rest"
        # f[0] is field 3 (state); utime is field 14, stime field 15.
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# bench_children PID: the direct children of PID, one per line.
bench_children() {
    cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | sed '/^$/d'
}

# bench_status_kib PID FIELD: a kB field of /proc/PID/status (VmRSS, VmHWM).
bench_status_kib() {
    awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' \
        "/proc/$1/status" 2>/dev/null || echo 0
}

# bench_free_port: a TCP port on 127.0.0.1 free right now.
bench_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# bench_wait_http URL SECONDS PID: wait until URL answers with any HTTP status
# while PID lives. Returns 1 on timeout or when PID died.
bench_wait_http() {
    local url=$1 secs=$2 pid=$3 i code
    for ((i = 0; i < secs * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null || true)
        if [[ -n "$code" && "$code" != 000 ]]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# bench_stop PID...: SIGTERM, wait up to 5 s, then SIGKILL. Only the given PIDs.
bench_stop() {
    local pid i
    for pid in "$@"; do
        [[ -n "$pid" ]] || continue
        kill -TERM "$pid" 2>/dev/null || continue
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# bench_cpu_model: the CPU model name.
bench_cpu_model() {
    awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo
}
