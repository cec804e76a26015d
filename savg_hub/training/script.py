"""What the ``training/*.py`` scripts do when run from the command line, in one place."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any


def run_script(main: Callable[[], Any]) -> None:
    """Run a training script's ``main()``: log at ``$LOGLEVEL`` (default INFO) with timestamps and, when
    ``$SAVG_TORCH_THREADS`` is set, use that many torch CPU threads."""
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.environ.get("SAVG_TORCH_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["SAVG_TORCH_THREADS"]))
    main()
