"""Datasets for the book: registry, decoding cache, device-side augmentation and loaders.

>>> train = load_split("cifar10", "train", train_per_class=100)      # uint8 (1000, 3, 32, 32)
>>> tf = make_train_transform(get_dataset_spec("cifar10"), 32, randaugment="n2m9")
>>> loader = DeviceLoader(train, 128, transform=tf, shuffle=True, drop_last=True, device="cpu")
"""

from .augment import (BatchTransform, RandAugmentBatch, make_eval_transform, make_train_transform, parse_randaugment,
                      random_crop, random_hflip)
from .cache import cache_root
from .classnames import class_names
from .decode import CorruptImageError
from .load import ImageTensors, load_split
from .loader import DeviceLoader
from .registry import DATASETS, DatasetSpec, get_dataset_spec
from .sampler import EpochSampler
from .sources import DATA_ENV, DataError, DatasetUnavailableError, resolve_data_root, split_source
from .subsets import balanced_subset, first_k_classes

__all__ = ["DATASETS", "DATA_ENV", "BatchTransform", "CorruptImageError", "DataError", "DatasetSpec",
           "DatasetUnavailableError", "DeviceLoader", "EpochSampler", "ImageTensors", "RandAugmentBatch",
           "balanced_subset", "cache_root", "class_names", "first_k_classes", "get_dataset_spec", "load_split",
           "make_eval_transform", "make_train_transform", "parse_randaugment", "random_crop", "random_hflip",
           "resolve_data_root", "split_source"]
