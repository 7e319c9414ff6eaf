# The run table and input functions. All logic lives in the vitprobe package; this file
# only translates its plan into file lists.
import difflib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

from pathlib import Path

from vitprobe.atomic import atomic_path
from vitprobe.catalog import FIGURES, PROBES, SEARCH_TABLE
from vitprobe.claims import TABLES as CLAIM_TABLES
from vitprobe.claims import scorecard_spec
from vitprobe.results import units_table
from vitprobe.config.identity import RUN_ID_REGEX, train_hash
from vitprobe.config.load import assemble, validate
from vitprobe.config.paths import CORRUPTIONS_READY, DATA_READY, Layout
from vitprobe.data.cifar_c import default_folder
from vitprobe.errors import ConfigError
from vitprobe import jobserver
from vitprobe.launch import CPU_ENV
from vitprobe.config.job import weights_kind


def _shown(path):
    """A config file's path as the user would write it: relative below the workdir."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def _load_config():
    """The files given with --configfile (or config.yaml when none is), then --config
    overrides (`train__epochs=10`), strict YAML, schema and semantic checks, before any job.
    Slurm jobs get the same --configfiles/--config and so assemble the same config."""
    files = [_shown(f) for f in workflow.overwrite_configfiles]
    try:
        cfg = assemble(files, dict(workflow.config_settings.config), default=DEFAULT_CONFIG)
        plan = validate(cfg, source=", ".join(files) or DEFAULT_CONFIG)
    except ConfigError as exc:
        sys.exit(f"vitprobe: {exc}")  # one line, no traceback
    config.clear()
    config.update(cfg)
    overrides = " ".join(f"{k}={v}" for k, v in workflow.config_settings.config.items())
    # For the report's home page only (workflow/report/workflow.rst); no job reads it.
    config["_report"] = {
        "config": (", ".join(files) or DEFAULT_CONFIG) + (f" with {overrides}" if overrides else ""),
        "runs": len(plan.runs),
        "experiments": ", ".join(plan.experiments),
        "scorecard": _scorecard_line(Layout.of(cfg).scorecard["markdown"]),
    }
    return plan


def _scorecard_line(path):
    """The scorecard's verdict counts for the report's home page (`snakemake --report` reads
    the workflow after the scorecard was written); '' before it exists."""
    try:
        return Path(path).read_text().split(". An effect")[0] + "."
    except OSError:
        return ""


PLAN = _load_config()
LAYOUT = Layout.of(config)
TABLES = PLAN.tables
SCORECARD_SPEC = scorecard_spec(PLAN)


def unknown_targets_regex():
    """Paths (without extension) that no_such_target (plot.smk) stands for: any .pdf/.png but the configured figures',
    and any <results_dir>/<name>.parquet but the aggregated tables and the search's table."""
    figures = [LAYOUT.figure("").format(figure=f).rstrip(".") for f in config["figures"]]
    tables = [LAYOUT.aggregate.format(table=t).removesuffix(".parquet") for t in [*TABLES, SEARCH_TABLE]]
    tables += [LAYOUT.scorecard[k].removesuffix(".parquet") for k in ("claims", "runs")]
    known = "|".join(re.escape(p) for p in figures + tables) or "(?!)"
    return rf"(?!(?:{known})\.(?:pdf|png|parquet)$)(?:.*(?=\.(?:pdf|png)$)|{re.escape(LAYOUT.results)}/[^/]+(?=\.parquet$))"


