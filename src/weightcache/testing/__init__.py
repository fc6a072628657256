"""Test doubles shipped with weightcache, so users can test their own apps offline.

They behave like the real services (a Hub, an HTTP file server, a Modal Volume and Dict) rather than
recording calls: point the real clients at them.
"""

from .fake_dict import FakeModalDict
from .fake_hub import FakeHub
from .fake_modal import FakeModalVolume, FakeVolumeContainer
from .file_server import FileServer

__all__ = ["FakeHub", "FakeModalDict", "FakeModalVolume", "FakeVolumeContainer", "FileServer"]
