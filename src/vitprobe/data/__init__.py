"""Datasets: one registry of their facts (`registry`), a module per family (`cifar`,
`synthetic`, `fashion_mnist`, `imagefolder` for class folders such as ImageNet's validation
set, `cifar_c` for the corrupted test sets), the run's splits (`splits`) and the batched
training augmentation (`augment`, `randaugment`). Light on purpose: nothing imported here."""
