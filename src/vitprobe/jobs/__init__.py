"""Pipeline jobs that the CLI verbs run for the Snakemake rules: the generic probe runner
and the merge of sharded probes (`probe`)."""
