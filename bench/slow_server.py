"""A stand-alone OpenAI-shaped server for benchmarks: answers every chat request after a fixed delay.

Run in its own process so that its work does not share the benchmark's interpreter (and GIL).
Prints its base URL on the first line of stdout, then serves until killed.
"""

from __future__ import annotations

import sys
import time

from tests import servers

if __name__ == "__main__":
    latency = float(sys.argv[1]) if len(sys.argv) > 1 else 0.2
    srv = servers.FaultServer(route=lambda body: servers.slow(latency, servers.reply_stream(servers.answer("ok"))))
    print(srv.base_url, flush=True)
    while True:
        time.sleep(3600)
