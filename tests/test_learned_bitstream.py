"""The learned codecs' stream header."""

from __future__ import annotations

import pytest

from medbench.codecs.learned.bitstream import (
    HEADER_SIZE,
    MAGIC,
    BitstreamError,
    Header,
    pack,
    unpack,
)


def header(**changes) -> Header:
    values = dict(model_id=bytes(range(8)), bit_depth=12, height=300, width=257, pad_h=4,
                  pad_w=7)
    values.update(changes)
    return Header(**values)


def test_header_round_trip_and_size():
    data = pack(header(), b"payload!")
    assert HEADER_SIZE == 20 and len(data) == 28 and data.startswith(MAGIC)
    back, payload = unpack(data)
    assert back == header() and payload == b"payload!"
    assert back.model_hex == "0001020304050607"
    assert back.latent_shape(8) == (38, 33)


def test_inconsistent_padding_is_an_error():
    with pytest.raises(BitstreamError, match="multiple of the model stride 16"):
        header().latent_shape(16)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"MBLC", "at least 20 bytes"),
        (b"JPEG" + bytes(16), "not a medbench learned-codec stream"),
        (MAGIC + bytes([9]) + bytes(15), "format version 9 is not supported"),
        (MAGIC + bytes([1]) + bytes(8) + bytes([17]) + bytes(6), "bit depth 17"),
    ],
)
def test_bad_streams_are_named(data, message):
    with pytest.raises(BitstreamError, match=message):
        unpack(data)


def test_sizes_beyond_the_header_are_refused():
    with pytest.raises(ValueError, match="65535"):
        pack(header(width=70000), b"")
