"""Tested helpers for *Neural Networks for Recommender Systems*.

Importing this package first keeps TensorFlow's start-up noise (oneDNN, CUDA and absl
messages written straight to the process's stderr) out of notebook output, without importing
TensorFlow until something asks for it: see :mod:`helpers.quiet`. The NumPy-only modules
(data, splits, sampling, metrics, evaluation, baselines, protocol, stats, ...) never import it. Modules, one concern each:

- :mod:`helpers.data` -- dataset registry, checksummed download with mirrors, loaders for
  MovieLens, HetRec Last.fm, the DKN Bing News sample and the Open Bandit sample;
- :mod:`helpers.protocol` -- the book's canonical leave-last-out split and candidate set;
- :mod:`helpers.tuning` -- validated settings written by search scripts, read by chapters;
- :mod:`helpers.encoding` -- contiguous id encoding;
- :mod:`helpers.splits` -- random, temporal, leave-last-out splits;
- :mod:`helpers.sampling` -- vectorised negative sampling;
- :mod:`helpers.metrics` -- rating, classification and ranking metrics (NumPy only);
- :mod:`helpers.evaluation` -- candidate generation and evaluation loops;
- :mod:`helpers.baselines` -- popularity, damped mean, item-KNN, EASE;
- :mod:`helpers.repro` -- one call to seed everything;
- :mod:`helpers.plotting` -- the book's figure style;
- :mod:`helpers.training` -- the compiled epoch loop shared by chapters 7 and 8;
- :mod:`helpers.preprocessing` -- cleaning, mean-centring, popularity weights, ties (chapter 2);
- :mod:`helpers.activations` -- numerically stable activations and derivatives (chapter 3);
- :mod:`helpers.losses` -- losses with gradients, NumPy (chapter 4);
- :mod:`helpers.optim` -- gradient descent to Adam from scratch (chapter 5);
- :mod:`helpers.factorization` -- matrix factorisation in NumPy: the model with analytic
  gradients, SGD, ALS and SVD fitters (chapters 4, 5, 7);
- :mod:`helpers.ensemble` -- least-squares blends of rating predictors (chapter 7);
- :mod:`helpers.features` -- user and item features for the MLP recommender (chapter 6);
- :mod:`helpers.mf` -- matrix factorisation and AutoRec in Keras/TensorFlow (chapter 7);
- :mod:`helpers.ncf` -- GMF, MLP and NeuMF builders and their fast training loop (chapter 8);
- :mod:`helpers.beyond` -- coverage, novelty, diversity, popularity bias (chapter 9);
- :mod:`helpers.stats` -- confidence intervals and significance tests (chapter 9);
- :mod:`helpers.sequences` -- GRU4Rec, Caser and SASRec builders, Markov baseline (chapter 10);
- :mod:`helpers.text` -- title vectorisation, CNN title encoder, DKN attention (chapter 11);
- :mod:`helpers.hybrid` -- FM, Wide & Deep, DeepFM, DCN and two towers (chapter 12);
- :mod:`helpers.ctr` -- click-rate metrics (normalised entropy, calibration) and click models (chapter 13);
- :mod:`helpers.ope` -- off-policy estimators IPS, SNIPS, DR and logging policies (chapters 9, 13);
- :mod:`helpers.graph` -- friend graphs, social regularisation, LightGCN-style propagation, confidence-weighted iALS (chapter 14);
- :mod:`helpers.pipeline` -- the end-to-end recommender: candidates, ranker, MMR, explanations (chapter 15);
- :mod:`helpers.imbalance` -- down-sampling and re-calibration, class weights, focal loss (chapter 16);
- :mod:`helpers.bandits` -- epsilon-greedy and Thompson-sampling bandits, replay evaluation (chapter 16);
- :mod:`helpers.compress` -- parameter counts, quantisation, pruning, hashing, distillation (chapter 17);
- :mod:`helpers.privacy` -- FedAvg, DP-SGD with an accountant, membership inference (chapter 17);
- :mod:`helpers.serving` -- ANN retrieval, a two-stage service over exported models, latency (chapter 18);
- :mod:`helpers.distributed` -- bounded multi-worker training processes on one machine (chapter 18).
"""
import sys as _sys

import numpy as _np

from helpers.quiet import install_quiet_import, quiet_tensorflow

install_quiet_import()


def _figures_inline_in_notebooks() -> None:
    """In a Jupyter kernel, draw figures inline whatever ``MPLBACKEND`` says.

    ipykernel only selects matplotlib's inline backend when ``MPLBACKEND`` is unset. Many
    headless servers and CI images set ``MPLBACKEND=Agg``; a chapter's ``plt.show()`` then
    draws nothing, and the built site silently loses every figure. Importing :mod:`helpers`
    (every chapter's first line) restores the inline backend inside a kernel; scripts and
    tests outside a kernel keep whatever backend they chose.
    """
    if "ipykernel" not in _sys.modules:
        return
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipykernel always brings IPython
        return
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return
    import matplotlib

    if "inline" not in matplotlib.get_backend():
        shell.run_line_magic("matplotlib", "inline")


_figures_inline_in_notebooks()

# NumPy 2 prints scalars as ``np.float64(0.398)``. ``myst_nb.glue`` stores that text and the
# book's ``{glue:text}`key:.3f``` cannot format it, so a glued NumPy number would vanish from
# the prose. The 1.25 scalar repr (``0.398``) keeps glued numbers and printed tables readable.
_np.set_printoptions(legacy="1.25")

from helpers.repro import seed_everything  # noqa: E402

__all__ = ["quiet_tensorflow", "seed_everything"]
