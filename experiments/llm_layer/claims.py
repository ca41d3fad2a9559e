"""Every number the LLM README quotes, from its summary.json alone.

    python experiments/llm_layer/claims.py                    # the committed summary
    python experiments/llm_layer/claims.py path/to/summary.json

This study is ours, not one of the paper's: it has no claim table, only the numbers behind its
sentences.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal

HERE = os.path.dirname(os.path.abspath(__file__))


def claims(summary: dict) -> list[tuple[str, str]]:
    out = [
        (
            "training seconds; mean loss of the last 20 steps",
            f"{summary['train_seconds']:.1f}; {summary['train_loss_last']:.2f}",
        ),
        ("held-out tokens per batch", ", ".join(f"{n:,}" for n in summary["held_out_tokens"])),
        ("seconds of the call", f"{summary['seconds_this_call']:.0f}"),
    ]
    for name, land in summary["landscapes"].items():
        low, centre = land["global_min"], land["loss_at_center"]
        out += [
            (
                f"{name}: weights moved; points",
                f"{land['parameters_moved']:,}; {land['n_samples']}",
            ),
            (f"{name}: seconds; mode", f"{land['seconds']:.1f}; {land['mode']}"),
            (
                f"{name}: minima; lowest; at the centre",
                f"{land['n_minima']}; {low:.4f}; {centre:.4f}",
            ),
            (
                f"{name}: the lowest below the centre",
                f"{centre - low:.4f} ({(centre - low) / centre:.1%})",
            ),
            (f"{name}: loss range; highest", f"{land['loss_range']:.3g}; {land['global_max']:.2g}"),
        ]
    ranges = [land["loss_range"] for land in summary["landscapes"].values()]
    out.append(("ratio of the loss ranges", f"{max(ranges) / min(ranges):.0f}-fold"))
    out.append(("uniform guessing over 41 tokens, ln 41", f"{math.log(41):.1f}"))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("summary", nargs="?", default=os.path.join(HERE, "figures", "summary.json"))
    args = parser.parse_args(argv)
    with open(args.summary) as f:
        summary = json.load(f)
    for statement, numbers in claims(summary):
        print(f"{statement:<48} {numbers}")


if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):  # quiet under `claims.py | head`, as a Unix tool
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
