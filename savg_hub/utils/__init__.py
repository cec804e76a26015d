"""Small shared helpers: atomic file writes, hashing, logging."""

from savg_hub.utils.files import atomic_path, atomic_write_bytes, atomic_write_text, savg_home, sha256_file

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "savg_home", "sha256_file"]
