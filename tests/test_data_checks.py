"""Tests of the audio file and CSV checks."""

import time

import numpy as np
import pytest
import soundfile as sf
import torch
from gmsep.data.audio import (
    DataError,
    check_audio_file,
    check_csv_audio,
    read_mono,
)


def write_wav(path, frames=800, sample_rate=8000, channels=1):
    shape = frames if channels == 1 else (frames, channels)
    samples = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    sf.write(path, samples, sample_rate, subtype="PCM_16")
    return path


def truncate(path, n_bytes=300):
    """Cuts the tail of a file, as an interrupted copy would."""
    path.write_bytes(path.read_bytes()[:-n_bytes])
    return path


def write_csv(path, rows, header="ID,duration,mix_wav,s1_wav"):
    lines = [header, *(",".join(map(str, row)) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def bad_files(tmp_path):
    """One file per problem check_audio_file must report, with its message."""
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(bytes(range(256)) * 4)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.int16), 8000)
    return {
        tmp_path / "absent.wav": "file not found",
        garbage: r"unreadable or corrupt audio file \(Format not recognised",
        truncate(
            write_wav(tmp_path / "cut.wav")
        ): "truncated: the header declares "
        "1600 bytes of audio but the file holds 1300",
        write_wav(
            tmp_path / "stereo.wav", channels=2
        ): "has 2 channels, expected mono",
        empty: r"empty audio file \(0 frames\)",
        write_wav(
            tmp_path / "16k.wav", sample_rate=16000
        ): "sample rate 16000 Hz, "
        r"expected 8000 Hz \(set sample_rate: 16000 or prepare the wav8k folder\)",
    }


def test_check_audio_file_accepts_good_file(tmp_path):
    info = check_audio_file(write_wav(tmp_path / "ok.wav"), sample_rate=8000)
    assert (info.frames, info.sample_rate, info.channels) == (800, 8000, 1)
    assert check_audio_file(tmp_path / "ok.wav").duration == 0.1


def test_check_audio_file_names_each_problem(bad_files):
    for path, reason in bad_files.items():
        with pytest.raises(DataError, match=f"^{path}: {reason}"):
            check_audio_file(path, sample_rate=8000)


def test_truncated_file_passes_libsndfile(tmp_path):
    """libsndfile alone does not see the truncation: the check must."""
    path = truncate(write_wav(tmp_path / "cut.wav"))
    assert sf.info(path).frames == 650
    with pytest.raises(DataError, match="truncated"):
        check_audio_file(path)


def test_odd_chunks_before_data_are_skipped(tmp_path):
    # fmt chunk, an odd-sized (so padded) chunk, then 80 frames of data
    fmt = (1).to_bytes(2, "little") * 2 + (8000).to_bytes(4, "little")
    fmt += (16000).to_bytes(4, "little") + (2).to_bytes(2, "little")
    fmt += (16).to_bytes(2, "little")
    chunks = b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    chunks += b"note" + (3).to_bytes(4, "little") + b"odd\0"
    chunks += b"data" + (160).to_bytes(4, "little") + bytes(160)
    path = tmp_path / "tagged.wav"
    path.write_bytes(
        b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WAVE" + chunks
    )
    assert check_audio_file(path, sample_rate=8000).frames == 80
    with pytest.raises(DataError, match="declares 160 bytes .* holds 140"):
        check_audio_file(truncate(path, 20))


def test_check_csv_audio_counts_distinct_files(tmp_path):
    a, b = write_wav(tmp_path / "a.wav"), write_wav(tmp_path / "b.wav")
    csv_path = write_csv(
        tmp_path / "ok.csv", [("m1", 0.1, a, b), ("m2", 0.1, a, a)]
    )
    assert check_csv_audio(csv_path, sample_rate=8000) == 2
    assert check_csv_audio(csv_path, audio_columns=["s1_wav"]) == 2
    assert check_csv_audio(csv_path, audio_columns=["mix_wav"]) == 1


def test_check_csv_audio_missing_csv_and_columns(tmp_path):
    with pytest.raises(DataError, match="absent.csv: CSV not found"):
        check_csv_audio(tmp_path / "absent.csv")
    csv_path = write_csv(
        tmp_path / "x.csv", [("m1", "a.wav")], header="ID,mix_wav"
    )
    with pytest.raises(
        DataError, match=r"x.csv: missing column\(s\) duration, s1_wav"
    ):
        check_csv_audio(csv_path, audio_columns=["mix_wav", "s1_wav"])
    csv_path = write_csv(
        tmp_path / "y.csv", [("m1", 1.0)], header="ID,duration"
    )
    with pytest.raises(DataError, match=r"y.csv: no audio \(\*_wav\) column"):
        check_csv_audio(csv_path)


def test_check_csv_audio_lists_missing_files(tmp_path):
    present = write_wav(tmp_path / "present.wav")
    rows = [
        (f"m{i}", 0.1, present, tmp_path / f"lost{i}.wav") for i in range(7)
    ]
    csv_path = write_csv(tmp_path / "train.csv", rows)
    with pytest.raises(DataError) as error:
        check_csv_audio(csv_path, max_report=5)
    message = str(error.value)
    assert message.startswith(f"{csv_path}: 7 listed audio file(s) not found")
    for i in range(5):
        assert f"row m{i} (s1_wav): {tmp_path / f'lost{i}.wav'}" in message
    assert "lost5.wav" not in message and "lost6.wav" not in message


def test_check_csv_audio_names_bad_file_and_csv(tmp_path, bad_files):
    good = write_wav(tmp_path / "good.wav")
    present = [path for path in bad_files if path.exists()]
    rows = [(f"m{i}", 0.1, good, path) for i, path in enumerate(present)]
    csv_path = write_csv(tmp_path / "dev.csv", rows)
    with pytest.raises(DataError) as error:
        check_csv_audio(csv_path, sample_rate=8000, max_report=len(present))
    message = str(error.value)
    assert message.startswith(
        f"{csv_path}: {len(present)} listed audio file(s)"
    )
    for i, path in enumerate(present):
        assert f"row m{i}: {path}: " in message
    assert "16000 Hz, expected 8000 Hz" in message


def test_check_csv_audio_is_fast(tmp_path):
    wav = write_wav(tmp_path / "a.wav")
    rows = []
    for i in range(500):
        path = tmp_path / f"{i}.wav"
        path.write_bytes(wav.read_bytes())
        rows.append((i, 0.1, path, path))
    csv_path = write_csv(tmp_path / "big.csv", rows)
    # header reads only: well under a millisecond per file
    start = time.perf_counter()
    assert check_csv_audio(csv_path, sample_rate=8000) == 500
    assert time.perf_counter() - start < 2.0


def test_read_mono_reads_and_crops(tmp_path):
    path = write_wav(tmp_path / "a.wav")
    signal = read_mono(path, 8000)
    assert signal.dtype == torch.float32 and signal.shape == (800,)
    crop = read_mono(path, 8000, start=100, stop=150)
    assert torch.equal(crop, signal[100:150])
    assert crop[0] == 100 / 32768


def test_read_mono_names_each_problem(bad_files):
    for path, reason in bad_files.items():
        if "truncated" in reason:
            continue
        with pytest.raises(DataError, match=f"^{path}: {reason}"):
            read_mono(path, 8000)


def test_read_mono_crop_beyond_truncated_end(tmp_path):
    path = truncate(write_wav(tmp_path / "cut.wav"))
    assert read_mono(path, 8000, stop=650).shape == (650,)
    with pytest.raises(DataError, match=f"^{path}: cannot read frames 700:800"):
        read_mono(path, 8000, start=700, stop=800)
