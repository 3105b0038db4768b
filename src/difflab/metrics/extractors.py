"""Feature extractors of FID and KID by the name the metric tables carry in their `extractor` column, and when
FID on them is bias-dominated. Imports no torch: the report side (summaries, captions) reads these too."""

from __future__ import annotations

import re

from difflab import DifflabError

INCEPTION_FEATURES = 2048
INCEPTION_EXTRACTOR = f"inception-v3-compat(pool3, {INCEPTION_FEATURES})"
CLASSIFIER_FEATURES_PER_WIDTH = 4  # the classifier's penultimate layer: 4W features (difflab.metrics.classifier)


def classifier_extractor_name(width: int) -> str:
    """The `extractor` name of a width-W MNIST classifier, e.g. "mnist-classifier(width=32)"."""
    return f"mnist-classifier(width={width})"


def extractor_feature_dim(extractor: str) -> int:
    """Feature dimension d of an extractor named in the metrics tables' `extractor` column.

    "mnist-classifier(width=W)" -> 4W (difflab.metrics.classifier.feature_dim); INCEPTION_EXTRACTOR -> 2048.
    Raises DifflabError for any other name.
    """
    if extractor == INCEPTION_EXTRACTOR:
        return INCEPTION_FEATURES
    match = re.fullmatch(r"mnist-classifier\(width=([1-9][0-9]*)\)", extractor)
    if match is None:
        raise DifflabError(f"extractor {extractor!r}: unknown; expected 'mnist-classifier(width=<W>)' or {INCEPTION_EXTRACTOR!r}")
    return CLASSIFIER_FEATURES_PER_WIDTH * int(match.group(1))


def fid_bias_dominates(n: int, feature_dim: int) -> bool:
    """True when FID on n images per set with `feature_dim` features is dominated by its bias: n <= d.

    The sample covariance of n feature vectors has rank at most n - 1, so for n <= d it is singular and
    Tr(S) - 2 Tr((S1 S2)^{1/2}) carries a large positive bias (real-vs-real FID far above 0). Compare KID then.
    """
    return n <= feature_dim


def fid_bias_note(n: int, extractor: str) -> str:
    """The caption sentence for FID on n images per set with `extractor`'s features: empty unless n <= d."""
    d = extractor_feature_dim(extractor)
    if not fid_bias_dominates(n, d):
        return ""
    return (f"With n = {n} ≤ {d} features the FID is dominated by its bias (its covariances cannot have full rank), "
            "so compare KID, whose estimate does not depend on n.")
