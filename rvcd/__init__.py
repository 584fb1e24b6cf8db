"""rvcd: real-time RVC voice conversion for JACK/PipeWire."""

__version__ = "0.1.0"
