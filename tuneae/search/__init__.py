"""The search: ``python -m tuneae.search``. The only package that imports ``ray.tune``'s ``Tuner`` and ``optuna``.

One Ray Tune experiment per model kind (their objectives differ): Optuna's TPE searcher (Bergstra et al. 2011,
<<<<<<< HEAD
through Optuna's ask/tell API behind Ray Tune's public ``Searcher`` interface) proposes configs from categorical
choices, ASHA (Li et al. 2020, ``ray.tune.schedulers.ASHAScheduler``) stops weak trials at rungs counted in
epochs, and each trial trains under Ray Train (:mod:`tuneae.trainable`). Every trial is logged to W&B
(:mod:`tuneae.tracking`; offline unless an API key is set). At the end: a summary table per model,
``results/<name>/summary.json`` and ``results/<name>/trials.csv`` (:mod:`tuneae.run`); checkpoints stay in
``<storage_path>/<name>``.
=======
via ``ray.tune.search.optuna.OptunaSearch``) proposes configs from categorical choices, ASHA (Li et al. 2020,
``ray.tune.schedulers.ASHAScheduler``) stops weak trials at rungs counted in epochs, and each trial trains under
Ray Train (:mod:`tuneae.trainable`). Every trial is logged to W&B (:mod:`tuneae.tracking`; offline unless an API
key is set). At the end: a summary table per model, ``results/<name>/summary.json`` and
``results/<name>/trials.csv`` (:mod:`tuneae.run`); checkpoints stay in ``<storage_path>/<name>``.
>>>>>>> runlayer

Modules, in the order ``main`` uses them: :mod:`.cli` (flags, config file, merge), :mod:`.checks` (types,
values and relations of every setting, before Ray), :mod:`.resources` (what a trial needs against the machine or
cluster), :mod:`.names` (a run never overwrites another run's results), :mod:`.space` (each kind's search space),
:mod:`.session` (start or join Ray), :mod:`.tune` (the Tuner of one kind), :mod:`.searcher` (the Optuna
searcher; :mod:`.optuna_search` its Tune hooks, :mod:`.study` its saved study), :mod:`.run` (``main``).
"""
from tuneae.search.checks import ConfigError, validate
from tuneae.search.cli import build_parser, resolve
from tuneae.search.run import main
from tuneae.search.session import join_ray, open_session, start_local_ray
from tuneae.search.space import kind_space
from tuneae.search.tune import derive_max_concurrent, run_one

__all__ = ["ConfigError", "build_parser", "derive_max_concurrent", "join_ray", "kind_space",
           "main", "open_session", "resolve", "run_one", "start_local_ray", "validate"]
