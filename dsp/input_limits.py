"""Bounds on untrusted input (model files, audio files), each in one place.

Torch-free, so the configuration schema and the command line can name them without
importing the inference stack.
"""

from __future__ import annotations

DEFAULT_MAX_MODEL_MB = 1024.0
"""Largest model file loaded, MiB (`engine.max_model_mb`): RVC voice models are about
55 MB, rmvpe.pt 181 MB, content encoders 190-380 MB."""
MIN_AUDIO_RATE = 8000
MAX_AUDIO_RATE = 384000
"""Sample rates (Hz) accepted from audio files."""
MAX_AUDIO_SECONDS = 4 * 3600.0
"""Longest audio file converted, seconds (a float32 copy of 4 h at 48 kHz is 2.8 GB)."""
