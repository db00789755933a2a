"""The listening reports of `gmsep evaluate`, `gmsep separate --report` and
`gmsep enhance --report` (gmsep.evaluation.report): the folder on disk,
replaced whole or not at all, and the page as headless Chromium shows it:
the tables rendered, sorting by a heading, every audio player loading and
playing its file with the right duration."""

import csv
import json
import re
import shutil
import sys

import pytest
import soundfile as sf
from browser import CHROMIUM, Browser
from gmsep.cli import main
from gmsep.inference.export import export_pretrained
from tiny_config import make_experiment

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_perceptual_metrics import speech_items  # noqa: E402

LENGTHS = [2.0, 1.5, 0.3, 1.0]  # seconds; the third is too short for STOI
LISTENED = 3
SIGNALS = ["mix", "enhanced", "est1", "est2", "ref1", "ref2"]


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    exp_dir, _ = make_experiment(root)
    model = export_pretrained(exp_dir, root / "pretrained")
    rows = []
    for item in speech_items(LENGTHS):
        row = {"ID": item["id"]}
        for name in ("mix", "s1", "s2"):
            path = root / f"{item['id']}_{name}.wav"
            sf.write(path, item[f"{name}_sig"].numpy(), 8000)
            row[f"{name}_wav"] = str(path)
        rows.append(row)
    csv_path = root / "test.csv"
    with open(csv_path, "w", newline="") as fout:
        writer = csv.DictWriter(fout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    argv = ["evaluate", "--model", model, "--csv", csv_path, "--out"]
    argv = [str(arg) for arg in argv] + [str(root / "eval")]
    assert main([*argv, "--plots", str(LISTENED)]) == 0
    with open(root / "eval" / "metrics.csv", newline="") as fin:
        metrics = list(csv.DictReader(fin))
    return {
        "root": root,
        "model": model,
        "argv": argv,
        "report": root / "eval" / "report",
        "metrics": metrics,
    }


def test_the_folder_is_self_contained(evaluation):
    report = evaluation["report"]
    page = (report / "report.html").read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert links, "no links"
    for link in links:
        # relative, no network, no absolute path; every file is there
        assert "://" not in link and not link.startswith("/"), link
        if not link.startswith("#"):
            assert (report / link).is_file(), link
    for i, seconds in enumerate(LENGTHS[:LISTENED]):
        for key in SIGNALS:
            info = sf.info(report / "audio" / f"u{i + 1:03d}" / f"{key}.wav")
            assert (info.format, info.subtype) == ("WAV", "PCM_16")
            assert (info.samplerate, info.frames) == (
                8000,
                round(seconds * 8000),
            )
            picture = report / "img" / f"u{i + 1:03d}" / f"{key}.jpg"
            assert 1_000 < picture.stat().st_size < 40_000
    assert not (report / "audio" / "u004").exists()
    for name in ("si-snr_i_histogram.png", "si-snr_i_vs_input_snr.png"):
        assert (report / "img" / name).stat().st_size < 40_000
    # input SNR: 0.1-scaled speech in 0.01 noise, about 23 dB
    snrs = [float(row["input_snr"]) for row in evaluation["metrics"]]
    assert all(15 < snr < 30 for snr in snrs)


CHECK = """(async () => {
  await new Promise(r => document.readyState === "complete" ? r()
                         : addEventListener("load", r));
  const ids = () => Array.from(document.querySelectorAll(
      "#utterances tbody tr"), row => row.cells[0].dataset.value);
  const headings = Array.from(document.querySelectorAll("#utterances th"));
  const result = {
    summary: Array.from(document.querySelectorAll("#summary tr"),
                        row => [row.cells[0].textContent,
                                row.cells[1].textContent]),
    headings: headings.map(h => h.textContent),
    initial: ids(),
    sorted: {},
    images: Array.from(document.images, img => [img.getAttribute("src"),
                                                img.complete,
                                                img.naturalWidth]),
    audio: [],
  };
  for (const th of headings) {
    th.click(); const up = ids(); th.click(); const down = ids();
    result.sorted[th.textContent] = [up, down];
  }
  for (const audio of document.querySelectorAll("audio")) {
    await new Promise(r => {
      if (audio.readyState >= 1 || audio.error) { r(); return; }
      audio.addEventListener("loadedmetadata", r);
      audio.addEventListener("error", r);
    });
    let played = null;
    if (!audio.error) {
      audio.muted = true;
      try {
        await audio.play();
        const start = Date.now();  // playing: its clock moves
        while (audio.currentTime === 0 && Date.now() - start < 5000) {
          await new Promise(r => setTimeout(r, 20));
        }
        played = audio.currentTime;
        audio.pause();
      } catch (err) { played = String(err); }
    }
    result.audio.push({src: audio.getAttribute("src"),
                       seconds: parseFloat(audio.dataset.seconds),
                       duration: audio.duration,
                       error: audio.error && audio.error.code,
                       played: played});
  }
  return result;
})()"""


def open_in_chromium(page, table="utterances"):
    with Browser(page.as_uri()) as browser:
        return browser.evaluate(CHECK.replace("#utterances", f"#{table}"))


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (tools/setup.sh installs it)",
)


