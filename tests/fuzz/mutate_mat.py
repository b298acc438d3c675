"""Mutations of MAT-files: raw bytes, and inside the decompressed v7 variables.

Every mutation is a pure function of the input bytes and a ``random.Random``: the same seed
gives the same case on every machine.
"""

from __future__ import annotations

import random
import struct
import zlib

__all__ = ["mutate_mat", "INTERESTING_U32"]

INTERESTING_U32 = (
    0, 1, 2, 3, 4, 7, 8, 14, 15, 16, 17, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFF, 0x8000,
    0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 0x01000000, 0x00100000, 1 << 24,
)  # fmt: skip


def bit_flips(data: bytes, rng: random.Random, start: int = 0) -> bytes:
    out = bytearray(data)
    if len(out) <= start:
        return bytes(out)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        k = rng.randrange(start, len(out))
        out[k] ^= 1 << rng.randrange(8)
    return bytes(out)


def overwrite(data: bytes, rng: random.Random, start: int = 0, stop: int | None = None) -> bytes:
    """Overwrite a 4-byte-aligned word with an interesting value, or a few random bytes."""
    out = bytearray(data)
    stop = len(out) if stop is None else min(stop, len(out))
    if stop - start < 4:
        return bytes(out)
    k = start + (rng.randrange(stop - start - 3) & ~3)
    if rng.random() < 0.7:
        order = "<" if rng.random() < 0.9 else ">"
        out[k : k + 4] = struct.pack(order + "I", rng.choice(INTERESTING_U32))
    else:
        n = min(rng.randint(1, 8), stop - k)
        out[k : k + n] = bytes(rng.randrange(256) for _ in range(n))
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))] if data else data


def _top_elements(data: bytes) -> list[tuple[int, int, int]]:
    """(tag offset, type, byte count) of a little-endian MAT-5 file's top-level elements."""
    out, pos = [], 128
    while pos + 8 <= len(data):
        mdtype, nbytes = struct.unpack_from("<II", data, pos)
        out.append((pos, mdtype, nbytes))
        pos += 8 + nbytes + (0 if mdtype == 15 else -nbytes % 8)
    return out


def _matrix_tags(inner: bytes) -> list[int]:
    """Offsets of 8-aligned words equal to miMATRIX (14): likely nested array tags."""
    return [k for k in range(0, len(inner) - 8, 8) if struct.unpack_from("<I", inner, k)[0] == 14]


def inside_compressed(data: bytes, rng: random.Random) -> bytes | None:
    """Decompress one miCOMPRESSED variable, mutate its array header or data, recompress."""
    if data[126:128] != b"IM":
        return None
    compressed = [e for e in _top_elements(data) if e[1] == 15]
    if not compressed:
        return None
    pos, _, nbytes = rng.choice(compressed)
    try:
        inner = zlib.decompress(data[pos + 8 : pos + 8 + nbytes])
    except zlib.error:
        return None
    tags = _matrix_tags(inner)
    choice = rng.random()
    if choice < 0.6 and tags:  # a nested array's header: flags, dims, name, first tags
        tag = rng.choice(tags)
        if rng.random() < 0.5:
            inner = overwrite(inner, rng, tag, tag + 64)
        else:
            inner = bit_flips(inner[: tag + 64], rng, tag) + inner[tag + 64 :]
    elif choice < 0.8:
        inner = overwrite(inner, rng)
    elif choice < 0.9:
        inner = bit_flips(inner, rng)
    else:
        inner = truncate(inner, rng)
    packed = zlib.compress(inner)
    head = struct.pack("<II", 15, len(packed))
    return data[:pos] + head + packed + data[pos + 8 + nbytes :]


def mutate_mat(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One mutation of a MAT-file's bytes: ``(kind, mutated bytes)``."""
    roll = rng.random()
    if roll < 0.5:
        out = inside_compressed(data, rng)
        if out is not None:
            return "inner", out
    if roll < 0.7:
        return "flip", bit_flips(data, rng)
    if roll < 0.9:
        return "overwrite", overwrite(data, rng)
    return "truncate", truncate(data, rng)
