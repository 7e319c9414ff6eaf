"""The AlterNet build-up search (Fig. 12a): the walk over MSA layouts (`walk`, pure), its
planning from the config (`plan`) and the pipeline jobs that score and step it (`jobs`)."""
