"""What the probes share: feature maps from a forward pass (`featuremaps`), the inputs a
probe reads from a run or from tensors (`inputs`), and job logs with progress bars
(`progress`). Below `vitprobe.probes`: nothing here imports a probe."""
