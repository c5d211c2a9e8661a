"""Evaluating a generator with a classifier: classifier FID, confident-sample share, label entropy.

The Fréchet Inception Distance (FID, Heusel et al. 2017) compares two image sets through the
activations of a trained network: fit a Gaussian to each set's feature vectors and measure

    FID = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))

Lower is better; 0 means the two Gaussians are identical. The usual FID uses an ImageNet
Inception-v3, which knows nothing about handwritten digits; here the features come from the
penultimate layer of a digit classifier (the project's `saved_models/mnist`), so we call it a
*classifier FID*. Its values are not comparable with published (Inception) FIDs, only with each
other: read it next to the FID of real held-out digits against each other (the floor: what a
perfect generator would score with this many images) and of an untrained generator (the ceiling).

Two more numbers from the same classifier (Salimans et al. 2016's intuition behind the
Inception Score): the share of samples it labels with confidence above 0.9 (are the digits
recognisable?) and the entropy of the histogram of predicted labels (are all ten digits drawn?
ln 10 = 2.30 nats for a uniform histogram; mode collapse shows as a low value).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np

from dlapps.errors import UserError


def feature_model(classifier: keras.Model, feature_layer: str) -> keras.Model:
    """A model from the classifier's inputs to [features of `feature_layer`, class probabilities]."""
    try:
        features = classifier.get_layer(feature_layer).output
    except ValueError:
        names = ", ".join(layer.name for layer in classifier.layers)
        raise UserError(f"the classifier has no layer named {feature_layer!r}; its layers: {names} "
                        f"(choose one with --set feature_layer=NAME)") from None
    return keras.Model(classifier.inputs, [features, classifier.outputs[0]], name="classifier_features")


def features_and_probabilities(extractor: keras.Model, images: np.ndarray,
                               batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D) float64, class probabilities (N, K)) of uint8-scale images (N, 28, 28, 1)."""
    expected = tuple(extractor.inputs[0].shape[1:])
    images = np.asarray(images)
    if images.shape[1:] != expected and images.size // max(1, len(images)) == int(np.prod(expected)):
        images = images.reshape((len(images), *expected))
    features, probabilities = [], []
    for start in range(0, len(images), batch_size):
        f, p = extractor.predict_on_batch(images[start: start + batch_size])
        features.append(np.asarray(f, np.float64).reshape(len(f), -1))
        probabilities.append(np.asarray(p, np.float64))
    probabilities = np.concatenate(probabilities)
    # A classifier that ends in logits rather than a softmax: normalise.
    if np.any(probabilities < 0) or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3):
        shifted = np.exp(probabilities - probabilities.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return np.concatenate(features), probabilities


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of feature vectors (N, D)."""
    from scipy import linalg

    features_a, features_b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if len(features_a) < 2 or len(features_b) < 2:
        raise UserError("the Fréchet distance needs at least 2 feature vectors per set")
    mu_a, mu_b = features_a.mean(axis=0), features_b.mean(axis=0)
    sigma_a = np.atleast_2d(np.cov(features_a, rowvar=False))
    sigma_b = np.atleast_2d(np.cov(features_b, rowvar=False))
    with warnings.catch_warnings():  # a singular product is handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean, _ = linalg.sqrtm(sigma_a @ sigma_b, disp=False)
    if not np.isfinite(covmean).all():
        # Singular product (e.g. dead ReLU units): regularise both covariances slightly.
        offset = np.eye(len(sigma_a)) * 1e-6
        covmean = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    covmean = np.real(covmean)  # tiny imaginary parts are numerical noise
    distance = float(np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean))
    return max(distance, 0.0)


def classifier_fid(extractor: keras.Model, images_a: np.ndarray, images_b: np.ndarray) -> float:
    """Fréchet distance between the classifier features of two image sets (uint8-scale pixels)."""
    features_a, _ = features_and_probabilities(extractor, images_a)
    features_b, _ = features_and_probabilities(extractor, images_b)
    return frechet_distance(features_a, features_b)


def label_statistics(probabilities: np.ndarray, threshold: float = 0.9) -> dict[str, float]:
    """Share of images labelled with confidence > `threshold`, and the predicted-label entropy (nats)."""
    probabilities = np.asarray(probabilities)
    histogram = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1]) / len(probabilities)
    nonzero = histogram[histogram > 0]
    return {"confident_share": float(np.mean(probabilities.max(axis=1) > threshold)),
            "label_entropy": float(-np.sum(nonzero * np.log(nonzero)))}


def load_classifier(path: str | Path) -> keras.Model | None:
    """The classifier at `path` (relative paths also tried from the repository root); None if absent."""
    path = Path(path)
    candidates = [path] if path.is_absolute() else [path, Path(__file__).resolve().parents[3] / path]
    for candidate in candidates:
        if candidate.exists():
            from dlapps.runs import load_model

            return load_model(candidate)[0]
    return None
