"""What the fuzz tests share: their hypothesis settings and the damage done to valid files.

Every reader is held to one contract: any input either loads (and what it returns is what
the reader documents) or raises the reader's own documented error, whose message names the
file or option; never another exception, a hang or a crash.

The default profile is small and derandomized, so the whole set runs in seconds and CI sees
the same examples every time; `GEN_JAX_FUZZ_PROFILE=fuzz-long` searches for longer with
fresh random examples. Neither writes a hypothesis database into the tree.
"""

import os

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings

# The deadline only catches hangs and pathological slowness (a 2-core CI machine under load
# must not flake); the example counts keep the set well under a minute.
settings.register_profile(
    "fuzz",
    max_examples=100,
    deadline=5000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz-long",
    max_examples=2000,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ = settings.get_profile(os.environ.get("GEN_JAX_FUZZ_PROFILE", "fuzz"))


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """`data` with a few bits flipped, cut short, or with bytes overwritten, inserted or
    removed: the damage a disk, a download or an editor does to a file."""
    out = bytearray(data)
    kind = draw(st.sampled_from(["flip", "truncate", "overwrite", "insert", "delete"]))
    if not out or kind == "truncate":
        return bytes(out[: draw(st.integers(0, max(len(out) - 1, 0)))])
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(out) - 1))
            out[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "overwrite":
        i = draw(st.integers(0, len(out) - 1))
        chunk = draw(st.binary(min_size=1, max_size=16))
        out[i : i + len(chunk)] = chunk
    elif kind == "insert":
        i = draw(st.integers(0, len(out)))
        out[i:i] = draw(st.binary(min_size=1, max_size=16))
    else:
        i = draw(st.integers(0, len(out) - 1))
        del out[i : i + draw(st.integers(1, 16))]
    return bytes(out)


def junk(*magics: bytes, max_size: int = 64):
    """Random bytes, often behind one of the `magics` so that the reader gets past its first
    check."""
    tail = st.binary(max_size=max_size)
    if not magics:
        return tail
    return st.one_of(tail, st.tuples(st.sampled_from(magics), tail).map(lambda t: t[0] + t[1]))


def names_path(message: object, path: object) -> bool:
    """Whether an error message names the file (as given, or as `str(path)`)."""
    return str(path) in str(message)
