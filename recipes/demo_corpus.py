"""Generates a small synthetic noisy-mixture corpus in the LibriMix layout.

The corpus lets the whole recipe run offline: it is written exactly as
LibriMix is (``Libri{S}Mix/wav{k}k/{min,max}/{split}/{mix_both, mix_clean,
s1 .. sS, noise}/<ID>.wav``, 16-bit PCM), so the LibriMix preparation reads it
unchanged.

Sources come from the source-filter speech synthesizer of
:mod:`recipes.demo_speech` (numpy and scipy alone).

Every split has its own fixed pool of synthetic speakers (training speakers
are disjoint from the dev and test speakers, as in LibriSpeech) and file names
are LibriMix-like mixture IDs ``<speaker>-<chapter>-<utt>_<speaker>-...``.

Noise is a mixture of coloured noise (random spectral tilt), babble from other
synthetic talkers and non-stationary events (decaying bursts, hums). Its level
follows WHAM!: the noise-to-speech ratio, i.e. the power of the noise over the
power of the loudest source, both measured on the part where all sources are
active (the min-mode length), is drawn uniformly in [-6, +3] dB. Sources get
random levels within +-3 dB of each other. Everything of one mixture is scaled
jointly when a peak would exceed 0.9; sources and noise are then rounded to
16-bit PCM and the mixtures are summed from the rounded samples, so
mix_clean = s1 + ... + sS and mix_both = mix_clean + noise hold exactly in the
written PCM values. In min mode all signals are cropped to the shortest
source, in max mode padded with zeros to the longest one (min-mode files are
the beginnings of the max-mode files).

Levels follow the rule shared with dynamic mixing
(:func:`gmsep.data.mixing.mix_sources`). The generation is deterministic for
a seed. Signals are synthesized once at
the highest requested sample rate and resampled to the others.

Example
-------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as out:
...     summary = generate_demo_corpus(
...         out,
...         n_mixtures={"train-360": 2, "dev": 1, "test": 1},
...         min_duration=0.5,
...         max_duration=0.8,
...     )
>>> summary["n_files"]
20
"""

import argparse
import json
import logging
import math
import os
import time

import numpy as np
import torch
from gmsep.data.audio import write_audio
from gmsep.data.columns import librimix_folders
from gmsep.data.mixing import mix_sources
from scipy.signal import resample_poly

from recipes.demo_speech import (
    F0_MEDIAN_RANGE,
    make_speaker,
    synthesize_noise,
    synthesize_utterance,
)

logger = logging.getLogger(__name__)

SPLITS = ("train-360", "dev", "test")
DEFAULT_N_MIXTURES = {"train-360": 1500, "dev": 60, "test": 60}
MODES = ("min", "max")
MANIFEST_NAME = "demo_corpus.json"

# Speakers of each split's pool, and talkers heard only in the babble noise.
SPEAKERS_PER_SPLIT = {"train-360": 200, "dev": 20, "test": 20}
BABBLE_TALKERS_PER_SPLIT = 6
BABBLE_POOL_SIZE = 8

# Noise power over the loudest source's power, in dB (WHAM!-like).
NOISE_TO_SPEECH_DB = (-6.0, 3.0)
# Source levels: RMS in dBFS, drawn around a reference.
SOURCE_LEVEL_DBFS = -25.0
SOURCE_LEVEL_SPREAD_DB = 3.0
PEAK_LIMIT = 0.9
PCM_SCALE = 32768.0


