"""MNIST-style 28x28 images for the classifier: the shared digit sources of `dlapps.data.digits`.

Sources (`--set source=embedded|tfds|keras|file`, `--set dataset=mnist|fashion_mnist`) and the
split rules are documented in `dlapps/data/digits.py`; `--data` takes a keras.datasets-layout
`.npz` or a folder of class sub-folders.
"""

from __future__ import annotations

from dlapps.data.digits import digit_data
from dlapps.task import Data
from dlapps.tasks.mnist.config import Config


def load_data(cfg: Config) -> Data:
    """The Task contract's Data: unbatched datasets of (uint8 image (28, 28, 1), int64 label).

    `info`: image_shape, class_names, num_classes, dataset, source_description, split sizes.
    Raises UserError for a bad source, file or split (see `dlapps.data.digits.load_images`).
    """
    return digit_data(cfg, "mnist")
