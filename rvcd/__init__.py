"""rvcd: real-time RVC voice conversion for JACK/PipeWire."""

import warnings

# pyworld 0.3.5 imports the deprecated pkg_resources at import time; the warning is
# about pyworld, not about anything a user of rvcd can act on.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

__version__ = "0.1.0"
