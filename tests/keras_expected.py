"""Expected (out, in, 3, 3) kernels from Keras's (kh, kw, in, out) layouts, written element by
element so that they do not share code with the readers under test."""
from __future__ import annotations

import numpy as np


def dense(k):
    """(kh, kw, in, out) -> (out, in, kh, kw), element by element."""
    kh, kw, cin, cout = k.shape
    e = np.empty((cout, cin, kh, kw), np.float32)
    for o in range(cout):
        for i in range(cin):
            for y in range(kh):
                for x in range(kw):
                    e[o, i, y, x] = k[y, x, i, o]
    return e


def depthwise(k):
    kh, kw, c, mult = k.shape
    e = np.empty((c * mult, 1, kh, kw), np.float32)
    for ch in range(c):
        for m in range(mult):
            for y in range(kh):
                for x in range(kw):
                    e[ch * mult + m, 0, y, x] = k[y, x, ch, m]
    return e
