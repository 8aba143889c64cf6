"""The report's "Search" section: what the searcher did, per model kind, drawn from its saved Optuna study.

Per kind (from :func:`tuneae.run.study.read_study`): every trial's learning curve (the objective per epoch) with
ASHA's rungs marked and trials stopped early (PRUNED) drawn apart from completed ones; the objective against each
hyperparameter; and the hyperparameter importances (fANOVA, Hutter et al. 2014, on completed trials) as a bar chart.
Figures are small PNGs written atomically; :func:`search_section` returns the markdown lines that link them.
"""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from tuneae.files import atomic_write
from tuneae.run.best import METRIC, best_study_trial
from tuneae.run.study import read_study

DPI = 80
"""Resolution of the figures (small PNGs, as the rest of the report)."""
STYLE = {"COMPLETE": {"color": "tab:blue", "ls": "-", "marker": "o", "label": "completed"},
         "PRUNED": {"color": "tab:gray", "ls": "--", "marker": "x", "label": "stopped early by ASHA (pruned)"},
         "FAIL": {"color": "tab:red", "ls": ":", "marker": "v", "label": "failed"},
         "RUNNING": {"color": "tab:orange", "ls": "-.", "marker": ".", "label": "unfinished"}}
"""How each Optuna trial state is drawn."""


