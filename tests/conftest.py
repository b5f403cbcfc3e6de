"""Shared test set-up: headless GL and an offline hub for every test."""

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
