"""A local Workers AI emulator: Cloudflare's run endpoint over real HTTP.

The default upstream in development and the test double of the suite::

    from inference.emulator import EmulatorServer

    with EmulatorServer() as emulator:
        requests.post(emulator.run_url("acct", "@cf/meta/llama-3.1-8b-instruct-fp8"),
                      headers={"Authorization": "Bearer x"}, json={"prompt": "Hi"})

No Django import here: the emulator must start in any process (tests, Celery
workers' fixtures, ``python -m inference.emulator``).
"""

from .faults import FAULT_KINDS, FaultKind
from .server import EmulatorServer

__all__ = ["EmulatorServer", "FaultKind", "FAULT_KINDS"]