def _figure(w: float, h: float, cols: int = 1) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(w * cols, h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no GUI backend, no pyplot state
    return fig, fig.subplots(1, cols, squeeze=False, sharey=True)[0]


def _save(fig: Figure, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write(path, buf.getvalue())
    return path.name


def _positive(values) -> bool:
    v = [x for x in values if x is not None]
    return bool(v) and min(v) > 0 and max(v) / min(v) > 20  # a log axis only where it spreads the values


def plot_learning_curves(study: dict[str, Any], path: Path, metric: str = METRIC) -> str:
    """Every trial's objective per epoch: completed trials solid, ASHA-stopped (PRUNED) dashed grey ending in an x,
    failed red dotted; ASHA's rungs as vertical lines, the seed project's recipe in black, the best trial starred.

    Args:
        study: one kind of :func:`tuneae.run.study.read_study`.
        path: the PNG to write.
        metric: the objective's name (y axis).
    Returns:
        The file name written.
    """
    fig, (ax,) = _figure(6.0, 3.6)
    best = best_study_trial(study)
    values = [v for t in study["trials"] for _, v in t["intermediate"]]
    for t in study["trials"]:
        pts = [(s, v) for s, v in t["intermediate"] if v is not None]
        if not pts:
            continue
        st = STYLE.get(t["state"], STYLE["RUNNING"])
        x, y = zip(*pts, strict=True)
        seed = t["origin"] == "seed recipe"
        ax.plot(x, y, ls=st["ls"], color="black" if seed else st["color"], lw=2.0 if seed else 1.2, alpha=0.85)
        ax.plot(x[-1], y[-1], marker=st["marker"], color="black" if seed else st["color"], ms=6)
        if best is not None and t["number"] == best["number"]:
            ax.plot(x[-1], y[-1], marker="*", color="gold", mec="black", ms=15, zorder=5)
    for r in study["attrs"].get("rungs") or []:
        ax.axvline(r, color="tab:green", lw=1, ls=(0, (2, 2)))
    if _positive(values):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} (validation)")
    ax.set_title(f"{study['name']}: learning curves of {len(study['trials'])} trials")
    shown = {t["state"] for t in study["trials"] if t["intermediate"]}
    handles = [Line2D([], [], color=s["color"], ls=s["ls"], marker=s["marker"], label=s["label"])
               for k, s in STYLE.items() if k in shown]
    handles += [Line2D([], [], color="black", lw=2, label="seed project's recipe")]
    if study["attrs"].get("rungs"):
        handles.append(Line2D([], [], color="tab:green", ls=(0, (2, 2)), label="ASHA rung"))
    if best is not None:
        handles.append(Line2D([], [], color="gold", mec="black", marker="*", ls="", ms=12, label="best trial"))
    ax.legend(handles=handles, fontsize=7, loc="upper right")
    return _save(fig, path)


def plot_params(study: dict[str, Any], path: Path, metric: str = METRIC) -> str:
    """The objective against each searched hyperparameter: one panel per hyperparameter, its choices in order on
    the x axis (slightly jittered), completed trials filled, ASHA-stopped ones hollow grey at their last value.

    Args:
        study: one kind of :func:`tuneae.run.study.read_study`.
        path: the PNG to write.
        metric: the objective's name (y axis).
    Returns:
        The file name written.
    """
    space = study["attrs"].get("space") or {}
    params = [p for p, c in space.items() if len(c) > 1] or list(space) or ["(none)"]
    fig, axes = _figure(2.4, 2.6, cols=len(params))
    rng = np.random.default_rng(0)
    values = [t["value"] for t in study["trials"] if t["value"] is not None]
    for ax, p in zip(axes, params, strict=True):
        choices = [json.dumps(c) for c in space.get(p, [])]
        for t in study["trials"]:
            if t["value"] is None or p not in t["params"] or json.dumps(t["params"][p]) not in choices:
                continue
            x = choices.index(json.dumps(t["params"][p])) + rng.uniform(-0.12, 0.12)
            if t["state"] == "COMPLETE":
                ax.plot(x, t["value"], "o", color="tab:blue", ms=5)
            else:
                ax.plot(x, t["value"], "o", mfc="none", mec="tab:gray", ms=5)
        ax.set_xticks(range(len(choices)), [c.strip('"') for c in choices], fontsize=7, rotation=30)
        ax.set_xlim(-0.5, max(len(choices), 1) - 0.5)
        ax.set_title(p, fontsize=8)
        if _positive(values):
            ax.set_yscale("log")
    axes[0].set_ylabel(f"{metric} (last epoch)", fontsize=8)
    axes[0].legend(handles=[Line2D([], [], marker="o", ls="", color="tab:blue", label="completed"),
                            Line2D([], [], marker="o", ls="", mfc="none", mec="tab:gray", label="stopped early")],
                   fontsize=6)
    fig.suptitle(f"{study['name']}: {metric} against each hyperparameter", fontsize=9)
    return _save(fig, path)


def plot_importances(study: dict[str, Any], path: Path) -> str | None:
    """The hyperparameter importances as horizontal bars (share of the objective's variance, fANOVA).

    Args:
        study: one kind of :func:`tuneae.run.study.read_study`.
        path: the PNG to write.
    Returns:
        The file name written, or None when the study has no importances (nothing is written).
    """
    imp = study.get("importances")
    if not imp:
        return None
    names = list(imp)[::-1]  # largest on top
    fig, (ax,) = _figure(4.0, 0.4 * len(names) + 1.0)
    ax.barh(names, [imp[n] for n in names], color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_xlabel("importance (share of variance)")
    ax.set_title(f"{study['name']}: hyperparameter importance", fontsize=9)
    ax.tick_params(labelsize=7)
    return _save(fig, path)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else "-"
    return "-" if v is None else str(v)


def _trial_table(study: dict[str, Any]) -> list[str]:
    params = list(study["attrs"].get("space") or {})
    head = ["#", "trial", "origin", "state", "epochs run", "value", *[p.split(".", 1)[-1] for p in params]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in study["trials"]:
        last = t["intermediate"][-1][0] if t["intermediate"] else 0
        row = [t["number"], t["tune_trial_id"] or "-", t["origin"], t["state"].lower(), last, _fmt(t["value"]),
               *[_fmt(t["params"].get(p)) for p in params]]
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return lines


def search_section(studies: dict[str, dict[str, Any]], out: Path, dashboard: str = "<experiment>/optuna.db",
                   metric: str = METRIC) -> tuple[list[str], dict[str, str]]:
    """Draw the figures of every kind's study into ``out`` and return the report's "Search" section.

    Args:
        studies: :func:`tuneae.run.study.read_study` of the run (kind -> study).
        out: the report folder.
        dashboard: the study file as the user should type it for ``optuna-dashboard`` (never a machine's absolute
            path in a committed report).
        metric: the objective's name.
    Returns:
        (markdown lines, ``{figure key: file name}``; keys ``search_<kind>_curves`` / ``_params`` / ``_importance``).
    """
    lines = ["## Search", "",
             f"What the searcher (Optuna TPE under Ray Tune, ASHA stopping trials at its rungs) did, from its saved "
             f"study; browse it with `optuna-dashboard sqlite:///{dashboard}`. Values are {metric}, the search's "
             "objective, on the validation split; a trial stopped early by ASHA is told to Optuna as pruned (its "
             "value is that of its last epoch), so TPE ranks it below every completed trial.", ""]
    figures: dict[str, str] = {}
    for kind, study in studies.items():
        a, c = study["attrs"], study["counts"]
        point = ", ".join(f"{k.split('.', 1)[-1]}={v[0]}" for k, v in (a.get("seed_point") or {}).items())
        lines += [f"### {kind}", "",
                  f"{len(study['trials'])} trials: {c['completed']} completed, {c['pruned']} stopped early by ASHA "
                  f"(pruned), {c['failed']} failed. The first trial ran the seed project's recipe ({point}); TPE "
                  f"(multivariate, seed {a.get('seed')}) sampled at random until {a.get('n_startup_trials')} trials "
                  f"had finished, then from its model; constant liar "
                  f"{'on' if a.get('constant_liar') else 'off (one trial at a time)'}; ASHA rungs at epochs "
                  f"{', '.join(_fmt(r) for r in a.get('rungs') or []) or 'none'}.", ""]
        figures[f"search_{kind}_curves"] = plot_learning_curves(study, out / f"search_{kind}_curves.png", metric)
        figures[f"search_{kind}_params"] = plot_params(study, out / f"search_{kind}_params.png", metric)
        lines += [f"![{kind} learning curves]({figures[f'search_{kind}_curves']})", "",
                  f"![{kind} against each hyperparameter]({figures[f'search_{kind}_params']})", ""]
        imp = plot_importances(study, out / f"search_{kind}_importance.png")
        if imp:
            figures[f"search_{kind}_importance"] = imp
            lines += [f"Hyperparameter importance ({study['importance_note']}): "
                      + ", ".join(f"{k.split('.', 1)[-1]} {v:.2f}" for k, v in study["importances"].items()) + ".",
                      "", f"![{kind} hyperparameter importance]({imp})", ""]
        else:
            lines += [f"No hyperparameter importances: {study['importance_note']}.", ""]
        lines += [*_trial_table(study), ""]
    return lines, figures


def search_report(run, out: Path) -> tuple[list[str], dict[str, str], dict[str, Any] | None]:
    """The "Search" section of a run's report, from the study its search saved (``RunLayout.study_file``).

    Args:
        run: the :class:`tuneae.run.find.Run` reported (its ``layout`` and the kinds of its best trials).
        out: the report folder (figures go there).
    Returns:
        (markdown lines, ``{figure key: file name}``, the studies as plain data for ``metrics.json`` or None).
        A run searched before the study was saved gets one line saying so, no figure and None.
    """
    path = run.layout.study_file
    if not path.is_file():
        note = (f"No Optuna study in the experiment folder ({path.name} missing): this search ran before tuneae "
                "saved its study, or the experiment folder is elsewhere (--experiment PATH).")
        return ["## Search", "", note, ""], {}, None
    try:
        studies = read_study(path, list(run.trials))
    except KeyError:  # some kind has no study (e.g. resumed from an older search): report the ones there are
        studies = {k: v for k, v in read_study(path).items() if k in run.trials}
    rel = os.path.relpath(path.resolve(), Path.cwd())
    shown = rel if not rel.startswith("..") else f"<experiment folder of {run.name}>/{path.name}"
    lines, figures = search_section(studies, out, dashboard=shown)
    return lines, figures, studies
