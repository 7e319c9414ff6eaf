"""`vitprobe <verb> ...`: one verb per Snakemake rule, usable on its own too.

Rules hand each verb a JSON *spec* (the slice of the config that matters for that job,
see `vitprobe.config.plan.Plan`), so that a change to an unrelated config key reruns nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vitprobe import __version__
from vitprobe.atomic import atomic_path
from vitprobe.catalog import FIGURES, PROBES, measure_module
from vitprobe.config.job import DEVICE_CHOICES, JobSpec
from vitprobe.errors import VitprobeError

#: The modules each verb imports beyond this module's own (its command imports them itself:
#: torch, timm and matplotlib only where a verb needs them, tests/test_layout.py checks the
#: list against the commands); a probe's verb imports the runner and its `measure` module.
VERB_IMPORTS = {
    "prepare-data": ("vitprobe.data.splits", "vitprobe.data.synthetic"),
    "prepare-corruptions": ("vitprobe.data.cifar_c",),
    "train": ("vitprobe.device", "vitprobe.training.loop"),
    "import-weights": ("vitprobe.models.recipe", "vitprobe.models.weights"),
    "merge": ("vitprobe.probe_runner",),
    "search-score": ("vitprobe.device", "vitprobe.search.steps"),
    "search-step": ("vitprobe.search.steps",),
    "search-table": ("vitprobe.search.steps",),
    "aggregate": ("vitprobe.config.load", "vitprobe.results"),
    "scorecard": ("vitprobe.report.scorecard",),
    "plot": ("vitprobe.figures",),
    "check-config": ("vitprobe.claims", "vitprobe.config.cost", "vitprobe.config.load"),
    "digest": ("vitprobe.report.digest",),
    "tables": ("vitprobe.results",),
    "docs": ("vitprobe.report.reference",),
}


def verb_imports(verb: str) -> tuple[str, ...]:
    """What `verb` imports (VERB_IMPORTS; a probe's verb: the runner and its measure module)."""
    if verb in PROBES:
        return ("vitprobe.device", "vitprobe.probe_runner", measure_module(verb))
    return VERB_IMPORTS.get(verb, ())


#: What the job server imports once for every command it runs (`vitprobe serve`): every verb's.
PRELOAD = ("vitprobe.cli", *sorted({m for verb in [*VERB_IMPORTS, *PROBES] for m in verb_imports(verb)}))


class SpecError(VitprobeError):
    """A --spec that is not JSON or lacks keys its verb needs."""


# The keys every spec of a verb must have (see vitprobe.config.plan.Plan.train_spec/probe_spec).
SPEC_KEYS = {"train": ("run", "data", "model", "train"), "probe": ("run", "data", "model", "train", "probe"),
             "plot": ("experiments",),
             "scorecard": ("roles", "only", "warmup_epoch", "dataset", "models"),
             "search": ("base", "dataset", "layers", "start", "stages", "budget", "seed")}


def _spec(value: str, verb: str, kind: str) -> dict:
    """A spec given inline as JSON, or as @path to a JSON file; checked for its keys."""
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise SpecError(f"--spec {value}: file {path} does not exist")
        text = path.read_text()
    else:
        text = value
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"--spec is not valid JSON ({exc}); pass the JSON object the Snakemake rule passes, "
                        f"or @file.json") from None
    missing = [k for k in SPEC_KEYS[kind] if not isinstance(spec, dict) or k not in spec]
    if missing:
        raise SpecError(f"--spec of `vitprobe {verb}` lacks {', '.join(map(repr, missing))}: it needs the keys "
                        f"{', '.join(SPEC_KEYS[kind])} (the rules build it with vitprobe.config.plan.Plan)")
    return spec


def _device(args):
    from vitprobe.device import resolve  # torch: the verbs that compute
    return resolve(args.device)


