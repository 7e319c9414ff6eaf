"""The AlterNet build-up search (Fig. 12a): the walk over MSA layouts (`walk`, pure), its
planning from the config (`plan`) and the steps its pipeline jobs take: score a candidate,
decide, tabulate (`steps`)."""
