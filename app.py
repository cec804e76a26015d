"""The savg_hub app (Hugging Face Space): browse SVGSA24-format clips, generate clips and score them with Spatial
AV-Align.

    python app.py                      # the embedded synthetic set (built on first use, offline)
    python app.py --dataset PATH       # any SVGSA24-format dataset folder
    python app.py --model my-pipeline/ --model owner/repo   # extra models for the Generate tab
    python app.py --seld-weights W --detector yolox-tiny --detector-weights W2   # weights for the Score tab

The Generate tab offers the embedded default pipeline (once it ships in savg_hub/assets/weights/), every --model
(a folder written by save_pretrained, or a Hub repo id when online) and `savgbench` when the official weights are
imported (`savg weights import`); a model loads on its first Generate click and stays resident. With no model at
all the tab says what to pass. Generated clips are scored with the Score tab's models.

The Score tab loads its models on the first Score click (default: the official weights when imported, else the
embedded stand-ins) and keeps them resident; without any weights it says what to import.
"""

from __future__ import annotations

import argparse
import logging
import os

from savg_hub.app import build_demo
from savg_hub.app.score import EvaluatorOptions
from savg_hub.data.embedded import ensure_embedded_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", help="dataset folder (default: the embedded synthetic set)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--seld-weights", help="SELD weights for scoring: registry name, folder or official .pth")
    parser.add_argument("--detector", default="default",
                        help="person detector for scoring: default, yolox-tiny, ultralytics:<model file>")
    parser.add_argument("--detector-weights", help="weights for --detector yolox-tiny / ultralytics")
    parser.add_argument("--model", action="append", default=[], metavar="NAME_OR_PATH",
                        help="extra pipeline for the Generate tab: saved pipeline folder, 'savgbench' or a Hub repo "
                             "id (repeatable)")
    parser.add_argument("--device", default="cpu", help="torch device for generation and scoring (e.g. cuda)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    dataset = args.dataset or ensure_embedded_dataset(progress=True)
    options = EvaluatorOptions(seld_weights=args.seld_weights, detector=args.detector,
                               detector_weights=args.detector_weights, device=args.device)
    demo = build_demo(dataset, evaluator_options=options, models=args.model, device=args.device)
    demo.queue(max_size=16).launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
