#!/usr/bin/python3
"""tests/control/metrics_compare.py — a Prometheus scrape of punchlined against its other
reports, for tests/control/metrics_endpoint_test.sh.

Usage:
  metrics_compare.py same-stats BEFORE AFTER
                 exit 0 when two `punchctl stats --json` outputs have the same packet counters
                 (rx, tx, handed off, dropped per core): nothing moved between them
  metrics_compare.py stats STATS SCRAPE [EXPECT_NO_SERVICE EXPECT_ALLOCATIONS]
                 every number of /stats (per core and in all: rx and tx packets and bytes,
                 handed off, dropped, each drop reason, STUN successes, allocations and table
                 capacity) against the scrape's; the conservation law from the scrape alone
  metrics_compare.py report ENGINE_LOG SCRAPE
                 the engine's exit report (its "turn" and "turn auth" lines, its "relay lcoreN"
                 lines) against the scrape's TURN outcomes, refused authentications and
                 relayed datagrams
  metrics_compare.py sfu ENGINE_LOG SCRAPE
                 every SFU family present (every admission outcome on every core), and the
                 engine's exit report (its "sfu lcoreN" lines and its "sfu OUTCOME" lines)
                 against the scrape's SFU counters; legs + expired, not each, since a leg may
                 expire between the scrape and the exit

The engine's totals are sums over the per-core series (the exporter has no aggregate series).
Each check prints "ok: ..." or "FAIL: ..."; the exit status is the number of failures.
"""
import json
import os
import re
import sys

failures = 0


def same(what, expected, got):
    global failures
    if expected == got:
        print(f"ok: {what}: {expected}")
    else:
        failures += 1
        print(f"FAIL: {what}: expected {expected}, the scrape has {got}")


def read_scrape(path):
    samples = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        series, value = line.rsplit(" ", 1)
        samples[series] = float(value)
    return samples


def total(samples, family, **labels):
    """The sum of a family's samples whose labels include `labels`; None when there are none."""
    selected = [v for s, v in samples.items()
                if s.startswith(family + "{")
                and all(f'{k}="{w}"' in s for k, w in labels.items())]
    return int(sum(selected)) if selected else None


def by_label(samples, family, label):
    """{label value: sum} of a family's non-zero samples."""
    out = {}
    for s, v in samples.items():
        if s.startswith(family + "{") and v:
            name = re.search(label + r'="([^"]+)"', s).group(1)
            out[name] = out.get(name, 0) + int(v)
    return out


def packet_counters(stats):
    return [(c["rx"]["packets"], c["tx"]["packets"], c["handed_off"]["packets"],
             c["dropped"]["packets"]) for c in stats["cores"]]


def same_stats(before, after):
    a, b = (json.load(open(f)) for f in (before, after))
    return 0 if packet_counters(a) == packet_counters(b) else 1


def stats(stats_path, scrape_path, no_service=None, allocations=None):
    s = json.load(open(stats_path))
    m = read_scrape(scrape_path)
    for core in s["cores"]:
        n = core["lcore"]
        for what, expected, family in [
                ("rx packets", core["rx"]["packets"], "punchline_rx_packets_total"),
                ("rx bytes", core["rx"]["bytes"], "punchline_rx_bytes_total"),
                ("tx packets", core["tx"]["packets"], "punchline_tx_packets_total"),
                ("tx bytes", core["tx"]["bytes"], "punchline_tx_bytes_total"),
                ("handed off", core["handed_off"]["packets"],
                 "punchline_handed_off_packets_total"),
                ("dropped", core["dropped"]["packets"], "punchline_dropped_packets_total"),
                ("allocations", core["allocations"]["count"], "punchline_relay_allocations"),
                ("table capacity", core["allocations"]["capacity"],
                 "punchline_relay_allocation_capacity")]:
            same(f"lcore {n} {what}", expected, total(m, family, core=n))
    t = s["total"]
    same("total rx packets", t["rx"]["packets"], total(m, "punchline_rx_packets_total"))
    same("total tx packets", t["tx"]["packets"], total(m, "punchline_tx_packets_total"))
    same("total handed off", t["handed_off"]["packets"],
         total(m, "punchline_handed_off_packets_total"))
    same("total dropped", t["dropped"]["packets"], total(m, "punchline_dropped_packets_total"))
    same("total STUN successes", t["stun"]["success"],
         total(m, "punchline_stun_responses_total", result="success"))
    same("total allocations", t["allocations"]["count"], total(m, "punchline_relay_allocations"))
    for drop in t["drops"]:
        same(f"drops {drop['reason']}", drop["count"],
             total(m, "punchline_dropped_packets_total", reason=drop["reason"]))
    same("the reasons with drops", sorted(d["reason"] for d in t["drops"]),
         sorted(by_label(m, "punchline_dropped_packets_total", "reason")))
    # design.md §3's conservation law, from the scrape alone.
    same("rx = tx + handed off + dropped", total(m, "punchline_rx_packets_total"),
         total(m, "punchline_tx_packets_total") + total(m, "punchline_handed_off_packets_total")
         + total(m, "punchline_dropped_packets_total"))
    if no_service is not None:
        same("drops no_service, as sent", int(no_service),
             total(m, "punchline_dropped_packets_total", reason="no_service"))
    if allocations is not None:
        same("allocations, as made", int(allocations), total(m, "punchline_relay_allocations"))
    return failures


