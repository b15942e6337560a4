"""Sharded HDF5 feature storage: writer, reader and the on-disk contract."""

from .format import SCHEMA_VERSION, ClipFeatures, array_checksum, dataset_checksum
from .reader import FeatureReader, ShardError, read_clip_group
from .sink import ClipSink
from .writer import ShardWriter, atomic_write_bytes, atomic_write_text, write_clip_group

__all__ = [
    "SCHEMA_VERSION",
    "ClipFeatures",
    "ClipSink",
    "FeatureReader",
    "ShardError",
    "ShardWriter",
    "array_checksum",
    "dataset_checksum",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_clip_group",
    "write_clip_group",
]