def no_such_target(wildcards):
    """Input function of no_such_target (plot.smk): a figure or aggregated-table target the
    config does not make ends the run with one line saying what it makes (Snakemake would say
    only `MissingRuleException: No rule to produce ...`)."""
    path, kind = wildcards.target, "figure" if wildcards.ext in ("pdf", "png") else "table"
    made = (
        [LAYOUT.figure("pdf").format(figure=f) for f in config["figures"]]
        if kind == "figure"
        else [LAYOUT.aggregate.format(table=t) for t in TABLES]
    )
    name = os.path.basename(path)
    if kind == "figure" and name in FIGURES and os.path.dirname(path) == LAYOUT.figures:
        sys.exit(
            f"vitprobe: {path}.{wildcards.ext}: {name} is one of vitprobe's figures, but this config does not "
            f"configure it: add a figures.{name} block (config.yaml has one to copy); it makes: {', '.join(made)}"
        )
    close = difflib.get_close_matches(f"{path}.{wildcards.ext}", made, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    where = f"figures_dir: {LAYOUT.figures}" if kind == "figure" else f"results_dir: {LAYOUT.results}"
    sys.exit(
        f"vitprobe: {path}.{wildcards.ext}: the config makes no such {kind}; {hint}it makes ({where}): {', '.join(made)}"
    )


# Jobs run the `vitprobe` script installed beside the interpreter that runs Snakemake (its
# venv's bin/, first on PATH; Slurm jobs set it up the same way when they parse this file).
# Not a path in the rules: the interpreter's path differs between venvs, checkouts and
# `python -m snakemake`, and a changed rule would rerun every job.
shell.prefix(f'set -euo pipefail; PATH={shlex.quote(os.path.dirname(sys.executable))}:"$PATH"; ')


onstart:
    # The executor is known only now; without the Slurm commands every submission would fail.
    if workflow.executor_plugin is not None and workflow.executor_plugin.name == "slurm":
        missing = [c for c in ("sbatch", "squeue", "scancel") if shutil.which(c) is None]
        if missing:
            sys.exit(
                f"vitprobe: the Slurm executor needs {', '.join(missing)} on PATH; run on a Slurm login "
                f"node (or load the site's slurm module), or drop --profile profiles/slurm to run locally"
            )
    quiet_interrupted_jobs()
    start_job_server()


onsuccess:
    stop_job_server()


onerror:
    stop_job_server()
    report_interrupted()


# Every job's log ends with its CPU seconds in start-up and in work (vitprobe.launch).
os.environ[CPU_ENV] = "1"
_JOB_SERVER = {}


def start_job_server():
    """Local runs: `vitprobe serve` for this Snakemake process, its jobs told where by
    VITPROBE_JOB_SERVER (vitprobe.jobserver). Started with the thread settings Snakemake gives
    a local job (threads 1, job_threads), waited for until it has imported everything (a job
    that finds no server runs on its own)."""
    if not config["job_server"] or workflow.non_local_exec or workflow.remote_exec or not jobserver.SUPPORTED:
        return
    address = jobserver.private_address()  # in a fresh directory of mode 0700: this user's alone
    env = {**os.environ, **{k: "1" for k in jobserver.THREAD_ENV}}  # as Snakemake sets them for a job of 1 thread
    env.pop(jobserver.ENV, None)  # an outer run's server is not this one's
    log = Path(LAYOUT.log("job_server"))
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "vitprobe", "serve", "--socket", address, "--parent", str(os.getpid())],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    for _ in range(1200):  # imports take 3-10 s
        if os.path.exists(address) or server.poll() is not None:
            break
        time.sleep(0.1)
    _JOB_SERVER["address"] = address
    if os.path.exists(address):
        os.environ[jobserver.ENV] = address
        _JOB_SERVER["process"] = server
    else:
        print(f"vitprobe: the job server did not start (see {log}); jobs start Python each", file=sys.stderr)


def stop_job_server():
    server, address = _JOB_SERVER.pop("process", None), _JOB_SERVER.pop("address", None)
    os.environ.pop(jobserver.ENV, None)
    if server is not None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    if address is not None:  # its private directory, if the server could not remove it
        shutil.rmtree(os.path.dirname(address), ignore_errors=True)


