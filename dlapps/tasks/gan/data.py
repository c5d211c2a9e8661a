"""GAN data: the shared digit images of `dlapps.data.digits` (labels ride along; only a
conditional GAN reads them)."""

from __future__ import annotations

from dlapps.data.digits import digit_data
from dlapps.task import Data
from dlapps.tasks.gan.config import Config


def load_data(cfg: Config) -> Data:
    """Unbatched (uint8 image (28, 28, 1), int64 label) datasets from the shared digit sources.

    `info`: image_shape, class_names, num_classes, dataset, source_description, split sizes.
    Raises UserError for a bad source, file or split (see `dlapps.data.digits.load_images`).
    """
    return digit_data(cfg, "gan")
