import pytest

from mvarchive.codecs.bitstream import FORMAT_VERSION, MAGIC, BitstreamError, pack, unpack

HEADER = {"codec": "x", "views": 2}
STREAMS = [b"abc\x00", b"", b"\x00\x00tail\x00"]


def test_round_trip_keeps_trailing_nul_bytes():
    data = pack(7, HEADER, STREAMS)
    container = unpack(data)
    assert container.codec_id == 7
    assert container.header == HEADER
    assert list(container.streams) == STREAMS
    assert container.payload_bytes == sum(map(len, STREAMS))


def test_every_single_byte_flip_is_detected():
    data = pack(7, HEADER, STREAMS)
    for position in range(len(data)):
        corrupted = bytearray(data)
        corrupted[position] ^= 0x40
        with pytest.raises(BitstreamError, match="group g1"):
            unpack(bytes(corrupted), where="group g1")


@pytest.mark.parametrize("keep", [0, 5, 12, 30, -1])
def test_truncation_is_detected(keep):
    data = pack(7, HEADER, STREAMS)
    with pytest.raises(BitstreamError, match="truncated|corrupted"):
        unpack(data[:keep], where="group g2")


def test_foreign_and_future_streams_are_named():
    data = pack(7, HEADER, STREAMS)
    with pytest.raises(BitstreamError, match="not an mvarchive bitstream"):
        unpack(b"\x89PNG" + data[4:])
    future = bytearray(data)
    future[len(MAGIC)] = FORMAT_VERSION + 1
    with pytest.raises(BitstreamError, match="unsupported container version"):
        unpack(bytes(future))


def test_trailing_garbage_is_rejected():
    with pytest.raises(BitstreamError):
        unpack(pack(7, HEADER, STREAMS) + b"\x00")
