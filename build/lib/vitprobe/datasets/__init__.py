"""Data files that ship with vitprobe (package data, read with importlib.resources):

- ``fashion_mnist_subset.npz``: a seeded, class-stratified subset of Fashion-MNIST (500 train
  and 100 test images of each of the 10 classes, raw 28x28 uint8), the offline demo's
  dataset ``fashion_mnist_subset``; made by ``scripts/make_fashion_mnist_subset.py``.
  Licence and origin: ``FASHION_MNIST_LICENSE.txt``. Read it with
  ``vitprobe.data.load_split("fashion_mnist_subset", root, train)``.
"""
