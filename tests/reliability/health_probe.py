"""Poll a server's mlx/health from a process of its own, so that the test's clients
(sharing a GIL and two cores) do not skew the timing; stop when stdin closes.

    python health_probe.py URL INTERVAL  ->  prints "polling" once it polls, then at the end
                                             [[milliseconds, http status, health status], ...]
"""

import json
import sys
import threading
import time

import httpx


def main(url: str, interval: float) -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    samples = []
    with httpx.Client(timeout=10) as client:  # one keep-alive connection, as a monitor keeps
        while not stop.is_set():
            start = time.perf_counter()
            try:
                response = client.get(url)
                samples.append([(time.perf_counter() - start) * 1000, response.status_code, response.json()["status"]])
            except httpx.HTTPError as e:
                samples.append([(time.perf_counter() - start) * 1000, 0, repr(e)])
            if len(samples) == 1:
                print("polling", flush=True)
            stop.wait(interval)
    print(json.dumps(samples))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
