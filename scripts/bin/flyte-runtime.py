#!/usr/bin/env python3
"""``python -m flyte.runtime`` as a file: what an operator's launcher runs as the main application (spark-submit
runs a SparkApplication's ``mainApplicationFile`` as a Python program only when its name ends in ``.py``).
Installed with the SDK into the environment's scripts folder (``/usr/local/bin`` in an image)."""

import sys

from flyte.runtime import main

if __name__ == "__main__":
    sys.exit(main())
