"""The recipe search: an Optuna study in SQLite beside the run, one MLflow child run per trial.

``Search.create`` writes ``DIR/search.json`` and ``DIR/study.db``; ``Search(DIR).run()`` runs trials
until ``n_trials`` have finished (completed, pruned or failed with an error) or the time budget is
spent. A trial samples the space, runs the recipe (cached stages: a trial that only moves a
threshold or a weight recomputes no signal), trains a proxy and scores it in bits-per-byte on the
targets; intermediate scores feed the pruner (Hyperband by default; Li et al. 2018).

Interruptions: SIGINT/SIGTERM mark the running trial ``interrupted`` and re-enqueue its params;
after a ``kill -9`` the next ``run`` finds the trial still RUNNING (no live process holds the
lock) and does the same. Interrupted trials never count towards ``n_trials``, so resuming loses no
completed trial and counts none twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from experiments.fidelity import halving_pruner
from experiments.objective import TrialOutcome, evaluate_trial, failure_text
from experiments.progress import TRIALS
from experiments.search_config import SearchConfig
from experiments.search_tokenizer import ensure_search_tokenizer
from experiments.targets import prepare_targets
from experiments.tracking import flat_params, mlflow_client, numeric, write_ahead_log
from experiments.warped_gp import WarpedGPSampler
from experiments.weights import WEIGHT_PREFIX, normalised, readable_params, realised_shares, trial_weights
from operators import Recipe, RecipeError

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _InterruptedTrialNotice(logging.Filter):
    """Drops Optuna's two warnings, one with a traceback, about the trial that a Ctrl-C or SIGTERM
    stopped: the CLI says in one line that finished work is kept, and the trial is retried on
    resume. Warnings about trials that failed with an error still show."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[0] is KeyboardInterrupt:
            self.interrupted = message.split()[1]  # "Trial <n> failed with parameters ..."
            return False
        if self.interrupted is not None and message == f"Trial {self.interrupted} failed with value None.":
            self.interrupted = None
            return False
        return True


logging.getLogger("optuna.study._optimize").addFilter(_InterruptedTrialNotice())

PRIOR_SIGMA = 0.1
"""CMA-ES's initial step around the proposal, in units of each dimension's range."""


class SearchBusyError(RecipeError):
    """Another live process is running this search."""