@needs_chromium
def test_the_page_in_chromium(evaluation):
    shown = open_in_chromium(evaluation["report"] / "report.html")
    metrics = evaluation["metrics"]
    ids = [row["ID"] for row in metrics]
    # the tables rendered
    summary = dict(shown["summary"])
    assert summary["utterances"] == str(len(ids))
    assert (
        "mean SI-SNRi (dB)" in summary and "mean PESQ (narrow band)" in summary
    )
    assert summary["mean STOI"].endswith(
        f"(over 3 of {len(ids)}: undefined on the rest)"
    )
    assert summary["input SNR range (dB)"].startswith(
        f"{min(float(r['input_snr']) for r in metrics):.1f} to "
    )
    assert shown["headings"][:3] == ["ID", "input SNR (dB)", "SI-SNRi (dB)"]
    assert "PESQ" in shown["headings"] and "STOI" in shown["headings"]
    assert shown["initial"] == ids
    # sorting: numerically both ways, undefined values last; IDs by text
    up, down = shown["sorted"]["SI-SNRi (dB)"]
    by_value = sorted(metrics, key=lambda row: float(row["si-snr_i"]))
    assert up == [row["ID"] for row in by_value]
    assert down == up[::-1]
    up, down = shown["sorted"]["STOI"]
    assert up[-1] == down[-1] == "utt2"  # undefined: last both ways
    defined = sorted(
        (row for row in metrics if row["ID"] != "utt2"),
        key=lambda row: float(row["stoi"]),
    )
    assert up[:-1] == [row["ID"] for row in defined] == down[:-1][::-1]
    assert shown["sorted"]["ID"] == [sorted(ids), sorted(ids, reverse=True)]
    # every picture loaded
    assert len(shown["images"]) == 2 + LISTENED * len(SIGNALS)
    assert all(complete and width > 0 for _, complete, width in shown["images"])
    # every player: loaded, playable, with the utterance's duration
    assert len(shown["audio"]) == LISTENED * len(SIGNALS)
    for i, audio in enumerate(shown["audio"]):
        seconds = LENGTHS[i // len(SIGNALS)]
        assert audio["error"] is None, audio
        assert audio["duration"] == pytest.approx(seconds, abs=1e-3), audio
        assert audio["seconds"] == pytest.approx(seconds, abs=1e-3)
        assert isinstance(audio["played"], (int, float)), audio
        assert audio["played"] > 0, audio


@needs_chromium
def test_chromium_notices_a_broken_player(evaluation, tmp_path):
    """The check above can fail: a damaged copy of one file is reported."""
    copy = shutil.copytree(evaluation["report"], tmp_path / "report")
    (copy / "audio" / "u002" / "est1.wav").write_bytes(b"RIFF junk")
    shown = open_in_chromium(copy / "report.html")
    broken = [a["src"] for a in shown["audio"] if a["error"] is not None]
    assert broken == ["audio/u002/est1.wav"]


def test_the_report_is_replaced_whole_or_not_at_all(evaluation, capsys):
    argv, report = evaluation["argv"], evaluation["report"]
    before = (report / "report.html").read_text()
    assert main([*argv, "--plots", "1"]) == 2
    assert "exists (and 3 more); use --overwrite" in capsys.readouterr().err
    assert (report / "report.html").read_text() == before
    # a file the report does not write is never removed
    (report / "notes.txt").write_text("mine\n")
    assert main([*argv, "--plots", "1", "--overwrite"]) == 2
    assert "holds notes.txt" in capsys.readouterr().err
    (report / "notes.txt").unlink()
    assert main([*argv, "--plots", "1", "--overwrite"]) == 0
    assert sorted(p.name for p in (report / "audio").iterdir()) == ["u001"]
    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary["count"] == len(LENGTHS)
    # nothing staged is left beside it
    assert not [p for p in report.parent.iterdir() if p.name.startswith(".")]


SEPARATED = [1.2, 0.6, 0.9]  # seconds, 8 kHz recordings without references
# By command: the page's heading and summary row, the signals listened to,
# and one of them with the suffix of the written file it is a copy of.
RECORDING_REPORTS = {
    "separate": (
        ("gmsep separation", "separated"),
        ["mix", "enhanced", "est1", "est2"],
        ("est1", "_s1"),
    ),
    "enhance": (
        ("gmsep enhancement", "enhanced"),
        ["mix", "enhanced"],
        ("enhanced", "_enhanced"),
    ),
}


@pytest.fixture(scope="module", params=list(RECORDING_REPORTS))
def separation(evaluation, request):
    """The report of `separate --report` or `enhance --report` (the
    command is the parameter) on three recordings, the first two
    listened to."""
    command = request.param
    root = evaluation["root"] / command
    (root / "recordings").mkdir(parents=True)
    mixes = [item["mix_sig"] for item in speech_items(SEPARATED)]
    paths = [root / "recordings" / f"talk{i}.wav" for i in range(len(mixes))]
    for path, mix in zip(paths, mixes, strict=True):
        sf.write(path, mix.numpy(), 8000)
    out = root / "out"
    argv = [command, *map(str, paths), "--model", str(evaluation["model"])]
    argv += ["--out", str(out), "--report"]
    assert main([*argv, "--plots", "2"]) == 0
    heading, signals, copy = RECORDING_REPORTS[command]
    return {
        "argv": argv,
        "paths": paths,
        "report": out / "report",
        "heading": heading,
        "signals": signals,
        "copy": copy,
    }


@needs_chromium
def test_the_separation_page_in_chromium(separation):
    report, signals = separation["report"], separation["signals"]
    page = (report / "report.html").read_text()
    assert "No metrics" in page and "SI-SNR" not in page
    heading, work = separation["heading"]
    assert f"<h1>{heading}</h1>" in page
    shown = open_in_chromium(report / "report.html", "recordings")
    names = [str(path) for path in separation["paths"]]
    assert shown["headings"] == [
        "recording",
        "duration (s)",
        "time (s)",
        "real-time factor",
    ]
    assert shown["initial"] == names
    up, down = shown["sorted"]["duration (s)"]
    by_length = sorted(zip(SEPARATED, names, strict=True))
    assert up == [name for _, name in by_length] == down[::-1]
    summary = dict(shown["summary"])
    assert summary["recordings"] == "3 (3 done, 0 skipped, 0 failed)"
    assert re.fullmatch(
        r"2\.70 s of audio in .* s \(real-time .*\)", summary[work]
    )
    # the first two listened to: every picture and player loads
    assert len(shown["images"]) == 2 * len(signals)
    assert all(complete and width > 0 for _, complete, width in shown["images"])
    assert len(shown["audio"]) == 2 * len(signals)
    for i, audio in enumerate(shown["audio"]):
        seconds = SEPARATED[i // len(signals)]
        key = signals[i % len(signals)]
        assert audio["src"] == f"audio/u{i // len(signals) + 1:03d}/{key}.wav"
        assert audio["error"] is None, audio
        assert audio["duration"] == pytest.approx(seconds, abs=1e-3), audio
        assert audio["played"] > 0, audio


def test_the_separation_report_plays_the_written_files(separation):
    """Estimates (enhanced mixtures) at their written level (peak 0.99),
    the folder replaced whole on --overwrite, skipped recordings listed
    without a time."""
    report, argv = separation["report"], separation["argv"]
    key, suffix = separation["copy"]
    assert sorted(p.stem for p in (report / "audio" / "u001").iterdir()) == (
        sorted(separation["signals"])
    )
    copy = sf.read(report / "audio" / "u001" / f"{key}.wav")[0]
    written = sf.read(report.parent / f"talk0{suffix}.wav")[0]
    assert abs(copy).max() == pytest.approx(abs(written).max(), abs=1e-3)
    assert abs(copy - written).max() < 1e-3
    assert main(argv) == 2  # the report exists
    assert main([*argv, "--overwrite", "--plots", "0"]) == 0
    assert not (report / "audio").exists()
    page = (report / "report.html").read_text()
    assert "No recording listed (--plots 0)" in page
    # outputs exist, no report: each recording skipped, listed, listened
    shutil.rmtree(report)
    assert main(argv) == 0  # no --plots: all of them
    shown = (report / "report.html").read_text()
    assert "3 (0 done, 3 skipped, 0 failed)" in shown
    assert shown.count('data-value="nan">n/a</td>') == 2 * len(SEPARATED)
    assert sorted(p.name for p in (report / "audio").iterdir()) == [
        "u001",
        "u002",
        "u003",
    ]


def test_a_failed_report_leaves_the_earlier_one_or_none(
    separation, monkeypatch, capsys
):
    """A write that fails while the report is built (here the second
    recording's audio) ends the command with its one line; the report
    folder is the earlier one, or absent, never a part of the new one."""
    report, argv = separation["report"], separation["argv"]
    assert main([*argv, "--overwrite", "--plots", "1"]) == 0
    before = {p: p.read_bytes() for p in report.rglob("*") if p.is_file()}
    capsys.readouterr()
    from gmsep.evaluation import report as report_module

    writes = []

    def write_audio(path, *args, **kwargs):
        writes.append(path)
        if "u002" in str(path):
            raise OSError(28, "No space left on device", str(path))
        return real_write_audio(path, *args, **kwargs)

    real_write_audio = report_module.write_audio
    monkeypatch.setattr(report_module, "write_audio", write_audio)
    assert main([*argv, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "u002" in str(writes[-1]) and len(writes) > 1
    assert f"{argv[0]}: error: " in err and "No space left on device" in err
    after = {p: p.read_bytes() for p in report.rglob("*") if p.is_file()}
    assert after == before
    shutil.rmtree(report)
    assert main([*argv, "--overwrite"]) == 2
    assert not report.exists()
    # nothing staged is left beside it
    assert not [p for p in report.parent.iterdir() if p.name.startswith(".")]