def report(log_path, scrape_path):
    log = open(log_path).read()
    m = read_scrape(scrape_path)
    outcomes = {name: int(n) for name, n in
                re.findall(r"^  turn (?!auth )(\S+) +(\d+) ", log, re.M)}
    auth = {name: int(n) for name, n in re.findall(r"^  turn auth (\S+) +(\d+) ", log, re.M)}
    # The exit report is the log's last: its relay lines are the last ones.
    relayed = re.findall(r"^relay lcore(\d+): .*relayed (\d+) to peers, (\d+) to clients",
                         log, re.M)
    last = {core: (int(p), int(c)) for core, p, c in relayed}
    for what, expected, got in [
            ("TURN outcomes", outcomes, by_label(m, "punchline_turn_messages_total", "outcome")),
            ("refused authentications", auth,
             by_label(m, "punchline_turn_auth_failures_total", "verdict")),
            ("relayed to peers", sum(p for p, _ in last.values()),
             total(m, "punchline_relay_packets_total", direction="to_peer")),
            ("relayed to clients", sum(c for _, c in last.values()),
             total(m, "punchline_relay_packets_total", direction="to_client"))]:
        if not expected:
            global failures
            failures += 1
            print(f"FAIL: {what}: nothing in the exit report to compare")
        else:
            same(what, expected, got)
    return failures


SFU_FAMILIES = ["punchline_sfu_legs", "punchline_sfu_leg_capacity",
                "punchline_sfu_forwarded_packets_total", "punchline_sfu_forwarded_bytes_total",
                "punchline_sfu_fan_outs_total", "punchline_sfu_copies_not_sent_total",
                "punchline_sfu_legs_ended_total", "punchline_sfu_admissions_total",
                "punchline_sfu_probe_answers_total"]


def sfu_outcomes():
    """The admission outcomes' names, in order, from their table (ENGINE_SFU_OUTCOMES)."""
    header = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "../../engine/include/engine/sfu_role.h")
    text = open(header).read()
    table = text[text.index("#define ENGINE_SFU_OUTCOMES(X)"):]
    table = table[:table.index("\n\n")]
    return re.findall(r"X\((sfu_\w+),", table)


def sfu(log_path, scrape_path):
    global failures
    log = open(log_path).read()
    m = read_scrape(scrape_path)
    # The exit report is the log's last: a later line of a core or an outcome replaces an
    # earlier report's.
    outcomes = {name: int(n) for name, n in re.findall(r"^  sfu (\S+) +(\d+)  \(", log, re.M)}
    lines = re.findall(r"^sfu lcore(\d+): (\d+) legs \(\d+ skipped\) \| forwarded (\d+) "
                       r"\((\d+) B\), (\d+) fan-outs, (\d+) filtered \| (\d+) expired, "
                       r"(\d+) killed$", log, re.M)
    last = {core: [int(n) for n in numbers] for core, *numbers in lines}
    if not last or not outcomes:
        failures += 1
        print("FAIL: no sfu lines in the exit report to compare")
        return failures
    same("the SFU families", SFU_FAMILIES,
         [f for f in SFU_FAMILIES if total(m, f) is not None])
    names = sfu_outcomes()
    for core in last:
        same(f"lcore {core} admission outcomes", names,
             [o for o in names
              if total(m, "punchline_sfu_admissions_total", core=core, outcome=o) is not None])
    same("admission outcomes", outcomes, by_label(m, "punchline_sfu_admissions_total", "outcome"))
    for core, (legs, packets, size, fan_outs, filtered, expired, killed) in last.items():
        for what, expected, got in [
                ("legs + expired", legs + expired,
                 total(m, "punchline_sfu_legs", core=core)
                 + total(m, "punchline_sfu_legs_ended_total", core=core, cause="expired")),
                ("forwarded packets", packets,
                 total(m, "punchline_sfu_forwarded_packets_total", core=core)),
                ("forwarded bytes", size,
                 total(m, "punchline_sfu_forwarded_bytes_total", core=core)),
                ("fan-outs", fan_outs, total(m, "punchline_sfu_fan_outs_total", core=core)),
                ("filtered", filtered,
                 total(m, "punchline_sfu_copies_not_sent_total", core=core, reason="filtered")),
                ("killed", killed,
                 total(m, "punchline_sfu_legs_ended_total", core=core, cause="killed"))]:
            same(f"lcore {core} {what}", expected, got)
    return failures


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "same-stats":
        sys.exit(same_stats(*args))
    if mode == "stats":
        sys.exit(stats(*args))
    if mode == "report":
        sys.exit(report(*args))
    if mode == "sfu":
        sys.exit(sfu(*args))
    print(__doc__)
    sys.exit(2)


if __name__ == "__main__":
    main()
