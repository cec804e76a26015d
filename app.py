"""The savg_hub app (Hugging Face Space): browse SVGSA24-format clips with their stereo sound and labels.

    python app.py                      # the embedded synthetic set (built on first use, offline)
    python app.py --dataset PATH       # any SVGSA24-format dataset folder
"""

from __future__ import annotations

import argparse
import os

from savg_hub.app import build_demo
from savg_hub.data.embedded import ensure_embedded_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", help="dataset folder (default: the embedded synthetic set)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args()
    dataset = args.dataset or ensure_embedded_dataset(progress=True)
    demo = build_demo(dataset)
    demo.queue(max_size=16).launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
