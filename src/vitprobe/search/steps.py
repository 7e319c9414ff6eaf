"""The steps of the build-up search (`vitprobe.search.walk`): score a candidate on the held-out
split, take one decision step, write the path taken as the `search` table.

Files: a candidate's score is `<run dir>/holdout_e<epoch>.json` ({run, epoch, accuracy, nll,
n_images, config_hash}); step i's state is `<results>/search/step_<i>.json` (every step so
far with its decision, and the next candidate or null: `vitprobe.search.walk.state`).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vitprobe import results
from vitprobe.atomic import atomic_path
from vitprobe.columns import SEARCH_TABLE
from vitprobe.config.identity import NO_KERNEL, Run
from vitprobe.config.job import JobSpec
from vitprobe.data.registry import mean_std
from vitprobe.data.splits import holdout_split
from vitprobe.device import Device
from vitprobe.errors import VitprobeError
from vitprobe.models.recipe import load_run_model
from vitprobe.probes.evaluate.measure import clean_metrics
from vitprobe.search import walk as search


def _write_json(obj, out) -> None:
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(obj, indent=1) + "\n")


def score(spec: dict | JobSpec, checkpoint_path, out, device: Device) -> dict:
    """Accuracy (%) and NLL of a candidate's checkpoint on its held-out split (never the test set)."""
    job = JobSpec.of(spec)
    if not job.data.get("holdout"):
        raise VitprobeError("search-score: the spec has no data.holdout; only build-up search candidates are scored")
    model, payload = load_run_model(checkpoint_path, job)
    model = device.prepare_model(model)
    split = holdout_split(job.raw)
    m = clean_metrics(model, split.images, split.labels, *mean_std(job.data["dataset"]), device, 500)
    row = {"run": job.run.id, "epoch": payload["epoch"], "accuracy": 100.0 - m["error"],
           "nll": m["nll_test"], "n_images": len(split.labels), "config_hash": job.hash}
    _write_json(row, out)
    print(f"[{row['run']} e{row['epoch']}] held-out accuracy {row['accuracy']:.2f} % on {row['n_images']} "
          f"training images held out; wrote {out}", file=sys.stderr)
    return row


def _run_id(s: dict, layout) -> str:
    return Run(s["dataset"], search.candidate_model(s["base"], layout), NO_KERNEL, 1.0, s["seed"]).id


def step(s: dict, score_paths, out) -> dict:
    """One decision: replay the rule (`search.walk`) on the scores of the candidates so far,
    in the order tried, and write the state with the next candidate (or none)."""
    scores = [json.loads(Path(p).read_text()) for p in score_paths]
    w = search.walk(s["layers"], s["start"], s["stages"], s["budget"], [r["accuracy"] for r in scores])
    runs = [_run_id(s, st.layout) for st in w.steps]
    for r, expected in zip(scores, runs):
        if r["run"] != expected:
            raise VitprobeError(f"search-step: scores out of order: got {r['run']}, the rule tried {expected} there")
    state = search.state(w, runs, None if w.next_layout is None else _run_id(s, w.next_layout))
    for st, r in zip(state["steps"], scores):
        st.update(n_images=r["n_images"], epoch=r["epoch"], config_hash=r["config_hash"])
    _write_json(state, out)
    last = w.steps[-1]
    verdict = "base" if last.stage == 0 else ("kept" if last.kept else "not kept")
    then = f"next {state['next']['run']}" if state["next"] else f"search over: {w.reason}"
    print(f"search step {len(w.steps) - 1}: {runs[-1]} {last.accuracy:.2f} % ({verdict}); {then}; wrote {out}",
          file=sys.stderr)
    return state


def table(state_path, out) -> pd.DataFrame:
    """The path taken as the `search` table: one row per step, from the final step's state."""
    state = json.loads(Path(state_path).read_text())
    if state["next"] is not None:
        raise VitprobeError(f"search-table: {state_path} is not the last step (it proposes {state['next']['run']})")
    rows = []
    for i, st in enumerate(state["steps"]):
        run = Run.parse(st["run"])
        rows.append({**run.columns(), "epoch": st["epoch"], "step": i, "run": st["run"],
                     "msa_blocks": ",".join(map(str, st["layout"])), "stage": st["stage"],
                     "accuracy": st["accuracy"],
                     "best_before": math.nan if st["best_before"] is None else st["best_before"],
                     "kept": st["kept"], "n_holdout": st["n_images"], "vitprobe_version": results.__version__,
                     "git_commit": results.git_commit(), "config_hash": st["config_hash"],
                     "weights": "trained"})
    df = pd.DataFrame(rows)
    target = results.schema(SEARCH_TABLE)
    with atomic_path(out) as tmp:
        pq.write_table(pa.Table.from_pandas(df[target.names], schema=target, preserve_index=False), tmp)
    return df
