"""Where every file of the pipeline lives, as format patterns (the Snakemake rules fill the
same patterns with wildcards). One definition, used by the rules and the package alike.

Everything is relative to the working directory and to two configurable roots
(`results_dir`, `figures_dir`): nothing machine-specific ends up in a job's signature,
and the demo (results/demo, figures/demo) never overwrites the paper's results.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_READY = "{root}/{dataset}.ready.json"
#: Written when the CIFAR-C folder holds every corruption the probe reads: beside the folder.
CORRUPTIONS_READY = "{folder}.ready.json"


@dataclass(frozen=True)
class Layout:
    results: str = "results"
    figures: str = "figures"

    @property
    def run_dir(self) -> str:
        return self.results + "/runs/{run}"

    @property
    def checkpoint(self) -> str:
        return self.run_dir + "/ckpt/e{epoch}.pt"

    @property
    def train_spec(self) -> str:
        """The run's training spec (JSON), rewritten when a key that determines training
        changes: rule train's input, so a changed key retrains even when the change adds
        checkpoint files Snakemake has no record of (`train.epochs`, `train.checkpoint_epochs`)."""
        return self.run_dir + "/train_spec.json"

    @property
    def train_log(self) -> str:
        return self.run_dir + "/train_log.parquet"

    @property
    def probe_table(self) -> str:
        return self.run_dir + "/{table}_e{epoch}.parquet"

    def probe_shard(self, shards: int) -> str:
        """Shard i of a probe job split into `shards` (pattern with {shard}): kept under the run's
        shards/ folder, named for the split, so no shard file passes for the merged table."""
        return self.run_dir + "/shards/{table}_e{epoch}.shard{shard}of" + str(shards) + ".parquet"

    @property
    def train_state_dir(self) -> str:
        """Not a declared Snakemake output: Snakemake deletes the outputs of failed jobs, and
        the resume state must survive a failed or preempted job. One directory per
        training-spec hash: a run retrained after a config change starts afresh."""
        return self.run_dir + "/.train/{train_hash}"

    @property
    def tensorboard(self) -> str:
        return self.results + "/tensorboard/{run}"

    @property
    def search_score(self) -> str:
        """A build-up search candidate's held-out accuracy at the decision epoch."""
        return self.run_dir + "/holdout_e{epoch}.json"

    @property
    def search_step(self) -> str:
        """The state after the search's step-th decision (a Snakemake checkpoint's output)."""
        return self.results + "/search/step_{step}.json"

    @property
    def search_table(self) -> str:
        return self.results + "/search.parquet"

    @property
    def search_aggregate(self) -> str:
        """A per-run table aggregated over the search's candidates (train_log, each probe's)."""
        return self.results + "/search/{table}.parquet"

    @property
    def aggregate(self) -> str:
        return self.results + "/{table}.parquet"

    def figure(self, ext: str = "pdf") -> str:
        return self.figures + "/{figure}." + ext

    @property
    def scorecard(self) -> dict:
        """The scorecard's files: its claims and runs tables, and its Markdown and HTML pages."""
        return {"claims": self.results + "/scorecard.parquet", "runs": self.results + "/scorecard_runs.parquet",
                "markdown": self.figures + "/scorecard.md", "html": self.figures + "/scorecard.html"}

    def log(self, name: str) -> str:
        """Job log of a rule: <results>/logs/<name>.log (`tail -f` it while the job runs)."""
        return self.results + "/logs/" + name + ".log"

    @classmethod
    def of(cls, config: dict) -> "Layout":
        return cls(config.get("results_dir", "results"), config.get("figures_dir", "figures"))
