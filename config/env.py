"""The one place that reads the process environment.

Settings modules import `env` from here and read each variable once. Every variable is listed in
`.env.example`. Production secrets are read without a default, so a missing one stops the process
at start instead of running with a guess.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
