"""Reading multi-camera image datasets: layouts, images, groups and a bundled sample."""

from mvarchive.datasets.errors import DatasetError
from mvarchive.datasets.groups import load_group
from mvarchive.datasets.images import IMAGE_EXTENSIONS, load_image, save_image
from mvarchive.datasets.layouts import (
    LAYOUTS,
    MANIFEST_NAMES,
    DatasetIndex,
    GroupRef,
    ViewRef,
    discover_dataset,
)
from mvarchive.datasets.sample import SampleDatasets, build_sample_datasets

__all__ = [
    "DatasetError",
    "DatasetIndex",
    "GroupRef",
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "MANIFEST_NAMES",
    "SampleDatasets",
    "ViewRef",
    "build_sample_datasets",
    "discover_dataset",
    "load_group",
    "load_image",
    "save_image",
]