# ---- Ctrl-C at the console --------------------------------------------------------------
# A job that Ctrl-C stopped (its command ended by SIGINT: exit status 130) failed for no reason
# to report: Snakemake would print its error (the shell command, its --spec JSON) and, with
# show-failed-logs, its log again: some 80 lines for two training jobs. On the console they
# give way to the job's own line on the interrupt (training: where its state is saved), and the
# run ends with how to resume (onerror). The run's log file (.snakemake/log) keeps them whole;
# every other failure is shown as before.
_SIGINT_EXIT = re.compile(r"non-zero exit status (?:130|-2)\.|died with <Signals\.SIGINT: 2>")
_INTERRUPTED = []  # (rule, the job's own line on the interrupt or None), as the jobs ended


class InterruptedJobs:
    """A filter (standard logging) on Snakemake's console handler. A job's failure comes as two
    records from the thread that saw it end: its exception (with the exit status), then its
    report (rule, log files), each with an `event` of the logger-plugin interface."""

    def __init__(self):
        import threading
        from snakemake_interface_logger_plugins.common import LogEvent

        self.event, self.thread = LogEvent, threading.get_ident
        self.pending = set()  # threads whose last record was a job's exit by SIGINT

    def filter(self, record):
        event, thread = getattr(record, "event", None), self.thread()
        if thread in self.pending:
            self.pending.discard(thread)
            if event == self.event.JOB_ERROR:
                _INTERRUPTED.append((record.rule_name, interrupt_line(record.log)))
                return False
        if event == self.event.ERROR and _SIGINT_EXIT.search(str(record.msg)):
            self.pending.add(thread)
            return False
        return True


def quiet_interrupted_jobs():
    import logging

    for handler in workflow.logger_manager.logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.addFilter(InterruptedJobs())


def interrupt_line(logs):
    """The job's own last line on the interrupt in its log: training's says where it saved its
    state (vitprobe.training.loop), other verbs' only that they were interrupted."""
    for log in logs:
        try:
            with open(log, "rb") as f:
                f.seek(max(0, os.path.getsize(log) - 8192))
                tail = f.read().decode(errors="replace")
        except OSError:
            continue
        lines = [l.strip() for l in re.split(r"[\r\n]+", tail) if "interrupted" in l]
        if lines:
            return lines[-1]
    return None


def report_interrupted():
    """onerror: what the jobs Ctrl-C stopped saved (training: its own line), which start over,
    and the command that resumes the run."""
    if not _INTERRUPTED:
        return
    from collections import Counter

    saved = [line for _, line in _INTERRUPTED if line and "state saved" in line]
    others = Counter(rule for rule, line in _INTERRUPTED if not (line and "state saved" in line))
    if others:
        jobs = ", ".join(rule if n == 1 else f"{rule} ({n} jobs)" for rule, n in sorted(others.items()))
        saved.append(f"vitprobe: interrupted before they saved anything, to run again from the start: {jobs}")
    saved.append(f"vitprobe: interrupted; to resume, run the same command again: {shlex.join(_command())}")
    print("\n".join(saved), file=sys.stderr)


def _command():
    """This Snakemake command as the user would type it again."""
    program, args = sys.argv[0], sys.argv[1:]
    if program.endswith("__main__.py"):  # python -m snakemake
        return [_shown(sys.executable), "-m", "snakemake", *args]
    name, found = os.path.basename(program), shutil.which(os.path.basename(program))
    try:
        on_path = found is not None and os.path.samefile(found, program)
    except OSError:
        on_path = False
    return [name if on_path else _shown(program), *args]


wildcard_constraints:
    run=RUN_ID_REGEX,
    epoch=r"\d+",
    shard=r"\d+",


def as_json(spec):
    return json.dumps(spec, sort_keys=True)


