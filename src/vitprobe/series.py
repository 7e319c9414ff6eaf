"""Data fractions and figure series: which runs a figure series selects. Used by the run
plan (to check and plan a figure's runs) and by the figures (to select rows); it sits at
the bottom and imports nothing of vitprobe but its errors."""

from __future__ import annotations

from fractions import Fraction

from vitprobe.errors import ConfigError

FRACTION_DENOMINATOR_LIMIT = 4096


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
