"""glibc's malloc keeps what a batch frees for the next one (rtstream.support.malloc_tuning): 1 MiB
buffers made and freed over and over, in the main thread and in a thread (as a sink's writes), fault
their pages in once, not every time; a threshold set in the environment is left as it was set."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

CHURN = """
import resource, sys, threading
from rtstream.support.malloc_tuning import keep_freed_memory
print(keep_freed_memory() if sys.argv[1] == "tuned" else None)
def churn():
    for _ in range(60):
        blocks = [bytes(1 << 20) for _ in range(40)]  # 40 MiB, freed at once
        del blocks
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
t = threading.Thread(target=churn)
t.start()
t.join()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(how: str, **env: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", CHURN, how], capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, **env}).stdout.split()
    return out[0], int(out[1])


def test_freed_buffers_are_reused_without_faulting_their_pages_again() -> None:
    said, tuned = _faults("tuned")
    _, default = _faults("default")
    assert said == "True"
    pages = 2 * 60 * 40 * 256  # every 1 MiB block faulted afresh
    assert default > pages // 2  # glibc's defaults give the pages back each time
    assert tuned < pages // 10  # kept: a few rounds' worth at most


def test_a_threshold_from_the_environment_is_left_as_set() -> None:
    said, faults = _faults("tuned", MALLOC_TRIM_THRESHOLD_="131072")
    assert said == "True"  # the mmap threshold was still set
    assert faults > 2 * 60 * 40 * 256 // 2  # the environment's small trim threshold still gives pages back