def make_speaker_pools(seed):
    """Draws each split's speakers and babble talkers, all distinct.

    Arguments
    ---------
    seed : int
        Corpus seed.

    Returns
    -------
    speakers : dict
        Split name -> list of SyntheticSpeaker (the separated talkers).
    babble_talkers : dict
        Split name -> list of SyntheticSpeaker heard only in the noise.

    Example
    -------
    >>> speakers, babble = make_speaker_pools(1234)
    >>> ids = [s.speaker_id for split in SPLITS for s in speakers[split]]
    >>> len(ids) == len(set(ids))
    True
    """
    rng = np.random.default_rng([seed, 0])
    sizes = [SPEAKERS_PER_SPLIT[split] for split in SPLITS]
    n_total = sum(sizes) + BABBLE_TALKERS_PER_SPLIT * len(SPLITS)
    ids = iter(rng.choice(np.arange(19, 9000), size=n_total, replace=False))
    log_low, log_high = np.log(F0_MEDIAN_RANGE)

    def pool(size):
        # Stratified medians: every pool covers the whole F0 range.
        strata = (np.arange(size) + rng.uniform(size=size)) / size
        medians = np.exp(log_low + strata * (log_high - log_low))
        return [
            make_speaker(next(ids), f0, rng) for f0 in rng.permutation(medians)
        ]

    speakers = {
        split: pool(size) for split, size in zip(SPLITS, sizes, strict=True)
    }
    babble_talkers = {split: pool(BABBLE_TALKERS_PER_SPLIT) for split in SPLITS}
    return speakers, babble_talkers


def _mix(sources, noise, levels_db, noise_to_speech_db):
    """Levels, mixes and quantises one mixture at one sample rate.

    The levels follow :func:`gmsep.data.mixing.mix_sources`, the SNR measured
    where all sources are active (the min-mode length). Returns the max-mode
    signals as int16 arrays (sources, noise, mix_clean, mix_both) and the
    min-mode length.
    """
    n_min = min(len(s) for s in sources)
    padded, noise = mix_sources(
        [torch.from_numpy(source) for source in sources],
        torch.from_numpy(noise),
        levels_db,
        snr=-noise_to_speech_db,
        overlap=n_min,
        max_amp=PEAK_LIMIT,
        eps=1e-12,
    )  # S, T and T
    # Mixtures are summed from rounded sources: the sums hold exactly in PCM.
    sources_pcm = np.round(padded.numpy() * PCM_SCALE).astype(np.int32)
    noise_pcm = np.round(noise.numpy() * PCM_SCALE).astype(np.int32)
    mix_clean_pcm = sources_pcm.sum(axis=0)
    signals = {f"s{i + 1}": s for i, s in enumerate(sources_pcm)}
    signals["noise"] = noise_pcm
    signals["mix_clean"] = mix_clean_pcm
    signals["mix_both"] = mix_clean_pcm + noise_pcm
    return {name: x.astype(np.int16) for name, x in signals.items()}, n_min


def _plan_split(
    speakers, n_speakers, split, n_mixtures, min_duration, max_duration, seed
):
    """Chooses the talkers and utterance durations of a split's mixtures.

    Returns a list of (mixture ID, speakers, durations, mixture seed); every
    utterance is used once.
    """
    split_index = SPLITS.index(split)
    rng = np.random.default_rng([seed, n_speakers, split_index])
    next_utterance = {speaker.speaker_id: 0 for speaker in speakers}
    plan = []
    for index in range(n_mixtures):
        chosen = [
            speakers[i]
            for i in rng.choice(len(speakers), size=n_speakers, replace=False)
        ]
        ids = []
        for speaker in chosen:
            ids.append(speaker.utterance_id(next_utterance[speaker.speaker_id]))
            next_utterance[speaker.speaker_id] += 1
        durations = rng.uniform(min_duration, max_duration, size=n_speakers)
        plan.append(
            (
                "_".join(ids),
                chosen,
                durations,
                (seed, n_speakers, split_index, index, 1),
            )
        )
    return plan


