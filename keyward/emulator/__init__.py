"""A local emulator of the Google APIs keyward talks to, served over real HTTP.

API Keys v2, Generative Language (Gemini) v1/v1beta, Cloud Monitoring v3 timeSeries and Service
Usage v1beta1 consumer quota metrics share one host:port, with Google's paths, camelCase JSON,
long-running operations and `google.rpc.Status` errors. Tests, the demo and CI drive it through
`Emulator` in-process or the `/_emulator/...` admin endpoints from another process.

    emu = Emulator().start()
    emu.add_project("alpha", "111111111111")
    key = emu.create_manual_key("alpha")
    ...
    emu.stop()
"""

from keyward.emulator.control import Emulator
from keyward.emulator.standalone import serve

__all__ = ["Emulator", "serve"]
