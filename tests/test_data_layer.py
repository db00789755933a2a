"""Tests of the shared data layer: CSV columns, mixing levels, audio I/O."""

import numpy as np
import pytest
import soundfile as sf
import torch
from gmsep.data.audio import (
    DataError,
    check_audio_file,
    read_audio,
    read_mono,
    write_audio,
)
from gmsep.data.columns import (
    count_source_columns,
    librimix_columns,
    librimix_folders,
    sig_keys,
    wav_columns,
)
from gmsep.data.mixing import MAX_AMP, mix_sources, peak_gain, rms_level


@pytest.mark.parametrize("num_spks", [1, 2, 3])
def test_columns_agree(num_spks):
    columns = wav_columns(num_spks)
    assert columns[0] == "mix_wav" and columns[-2:] == [
        "noise_wav",
        "clean_wav",
    ]
    assert [
        key.replace("_sig", "_wav") for key in sig_keys(num_spks)
    ] == columns
    assert count_source_columns(["ID", "duration", *columns]) == num_spks
    for condition in ("noisy", "clean"):
        mapping = librimix_columns(num_spks, condition)
        assert list(mapping) == columns
        assert set(mapping.values()) <= set(librimix_folders(num_spks))


def test_mix_sources_levels_and_peak():
    torch.manual_seed(0)
    sources = [torch.randn(1000, dtype=torch.float64), torch.randn(700)]
    sources[1] = sources[1].double()
    noise = torch.randn(1200, dtype=torch.float64)
    leveled, scaled = mix_sources(sources, noise, [-20.0, -23.0], snr=2.0)
    assert leveled.shape == (2, 1000) and scaled.shape == (1000,)
    assert torch.all(leveled[1, 700:] == 0)
    assert rms_level(leveled[0]) - rms_level(leveled[1][:700]) == pytest.approx(
        3.0
    )
    speech = max(rms_level(source[:700]) for source in leveled)
    assert speech - rms_level(scaled[:700]) == pytest.approx(2.0)
    # Loud sources: one common gain brings the largest peak to MAX_AMP
    loud, loud_noise = mix_sources(sources, noise, [0.0, 0.0], snr=0.0)
    clean = loud.sum(0)
    peak = max(
        x.abs().max() for x in (loud, loud_noise, clean, clean + loud_noise)
    )
    assert peak == pytest.approx(MAX_AMP)
    assert peak_gain(loud, loud_noise) == pytest.approx(1.0)


def test_write_audio_round_trip(tmp_path):
    pcm = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    write_audio(tmp_path / "pcm.wav", pcm, 8000)
    samples, rate = sf.read(tmp_path / "pcm.wav", dtype="int16")
    assert rate == 8000 and np.array_equal(samples, pcm)
    info = check_audio_file(tmp_path / "pcm.wav", sample_rate=8000)
    assert (info.frames, info.sample_rate, info.subtype) == (5, 8000, "PCM_16")

    signal = torch.linspace(-0.5, 0.5, 16)
    write_audio(tmp_path / "float.wav", signal, 16000)
    read = read_mono(tmp_path / "float.wav", 16000)
    assert torch.allclose(read, signal, atol=1 / 32768)
    assert torch.equal(read_audio(tmp_path / "float.wav", 0)[0], read)


def test_audio_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.wav: file not found"):
        read_audio(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="junk.wav: unreadable or corrupt"):
        read_audio(tmp_path / "junk.wav")
    with pytest.raises(DataError, match="junk.wav: unreadable or corrupt"):
        read_mono(tmp_path / "junk.wav", 8000)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((80, 2), dtype="int16"), 8000)
    assert check_audio_file(stereo, mono=False).channels == 2
    with pytest.raises(DataError, match="expected mono"):
        check_audio_file(stereo)
    with pytest.raises(DataError, match="cannot write audio"):
        write_audio(tmp_path / "no" / "such" / "dir.wav", torch.zeros(8), 8000)
