"""The name of a search: a run never overwrites the results of another run.

A name is *free* (no experiment folder, no results), *finished* (``summary.json`` says the run ended) or
*unfinished* (interrupted, killed, or its summary unreadable). Without ``--resume`` or ``--overwrite``:

- a free name is used as it is;
- a finished name is left alone and the run takes the first free name ``<name>-2``, ``<name>-3``, ... (a second run
  of the README's command never rewrites the first one's results);
- an unfinished name is refused (exit 2): it is continued with ``--resume``, started again with ``--overwrite``, or
  left alone with another ``--name``.

``--resume`` writes into the named run (and refuses when the results exist but their experiment folder does not,
since there is nothing to continue); ``--overwrite`` removes the named run's experiment and results folders first.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from tuneae.config import SearchConfig
from tuneae.layout import RunLayout

FREE, FINISHED, UNFINISHED = "free", "finished", "unfinished"
"""The states of a run name (:func:`run_state`)."""


def run_state(layout: RunLayout) -> tuple[str, str]:
    """Whether a run already uses this layout's name, and the evidence.

    Args:
        layout: the layout of a name (its results folder, and its experiment folder when local).
    Returns:
        (``FREE`` / ``FINISHED`` / ``UNFINISHED``, a phrase naming the file or folder that decided it).
    """
    summary = layout.summary_file
    if summary.is_file():
        try:
            interrupted = json.loads(summary.read_text()).get("interrupted")
        except (OSError, ValueError, AttributeError):
            return UNFINISHED, f"{summary} cannot be read"
        if interrupted:
            return UNFINISHED, f"{summary} says it was interrupted during {interrupted}"
        return FINISHED, f"{summary} holds its results"
    if layout.trials_file.is_file():
        return UNFINISHED, f"{layout.trials_file} exists without a summary.json"
    if layout.local and Path(layout.experiment).exists():
        return UNFINISHED, f"its experiment folder {layout.experiment} exists without results (stopped before the end)"
    return FREE, ""


def claim_name(search: SearchConfig, resume: bool, overwrite: bool) -> SearchConfig:
    """The search config this run writes under: ``search`` itself, or with the first free ``<name>-<n>``.

    Args:
        search: the resolved search config (its ``name``, ``storage_path`` and ``results_dir``).
        resume: ``--resume`` was given (write into the named run).
        overwrite: ``--overwrite`` was given (replace the named run; :func:`clear_run` removes it later).
    Returns:
        ``search``, or a copy with a new name (printed) when the name belongs to a finished run.
    Raises:
        ValueError: ``--resume`` with ``--overwrite``; ``--resume`` of a run whose results exist but whose
            experiment folder does not (moved, or never on this machine); ``--overwrite`` of a remote experiment;
            a name used by an unfinished run without either flag. Nothing has been written then.
    """
    layout = RunLayout.of(search)
    state, why = run_state(layout)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: --resume continues the run, --overwrite "
                         "starts it again from scratch")
    if resume:
        if state != FREE and layout.local and not Path(layout.experiment).is_dir():
            raise ValueError(f"--resume: there is no experiment folder {layout.experiment} to continue ({why}); "
                             f"if it moved, pass its storage folder with --storage-path, else drop --resume "
                             f"(this run then gets a new name)")
        return search
    if overwrite:
        if state != FREE and not layout.local:
            raise ValueError(f"--overwrite removes only a local experiment folder; remove {layout.experiment} "
                             f"yourself or choose another --name")
        return search
    if state == UNFINISHED:
        raise ValueError(f"the run {search.name!r} is unfinished ({why}); continue it with --resume (and the same "
                         f"flags), start it again from scratch with --overwrite, or choose another --name")
    if state == FINISHED:
        n = 2
        while run_state(RunLayout.of(replace(search, name=f"{search.name}-{n}")))[0] != FREE:
            n += 1
        new = f"{search.name}-{n}"
        print(f"[tuneae] the name {search.name!r} belongs to a finished run ({why}); this run is named {new!r} "
              f"(--overwrite would replace that run, --name chooses another name)", flush=True)
        return replace(search, name=new)
    return search


def clear_run(search: SearchConfig) -> None:
    """Remove the named run's local experiment folder and its results folder (``--overwrite``), saying so.

    Called once every check has passed and the data has loaded, just before Ray starts.
    """
    layout = RunLayout.of(search)
    for folder in ([Path(layout.experiment)] if layout.local else []) + [layout.results]:
        if folder.exists():
            shutil.rmtree(folder)
            print(f"[tuneae] --overwrite: removed {folder}", flush=True)
