"""The analysis store: an analysis written once as a folder of Parquet parts, one dataset per
table, plus store.json, read back with SQL through DuckDB (see inspector/store/layout.py)."""

from inspector.errors import OutdatedStoreError, StoreError
from inspector.store.build import analyze_into_store
from inspector.store.cache import analyze_into_cache, cache_dir, cache_entry, cache_inputs, cached_store
from inspector.store.inputs import CaptureFingerprint, StoreInputs, cache_key, store_inputs
from inspector.store.reader import Store, open_store
from inspector.store.writer import PartWriter, StoreWriter, check_target, write_analysis

__all__ = ["CaptureFingerprint", "analyze_into_cache", "analyze_into_store", "OutdatedStoreError", "PartWriter", "Store", "StoreError", "StoreInputs", "StoreWriter",
           "cache_dir", "cache_entry", "cache_inputs", "cache_key", "cached_store", "check_target", "open_store", "store_inputs", "write_analysis"]