def cmd_prepare_data(args):
    from vitprobe.data import splits as data  # torchvision's dataset readers
    from vitprobe.data.synthetic import SYNTHETIC_KEYS  # (the same verb's)

    try:
        synthetic = json.loads(args.synthetic) if args.synthetic else None
    except json.JSONDecodeError as exc:
        raise SpecError(f"--synthetic is not valid JSON ({exc}); pass an object of the keys "
                        f"{', '.join(SYNTHETIC_KEYS)}, e.g. the config's data.synthetic") from None
    summary = data.prepare(args.dataset, args.root, download=args.download, synthetic=synthetic)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


def cmd_prepare_corruptions(args):
    from vitprobe.data import cifar_c as corruptions  # this verb's module
    summary = corruptions.prepare(args.dataset, args.root, args.folder, extra=args.extra, download=args.download)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


def cmd_search_score(args):
    from vitprobe.search import steps as search_steps  # torch: scores a checkpoint
    job = JobSpec.of(_spec(args.spec, "search-score", "train"))
    search_steps.score(job, args.checkpoint, args.out, device=_device(args))


def cmd_search_step(args):
    from vitprobe.search import steps as search_steps  # this verb's module
    spec = _spec(args.spec, "search-step", "search")
    search_steps.step(spec, args.score or [], args.out)


def cmd_search_table(args):
    from vitprobe.search import steps as search_steps  # this verb's module
    df = search_steps.table(args.state, args.out)
    print(f"{args.out}: {len(df)} steps, kept {', '.join(df.loc[df['kept'], 'msa_blocks'])}")


def _pairs(values, flag: str, allowed, key_type=str, *, exactly=False, many=False) -> dict:
    """`NAME=PATH` arguments as {name: path} ({name: [paths]} with `many`); a name not in
    `allowed`, a malformed pair, or (with `exactly`) a missing name is a one-line error."""
    out: dict = {}
    allowed = [str(a) for a in allowed]
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not path or name not in allowed:
            raise VitprobeError(f"{flag} {value!r}: expected NAME=PATH with NAME one of {', '.join(allowed)}")
        if many:
            out.setdefault(key_type(name), []).append(path)
        elif key_type(name) in out:
            raise VitprobeError(f"{flag} {name}=...: given twice")
        else:
            out[key_type(name)] = path
    missing = [a for a in allowed if key_type(a) not in out]
    if exactly and missing:
        raise VitprobeError(f"{flag}: missing {', '.join(f'{m}=PATH' for m in missing)} (one per table it writes)")
    return out


def cmd_train(args):
    from vitprobe.training.loop import train  # torch and timm: the verbs that compute
    job = JobSpec.of(_spec(args.spec, "train", "train"))
    epochs = sorted(set(job.train["checkpoint_epochs"]) | {job.train["epochs"]})
    checkpoints = _pairs(args.checkpoint, "--checkpoint", epochs, int)
    if not checkpoints:
        raise VitprobeError(f"--checkpoint EPOCH=PATH: give at least one; epochs of this spec: {epochs}")
    train(job, state_dir=args.state_dir, checkpoints=checkpoints, log_path=args.log,
          device=_device(args), progress=not args.no_progress, tensorboard=args.tensorboard)


def cmd_import_weights(args):
    from vitprobe.models.recipe import import_weights  # torch and timm: builds the model
    from vitprobe.models.weights import WeightsError  # (the same verb's)
    job = JobSpec.of(_spec(args.spec, "import-weights", "train"))
    if "weights" not in job.model:
        raise WeightsError("--spec: its model has no 'weights' source (models.<alias>.weights); train it instead")
    import_weights(job, args.out, download=args.download)
    print(f"{args.out}: weights {job.model['weights']} of {job.model['arch']}", file=sys.stderr)


def _shard(value: str | None, probe, job: JobSpec):
    """`--shard I/S` as (i, s): a shardable probe, s its config's `shards`, 0 <= i < s."""
    if value is None:
        return None
    i, sep, s = value.partition("/")
    if not (sep and i.isdigit() and s.isdigit()):
        raise VitprobeError(f"--shard {value!r}: expected I/S, e.g. 0/4 (shard I of S, counted from 0)")
    i, s = int(i), int(s)
    if not probe.shardable:
        raise VitprobeError(f"--shard: the {probe.name} probe cannot be split into shards")
    shards = job.probe.get("shards", 1)
    if s != shards or not 0 <= i < s:
        raise VitprobeError(f"--shard {value}: the spec's probes.{probe.name}.shards is {shards}; allowed: "
                            f"I/{shards} with I in 0..{shards - 1}")
    return i, s