class Search:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).resolve()
        self.config = SearchConfig.load(self.folder)
        self.space = self.config.resolved_space()
        self.base = self.config.base_recipe()

    # ---- creation ----------------------------------------------------------------------------

    @classmethod
    def create(cls, folder: str | Path, recipe: Recipe, space: dict[str, Any], **settings: Any) -> Search:
        """Validate everything, then write ``search.json``, the study and the MLflow parent run."""
        folder = Path(folder).resolve()
        if (folder / "search.json").exists():
            raise RecipeError(f"{folder} already holds a search; resume it with `dataplan search --resume {folder}`")
        objective = settings.pop("objective", None) or space.get("objective")
        if objective is None:
            raise RecipeError("the search needs an `objective:` with `targets:` (in the space YAML or given)")
        labels = settings.get("labels") or {}
        config = SearchConfig.model_validate(
            {
                "study_name": f"search:{labels.get('dataplan.run_id', folder.name)}",
                "recipe_yaml": recipe.to_yaml(),
                "base_dir": recipe.base_dir,
                "space": {"params": space.get("params", {})},
                "objective": objective,
                "proxy": settings.pop("proxy", None) or space.get("proxy") or {},
                **settings,
            }
        )
        config.resolved_space()  # raises on a bad space before anything is written
        confirm = config.confirm_proxy() if config.finalize.confirm else None  # and on a bad confirmation proxy
        recipe.input_files()
        folder.mkdir(parents=True, exist_ok=True)
        config.targets, config.held_out_ids = prepare_targets(config.objective.targets, recipe, folder)
        config.save(folder)
        ensure_search_tokenizer(config, folder, config.proxy, confirm)  # one for every trial and confirmation
        search = cls(folder)
        study = search.study()
        if config.warm_start:  # the proposal itself is trial 0, then draws around it
            study.enqueue_trial(search.space.values_of(search.base), user_attrs={"source": "proposal"})
            for values in search.space.around(search.base, config.prior_trials, config.seed):
                study.enqueue_trial(values, user_attrs={"source": "prior"})
        for params in config.enqueued:
            study.enqueue_trial(params, skip_if_exists=True)
        mlflow = mlflow_client(config.mlflow_experiment)
        if config.labels:  # the experiment's description (the UI's) is the goal, where there is one
            goal = config.labels.get("dataplan.goal")
            mlflow.set_experiment_tags({**config.labels, **({"mlflow.note.content": goal} if goal else {})})
        with mlflow.start_run(run_name=config.study_name) as run:
            mlflow.log_params(
                flat_params(
                    "search",
                    {
                        "sampler": config.sampler,
                        "n_trials": config.n_trials,
                        "proxy": config.proxy.model_dump(),
                        **({"tokenizer_sha256": config.tokenizer_sha256} if config.tokenizer_sha256 else {}),
                    },
                )
            )
            mlflow.set_tags({"dataplan.kind": "search", "dataplan.dir": str(folder), **config.labels})
            mlflow.log_text(config.recipe_yaml, "base_recipe.yaml")
        config.mlflow_parent_run = run.info.run_id
        config.save(folder)
        search.config = config
        return search

    def study(self) -> optuna.Study:
        directions = ["minimize", "maximize"] if self.config.objective.retained_tokens else ["minimize"]
        write_ahead_log(self.folder / "study.db")
        study = optuna.create_study(
            storage=f"sqlite:///{self.folder / 'study.db'}",
            study_name=self.config.study_name,
            sampler=optuna.samplers.RandomSampler(seed=0),  # replaced below, once the trial count is known
            pruner=make_pruner(self.config.pruner, self.config.proxy.rungs),
            directions=directions,
            load_if_exists=True,
        )
        seed = resumed_seed(self.config.seed, len(study.get_trials(deepcopy=False)))
        prior = self.space.numeric_values(self.base) if self.config.warm_start else None
        study.sampler = make_sampler(self.config.sampler, seed, len(directions) > 1, prior)
        return study

    # ---- warm starts and extension -----------------------------------------------------------

    def enqueue(self, values: dict[str, Any]) -> None:
        """Add a proposal (space parameter names -> values) as the next trial to run."""
        unknown = sorted(set(values) - set(self.space.distributions()))
        if unknown:
            raise RecipeError(
                f"enqueue: {unknown} are not dimensions of this space; known: {sorted(self.space.distributions())}"
            )
        self.study().enqueue_trial(values, skip_if_exists=True)

    def extend(self, space: dict[str, Any], more_trials: int) -> None:
        """Continue this study over a new space (Optuna allows define-by-run spaces) with more trials."""
        self.config.space = {"params": space.get("params", {})}
        self.config.resolved_space()
        self.config.n_trials += more_trials
        self.config.save(self.folder)
        self.space = self.config.resolved_space()

    # ---- running -----------------------------------------------------------------------------

    def counts(self, study: optuna.Study | None = None) -> dict[str, int]:
        trials = (study or self.study()).get_trials(deepcopy=False)
        counts = {"complete": 0, "pruned": 0, "failed": 0, "interrupted": 0, "running": 0, "waiting": 0}
        for t in trials:
            if t.user_attrs.get("interrupted"):
                counts["interrupted"] += 1
            else:
                counts[
                    {
                        TrialState.COMPLETE: "complete",
                        TrialState.PRUNED: "pruned",
                        TrialState.FAIL: "failed",
                        TrialState.RUNNING: "running",
                        TrialState.WAITING: "waiting",
                    }[t.state]
                ] += 1
        counts["finished"] = counts["complete"] + counts["pruned"] + counts["failed"]
        return counts

    def run(self, time_budget_s: float | None = None, on_trial: Callable[[dict], None] | None = None) -> dict[str, int]:
        """Run trials until ``n_trials`` have finished or the time budget is spent; ``on_trial`` (or
        the listener of ``experiments.progress``) hears of each as it finishes."""
        budget = time_budget_s if time_budget_s is not None else self.config.time_budget_s
        deadline = None if budget is None else time.monotonic() + budget
        with self._lock(), signals_raise_interrupt():
            study = self.study()
            self._recover_interrupted(study)
            mlflow = mlflow_client(self.config.mlflow_experiment)
            with mlflow.start_run(run_id=self.config.mlflow_parent_run):
                while self.counts(study)["finished"] < self.config.n_trials:
                    if deadline is not None and time.monotonic() > deadline:
                        break
                    try:
                        study.optimize(self._objective, n_trials=1, catch=(Exception,))
                    except KeyboardInterrupt:
                        self._recover_interrupted(study)
                        raise
                    if listener := on_trial or TRIALS.get():
                        listener(trial_summary(study.trials[-1]))
                mlflow.log_metrics(numeric(self.counts(study)))
        return self.counts(study)

    def _objective(self, trial: optuna.Trial) -> float | tuple[float, float]:
        values = self.space.suggest(trial)
        recipe = self.space.apply(self.base, values)
        recipe.name = f"{self.base.name}-trial{trial.number}"
        trial_dir = self.folder / "trials" / f"{trial.number:04d}"
        multi = self.config.objective.retained_tokens
        mlflow = mlflow_client(self.config.mlflow_experiment)
        recipe_id = recipe.recipe_id()
        if (earlier := _finished_with(trial.study, recipe_id)) is not None:
            return _reuse(trial, earlier, multi)
        tags = {"dataplan.trial": str(trial.number), "dataplan.recipe_id": recipe_id, **self.config.labels}
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True, tags=tags) as child:
            trial.set_user_attr("recipe_id", recipe_id)
            trial.set_user_attr("mlflow_run", child.info.run_id)
            weights = normalised(recipe.mixture.weights)  # as the mixture sampler will use them
            if weights:
                trial.set_user_attr("weights", weights)
            # now, so a killed trial's run still shows them; weights, not the simplex draws behind them
            shown = {**readable_params(values), **{f"{WEIGHT_PREFIX}{s}": w for s, w in weights.items()}}
            mlflow.log_params(flat_params("", shown))
            mlflow.log_text(recipe.to_yaml(), "recipe.yaml")
            curve: list[tuple[int, float]] = []

            def report(step: int, value: float) -> bool:
                curve.append((step, value))  # logged to MLflow with the results: one store transaction
                if multi:
                    return False
                trial.report(value, step)
                return trial.should_prune()

            try:
                outcome = evaluate_trial(recipe, trial_dir, self.config, report)
            except Exception as err:
                trial.set_user_attr("error", failure_text(err))
                _log_trial(mlflow, child.info.run_id, curve, None)
                raise
            _record(trial, outcome)
            _log_trial(mlflow, child.info.run_id, curve, outcome)
        if outcome.pruned:  # KILLED, as MLflow calls a run stopped early (the block ended it FINISHED)
            mlflow.MlflowClient().set_terminated(child.info.run_id, status="KILLED")
            raise optuna.TrialPruned(f"pruned at step {outcome.pruned_at}")
        return (outcome.objective, outcome.retained_tokens) if multi else outcome.objective

    # ---- interruption handling ---------------------------------------------------------------

    def _recover_interrupted(self, study: optuna.Study) -> None:
        """Trials left RUNNING by a dead or interrupted process: mark, close their MLflow run, retry."""
        storage = study._storage
        client = mlflow_client(self.config.mlflow_experiment).MlflowClient()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            if run_id := t.user_attrs.get("mlflow_run"):
                client.set_terminated(run_id, status="KILLED")
            if t.params:
                study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})

    def ensure_idle(self) -> None:
        """Raise ``SearchBusyError`` when another live process runs this search (callers check
        before starting Ray, so a second ``--resume`` is refused at once)."""
        pid_file = self.folder / "search.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text() or 0)
            if pid and pid != os.getpid() and _alive(pid):
                raise SearchBusyError(f"search in {self.folder} is already running (pid {pid}); stop it first")

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.ensure_idle()
        pid_file = self.folder / "search.pid"
        pid_file.write_text(str(os.getpid()))
        try:
            yield
        finally:
            pid_file.unlink(missing_ok=True)