def write_spec(path, spec):
    """A job's spec file, written atomically (never half-written)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(spec, sort_keys=True, indent=1) + "\n")


def data_ready(dataset=None):
    """The ready marker of a dataset (default: data.dataset); the prepare_data rule makes it."""
    return DATA_READY.format(root=config["data"]["root"], dataset=dataset or config["data"]["dataset"])


def run_data_ready(wildcards):
    """The ready marker of the dataset of the run in the wildcards (experiments.<name>.dataset)."""
    return data_ready(PLAN.run(wildcards.run).dataset)


def runs_regex(runs):
    """A wildcard constraint matching exactly these run ids (none: matches nothing)."""
    return "|".join(re.escape(r.id) for r in runs) or "(?!)"


def corruption_folder():
    """The CIFAR-C folder the corruption probe reads (probes.corruption.folder, else the
    published folder of data.dataset under data.root)."""
    probe = config["probes"]["corruption"]
    return probe["folder"] or str(default_folder(config["data"]["dataset"], config["data"]["root"]))


# What a probe may read beyond its checkpoint and its run's dataset (`reads` of its
# vitprobe.probes module) -> the file that says it is ready (data.smk makes it).
READ_INPUTS = {"corruptions": lambda: CORRUPTIONS_READY.format(folder=corruption_folder())}


def probe_extra_inputs(probe):
    """Inputs a probe needs beyond its checkpoint and the dataset."""
    return {what: READ_INPUTS[what]() for what in PROBES[probe].reads if what in READ_INPUTS}


def probe_pattern(table, shards=1):
    """A probe job's output: the per-run table, or with shards > 1 one shard's file of it."""
    if shards == 1:
        return LAYOUT.probe_table.format(run="{run}", epoch="{epoch}", table=table)
    return LAYOUT.probe_shard(shards).format(run="{run}", epoch="{epoch}", table=table, shard="{shard}")


def shard_files(table, shards):
    """Input function of a merge rule: every shard's file of the table, for one (run, epoch)."""
    return lambda wildcards: [
        LAYOUT.probe_shard(shards).format(run=wildcards.run, epoch=wildcards.epoch, table=table, shard=i)
        for i in range(shards)
    ]


def shard_arg(shards):
    """` --shard I/S` of a shard job (nothing for an unsplit job)."""
    return "" if shards == 1 else (lambda wildcards: f" --shard {wildcards.shard}/{shards}")


def run_train_spec(wildcards):
    return PLAN.train_spec(PLAN.run(wildcards.run))


def run_probe_spec(probe):
    return lambda wildcards: PLAN.probe_spec(PLAN.run(wildcards.run), probe)


def _spec_value(spec, key):
    node = spec
    for part in key.split("."):
        node = node.get(part, "<unset>") if isinstance(node, dict) else "<unset>"
    return f"{key}={as_json(node)}"


def _rest(spec, keys):
    """What the keys do not cover (normally nothing): a key added to a spec is compared too."""
    covered = {k.split(".")[0]: set() for k in keys}
    for k in keys:
        if "." in k:
            covered[k.split(".")[0]].add(k.split(".", 1)[1])
    rest = {}
    for section, value in spec.items():
        if section not in covered:
            rest[section] = value
        elif covered[section] and isinstance(value, dict):
            rest.update({f"{section}.{k}": v for k, v in value.items() if k not in covered[section]})
    return f"rest={as_json(rest)}"


def tracked(spec_of, keys):
    """Params Snakemake compares with those of the job's last run, one per config key
    ("train.epochs=6"): a rerun's reason then names the keys that changed, where one param
    holding the whole spec would print two dumps of it. The spec itself reaches the job as
    a file (train) or as a derived param (`lambda wildcards, input`), which is not compared."""
    params = {k.replace(".", "__"): (lambda wildcards, k=k: _spec_value(spec_of(wildcards), k)) for k in keys}
    params["rest"] = lambda wildcards: _rest(spec_of(wildcards), keys)
    return params


def train_keys():
    return ["run", "data", "model", *(f"train.{k}" for k in config["train"])]


def probe_keys(probe):
    return [*train_keys(), *(f"probe.{k}" for k in config["probes"][probe] if k != "download")]