def cmd_probe(args):
    from vitprobe.probe_runner import run_probe  # torch: the probe's measure module
    probe = PROBES[args.verb]
    outs = _pairs(args.out, "--out", probe.table_names, exactly=True)
    job = JobSpec.of(_spec(args.spec, args.verb, "probe"))
    shard = _shard(args.shard, probe, job)
    run_probe(probe.name, job, args.checkpoint, outs, device=_device(args), shard=shard)


def cmd_merge(args):
    from vitprobe.probe_runner import merge_probe  # the probe's tables
    probe = PROBES[args.probe]
    if not probe.shardable:
        raise VitprobeError(f"--probe {args.probe}: cannot be split into shards; allowed: "
                            f"{', '.join(p.name for p in PROBES.values() if p.shardable)}")
    job = JobSpec.of(_spec(args.spec, "merge", "probe"))
    shards = _pairs(args.shard, "--shard", probe.table_names, exactly=True, many=True)
    outs = _pairs(args.out, "--out", probe.table_names, exactly=True)
    counts = {t: len(f) for t, f in shards.items()}
    if len(set(counts.values())) > 1 or set(counts.values()) != {job.probe.get("shards", 1)}:
        raise VitprobeError(f"--shard: {counts} files per table; the spec's probes.{args.probe}.shards is "
                            f"{job.probe.get('shards', 1)}: give that many of each table")
    merge_probe(probe.name, job, shards, outs)


def _intervals(args):
    from vitprobe.config.load import intervals  # the schema's defaults
    given = {k: getattr(args, k) for k in ("level", "resamples", "seed") if getattr(args, k) is not None}
    return intervals({"intervals": given})


def cmd_aggregate(args):
    from vitprobe.results import units_table, write_aggregate  # pandas and pyarrow
    n = write_aggregate(args.inputs, args.table, args.out, args.units or (), _intervals(args))
    units = f" (intervals from {len(args.units)} {units_table(args.table)} files)" if args.units else ""
    print(f"{args.out}: {n} rows from {len(args.inputs)} files{units}")


def cmd_scorecard(args):
    from vitprobe.report import scorecard  # pandas and scipy
    spec = _spec(args.spec, "scorecard", "scorecard")
    paths = _pairs(args.table, "--table", (*scorecard.claims.TABLES, "eval"))
    tables = {name: scorecard.read(path) for name, path in paths.items()}
    claim_rows, run_rows = scorecard.build(tables, spec)
    results = str(Path(args.out).parent)
    md = scorecard.markdown(claim_rows, run_rows, results)
    for df, out in ((claim_rows, args.out), (run_rows, args.runs)):
        with atomic_path(out) as tmp:
            df.to_parquet(tmp, index=False)
    for text, out in ((md + "\n", args.markdown), (scorecard.html(md), args.html)):
        if out:
            with atomic_path(out) as tmp:
                Path(tmp).write_text(text)
    print(md)
    print(f"scorecard: {scorecard.counts(claim_rows)}; wrote {args.out}, {args.runs}", file=sys.stderr)


def cmd_plot(args):
    from vitprobe.figures import plot  # matplotlib
    figure = FIGURES[args.figure]
    tables = _pairs(args.table, "--table", figure.tables, many=True)
    spec = _spec(args.spec, "plot", "plot")
    n = sum(map(len, tables.values()))
    print(f"{args.figure}: drawing from {n} per-run tables ({', '.join(figure.tables)})", file=sys.stderr)
    plot(args.figure, spec, tables, args.out)
    print(f"{args.figure}: wrote {', '.join(args.out)}", file=sys.stderr)


