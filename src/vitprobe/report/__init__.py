"""What a reader reads of a finished run, made from its aggregated tables: the scorecard
(`scorecard`: the claims with effects, intervals and verdicts, the runs against the paper's
numbers), the README's demo digest (`digest`), and the generated reference pages of the
tables, probes, figures, claims and config keys (`reference`)."""
