"""The config and what it plans: loading and validating it (`load`, `schema.yaml`), run
identity (`identity`: run ids, fraction tokens, hashes; torch-free), the plan of runs,
checkpoints, probes and figures (`plan`), the semantic checks a JSON schema cannot express
(`checks`) and where every file lives (`paths`). Light on purpose: importing a submodule
imports nothing heavy through this file."""