def _overrides(pairs) -> dict:
    """`--set KEY=VALUE` pairs; the values stay strings: `config.apply_overrides` gives each the
    type the schema wants for its key, as for Snakemake's --config."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise VitprobeError(f"--set {pair!r}: expected KEY=VALUE, e.g. train.epochs=10")
        out[key] = value
    return out


def cmd_check_config(args):
    from vitprobe import claims  # a config's validation builds every model (torch, timm)
    from vitprobe.config import cost  # (the same verb's)
    from vitprobe.config.load import load  # (the same verb's)

    _, plan = load(args.config, _overrides(args.set))
    imported = f" ({len(plan.imported_runs)} with imported weights: epoch 0 only)" if plan.imported_runs else ""
    print(f"{args.config}: valid; {len(plan.runs)} runs{imported}, checkpoints at epochs {plan.checkpoint_epochs}")
    for name, runs in plan.experiments.items():
        print(f"  {name}: {len(runs)} runs")
    first = None
    if plan.search:
        s = plan.search
        first = plan.search_run(s["start"])
        print(f"  search: from {s['base']} (MSA blocks {s['start']}), stages "
              f"{', '.join(f'c{st}' for st in s['stages'])}, at most {cost.search_steps(s)} candidates after "
              f"{first.id} "
              f"(which ones, the search decides as it runs)")
    roles = claims.resolve_roles(plan)
    shown = ", ".join(f"{r} {v['model']}" + (f" (of {len(v['candidates'])}: claims.roles.{r} chooses)"
                                              if len(v["candidates"]) > 1 else "") for r, v in roles.items())
    print(f"  claims: roles {shown or 'none'}; {len(plan.config['claims'].get('only') or claims.CLAIMS)} claims "
          f"scored (vitprobe.claims)")
    if args.runs:
        print("\n".join(r.id for r in [*plan.runs, *([first] if first else [])]))
    if args.cost:
        print(format_cost(cost.estimate(plan, {p: PROBES[p].rule_name for p in plan.probes}), plan.config))


def format_cost(c, config: dict) -> str:
    """The table of `vitprobe check-config --cost`."""
    res, hours = config["resources"], f"{c.unit}-h"
    lines = ["cost: an upper bound from the time limits requested (resources.train/probes runtimes), not measured "
             "runtimes; a training job preempted or stopped at its limit resubmits, resumes and may use more"]
    if res["gpus"] == 0:
        lines.append(f"resources.gpus is 0: CPU-core-hours, {c.per_job} cores per job (resources.cpus), no GPUs")
    elif c.per_job > 1:
        lines.append(f"{hours}: {c.per_job} GPUs per job (resources.gpus)")
    table = [("rule", "jobs", "limit/job (min)", hours, "note")]
    for r in c.rows:
        table.append((r.rule, f"{'<=' if r.at_most else ''}{r.jobs}", "local" if r.minutes is None else str(r.minutes),
                      f"{r.hours:.1f}", r.note))
    jobs = sum(r.jobs for r in c.rows if r.minutes is not None)
    table.append(("total", f"{'<=' if any(r.at_most for r in c.rows) else ''}{jobs}", "", f"{c.total:.1f}",
                  "cluster jobs; upper bound"))
    width = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        lines.append(f"  {row[0]:<{width[0]}}  {row[1]:>{width[1]}}  {row[2]:>{width[2]}}  {row[3]:>{width[3]}}  "
                     f"{row[4]}".rstrip())
    return "\n".join(lines)


def cmd_digest(args):
    from vitprobe.report.digest import copy_images, digest, update_readme  # pandas
    block = digest(args.results)
    print(block)
    if args.readme:
        update_readme(args.readme, block)
    if args.figures and args.images:
        copied = copy_images(args.figures, args.images)
        print(f"copied {len(copied)} figure PNGs to {args.images}", file=sys.stderr)


def cmd_docs(args):
    from vitprobe.report import reference  # the reference pages
    for path in reference.write(args.out):
        print(path)


def cmd_tables(args):
    from vitprobe.results import markdown_docs  # the tables' reference
    print(markdown_docs())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vitprobe", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"vitprobe {__version__}")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="verb", required=True)

    def verb(name, func, help_):
        s = sub.add_parser(name, help=help_, description=help_)
        s.set_defaults(func=func)
        return s

    def with_spec(s, device=True):
        s.add_argument("--spec", required=True, help="job spec as JSON, or @file.json")
        if device:
            s.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
        return s

    s = verb("prepare-data", cmd_prepare_data, "make a dataset available (CIFAR or Fashion-MNIST: find or "
             "download; synthetic: write; the shipped subset: check)")
    s.add_argument("--dataset", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--download", action="store_true")
    s.add_argument("--synthetic", help="synthetic-data parameters as JSON")
    s.add_argument("--out", required=True, help="summary JSON written when the data is ready")

    s = with_spec(verb("train", cmd_train, "train one run, writing its checkpoints and log"))
    s.add_argument("--checkpoint", action="append", metavar="EPOCH=PATH", help="where to write the checkpoint "
                   "of that epoch (repeat; epochs from the spec's train.checkpoint_epochs and train.epochs)")
    s.add_argument("--log", required=True, help="train_log Parquet path")
    s.add_argument("--state-dir", required=True, help="resume state directory (kept across failed attempts)")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--tensorboard", metavar="DIR", help="also write the per-epoch curves as TensorBoard events here")

    s = with_spec(verb("import-weights", cmd_import_weights, "write the one checkpoint (epoch 0) of a run whose "
                       "weights are imported (init, timm, a file or URL), not trained"), device=False)
    s.add_argument("--out", required=True, help="checkpoint path")
    s.add_argument("--download", action="store_true", help="allow downloading a weights URL (data.download)")

    for probe in PROBES.values():
        s = with_spec(verb(probe.name, cmd_probe, probe.help))
        s.add_argument("--checkpoint", required=True)
        s.add_argument("--out", required=True, action="append", metavar="TABLE=PATH",
                       help=f"Parquet path of each table it writes: {', '.join(probe.table_names)}")
        s.add_argument("--shard", metavar="I/S", help="only shard I of S (from 0) of the job's work, "
                       "S = the spec's shards; `vitprobe merge` joins the shards' tables" if probe.shardable else
                       argparse.SUPPRESS)

    merging = [p.name for p in PROBES.values() if p.shardable]
    s = with_spec(verb("merge", cmd_merge, "join the tables of a probe job's shards into the tables of one job"),
                  device=False)
    s.add_argument("--probe", required=True, choices=merging)
    s.add_argument("--shard", action="append", metavar="TABLE=PATH", help="a shard's file of a table (repeat, "
                   "every shard's file of every table)")
    s.add_argument("--out", required=True, action="append", metavar="TABLE=PATH", help="merged table path (each table)")

    s = verb("prepare-corruptions", cmd_prepare_corruptions, "check (and with --download fetch) CIFAR-10-C or "
             "CIFAR-100-C in the published layout")
    s.add_argument("--dataset", required=True, help="cifar10 or cifar100 (or any, with --folder)")
    s.add_argument("--root", required=True, help="data root; the archive is extracted here")
    s.add_argument("--folder", help="folder holding the .npy files (default: ROOT/CIFAR-10-C or ROOT/CIFAR-100-C)")
    s.add_argument("--extra", action="store_true", help="also the 4 extra corruptions")
    s.add_argument("--download", action="store_true", help="download the Zenodo archive if files are missing")
    s.add_argument("--out", required=True, help="summary JSON written when the files are there")

    s = with_spec(verb("search-score", cmd_search_score, "held-out accuracy of a build-up search candidate"))
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--out", required=True, help="score JSON")

    s = with_spec(verb("search-step", cmd_search_step, "one decision of the build-up search: scores so far -> next "
                       "candidate or stop"), device=False)
    s.add_argument("--score", action="append", metavar="PATH", help="score JSON of each candidate so far, in order")
    s.add_argument("--out", required=True, help="state JSON of this step")

    s = verb("search-table", cmd_search_table, "the path the build-up search took, as the search table")
    s.add_argument("--state", required=True, help="state JSON of the last step")
    s.add_argument("--out", required=True, help="Parquet path")

    s = verb("aggregate", cmd_aggregate, "concatenate per-run tables into results/<table>.parquet, with intervals")
    s.add_argument("--table", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--units", action="append", metavar="PATH",
                   help="a per-run file of the table's per-unit table (eval_images for eval, ...), for its intervals "
                        "(repeat)")
    s.add_argument("--level", type=float, help="interval level (default: the schema's intervals.level)")
    s.add_argument("--resamples", type=int, help="bootstrap resamples (default: intervals.resamples)")
    s.add_argument("--seed", type=int, help="bootstrap seed (default: intervals.seed)")
    s.add_argument("inputs", nargs="*")

    s = verb("scorecard", cmd_scorecard, "the paper's claims with effects, intervals and verdicts, and runs vs "
             "the paper's numbers")
    s.add_argument("--spec", required=True, help="JSON or @file: roles, epochs, intervals, models "
                   "(vitprobe.claims.scorecard_spec)")
    s.add_argument("--table", action="append", metavar="NAME=PATH", help="an aggregated table (repeat)")
    s.add_argument("--out", required=True, help="scorecard.parquet (the claims)")
    s.add_argument("--runs", required=True, help="scorecard_runs.parquet (runs vs the paper)")
    s.add_argument("--markdown", help="scorecard.md")
    s.add_argument("--html", help="scorecard.html (the report's page)")

    s = with_spec(verb("plot", cmd_plot, "draw a figure from per-run tables"), device=False)
    s.add_argument("--figure", required=True, choices=list(FIGURES), help="figure name, e.g. fig_hessian")
    s.add_argument("--table", action="append", metavar="NAME=PATH", help="a per-run table file it reads (repeat)")
    s.add_argument("--out", required=True, action="append",
                   help="figure path, the format from its suffix (.pdf, .png, .svg); repeat for several")

    s = verb("check-config", cmd_check_config, "validate a config file and summarize its run grid")
    s.add_argument("config")
    s.add_argument("--runs", action="store_true", help="also list every run id")
    s.add_argument("--cost", action="store_true", help="also print the GPU-hours (CPU-core-hours with resources.gpus "
                   "0) that the resources block requests, per rule and in total: an upper bound from time limits")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a key, e.g. train.epochs=10 (as `snakemake --config train__epochs=10`)")

    s = verb("digest", cmd_digest, "the headline numbers of a results folder as Markdown (the README's demo numbers)")
    s.add_argument("--results", required=True, help="results folder, e.g. results/demo")
    s.add_argument("--readme", help="rewrite the <!-- digest:begin/end --> block of this file")
    s.add_argument("--figures", help="figures folder whose PNGs to copy, e.g. figures/demo")
    s.add_argument("--images", help="where to copy them, e.g. docs/img")

    verb("tables", cmd_tables, "print the Parquet table reference (Markdown)")

    s = verb("serve", cmd_serve, "run the workflow's local jobs in forks of one process with everything imported "
             "(vitprobe.jobserver); the workflow starts it (config key job_server)")
    s.add_argument("--socket", required=True, help="Unix socket path to listen at")
    s.add_argument("--parent", type=int, help="stop when this process (the Snakemake run) is gone")

    s = verb("docs", cmd_docs, "write the generated reference pages (tables, probes, figures, config keys)")
    s.add_argument("--out", required=True, help="folder, e.g. docs/reference")
    return p


def cmd_serve(args):
    from vitprobe import jobserver  # only the server needs it
    try:
        job = jobserver.serve(args.socket, preload=PRELOAD, parent=args.parent)
    except jobserver.NotPrivate as exc:
        raise VitprobeError(str(exc)) from None
    if job is not None:  # a forked worker, now its client's process: run the command, end as a process ends
        raise SystemExit(job.run(main))


def preload(verb: str) -> None:
    """Import what `verb` imports (`verb_imports`) before it starts, so that a job's CPU line
    counts the imports as start-up."""
    import importlib  # only to import by name
    for name in verb_imports(verb):
        importlib.import_module(name)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except VitprobeError as exc:
        if args.debug:
            raise
        print(f"vitprobe {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: the reader has all it wanted
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:  # Ctrl-C outside training's epoch loop (which saves its state and exits itself)
        if args.debug:
            raise
        print(f"vitprobe {args.verb}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