def _write_mixture(out_folder, split, mixture, babble_pool, parameters):
    """Synthesizes one planned mixture and writes it at every rate and mode."""
    mixture_id, speakers, durations, mixture_seed = mixture
    rng = np.random.default_rng(mixture_seed)
    highest_rate = parameters["sample_rates"][-1]
    sources = [
        synthesize_utterance(speaker, duration, highest_rate, rng)
        for speaker, duration in zip(speakers, durations, strict=True)
    ]
    noise = synthesize_noise(
        max(len(s) for s in sources), highest_rate, babble_pool, rng
    )
    spread = SOURCE_LEVEL_SPREAD_DB / 2
    levels_db = SOURCE_LEVEL_DBFS + rng.uniform(-spread, spread, len(speakers))
    noise_to_speech_db = rng.uniform(*NOISE_TO_SPEECH_DB)
    for rate in parameters["sample_rates"]:
        factor = math.gcd(rate, highest_rate)
        resampled = [
            resample_poly(x, rate // factor, highest_rate // factor)
            for x in sources + [noise]
        ]
        # Levels are set per rate: resampling removes some high bands.
        signals, n_min = _mix(
            resampled[:-1], resampled[-1], levels_db, noise_to_speech_db
        )
        for mode in parameters["modes"]:
            length = n_min if mode == "min" else len(signals["mix_clean"])
            corpus = _corpus_folder(out_folder, len(speakers), rate, mode)
            for name, signal in signals.items():
                folder = os.path.join(corpus, split, name)
                os.makedirs(folder, exist_ok=True)
                write_audio(
                    os.path.join(folder, f"{mixture_id}.wav"),
                    signal[:length],
                    rate,
                )


def _corpus_folder(out_folder, n_speakers, sample_rate, mode):
    return os.path.join(
        out_folder, f"Libri{n_speakers}Mix", f"wav{sample_rate // 1000}k", mode
    )


def _check_parameters(
    n_speakers,
    sample_rates,
    modes,
    n_mixtures,
    min_duration,
    max_duration,
    seed,
):
    """Validates the settings; returns them normalised (sorted, complete)."""
    n_speakers = sorted({int(n) for n in n_speakers})
    smallest_pool = min(SPEAKERS_PER_SPLIT.values())
    if not n_speakers or any(n < 2 or n > smallest_pool for n in n_speakers):
        raise ValueError(
            f"n_speakers: expected numbers of speakers per mixture between 2 and {smallest_pool}, got {n_speakers}"
        )
    sample_rates = sorted({int(rate) for rate in sample_rates})
    if not sample_rates or any(
        rate % 1000 or not 8000 <= rate <= 48000 for rate in sample_rates
    ):
        raise ValueError(
            f"sample_rates: expected multiples of 1000 Hz between 8000 and 48000 (folders are named wav<k>k), got {sample_rates}"
        )
    modes = sorted(set(modes))
    if not modes or not set(modes) <= set(MODES):
        raise ValueError(
            f"modes: expected a non-empty subset of {list(MODES)}, got {modes}"
        )
    counts = dict(DEFAULT_N_MIXTURES)
    for split, count in (n_mixtures or {}).items():
        if split not in SPLITS:
            raise ValueError(
                f"n_mixtures: unknown split '{split}', expected one of {list(SPLITS)}"
            )
        if int(count) != count or count < 1:
            raise ValueError(
                f"n_mixtures['{split}']: expected a positive integer, got {count}"
            )
        counts[split] = int(count)
    if not 0 < min_duration <= max_duration:
        raise ValueError(
            f"min_duration/max_duration: expected 0 < min_duration <= max_duration (seconds), got {min_duration} and {max_duration}"
        )
    return {
        "n_speakers": n_speakers,
        "sample_rates": sample_rates,
        "modes": modes,
        "n_mixtures": counts,
        "min_duration": float(min_duration),
        "max_duration": float(max_duration),
        "seed": int(seed),
    }


def _folder_size(folder):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(folder)
        for name in names
    )


