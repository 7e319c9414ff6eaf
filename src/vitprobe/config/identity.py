"""Run identity: the run id and its parse, data-fraction tokens, the hashes that identify a
run's training, the kwargs a run's model is built with, and which runs a figure series
selects. Torch-free and at the bottom of the planner: the Snakefile, checkpoints and result
tables all name runs through it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from fractions import Fraction

from vitprobe.errors import ConfigError

FRACTION_DENOMINATOR_LIMIT = 4096
NO_KERNEL = 0  # kernel_size of models without local attention ("k0" in run ids)
IMPORTED_EPOCH = 0  # the one checkpoint of a run whose weights are imported, not trained



def parse_fraction(value, key: str = "fraction") -> float:
    """A data fraction in (0, 1], given as a number or as a string 'p/q'."""
    try:
        frac = Fraction(value)
        if not isinstance(value, str):
            frac = frac.limit_denominator(FRACTION_DENOMINATOR_LIMIT)
    except (ValueError, ZeroDivisionError, TypeError):
        raise ConfigError(f"{key}: {value!r} is not a number or a fraction like '1/64'") from None
    if not 0 < frac <= 1:
        raise ConfigError(f"{key}: {value!r} is outside the allowed range (0, 1]")
    return float(frac)


def fraction_token(fraction: float) -> str:
    """'1' or '1of64': the fraction as run ids write it."""
    frac = Fraction(fraction).limit_denominator(FRACTION_DENOMINATOR_LIMIT)
    return f"{frac.numerator}" if frac.denominator == 1 else f"{frac.numerator}of{frac.denominator}"


def series_matches(series: dict, run) -> bool:
    """A figure series selects runs by model and optionally fraction and kernel size.
    `run` is a Run or any object/row with those attributes."""
    if series["model"] != run.model:
        return False
    if "fraction" in series and abs(parse_fraction(series["fraction"]) - run.fraction) > 1e-12:
        return False
    return "kernel_size" not in series or series["kernel_size"] == run.kernel_size


RUN_ID_REGEX = r"[a-z0-9_]+-[a-z0-9_]+-k\d+-f\d+(?:of\d+)?-s\d+"
_RUN_ID = re.compile(r"(?P<dataset>[a-z0-9_]+)-(?P<model>[a-z0-9_]+)-k(?P<kernel>\d+)"
                     r"-f(?P<num>\d+)(?:of(?P<den>\d+))?-s(?P<seed>\d+)")


@dataclass(frozen=True, order=True)
class Run:
    """One trained model: (dataset, model, kernel_size, fraction, seed)."""

    dataset: str
    model: str
    kernel_size: int
    fraction: float
    seed: int

    @property
    def id(self) -> str:
        """e.g. 'cifar100-vit_ti_cifar-k0-f1of64-s0' (k0: the model has no kernel size)."""
        return (f"{self.dataset}-{self.model}-k{self.kernel_size}"
                f"-f{fraction_token(self.fraction)}-s{self.seed}")

    @classmethod
    def parse(cls, run_id: str) -> "Run":
        m = _RUN_ID.fullmatch(run_id)
        if m is None:
            raise ValueError(f"not a run id: {run_id!r} (expected e.g. 'cifar100-vit_ti_cifar-k0-f1of64-s0')")
        fraction = Fraction(int(m["num"]), int(m["den"] or 1))
        return cls(m["dataset"], m["model"], int(m["kernel"]), float(fraction), int(m["seed"]))

    def columns(self) -> dict:
        """The grid columns every result row carries (epoch is added per checkpoint)."""
        return asdict(self)


def config_hash(spec: dict) -> str:
    """A short content hash of a JSON-able spec (key order does not matter)."""
    blob = json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def model_kwargs(model_spec: dict, train: dict, kernel_size: int) -> dict:
    """The keyword arguments a run's model is built with: its alias's kwargs, the stochastic
    depth rate of the training config (an alias's own value wins) and the run's kernel size."""
    kwargs = dict(model_spec["kwargs"])
    if train.get("drop_path_rate"):
        kwargs.setdefault("drop_path_rate", train["drop_path_rate"])
    if kernel_size:
        kwargs["kernel_size"] = kernel_size
    return kwargs


def train_hash(spec: dict) -> str:
    """Hash of the training part of a spec; stored in checkpoints and every result row."""
    return config_hash({k: spec[k] for k in ("run", "data", "model", "train")})
