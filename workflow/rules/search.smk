# The AlterNet build-up rule as a search (vitprobe.search): every decision is a checkpoint
# job whose output names the next candidate, so the DAG grows one candidate at a time; a
# rerun finds the finished steps and resumes. Candidates are ordinary runs (rule train),
# scored on a held-out split of the training set; their tables (train_log and each
# configured probe's) are aggregated apart from the grid's, in <results>/search/<table>.parquet.
import json
from pathlib import Path


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


if PLAN.search:

    rule search_score:
        input:
            checkpoint=LAYOUT.checkpoint.format(run="{run}", epoch=PLAN.search["epoch"]),
            data=data_ready(),
        output:
            LAYOUT.search_score.format(run="{run}", epoch=PLAN.search["epoch"]),
        log:
            LAYOUT.log("search/score_{run}"),
        threads: job_threads
        resources:
            **probe_resources("search_score"),
        params:
            device=config["device"],
            spec=train_spec,
        shell:
            "vitprobe search-score --spec {params.spec:q} --device {params.device}"
            " --checkpoint {input.checkpoint} --out {output} > {log} 2>&1"

    checkpoint search_step:
        input:
            unpack(search_step_inputs),
        output:
            LAYOUT.search_step,
        log:
            LAYOUT.log("search/step_{step}"),
        wildcard_constraints:
            step=r"\d+",
        params:
            spec=as_json(PLAN.search),
            scores=lambda wildcards, input: " ".join(f"--score {p}" for p in input.scores),
        shell:
            "vitprobe search-step --spec {params.spec:q} {params.scores} --out {output} > {log} 2>&1"

    rule search_table:
        input:
            search_last_step,
        output:
            LAYOUT.search_table,
        log:
            LAYOUT.log("search/table"),
        shell:
            "vitprobe search-table --state {input} --out {output} > {log} 2>&1"

    rule search_aggregate:
        input:
            lambda wildcards: run_tables(wildcards.table, search_runs()),
        output:
            LAYOUT.search_aggregate,
        log:
            LAYOUT.log("search/aggregate_{table}"),
        wildcard_constraints:
            table="|".join(TABLES),
        shell:
            "vitprobe aggregate --table {wildcards.table} --out {output} {input} > {log} 2>&1"