def generate_demo_corpus(
    out_folder,
    n_speakers=(2,),
    sample_rates=(8000,),
    modes=("min",),
    n_mixtures=None,
    min_duration=2.0,
    max_duration=4.0,
    seed=1234,
):
    """Writes a synthetic noisy-mixture corpus in the LibriMix layout.

    Skips the work when ``out_folder`` already holds a complete corpus made
    with the same settings (recorded in ``demo_corpus.json``, written last).
    Otherwise writes every file of the requested corpus, overwriting only
    files of this layout; nothing is ever deleted.

    Arguments
    ---------
    out_folder : str
        Root folder; gets ``Libri{S}Mix/wav{k}k/{mode}/{split}/...``.
    n_speakers : sequence of int
        Speakers per mixture, one corpus each (2 -> Libri2Mix, 3 -> Libri3Mix).
    sample_rates : sequence of int
        Sample rates in Hz (multiples of 1000).
    modes : sequence of str
        "min" (cropped to the shortest source) and/or "max" (zero-padded to
        the longest).
    n_mixtures : dict, optional
        Split name -> number of mixtures, overriding DEFAULT_N_MIXTURES
        (train-360: 1500, dev: 60, test: 60).
    min_duration, max_duration : float
        Range of the source utterance durations in seconds.
    seed : int
        Seed; the same seed gives byte-identical files.

    Returns
    -------
    dict
        ``out_folder``, ``corpora`` (the written ``.../wav{k}k/{mode}``
        folders), ``n_mixtures`` (per split), ``n_files``, ``bytes`` (size of
        the corpus folders on disk), ``seconds`` (time taken) and ``skipped``
        (True when the corpus was already complete).

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as out:
    ...     counts = {"train-360": 1, "dev": 1, "test": 1}
    ...     kwargs = dict(n_mixtures=counts, min_duration=0.4, max_duration=0.5)
    ...     first = generate_demo_corpus(out, **kwargs)
    ...     second = generate_demo_corpus(out, **kwargs)
    >>> first["skipped"], second["skipped"]
    (False, True)
    """
    start_time = time.perf_counter()
    parameters = _check_parameters(
        n_speakers,
        sample_rates,
        modes,
        n_mixtures,
        min_duration,
        max_duration,
        seed,
    )
    speakers, babble_talkers = make_speaker_pools(parameters["seed"])
    plans = {
        (n_spk, split): _plan_split(
            speakers[split],
            n_spk,
            split,
            count,
            parameters["min_duration"],
            parameters["max_duration"],
            parameters["seed"],
        )
        for n_spk in parameters["n_speakers"]
        for split, count in parameters["n_mixtures"].items()
    }
    targets = []  # (folder, mixture IDs) of every signal folder to write
    for (n_spk, split), plan in plans.items():
        for rate in parameters["sample_rates"]:
            for mode in parameters["modes"]:
                for name in librimix_folders(n_spk):
                    folder = os.path.join(
                        _corpus_folder(out_folder, n_spk, rate, mode),
                        split,
                        name,
                    )
                    targets.append(
                        (folder, [mixture_id for mixture_id, *_ in plan])
                    )
    corpora = sorted(
        {
            _corpus_folder(out_folder, n_spk, rate, mode)
            for n_spk in parameters["n_speakers"]
            for rate in parameters["sample_rates"]
            for mode in parameters["modes"]
        }
    )
    n_files = sum(len(ids) for _, ids in targets)
    summary = {
        "out_folder": os.path.abspath(out_folder),
        "corpora": [os.path.abspath(c) for c in corpora],
        "n_mixtures": parameters["n_mixtures"],
        "n_files": n_files,
    }

    manifest_path = os.path.join(out_folder, MANIFEST_NAME)
    previous = None
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            previous = json.load(f)
    complete = all(
        os.path.isfile(os.path.join(folder, f"{mixture_id}.wav"))
        for folder, ids in targets
        for mixture_id in ids
    )
    if (
        previous is not None
        and previous.get("parameters") == parameters
        and complete
    ):
        logger.info(
            "Demo corpus in %s is complete, skipping generation.", out_folder
        )
        summary.update(
            bytes=sum(_folder_size(c) for c in corpora),
            seconds=time.perf_counter() - start_time,
            skipped=True,
        )
        return summary
    if previous is not None:
        logger.info(
            "Demo corpus in %s was made with other settings or is incomplete: "
            "regenerating; files outside the requested corpus are kept.",
            out_folder,
        )
    elif os.path.isdir(out_folder) and os.listdir(out_folder):
        logger.info(
            "%s is not empty and holds no demo corpus: writing into it, "
            "overwriting only files of the corpus layout.",
            out_folder,
        )
    for folder, ids in targets:
        if os.path.isdir(folder):
            strays = set(os.listdir(folder)) - {
                f"{mixture_id}.wav" for mixture_id in ids
            }
            if strays:
                logger.warning(
                    "%s holds %d files this corpus does not contain; they are kept, "
                    "and a LibriMix preparation will read them too.",
                    folder,
                    len(strays),
                )

    highest_rate = parameters["sample_rates"][-1]
    for split in parameters["n_mixtures"]:
        babble_rng = np.random.default_rng(
            [parameters["seed"], 0, SPLITS.index(split)]
        )
        babble_pool = [
            synthesize_utterance(
                babble_talkers[split][i % BABBLE_TALKERS_PER_SPLIT],
                parameters["max_duration"],
                highest_rate,
                babble_rng,
            )
            for i in range(BABBLE_POOL_SIZE)
        ]
        for n_spk in parameters["n_speakers"]:
            for mixture in plans[(n_spk, split)]:
                _write_mixture(
                    out_folder, split, mixture, babble_pool, parameters
                )

    seconds = time.perf_counter() - start_time
    manifest = {
        "generator": "recipes.demo_corpus",
        "parameters": parameters,
        "corpora": [os.path.relpath(c, out_folder) for c in corpora],
        "n_files": n_files,
        "seconds": round(seconds, 2),
    }
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
    summary.update(
        bytes=sum(_folder_size(c) for c in corpora),
        seconds=seconds,
        skipped=False,
    )
    return summary


