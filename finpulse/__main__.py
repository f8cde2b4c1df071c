"""``python -m finpulse``: the console script, for environments without it on PATH."""

from app.cli import main

if __name__ == "__main__":  # not when a spawned child (the ONNX graph build) imports it
    main()
