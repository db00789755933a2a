"""Audio in and out: reading, checking and writing every audio file.

All audio goes through SpeechBrain's soundfile-backed
:mod:`speechbrain.dataio.audio_io` (no torchaudio backends, no torchcodec),
and the rules for a usable file are written here once, for training data
(:func:`check_csv_audio`, :func:`read_mono`), for the files a user separates
(:func:`check_recording`, :func:`read_audio`) and for the outputs
(:func:`write_sources`, :func:`write_audio`).

Every problem a user's data can have (missing, corrupt, truncated, stereo,
empty or wrongly sampled files; CSVs without the expected columns or pointing
at missing files) raises one :class:`DataError` that names the file, so that a
bad corpus fails before training instead of in the middle of an epoch.

Only header reads are used by the checks (no decoding), so validating a CSV of
tens of thousands of files takes seconds.

Example
-------
>>> import numpy as np, soundfile as sf
>>> path = getfixture("tmp_path") / "mix.wav"
>>> sf.write(path, np.zeros(800, dtype="int16"), 8000)
>>> check_audio_file(path, sample_rate=8000).duration
0.1
>>> read_mono(path, 8000, start=100, stop=300).shape
torch.Size([200])
"""

import csv
import logging
import math
import os

import torch
from speechbrain.dataio import audio_io

from gmsep.data.columns import DURATION, ID, WAV_SUFFIX
from gmsep.data.mixing import loudness_gain
from gmsep.data.outputs import staged_files

logger = logging.getLogger(__name__)

# The shortest recording gmsep separates: under a tenth of a second (less
# than a syllable) there is nothing to tell speakers apart by, and the
# "sources" of a few samples that came back used to look like a result.
MIN_SECONDS = 0.1
# Below 1 kHz (a 500 Hz band) no speech is left to separate.
MIN_SAMPLE_RATE = 1000
# Only these libsndfile subtypes can hold NaN or inf samples.
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
# Where the sources of a recording that would clip in a fixed-point file are
# scaled to: a little headroom below full scale for the quantisation.
HEADROOM_PEAK = 0.99
# How the outputs of a recording are written: their level rule and the
# sample format of the files (libsndfile subtypes).
NORMALIZE_MODES = ("peak", "loudness", "none")
OUTPUT_SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
# Frames per block when a float file is scanned for non-finite samples.
_SCAN_FRAMES = 1 << 20

# Placeholder sizes that streaming writers put in the header of a WAV data
# chunk whose length was unknown: they do not mean the file was truncated.
_UNKNOWN_DATA_SIZES = (0, 0xFFFFFFFF)


class DataError(ValueError):
    """A dataset file or folder is missing or not what the recipe expects.

    Example
    -------
    >>> isinstance(DataError("mix.wav: file not found"), ValueError)
    True
    """


def _unreadable(path, err):
    """Returns the DataError for a file that libsndfile could not open."""
    # audio_io wraps soundfile's error, which tells libsndfile's reason
    cause = err.__cause__ or err
    reason = getattr(cause, "error_string", str(cause))
    if not os.path.exists(path):
        return DataError(f"{path}: file not found")
    return DataError(f"{path}: unreadable or corrupt audio file ({reason})")


def _check_format(path, samplerate, channels, frames, sample_rate, mono=True):
    """Raises a DataError if a file is empty, not mono or wrongly sampled."""
    if frames == 0:
        raise DataError(f"{path}: empty audio file (0 frames)")
    if mono and channels != 1:
        raise DataError(f"{path}: has {channels} channels, expected mono")
    if sample_rate is not None and samplerate != sample_rate:
        raise DataError(
            f"{path}: sample rate {samplerate} Hz, expected {sample_rate} Hz "
            f"(set sample_rate: {samplerate} or prepare the "
            f"wav{sample_rate // 1000}k folder)"
        )


def _wav_data_chunk(path):
    """Returns (offset, declared size) of a RIFF/WAVE data chunk, or None.

    libsndfile silently shortens a WAV whose data chunk is cut, so truncation
    can only be seen by comparing the size the header declares with the size
    of the file.
    """
    with open(path, "rb") as wav:
        riff = wav.read(12)
        if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            return None
        offset = 12
        while True:
            header = wav.read(8)
            if len(header) < 8:
                return None
            size = int.from_bytes(header[4:], "little")
            if header[:4] == b"data":
                return offset + 8, size
            # RIFF chunks are padded to an even size
            offset += 8 + size + (size & 1)
            wav.seek(offset)


