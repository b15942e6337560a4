"""Streaming media access: probing containers and decoding audio/video without loading a
whole file into memory."""

from ..extras import needs

with needs("decoding audio and video", "extract"):  # PyAV, imported by every module here
    from .audio import AudioDecodeError, decode_audio
    from .probe import MediaInfo, ProbeError, probe

__all__ = ["AudioDecodeError", "MediaInfo", "ProbeError", "decode_audio", "probe"]
