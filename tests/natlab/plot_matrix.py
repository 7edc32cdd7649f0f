#!/usr/bin/python3
"""plot_matrix.py CALLS.json OUT.png OUT.md: the full ladder matrix (tests/natlab/ladder_matrix.sh)
as a figure, one 5x5 panel per SFU node placement (cell colour: the rung the call took; text:
the time to the first media packet), and as Markdown tables with the share of calls kept off
the public relay. A cell whose rung differs from the prediction is hatched and marked."""
import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

TYPES = ["none", "full-cone", "address-restricted", "port-restricted", "symmetric"]
PLACEMENTS = ["none", "full-cone", "port-restricted", "symmetric"]
PLACEMENT_TITLE = {"none": "public node", "full-cone": "node behind a full cone",
                   "port-restricted": "node behind a port-restricted NAT",
                   "symmetric": "node behind a symmetric NAT"}
COLOURS = {"p2p": "#4caf50", "sfu": "#2196f3", "relay": "#ff9800"}


def cell_text(call):
    t = call.get("time_to_first_media_ms")
    return f"{call['rung']}\n{t:.0f} ms" if t is not None else f"{call['rung']}\n-"


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: plot_matrix.py CALLS.json OUT.png OUT.md")
    with open(sys.argv[1], encoding="utf-8") as f:
        calls = json.load(f)
    by = {(c["placement"], c["a"], c["b"]): c for c in calls}

    fig, axes = plt.subplots(1, len(PLACEMENTS), figsize=(5.2 * len(PLACEMENTS), 5.6))
    for ax, placement in zip(axes, PLACEMENTS):
        for i, a in enumerate(TYPES):
            for j, b in enumerate(TYPES):
                call = by.get((placement, a, b))
                if call is None:
                    ax.add_patch(Rectangle((j, i), 1, 1, color="#dddddd"))
                    continue
                ax.add_patch(Rectangle((j, i), 1, 1, facecolor=COLOURS.get(call["rung"], "#f44336"),
                                       edgecolor="white", hatch=None if call["ok"] else "xx"))
                ax.text(j + 0.5, i + 0.5, cell_text(call) + ("" if call["ok"] else "\n(!)"),
                        ha="center", va="center", fontsize=7)
        ax.set_xlim(0, 5)
        ax.set_ylim(5, 0)
        ax.set_xticks([k + 0.5 for k in range(5)], TYPES, rotation=35, ha="right", fontsize=7)
        ax.set_yticks([k + 0.5 for k in range(5)], TYPES, fontsize=7)
        ax.set_title(PLACEMENT_TITLE[placement], fontsize=9)
        ax.set_aspect("equal")
    axes[0].set_ylabel("caller's NAT")
    fig.legend(handles=[Patch(color=c, label=r) for r, c in COLOURS.items()], loc="lower center",
               ncol=3, fontsize=8)
    kept = sum(1 for c in calls if c["rung"] != "relay")
    fig.suptitle(f"punch call: rung and time to first media packet per cell; "
                 f"{kept}/{len(calls)} calls kept off the public relay", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(sys.argv[2], dpi=110)

    lines = []
    for placement in PLACEMENTS:
        lines.append(f"**{PLACEMENT_TITLE[placement]}** (rung, time to first media packet)")
        lines.append("")
        lines.append("| caller \\ callee | " + " | ".join(TYPES) + " |")
        lines.append("|---" * (len(TYPES) + 1) + "|")
        for a in TYPES:
            row = []
            for b in TYPES:
                call = by.get((placement, a, b))
                if call is None:
                    row.append("-")
                else:
                    row.append(cell_text(call).replace("\n", " ") +
                               ("" if call["ok"] else f" (expected {call['expected']})"))
            lines.append(f"| {a} | " + " | ".join(row) + " |")
        lines.append("")
    relay_avoidable = [c for c in calls if c["rung"] == "relay" and c["expected"] != "relay"]
    off = {r: sum(1 for c in calls if c["rung"] == r) for r in ("p2p", "sfu", "relay")}
    lines.append(f"Calls: {len(calls)}; P2P {off['p2p']}, SFU {off['sfu']}, relay {off['relay']}: "
                 f"{100.0 * (off['p2p'] + off['sfu']) / max(1, len(calls)):.0f}% kept off the "
                 f"public relay. Relay calls where a node could have served: "
                 f"{len(relay_avoidable)}. Cells not as predicted: "
                 f"{sum(1 for c in calls if not c['ok'])}.")
    with open(sys.argv[3], "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
