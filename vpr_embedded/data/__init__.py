"""Datasets read in place (``datasets``), ground truth (``ground_truth``), image reading and
preprocessing (``images``, needs the ``export`` extra), and the catalogue of supported public
datasets with their fetcher (``catalog``, standard library only).

Import from the submodules: this package's own import stays free of torch, so the catalogue
works on a core install.
"""
