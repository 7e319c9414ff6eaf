"""The catalogue of the paper's claims, next to the catalogue of probes and figures
(`vitprobe.catalog`): each claim is what the paper says, where (figure), and a function from
the result tables to an effect size with its interval, scored into a verdict
(`vitprobe.stats.verdict`): shows, leans, leans against, contradicts, or n/a (a run, probe
or epoch it needs is not in the config; the row says which).

Runs are chosen by *role*, from the configured models' architectures (`roles`), never by
name: cnn (a ResNet), vit (a ViT with a class token), gap (a ViT with a global-average-pooling
head, else a local-attention ViT at a window that covers its token grid), lmsa (a
local-attention ViT at two or more kernel sizes), preact (a pre-activation ResNet), alternet
(an AlterNet). Where several models fit a role the first configured one plays it, unless the
config's `claims.roles` names one; the scorecard says which were candidates.

Effects are signed so that a positive effect is the paper's direction. A claim with two
parts ("MSAs lower it, MLPs raise it") has the smaller of the two parts as its effect, so it
shows only when both do. Intervals: the expanded percentile bootstrap (`vitprobe.stats`) of
the effect, resampling the units the numbers are means over (test images; Hessian
mini-batches). Runs measured on the same images (the same test set, or the same seeded
sample of it) share their resamples: a difference between two models is a paired
comparison. With several seeds a run's number is the mean over its seeds; seeds are
resampled too when every run involved has at least `stats.MIN_UNITS` of them, and are fixed
otherwise (the interval is then over images or mini-batches given the trained networks, and
the row says so).

The package, one job a module, imports flowing down: `roles` (who plays which role),
`measures` (a role's numbers from the tables), `effects` (the bootstrap of an effect),
`catalogue` (the claims), `scoring` (the config check, the scorecard job's spec, the rows).
"""

from vitprobe.claims.catalogue import CLAIMS, TABLES, Claim
from vitprobe.claims.measures import Measure, Missing, Quantity
from vitprobe.claims.roles import ROLES, resolve_roles
from vitprobe.claims.scoring import COLUMN_DOCS, COLUMNS, check, score, scorecard_spec

__all__ = ["CLAIMS", "TABLES", "Claim", "Measure", "Missing", "Quantity", "ROLES", "resolve_roles", "COLUMN_DOCS",
           "COLUMNS", "check", "score", "scorecard_spec"]