def train_spec(wildcards, input=None):
    """The training spec as the job's --spec (derived: Snakemake does not compare it; see tracked)."""
    return as_json(run_train_spec(wildcards))


def train_state_dir(wildcards, input=None):
    spec = run_train_spec(wildcards)
    return LAYOUT.train_state_dir.format(run=wildcards.run, train_hash=train_hash(spec))


def import_inputs(run_id):
    """A weights file of an imported run is the input of its import job (none for init, timm, URLs)."""
    source = PLAN.model_spec(PLAN.run(run_id).model)["weights"]
    return [source] if weights_kind(source) == "file" else []


def named_args(flag, files):
    """`--flag NAME=PATH` for every file of Snakemake's named input or output lists."""
    return " ".join(
        f"{flag} {name}={path}"
        for name, paths in files.items()
        for path in ([paths] if isinstance(paths, str) else paths)
    )


def probe_params(probe):
    """Params of a configured probe's rule: its slice of the config for each run, compared key
    by key (tracked), handed over whole as --spec."""
    return {
        "device": config["device"],
        "probe": probe,
        **tracked(run_probe_spec(probe), probe_keys(probe)),
        "spec": lambda wildcards, input: as_json(run_probe_spec(probe)(wildcards)),
    }


def run_tables(table, runs=None, epoch=None):
    """Per-run files of one table for the given runs (default: the whole grid), at each of the
    run's epochs of that table (only `epoch` if given). Runs with imported weights have no
    train_log and one checkpoint, epoch 0 (PLAN.run_table_epochs)."""
    runs = PLAN.runs if runs is None else runs
    if table == "train_log":
        return [LAYOUT.train_log.format(run=r.id) for r in runs if not PLAN.imported(r)]
    return [
        LAYOUT.probe_table.format(run=r.id, table=table, epoch=e)
        for r in runs
        for e in PLAN.run_table_epochs(r, table)
        if epoch is None or e == epoch
    ]


def aggregate_units(table):
    """The per-run files a table's intervals are computed from (none for most tables)."""
    units = units_table(table)
    return run_tables(units) if units else []


def units_arg(files):
    return " ".join(f"--units {shlex.quote(str(f))}" for f in files)


def interval_args():
    i = config["intervals"]
    return f"--level {i['level']} --resamples {i['resamples']} --seed {i['seed']}"


def scorecard_inputs(wildcards):
    """The aggregated tables the claims read, of those the config makes, and eval."""
    wanted = [t for t in ("eval", *CLAIM_TABLES) if t in TABLES]
    return {t: LAYOUT.aggregate.format(table=t) for t in dict.fromkeys(wanted)}


def figure_inputs(figure, table):
    """The per-run files of `table` that the figure's series need."""
    if table == SEARCH_TABLE:
        return [LAYOUT.search_table]
    spec = config["figures"][figure]
    return run_tables(table, PLAN.figure_runs(figure), spec.get("epoch"))


def figure_params(figure):
    return {
        "figure": PLAN.figure_kind(figure),
        "spec": lambda wildcards: as_json({**config["figures"][figure], "intervals": config["intervals"]}),
    }


def search_needed():
    """The search runs for `all` only when a configured figure draws it (fig_buildup); else
    only when asked for by name (`snakemake search`)."""
    return any(SEARCH_TABLE in PLAN.figure_tables(f) for f in config["figures"])


def all_targets():
    return (
        (search_targets() if search_needed() else [])
        + [LAYOUT.aggregate.format(table=t) for t in TABLES]
        + ([LAYOUT.scorecard["claims"]] if "eval" in TABLES else [])
        + [LAYOUT.figure(ext).format(figure=f) for f in config["figures"] for ext in ("pdf", "png")]
    )