def _finished_with(study: optuna.Study, recipe_id: str) -> optuna.trial.FrozenTrial | None:
    """The first completed trial that trained ``recipe_id`` (None if none did)."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("recipe_id") == recipe_id:
            return t
    return None


def _reuse(trial: optuna.Trial, earlier: optuna.trial.FrozenTrial, multi: bool) -> float | tuple[float, ...]:
    """A sampler that proposes a recipe already trained gets that trial's result, not a second
    training (the proxy is deterministic per seed, so it would only repeat the number)."""
    for key, value in earlier.user_attrs.items():
        if key not in ("source", "retry_of", "mlflow_run"):
            trial.set_user_attr(key, value)
    trial.set_user_attr("reused_from", earlier.number)
    return tuple(earlier.values) if multi else earlier.values[0]


def _record(trial: optuna.Trial, outcome: TrialOutcome) -> None:
    for key, value in outcome.attrs().items():
        trial.set_user_attr(key, value)


def _log_trial(mlflow: Any, run_id: str, curve: list[tuple[int, float]], outcome: TrialOutcome | None) -> None:
    """A trial's intermediate curve and results in one MLflow call (each call is a transaction in
    the tracking store), then its manifest."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric("intermediate_bpb", value, now, step) for step, value in curve]
    tags = []
    if outcome is not None:
        attrs = outcome.attrs()
        final = {
            **numeric({**attrs["bpb"], **{k: v for k, v in attrs.items() if not isinstance(v, dict)}}),
            **{f"bpb.{k}": v for k, v in attrs["bpb"].items()},
            **{f"drop_rate.{k}": v for k, v in attrs["drop_rates"].items()},
            **{f"realised_share.{k}": v for k, v in realised_shares(attrs["proxy"].get("sources", {})).items()},
        }
        if outcome.pruned and curve:  # Optuna's value of a pruned trial: its last intermediate one
            final |= {"objective": curve[-1][1], "objective_full_targets": outcome.objective}
        metrics += [Metric(k, v, now, 0) for k, v in final.items()]
        if outcome.pruned:
            tags.append(RunTag("dataplan.state", "pruned"))
    mlflow.MlflowClient().log_batch(run_id, metrics=metrics, tags=tags)
    if outcome is not None and outcome.manifest_path is not None:
        mlflow.log_artifact(str(outcome.manifest_path))