def main(argv=None):
    """Command line: ``python -m recipes.demo_corpus --out DIR [options]``."""
    parser = argparse.ArgumentParser(
        description="Generate a synthetic noisy speech-mixture corpus in the "
        "LibriMix layout."
    )
    parser.add_argument("--out", required=True, help="output root folder")
    parser.add_argument(
        "--n-speakers",
        type=int,
        nargs="+",
        default=[2],
        help="speakers per mixture (2 -> Libri2Mix, 3 -> Libri3Mix)",
    )
    parser.add_argument(
        "--sample-rates",
        type=int,
        nargs="+",
        default=[8000],
        help="sample rates in Hz",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["min"],
        choices=MODES,
        help="min: crop to shortest source; max: pad to longest",
    )
    for split, flag in zip(
        SPLITS, ("--n-train", "--n-dev", "--n-test"), strict=True
    ):
        parser.add_argument(
            flag,
            type=int,
            default=DEFAULT_N_MIXTURES[split],
            help=f"mixtures in {split} (default {DEFAULT_N_MIXTURES[split]})",
        )
    parser.add_argument(
        "--min-duration", type=float, default=2.0, help="shortest utterance (s)"
    )
    parser.add_argument(
        "--max-duration", type=float, default=4.0, help="longest utterance (s)"
    )
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = generate_demo_corpus(
        args.out,
        n_speakers=args.n_speakers,
        sample_rates=args.sample_rates,
        modes=args.modes,
        n_mixtures={
            "train-360": args.n_train,
            "dev": args.n_dev,
            "test": args.n_test,
        },
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        seed=args.seed,
    )
    verb = "Already complete" if summary["skipped"] else "Wrote"
    counts = ", ".join(
        f"{split}: {n}" for split, n in summary["n_mixtures"].items()
    )
    for corpus in summary["corpora"]:
        print(f"{verb}: {corpus} ({counts} mixtures)")
    print(
        f"{summary['n_files']} files, {summary['bytes'] / 2**20:.1f} MiB on disk, {summary['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