def check_audio_file(path, sample_rate=None, mono=True):
    """Checks that an audio file exists and is a complete, mono recording.

    Arguments
    ---------
    path : str or os.PathLike
        The audio file.
    sample_rate : int, optional
        The expected sample rate in Hz; not checked when None.
    mono : bool
        Whether more than one channel is an error (training data), or is
        accepted (a recording to separate, see :func:`read_audio`).

    Returns
    -------
    info : speechbrain.dataio.audio_io.AudioInfo
        The header of the file (sample_rate, channels, frames, duration, ...).

    Raises
    ------
    DataError
        Naming the file when it is missing, unreadable or corrupt, truncated,
        empty, not mono, or not at sample_rate.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> path = getfixture("tmp_path") / "stereo.wav"
    >>> sf.write(path, np.zeros((80, 2), dtype="int16"), 8000)
    >>> check_audio_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gmsep.data.audio.DataError: ...stereo.wav: has 2 channels, expected mono
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, expected an audio file")
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    try:
        info = audio_io.info(path)
    except RuntimeError as err:
        raise _unreadable(path, err) from err
    if info.format in ("WAV", "WAVEX"):
        data_chunk = _wav_data_chunk(path)
        if data_chunk is not None:
            offset, declared = data_chunk
            stored = os.path.getsize(path) - offset
            if declared not in _UNKNOWN_DATA_SIZES and stored < declared:
                raise DataError(
                    f"{path}: truncated: the header declares {declared} bytes "
                    f"of audio but the file holds {stored} "
                    "(incomplete copy or download?)"
                )
    _check_format(
        path, info.sample_rate, info.channels, info.frames, sample_rate, mono
    )
    return info


def check_csv_audio(
    csv_path, audio_columns=None, sample_rate=None, max_report=5
):
    """Checks a prepared CSV and the header of every audio file it lists.

    Run before training: it finds in seconds what would otherwise crash a
    data loader hours later. Files listed more than once are checked once.

    Arguments
    ---------
    csv_path : str or os.PathLike
        A CSV with an ID, a duration and audio path columns.
    audio_columns : list of str, optional
        The columns holding audio paths; by default all `*_wav` columns.
    sample_rate : int, optional
        The expected sample rate in Hz of every file; not checked when None.
    max_report : int
        How many offending files an error lists (it always gives the count).

    Returns
    -------
    n_files : int
        The number of distinct audio files checked.

    Raises
    ------
    DataError
        When the CSV is missing or lacks a column, when listed files are
        missing (all counted, the first max_report named with their row ID),
        or when files fail :func:`check_audio_file` (named with the CSV).

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> tmp_path = getfixture("tmp_path")
    >>> sf.write(tmp_path / "a.wav", np.zeros(80, dtype="int16"), 8000)
    >>> _ = (tmp_path / "a.csv").write_text(
    ...     f"ID,duration,mix_wav\\na,0.01,{tmp_path / 'a.wav'}\\n"
    ... )
    >>> check_csv_audio(tmp_path / "a.csv", sample_rate=8000)
    1
    """
    csv_path = os.fspath(csv_path)
    if not os.path.isfile(csv_path):
        raise DataError(f"{csv_path}: CSV not found (run the data preparation)")
    with open(csv_path, newline="") as csv_file:
        reader = csv.DictReader(csv_file)
        columns = reader.fieldnames or []
        if audio_columns is None:
            audio_columns = [
                name for name in columns if name.endswith(WAV_SUFFIX)
            ]
            if not audio_columns:
                raise DataError(
                    f"{csv_path}: no audio (*_wav) column in {columns}"
                )
        missing_columns = [
            name
            for name in (ID, DURATION, *audio_columns)
            if name not in columns
        ]
        if missing_columns:
            raise DataError(
                f"{csv_path}: missing column(s) {', '.join(missing_columns)} "
                f"(found: {', '.join(columns) or 'no header'})"
            )
        # path -> (row ID, column) of its first mention
        mentions = {}
        for row in reader:
            for column in audio_columns:
                mentions.setdefault(row[column], (row[ID], column))

    missing = [path for path in mentions if not os.path.isfile(path)]
    if missing:
        listed = "\n".join(
            f"  row {mentions[path][0]} ({mentions[path][1]}): {path}"
            for path in missing[:max_report]
        )
        raise DataError(
            f"{csv_path}: {len(missing)} listed audio file(s) not found, "
            f"the first {min(len(missing), max_report)}:\n{listed}"
        )

    problems = []
    for path, (row_id, _) in mentions.items():
        try:
            check_audio_file(path, sample_rate)
        except DataError as err:
            problems.append(f"  row {row_id}: {err}")
    if problems:
        listed = "\n".join(problems[:max_report])
        raise DataError(
            f"{csv_path}: {len(problems)} listed audio file(s) are not usable, "
            f"the first {min(len(problems), max_report)}:\n{listed}"
        )
    return len(mentions)


def read_mono(path, sample_rate, start=0, stop=None):
    """Reads frames [start, stop) of a mono audio file as a float32 tensor.

    Used by the data pipelines. It checks what the header tells for free
    (empty, channels, sample rate, length) and the frames actually read, so
    a bad file is named instead of surfacing as a shape error inside the
    model.

    Arguments
    ---------
    path : str or os.PathLike
        The audio file.
    sample_rate : int
        The expected sample rate in Hz (no resampling is done).
    start : int
        First frame to read (for random crops).
    stop : int, optional
        Frame after the last one to read; the end of the file when None.

    Returns
    -------
    signal : torch.Tensor
        The samples in [-1, 1], float32, shape [T] with T = stop - start.

    Raises
    ------
    DataError
        Naming the file when it is missing, unreadable, empty, not mono, not
        at sample_rate, or shorter than [start, stop) requires.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> path = getfixture("tmp_path") / "s1.wav"
    >>> sf.write(path, np.full(400, 16384, dtype="int16"), 8000)
    >>> read_mono(path, 8000, stop=2)
    tensor([0.5000, 0.5000])
    """
    path = os.fspath(path)
    try:
        info = audio_io.info(path)
    except RuntimeError as err:
        raise _unreadable(path, err) from err
    _check_format(
        path, info.sample_rate, info.channels, info.frames, sample_rate
    )
    stop = info.frames if stop is None else stop
    if not 0 <= start < stop <= info.frames:
        raise DataError(
            f"{path}: cannot read frames {start}:{stop}, the file has "
            f"{info.frames} (truncated file or stale CSV duration?)"
        )
    try:
        signal, _ = audio_io.load(
            path,
            dtype=torch.float32,
            always_2d=False,
            frame_offset=start,
            num_frames=stop - start,
        )  # T
    except RuntimeError as err:
        raise _unreadable(path, err) from err
    if len(signal) < stop - start:
        raise DataError(
            f"{path}: truncated: read {len(signal)} of the {stop - start} "
            f"frames from {start} that the header declares"
        )
    return signal


def _check_recording_header(path, info, min_seconds):
    """Raises a DataError if a recording is too short or too coarsely
    sampled to be separated."""
    if info.sample_rate < MIN_SAMPLE_RATE:
        raise DataError(
            f"{path}: sample rate {info.sample_rate} Hz, expected at least "
            f"{MIN_SAMPLE_RATE} Hz"
        )
    if info.frames < min_seconds * info.sample_rate:
        raise DataError(
            f"{path}: {info.frames} frames ({info.duration:.3f} s), expected "
            f"at least {min_seconds} s of audio"
        )


def _nonfinite_error(path, count, total):
    return DataError(
        f"{path}: {count} of {total} samples are not finite (NaN or inf); "
        "repair the file (e.g. re-export it) and run again"
    )


def check_recording(path, min_seconds=MIN_SECONDS):
    """Checks a recording to separate before any model is loaded.

    The header checks of :func:`check_audio_file` (any channel count), a
    duration of at least ``min_seconds``, a sample rate of at least
    ``MIN_SAMPLE_RATE`` and, for float files, that every sample is finite
    (read in blocks: memory does not grow with the file).

    Arguments
    ---------
    path : str or os.PathLike
        The recording.
    min_seconds : float
        The shortest duration accepted.

    Returns
    -------
    speechbrain.dataio.audio_io.AudioInfo

    Raises
    ------
    DataError
        Naming the file and what was expected.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> path = getfixture("tmp_path") / "click.wav"
    >>> sf.write(path, np.zeros(80), 8000)
    >>> check_recording(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gmsep.data.audio.DataError: ...click.wav: 80 frames (0.010 s), expected at least 0.1 s of audio
    """
    info = check_audio_file(path, mono=False)
    _check_recording_header(path, info, min_seconds)
    if info.subtype in FLOAT_SUBTYPES:
        count = 0
        for start in range(0, info.frames, _SCAN_FRAMES):
            try:
                block, _ = audio_io.load(
                    os.fspath(path),
                    dtype=torch.float32,
                    frame_offset=start,
                    num_frames=min(_SCAN_FRAMES, info.frames - start),
                )
            except RuntimeError as err:
                raise _unreadable(os.fspath(path), err) from err
            count += int((~torch.isfinite(block)).sum())
        if count:
            raise _nonfinite_error(path, count, info.frames * info.channels)
    return info


def read_audio(path, min_seconds=MIN_SECONDS):
    """Reads a recording as a mono float32 signal at its own sample rate.

    For the files a user separates: any format, rate and channel count
    libsndfile reads; multi-channel files are averaged to mono, with a
    warning. Samples above full scale (float files) are kept as they are.

    Arguments
    ---------
    path : str or os.PathLike
        The audio file.
    min_seconds : float
        The shortest duration accepted (``MIN_SECONDS``; 0 for any).

    Returns
    -------
    signal : torch.Tensor
        Shape [T].
    sample_rate : int

    Raises
    ------
    DataError
        Naming the file when it is missing, unreadable, corrupt, truncated,
        empty, shorter than min_seconds, sampled below ``MIN_SAMPLE_RATE``
        or holds non-finite samples.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> path = getfixture("tmp_path") / "stereo.wav"
    >>> sf.write(path, np.ones((800, 2)) * 0.5, 8000)
    >>> signal, rate = read_audio(path)
    >>> signal.shape, rate
    (torch.Size([800]), 8000)
    """
    path = os.fspath(path)
    info = check_audio_file(path, mono=False)
    _check_recording_header(path, info, min_seconds)
    try:
        signal, sample_rate = audio_io.load(
            path, dtype=torch.float32, channels_first=False
        )  # T, C
    except RuntimeError as err:
        raise _unreadable(path, err) from err
    if signal.shape[0] == 0:
        raise DataError(f"{path}: empty audio file (0 frames)")
    finite = torch.isfinite(signal)
    if not finite.all():
        raise _nonfinite_error(path, int((~finite).sum()), signal.numel())
    if signal.shape[1] > 1:
        logger.warning(
            "%s: %d channels, averaged to mono", path, signal.shape[1]
        )
    return signal.mean(dim=1), int(sample_rate)


def fit_full_scale(signals, name, subtype="PCM_16"):
    """Scales the signals of one recording down together if any would clip.

    A fixed-point file cannot hold a sample beyond full scale: libsndfile
    would clip it. When the peak of ``signals`` exceeds 1, all of them (the
    sources of one recording, so their levels stay comparable) are scaled
    so that the peak is ``HEADROOM_PEAK``, with a warning naming the file.
    A float file holds any value: nothing is changed for ``FLOAT``.

    Arguments
    ---------
    signals : torch.Tensor
        Float samples, any shape (e.g. [T, S]).
    name : str or os.PathLike
        What they are written as, for the warning.
    subtype : str
        The files' sample format, one of ``OUTPUT_SUBTYPES``.

    Returns
    -------
    torch.Tensor
        ``signals``, scaled when their peak exceeded 1.

    Example
    -------
    >>> fit_full_scale(torch.tensor([0.5, -2.0]), "loud_s1.wav")
    tensor([ 0.2475, -0.9900])
    >>> fit_full_scale(torch.tensor([0.5, -2.0]), "loud_s1.wav", "FLOAT")
    tensor([ 0.5000, -2.0000])
    """
    peak = float(signals.abs().max()) if signals.numel() else 0.0
    if peak <= 1.0 or subtype == "FLOAT":
        return signals
    gain = HEADROOM_PEAK / peak
    logger.warning(
        "%s: peaks at %.2f, above full scale: scaled by %.1f dB so that the "
        "%s file does not clip",
        name,
        peak,
        20 * math.log10(gain),
        subtype,
    )
    return signals * gain


def check_output_format(normalize, subtype):
    """Refuses a level rule or sample format that gmsep does not write.

    Example
    -------
    >>> check_output_format("peak", "PCM_32")
    Traceback (most recent call last):
    ...
    ValueError: subtype='PCM_32': expected one of PCM_16, PCM_24, FLOAT
    """
    for name, value, allowed in (
        ("normalize", normalize, NORMALIZE_MODES),
        ("subtype", subtype, OUTPUT_SUBTYPES),
    ):
        if value not in allowed:
            raise ValueError(
                f"{name}={value!r}: expected one of {', '.join(allowed)}"
            )


def normalize_outputs(signals, mode, sample_rate, loudness=None):
    """Sets the level of each output of one recording, channel by channel.

    ``peak``: each to a peak of ``HEADROOM_PEAK``, as SpeechBrain's
    ``separate_file`` normalises each source to its peak (to 1; 0.99 leaves
    the quantisation a little headroom). ``loudness``: each to the ITU-R
    BS.1770 integrated loudness of the recording (pyloudnorm; a signal
    shorter than 0.4 s is measured as one block of its own length).
    ``none``: as the network gives them: SI-SNR training leaves their scale
    free, typically well below the recording's. A silent channel, or every
    channel with ``loudness`` of a silent recording, is left as it is.

    Arguments
    ---------
    signals : torch.Tensor
        Float samples [T, C].
    mode : str
        One of ``NORMALIZE_MODES``.
    sample_rate : int
        Their sample rate in Hz.
    loudness : float, optional
        The recording's loudness in LUFS (for ``loudness``).

    Returns
    -------
    torch.Tensor
        [T, C].

    Example
    -------
    >>> normalize_outputs(torch.tensor([[0.1, 0.0], [-0.2, 0.0]]), "peak", 8000)
    tensor([[ 0.4950,  0.0000],
            [-0.9900,  0.0000]])
    """
    if mode == "none":
        return signals
    gains = []
    for channel in signals.unbind(-1):
        if mode == "peak":
            peak = float(channel.abs().max())
            gains.append(HEADROOM_PEAK / peak if peak > 0 else 1.0)
        elif math.isfinite(loudness):
            gains.append(loudness_gain(channel, loudness, sample_rate))
        else:
            gains.append(1.0)
    return signals * torch.tensor(gains, dtype=signals.dtype)


def write_sources(paths, signals, sample_rate, subtype="PCM_16"):
    """Writes the signals of one recording, one file per channel, only when
    all are complete (temporary files renamed into place).

    Arguments
    ---------
    paths : sequence of str or os.PathLike
        One target file per channel of ``signals``.
    signals : torch.Tensor
        Float samples [T, C] (the sources of one recording).
    sample_rate : int
        Sample rate in Hz.
    subtype : str
        The files' sample format, one of ``OUTPUT_SUBTYPES``; with a
        fixed-point one, signals beyond full scale are scaled down together
        (:func:`fit_full_scale`), never clipped.

    Raises
    ------
    DataError
        When a signal is not finite or a file cannot be written.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> write_sources([folder / "a_s1.wav", folder / "a_s2.wav"], torch.zeros(8, 2), 8000)
    >>> sorted(path.name for path in folder.iterdir())
    ['a_s1.wav', 'a_s2.wav']
    """
    signals = signals.detach().cpu()
    if not torch.isfinite(signals).all():
        raise DataError(
            f"{os.fspath(paths[0])}: the signals to write are not finite "
            "(NaN or inf); nothing was written"
        )
    more = f" and {len(paths) - 1} more file(s) of its recording" * (
        len(paths) > 1
    )
    signals = fit_full_scale(signals, f"{os.fspath(paths[0])}{more}", subtype)
    with staged_files(paths) as temporaries:
        for i, temporary in enumerate(temporaries):
            write_audio(temporary, signals[:, i], sample_rate, subtype)


def write_audio(path, signal, sample_rate, subtype="PCM_16"):
    """Writes a mono signal [T] as a PCM or float file (WAV for ``.wav``).

    Float signals are quantised by libsndfile for ``PCM_16`` and
    ``PCM_24``, after :func:`fit_full_scale` (a signal beyond full scale is
    scaled down with a warning, never clipped); ``FLOAT`` keeps every value.
    int16 samples are written as they are, so integer sums computed before
    writing still hold in a 16-bit file.

    Arguments
    ---------
    path : str or os.PathLike
        The file to write; the format follows its extension.
    signal : torch.Tensor or numpy.ndarray
        The samples, [T], float or int16.
    sample_rate : int
        Sample rate in Hz.
    subtype : str
        The sample format, one of ``OUTPUT_SUBTYPES``.

    Example
    -------
    >>> path = getfixture("tmp_path") / "out.wav"
    >>> write_audio(path, torch.full((8,), 0.5), 8000)
    >>> read_mono(path, 8000)
    tensor([0.5000, 0.5000, 0.5000, 0.5000, 0.5000, 0.5000, 0.5000, 0.5000])
    """
    if isinstance(signal, torch.Tensor):
        signal = signal.detach().cpu()
        if signal.is_floating_point():
            signal = fit_full_scale(signal, path, subtype)
    try:
        audio_io.save(os.fspath(path), signal, sample_rate, subtype=subtype)
    except RuntimeError as err:
        raise DataError(
            f"{os.fspath(path)}: cannot write audio ({err.__cause__ or err})"
        ) from err