def trial_summary(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One row of the trial table: number, state, objective, bpb per target, params, times.

    ``params`` are Optuna's (the mixture as simplex draws ``mixture.<source>``, for the sampler and
    the surrogates); ``recipe_params`` and ``weights`` are what to show: the step params and the
    normalised weights ``weight.<source>`` the trial trained on (``experiments.weights``)."""
    state = "interrupted" if t.user_attrs.get("interrupted") else t.state.name.lower()
    return {
        "number": t.number,
        "state": state,
        "objective": t.values[0] if t.values else None,
        "bpb": t.user_attrs.get("bpb", {}),
        "retained_tokens": t.user_attrs.get("retained_tokens"),
        "recipe_id": t.user_attrs.get("recipe_id"),
        "params": dict(t.params),
        "recipe_params": readable_params(t.params),
        "weights": t.user_attrs.get("weights") or trial_weights(t.params),
        "seconds": t.user_attrs.get("seconds", {}),
        "error": t.user_attrs.get("error"),
    }


def resumed_seed(seed: int, trials_so_far: int) -> int:
    """The sampler seed of a process that opens a study holding ``trials_so_far`` trials: ``seed``
    for a new study; otherwise one derived from both, so a resumed sampler does not replay the draws
    of the process that started the study (its first draw would repeat an earlier trial)."""
    if trials_so_far == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}/{trials_so_far}".encode()).digest()[:4], "big")


def make_sampler(
    name: str, seed: int, multi: bool, prior: dict[str, float] | None = None
) -> optuna.samplers.BaseSampler:
    """``prior``: the proposal's numeric values; CMA-ES starts its search distribution there."""
    S = optuna.samplers
    if name == "tpe":
        return _tpe(seed)
    if name == "gp":  # a trial's proxy trains with one seed for the whole search: the objective is deterministic
        with warnings.catch_warnings():  # thresholds that exist only while their step is on go to TPE
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return WarpedGPSampler(
                seed=seed,
                n_startup_trials=5,
                deterministic_objective=True,
                independent_sampler=_tpe(seed),
                warn_independent_sampling=False,
            )
    if name == "cmaes":
        if not prior:
            return S.CmaEsSampler(seed=seed, n_startup_trials=3)
        # x0/sigma0 are deprecated in Optuna 4.9 in favour of warm starting from source trials, but
        # a proposal is a point, not a finished study; TPE samples what CMA-ES cannot (on/off switches)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return S.CmaEsSampler(
                x0=prior,
                sigma0=PRIOR_SIGMA,
                n_startup_trials=1,
                independent_sampler=_tpe(seed),
                warn_independent_sampling=False,
                seed=seed,
            )
    if name == "random":
        return S.RandomSampler(seed=seed)
    raise RecipeError(f"sampler {name!r}: one of tpe, gp, cmaes, random")


def _tpe(seed: int) -> optuna.samplers.TPESampler:
    # group=True: thresholds that exist only while their step is on are modelled jointly with
    # the draws they co-occur with, instead of falling back to independent sampling
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed, n_startup_trials=5)


def make_pruner(name: str, rungs: int = 1) -> optuna.pruners.BasePruner:
    """``rungs`` > 1: successive halving over the proxy's token rungs (``experiments.fidelity``),
    whichever pruner is named, unless it is ``none``."""
    if rungs > 1 and name != "none":
        return halving_pruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/status").read_text()
        if "\nState:\tZ" in status:
            return False
    return True


@contextlib.contextmanager
def signals_raise_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C: the running trial is marked and the search stops."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def load_trials(folder: str | Path) -> list[dict[str, Any]]:
    """The trial table of a search folder (for tools and reports)."""
    return [trial_summary(t) for t in Search(folder).study().get_trials(deepcopy=False)]
