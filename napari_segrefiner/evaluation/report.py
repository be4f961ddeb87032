"""How quality-benchmark results are presented and stored, and the run's metadata.

:func:`~napari_segrefiner.evaluation.benchmark.run_benchmark` returns a JSON-ready dict;
this module turns it into plain-text tables (:func:`format_table`, what the command prints),
Markdown (:func:`format_markdown`) and files (:func:`write_results`: ``<out>.json`` and
``<out>.md``, each replaced atomically). It also describes where a run happened: the git
commit of the checkout (:func:`git_commit`) and the software and machine
(:func:`environment`), both stored in the results' ``meta``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write

__all__ = ["format_markdown", "format_table", "write_results"]


# ------------------------------------------------------------------------------ metadata


def git_commit() -> dict[str, Any] | None:
    """HEAD of the repository holding this package, if it is a git checkout (read-only git)."""
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status.strip())}


def environment(device) -> dict[str, Any]:
    """Versions, thread counts and machine of a run on ``device`` (a torch.device)."""
    import cv2
    import torch

    from .. import __version__

    env = {
        "napari_segrefiner": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.platform(),
        "device": str(device),
    }
    if getattr(device, "type", None) == "cuda":
        env["cuda_device"] = torch.cuda.get_device_name(device)
    return env


# ---------------------------------------------------------------------------- presentation

_COLUMNS = (  # (header, key, format)
    ("IoU", "iou", "pct"),
    ("pooled IoU", "pooled_iou", "pct"),
    ("BIoU", "biou", "pct"),
    ("mBA", "mba", "pct"),
    ("BF", "bf", "pct"),
    ("gain", "gain", "signed"),
    ("worse", "worse", "share"),
    ("s/obj", "seconds_per_object", "sec"),
)


def _fmt(value: Any, how: str) -> str:
    if value is None:
        return "-"
    if how == "pct":
        return f"{100 * value:.1f}"
    if how == "signed":
        return f"{100 * value:+.1f}"
    if how == "share":
        return f"{100 * value:.0f}%"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.001:
        return f"{value:.3f}"
    return "<0.001"


def _headline(results: dict) -> str:
    meta = results["meta"]
    env = meta["environment"]
    git = meta.get("git") or {}
    commit = git.get("commit", "")[:10] + (" (dirty)" if git.get("dirty") else "") if git else "unknown"
    model = meta.get("model")
    model_txt = f"{model['source']} ({model['parameters'] / 1e6:.2f} M params)" if model else "not run"
    return (
        f"{meta['date']}, commit {commit}, model {model_txt}, device {env['device']} "
        f"({env['torch_threads']} torch threads), torch {env['torch']}, seed {meta['seed']}"
    )


def _block_title(name: str, s: dict, kind: str, k: dict) -> str:
    coarse = "-" if k["coarse_iou"] is None else f"{100 * k['coarse_iou']:.1f}"
    extra = f", {k['empty_coarse_replaced']} empty coarse replaced" if k["empty_coarse_replaced"] else ""
    return f"{name} / {kind}: {s['used']} of {s['available']} objects ({s['region']}), coarse IoU {coarse}{extra}"


def format_table(results: dict) -> str:
    """Plain-text tables, one block per (set, kind); figures x100 except s/obj.

    Parameters
    ----------
    results : dict
        What :func:`~napari_segrefiner.evaluation.benchmark.run_benchmark` returned.

    Returns
    -------
    str
        A headline (date, commit, model, device, seed), then per (set, kind) a title line
        and a table with one row per method; ends with a newline.
    """
    lines = [f"quality benchmark: {_headline(results)}", ""]
    headers = ["method"] + [c[0] for c in _COLUMNS]
    for name, s in results["sets"].items():
        for kind, k in s["kinds"].items():
            lines.append(_block_title(name, s, kind, k))
            rows = [headers]
            for method, fig in k["methods"].items():
                flag = f" ({fig['failures']} failed)" if fig.get("failures") else ""
                rows.append([method + flag] + [_fmt(fig[key], how) for _, key, how in _COLUMNS])
            widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
            for r in rows:
                cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
                lines.append("  " + "  ".join(cells))
            if k.get("segrefiner_review"):
                lines.append("  " + _review_line(k["segrefiner_review"]))
            lines.append("")
        if s.get("uncertainty_spearman") is not None:
            lines.append(f"{name}: review score vs IoU error, Spearman {s['uncertainty_spearman']:+.2f} (all kinds)")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _review_line(review: dict) -> str:
    """'IoU after clicks 0: 81.2, 1: 84.0 ...; review score vs IoU error: Spearman +0.41'."""
    parts = []
    after = review.get("iou_after_clicks")
    if after:
        parts.append("IoU after clicks " + ", ".join(f"{c}: {100 * v:.1f}" for c, v in after.items()))
    rho = review.get("uncertainty_spearman")
    parts.append("review score vs IoU error: Spearman " + ("-" if rho is None else f"{rho:+.2f}"))
    return "; ".join(parts)


def format_markdown(results: dict) -> str:
    """Markdown: a header line and one table per set (rows: kind x method).

    Parameters
    ----------
    results : dict
        What :func:`~napari_segrefiner.evaluation.benchmark.run_benchmark` returned.

    Returns
    -------
    str
        The Markdown text (figures x100 except s/obj), as :func:`write_results` stores it.
    """
    out = [
        "<!-- written by `napari-segrefiner benchmark`; figures x100 except s/obj -->",
        f"Quality benchmark, {_headline(results)}.",
        "",
        "IoU, Boundary IoU, mBA and boundary F are means over objects (x100); pooled IoU = sum of "
        "intersections / sum of unions; gain = mean IoU change over the coarse input; worse = share of "
        "objects whose IoU dropped; s/obj = seconds per object of the method call.",
        "",
    ]
    head = "| coarse | method | " + " | ".join(c[0] for c in _COLUMNS) + " |"
    rule = "|---|---|" + "---:|" * len(_COLUMNS)
    for name, s in results["sets"].items():
        out.append(f"#### {name} ({s['split'] or 'all'} split, {s['used']} of {s['available']} objects, {s['region']})")
        out.append("")
        out.append(head)
        out.append(rule)
        for kind, k in s["kinds"].items():
            for method, fig in k["methods"].items():
                cells = [_fmt(fig[key], how) for _, key, how in _COLUMNS]
                out.append(f"| {kind} | {method} | " + " | ".join(cells) + " |")
        reviews = [(kind, k["segrefiner_review"]) for kind, k in s["kinds"].items() if k.get("segrefiner_review")]
        if reviews:
            out.append("")
            out.extend(f"- {kind}: {_review_line(r)}" for kind, r in reviews)
            if s.get("uncertainty_spearman") is not None:
                out.append(f"- all kinds: review score vs IoU error, Spearman {s['uncertainty_spearman']:+.2f}")
        replaced = {kind: k["empty_coarse_replaced"] for kind, k in s["kinds"].items() if k["empty_coarse_replaced"]}
        if replaced:
            out.append("")
            out.append(
                "Empty coarse masks replaced by the GT dilated by 1 px: "
                + ", ".join(f"{kind} {n}" for kind, n in replaced.items())
                + "."
            )
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------- files


def _write_text(path: Path, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def write_results(results: dict, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<out>.json`` and ``<out>.md``.

    Both texts are made before either file is touched, and each file is replaced
    atomically, so a failure leaves no partly written file (nor a temporary one) behind.

    Parameters
    ----------
    results : dict
        What :func:`~napari_segrefiner.evaluation.benchmark.run_benchmark` returned.
    out : str or path-like
        Output path without extension (a ``.json`` or ``.md`` suffix is dropped); missing
        parent folders are made.

    Returns
    -------
    tuple of pathlib.Path
        The JSON and the Markdown file.
    """
    base = Path(out)
    if base.suffix in (".json", ".md"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    json_path = base.parent / (base.name + ".json")
    md_path = base.parent / (base.name + ".md")
    json_text = json.dumps(results, indent=1, default=str) + "\n"
    md_text = format_markdown(results)
    atomic_write(json_path, lambda tmp: _write_text(tmp, json_text))
    atomic_write(md_path, lambda tmp: _write_text(tmp, md_text))
    return json_path, md_path