# ---- Cluster execution (profiles/slurm) -----------------------------------------------
# Rules that never go to the cluster: cheap, CPU-only, or needing the network (CIFAR
# download). Figure rules are named after their figure, so every configured figure's rule
# is local too. Everything else (train, the probes) is submitted as one Slurm job per job.
LOCAL_RULES = [
    "all",
    "train_spec",
    "no_such_target",
    "prepare_data",
    *(["prepare_corruptions"] if "corruption" in config["probes"] else []),
    "import_weights",
    "aggregate",
    "scorecard",
    *(["search_step", "search_table", "search_aggregate", "search"] if PLAN.search else []),
    *config["figures"],
    *(PROBES[p].rule_name for p in PLAN.probes if PLAN.shards(p) > 1),  # the merges of sharded probes
]
workflow.localrules(*LOCAL_RULES)  # the `localrules:` directive, for a computed list


def job_threads(wildcards):
    """CPU threads of a train/probe job (also its OMP_NUM_THREADS): `resources.cpus` per GPU
    on a cluster (when submitting, and inside the job, where Snakemake runs in remote mode);
    1 locally, where jobs run side by side on the cores (`--cores`)."""
    r = config["resources"]
    on_cluster = workflow.non_local_exec or workflow.remote_exec
    return r["cpus"] * max(r["gpus"], 1) if on_cluster else 1


def _cluster_resources(mem_mb, runtime):
    """Keys the Slurm executor turns into sbatch flags: gpu (+gpu_model) -> --gpus,
    cpus_per_gpu / cpus_per_task, mem_mb -> --mem, runtime (minutes) -> -t."""
    r = config["resources"]
    res = {"mem_mb": mem_mb, "runtime": runtime}
    if r["gpus"] > 0:
        res.update(gpu=r["gpus"], cpus_per_gpu=r["cpus"])
        if r["gpu_model"]:
            res["gpu_model"] = r["gpu_model"]
    else:
        res["cpus_per_task"] = r["cpus"]
    return res


def train_resources():
    """Per-model runtime (resources.train.runtime_per_model, else .runtime: Plan.train_runtime)."""
    return _cluster_resources(
        config["resources"]["train"]["mem_mb"], lambda wildcards: PLAN.train_runtime(PLAN.run(wildcards.run))[0]
    )


def probe_resources(probe):
    return _cluster_resources(config["resources"]["probes"]["mem_mb"], PLAN.probe_runtime(probe))


# ---- The build-up search (workflow/rules/search.smk) ------------------------------------
def search_history(step):
    """Run ids of the candidates scored by step `step`, in order (step 0: the base)."""
    if step == 0:
        return [PLAN.search_run(PLAN.search["start"]).id]
    state = json.loads(Path(checkpoints.search_step.get(step=step - 1).output[0]).read_text())
    if state["next"] is None:
        raise ValueError(f"the search stopped at step {step - 1} ({state['stopped']}); there is no step {step}")
    return [s["run"] for s in state["steps"]] + [state["next"]["run"]]


def search_step_inputs(wildcards):
    step = int(wildcards.step)
    epoch = PLAN.search["epoch"]
    scores = [LAYOUT.search_score.format(run=r, epoch=epoch) for r in search_history(step)]
    previous = [LAYOUT.search_step.format(step=step - 1)] if step else []
    return {"scores": scores, "previous": previous}


def search_last_step(wildcards):
    """The state file of the step that stops the search (found one checkpoint at a time)."""
    step = 0
    while True:
        path = checkpoints.search_step.get(step=step).output[0]
        if json.loads(Path(path).read_text())["next"] is None:
            return path
        step += 1


def search_runs():
    """The candidates the search tried, once it is over (found one checkpoint at a time)."""
    state = json.loads(Path(search_last_step(None)).read_text())
    return [PLAN.run(s["run"]) for s in state["steps"]]


def search_targets():
    """The path taken, and every per-run table over the candidates."""
    tables = [LAYOUT.search_aggregate.format(table=t) for t in TABLES]
    return [LAYOUT.search_table, *tables] if PLAN.search else []
