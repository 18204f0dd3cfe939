"""Pruning sweep, plots: the Pareto fronts of recall against latency and memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import judged


def plots(rows: list[dict[str, Any]], out: Path, tag: str = "bench_pruning") -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    ds_name = judged({k: None for r in rows for k in r["recall"]})
    for xkey, xlabel, fname in (
        ("lat", "extraction latency, ms (XNNPACK int8, 1 thread; eager if no .pte)", "latency"),
        ("mem", "model (int8 .pte) + map bytes, MB", "memory"),
    ):
        fig, axes = plt.subplots(1, len(ds_name), figsize=(5.5 * len(ds_name), 4), squeeze=False)
        for ax, dsn in zip(axes[0], ds_name, strict=True):
            for model in sorted({r["model"] for r in rows}):
                pts = [r for r in rows if r["model"] == model and r["kind"] != "pca"]
                xs, ys, labels = [], [], []
                for r in pts:
                    if xkey == "lat":
                        x = r.get("pte_int8_ms") or r.get("eager_ms")
                    else:
                        x = r.get("_mem", {}).get(dsn)
                    if x is None or dsn not in r["recall"]:
                        continue
                    xs.append(x)
                    ys.append(r["recall"][dsn]["1"])
                    labels.append(
                        "base" if r["kind"] == "unpruned" else f"{r['ratio']:.2f}/{r['dim']}"
                    )
                ax.scatter(xs, ys, label=model)
                for x, y, lab in zip(xs, ys, labels, strict=True):
                    ax.annotate(lab, (x, y), fontsize=7)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"recall@1 {dsn}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        p = out / f"{tag}_pareto_{fname}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        written.append(str(p))
    return written
