"""Image files that are broken in the ways a user's files are: corrupt, or with a header no decoder takes."""

import struct
import zlib

import cv2
import numpy as np


def png_bytes(shape=(12, 10, 3), seed=0):
    return cv2.imencode('.png', np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))[1].tobytes()


def png_chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def huge_header_png():
    """A valid PNG whose header claims 100000 x 100000 RGB pixels, far more than OpenCV decodes."""
    header = struct.pack('>IIBBBBB', 100000, 100000, 8, 2, 0, 0, 0)
    chunks = png_chunk(b'IHDR', header) + png_chunk(b'IDAT', zlib.compress(b'\0' * 64)) + png_chunk(b'IEND', b'')
    return b'\x89PNG\r\n\x1a\n' + chunks


def corrupt_png():
    """A PNG with one byte of its compressed pixels changed (the chunk's checksum no longer matches)."""
    content = bytearray(png_bytes())
    content[content.index(b'IDAT') + 10] ^= 0xFF
    return bytes(content)
