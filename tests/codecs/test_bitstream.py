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


def test_a_codec_refuses_flipped_truncated_and_foreign_containers():
    """What every codec's decompress does with a broken container (all codecs unpack through
    the one container parser, so one codec stands for all): a loud error naming the group."""
    from mvarchive.codecs import load_codec
    from tests.codecs.helpers import random_views

    codec = load_codec(name="ldmic-fast", preset="tiny")
    data = codec.compress(random_views(2, 64, 64, seed=3)).data
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    with pytest.raises(BitstreamError, match="group 'g7'.*checksum"):
        codec.decompress(bytes(flipped), where="group 'g7'")
    with pytest.raises(BitstreamError, match="group 'g7'.*truncated"):
        codec.decompress(data[: len(data) - 9], where="group 'g7'")
    foreign = load_codec(name="single-view-mbt2018-mean", preset="tiny")
    with pytest.raises(BitstreamError, match="group 'g7'.*written by codec 'ldmic-fast'"):
        foreign.decompress(data, where="group 'g7'")
