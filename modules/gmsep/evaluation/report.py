"""A listening report: one self-contained folder with ``report.html``.

The page holds a summary table, a per-utterance table that sorts by any
column (a few lines of inline JavaScript, no network resource), the SI-SNRi
histogram and SI-SNRi against the input SNR, and for each listened
utterance an audio player and a spectrogram per signal: the noisy mixture,
the enhanced mixture, every estimate (matched to its reference and at its
level) and every reference, the spectrograms of one utterance on one colour
scale. Every link is relative, so the folder works from ``file://`` and can
be copied anywhere::

    report/
        report.html
        audio/u001/mix.wav, enhanced.wav, est1.wav, ..., ref1.wav, ...
        img/u001/mix.jpg, ...
        img/si-snr_i_histogram.png, img/si-snr_i_vs_input_snr.png

The audio copies are 16-bit WAV at the model's rate (``gmsep separate
--report`` and ``enhance --report``: at the recording's, no references, no
figures); the signals of one utterance are scaled down together if any
would clip. The caller writes into a staged folder
(:func:`gmsep.data.outputs.staged_folder`).

Authors
 * gmsep contributors 2026
"""

import html
import math
from pathlib import PurePath

import torch

from gmsep.data.audio import fit_full_scale, write_audio
from gmsep.evaluation.plots import (
    colour_range,
    plot_against,
    plot_histogram,
    plot_spectrogram,
)

REPORT = "report.html"
HISTOGRAM = "img/si-snr_i_histogram.png"
AGAINST_SNR = "img/si-snr_i_vs_input_snr.png"
# The columns of the per-utterance table: key, heading, format.
COLUMNS = (
    ("input_snr", "input SNR (dB)", "{:.2f}"),
    ("si-snr_i", "SI-SNRi (dB)", "{:.2f}"),
    ("sdr_i", "SDRi (dB)", "{:.2f}"),
    ("si-snr", "SI-SNR (dB)", "{:.2f}"),
    ("sdr", "SDR (dB)", "{:.2f}"),
    ("pesq", "PESQ", "{:.2f}"),
    ("stoi", "STOI", "{:.3f}"),
)
# The columns of the recordings table of ``gmsep separate --report``
# (and ``enhance --report``).
RECORDING_COLUMNS = (
    ("duration", "duration (s)", "{:.2f}"),
    ("seconds", "time (s)", "{:.2f}"),
    ("rtf", "real-time factor", "{:.3f}"),
)
# The words of the recordings report of each command: the page's heading,
# the summary's row of processed audio, what is played (as written).
RECORDING_REPORTS = {
    "separate": ("gmsep separation", "separated", "Each estimate is"),
    "enhance": ("gmsep enhancement", "enhanced", "Each enhanced mixture is"),
}
SUMMARY = (
    ("si-snr_i", "mean SI-SNRi (dB)", "{:.2f}"),
    ("sdr_i", "mean SDRi (dB)", "{:.2f}"),
    ("pesq", "mean PESQ", "{:.2f}"),
    ("stoi", "mean STOI", "{:.3f}"),
    ("si-snr", "mean SI-SNR (dB)", "{:.2f}"),
    ("sdr", "mean SDR (dB)", "{:.2f}"),
)


def is_report_file(relative):
    """Whether a file (path relative to the report folder) is one a report
    writes: what ``--overwrite`` may replace.

    Example
    -------
    >>> is_report_file(PurePath("audio/u001/mix.wav")), is_report_file(PurePath("notes.txt"))
    (True, False)
    """
    parts = PurePath(relative).parts
    if parts == (REPORT,):
        return True
    if len(parts) == 2 and parts[0] == "img":
        return parts[1].endswith(".png")
    if len(parts) == 3 and parts[0] in ("audio", "img"):
        return parts[2].endswith(".wav" if parts[0] == "audio" else ".jpg")
    return False


def input_snr(mix, references):
    """The input SNR of an utterance in dB: the sum of the references
    against the rest of the mixture (inf without noise).

    Example
    -------
    >>> refs = torch.ones(100, 2)
    >>> round(input_snr(refs.sum(-1) + 0.2, refs), 2)
    20.0
    """
    clean = references.sum(-1).double()
    noise = mix.double() - clean
    noise_energy = noise.pow(2).sum().item()
    if noise_energy == 0:
        return math.inf
    return 10 * math.log10(clean.pow(2).sum().item() / noise_energy)


def utterance_folder(index):
    """The folder name of the index-th listened utterance (IDs may hold
    characters a link cannot)."""
    return f"u{index + 1:03d}"


def write_listening(folder, index, signals, sample_rate):
    """Writes the audio copies and spectrograms of one listened utterance.

    Arguments
    ---------
    folder : pathlib.Path
        The (staged) report folder.
    index : int
        Its place among the listened utterances.
    signals : list of (str, str, torch.Tensor)
        (key, label, signal [T]) from
        :func:`gmsep.evaluation.plots.displayed_signals`.
    sample_rate : int
        Hz.

    Returns
    -------
    dict
        ``folder``, ``signals`` (key, label, seconds) and ``limits`` (the
        colour scale, dB), for :func:`write_report`.
    """
    name = utterance_folder(index)
    (folder / "audio" / name).mkdir(parents=True)
    (folder / "img" / name).mkdir(parents=True, exist_ok=True)
    stacked = torch.stack([signal for _, _, signal in signals], -1)  # T, K
    stacked = fit_full_scale(stacked, f"the report's audio of {name}")
    limits = colour_range([s for _, _, s in signals], sample_rate)
    for i, (key, _, signal) in enumerate(signals):
        write_audio(
            folder / "audio" / name / f"{key}.wav", stacked[:, i], sample_rate
        )
        plot_spectrogram(
            folder / "img" / name / f"{key}.jpg", signal, sample_rate, limits
        )
    return {
        "folder": name,
        "signals": [
            (key, label, signal.numel() / sample_rate)
            for key, label, signal in signals
        ],
        "limits": limits,
    }


def _cell(value, fmt):
    if value is None or not math.isfinite(value):
        shown = "inf" if value == math.inf else "n/a"
        return f'<td data-value="{value if value is not None else "nan"}">{shown}</td>'
    return f'<td data-value="{value!r}">{fmt.format(value)}</td>'


def _summary_rows(summary, results):
    means, scored = summary["means"], summary.get("scored", {})
    count = summary["count"]
    snrs = [r["input_snr"] for r in results if math.isfinite(r["input_snr"])]
    rows = [("utterances", f"{count}")]
    if summary["excluded"]:
        rows[0] = (
            "utterances",
            f"{count} ({len(summary['excluded'])} excluded: undefined metrics)",
        )
    if snrs:
        rows.append(
            (
                "input SNR range (dB)",
                f"{min(snrs):.1f} to {max(snrs):.1f} (mean "
                f"{sum(snrs) / len(snrs):.1f})",
            )
        )
    for key, label, fmt in SUMMARY:
        if key not in means:
            continue
        value = means[key]
        text = "n/a" if value is None else fmt.format(value)
        if key == "pesq" and summary.get("pesq_mode"):
            band = {"nb": "narrow band", "wb": "wide band"}
            label += f" ({band[summary['pesq_mode']]})"
        if key in scored and scored[key] < count:
            text += f" (over {scored[key]} of {count}: undefined on the rest)"
        rows.append((label, text))
    return "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in rows
    )


def _table(results, listened, id_column, columns=COLUMNS, table="utterances"):
    columns = [c for c in columns if c[0] in results[0]]
    head = (
        f'<th data-type="text" aria-sort="none">{html.escape(id_column)}</th>'
    ) + "".join(
        f'<th data-type="number">{html.escape(label)}</th>'
        for _, label, _ in columns
    )
    body = []
    for result in results:
        name = result[id_column]
        shown = html.escape(name)
        if name in listened:
            shown = f'<a href="#{listened[name]["folder"]}">{shown}</a>'
        cells = "".join(_cell(result[key], fmt) for key, _, fmt in columns)
        body.append(
            f'<tr><td data-value="{html.escape(name)}">{shown}</td>{cells}</tr>'
        )
    return (
        f'<table id="{table}" class="sortable">\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )


def _metrics_note(result):
    """The metrics line above an evaluated utterance's players."""
    return (
        ", ".join(
            f"{label} {fmt.format(result[key])}"
            for key, label, fmt in COLUMNS
            if key in result and math.isfinite(result[key])
        )
        + ". "
    )


def _listening(name, entry, note):
    """The players and spectrograms of one listened utterance or recording,
    note (text) above them."""
    low, top = entry["limits"]
    rows = "\n".join(
        f'<div class="signal"><div class="label">{html.escape(label)}<br>'
        f'<span class="seconds">{seconds:.2f} s</span></div>'
        f'<audio controls preload="metadata" '
        f'src="audio/{entry["folder"]}/{key}.wav" data-seconds="{seconds!r}">'
        f"</audio>"
        f'<img src="img/{entry["folder"]}/{key}.jpg" alt="spectrogram of '
        f'{html.escape(label)}"></div>'
        for key, label, seconds in entry["signals"]
    )
    return (
        f'<section class="utterance" id="{entry["folder"]}">\n'
        f"<h3>{html.escape(name)}</h3>\n"
        f"<p>{html.escape(note)}Spectrograms on one colour scale, "
        f"{low:.0f} (black) to {top:.0f} dB (white).</p>\n{rows}\n</section>"
    )


STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 72em;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
table.sortable th { cursor: pointer; background: #f2f2f2; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
.scroll { max-height: 28em; overflow-y: auto; display: inline-block; }
.figures img { max-width: 48%; }
.signal { display: flex; align-items: center; gap: 1em; margin: 0.3em 0; }
.signal .label { width: 16em; font-size: 0.9em; }
.signal .seconds { color: #777; }
section.utterance { border-top: 1px solid #ddd; margin-top: 1em; }
"""

# Sorts the table whose heading is clicked: numbers numerically (undefined
# ones last), text alphabetically; a second click reverses.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headings = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headings, function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(headings, function (other) {
        other.setAttribute("aria-sort", "none");
      });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.dataset.type === "number";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var value = row.cells[column].dataset.value;
        return numeric ? parseFloat(value) : value;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (numeric) {
          if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
          return ascending ? x - y : y - x;
        }
        return ascending ? x.localeCompare(y) : y.localeCompare(x);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def write_figures(folder, results, source_name):
    """The SI-SNRi histogram and SI-SNRi against the input SNR."""
    (folder / "img").mkdir(exist_ok=True)
    values = [r["si-snr_i"] for r in results]
    plot_histogram(
        folder / HISTOGRAM,
        values,
        "SI-SNRi (dB)",
        title=f"SI-SNRi over {len(values)} utterances of {source_name}",
    )
    finite = [r for r in results if math.isfinite(r["input_snr"])]
    plot_against(
        folder / AGAINST_SNR,
        [r["input_snr"] for r in finite],
        [r["si-snr_i"] for r in finite],
        "input SNR (dB)",
        "SI-SNRi (dB)",
        title=f"SI-SNRi against the input SNR ({len(finite)} utterances)",
    )


def write_report(folder, title, summary, results, listened, id_column="ID"):
    """Writes ``report.html`` (and the two figures) into the report folder.

    Arguments
    ---------
    folder : pathlib.Path
        The (staged) report folder, holding the listened utterances'
        files (:func:`write_listening`).
    title : str
        The page's heading (model and test set).
    summary : dict
        ``count``, ``means`` (None: undefined everywhere), ``excluded``,
        optionally ``scored`` and ``pesq_mode`` (as ``summary.json``).
    results : list of dict
        One row per utterance: ``id_column``, ``input_snr`` and metrics.
    listened : dict
        ID -> what :func:`write_listening` returned.
    id_column : str
        The name of the ID key.
    """
    write_figures(folder, results, title)
    by_id = {r[id_column]: r for r in results}
    sections = "\n".join(
        _listening(name, entry, _metrics_note(by_id[name]))
        for name, entry in listened.items()
    )
    body = f"""<p>{html.escape(title)}. Improvements are over the noisy mixture; PESQ is
MOS-LQO, STOI 0 to 1, both against each reference, speakers matched by
SI-SNR. Each estimate is played and drawn at its reference's level (the
separation loss leaves its scale arbitrary).</p>
<h2>Summary</h2>
<table id="summary">
{_summary_rows(summary, results)}
</table>
<h2>Per utterance</h2>
<p>Click a heading to sort; a linked ID can be listened to below.</p>
<div class="scroll">
{_table(results, listened, id_column)}
</div>
<h2>Distribution</h2>
<div class="figures">
<img src="{HISTOGRAM}" alt="SI-SNRi histogram">
<img src="{AGAINST_SNR}" alt="SI-SNRi against the input SNR">
</div>
<h2>Listen</h2>
{sections or "<p>No utterance listed (--plots 0).</p>"}"""
    _write_page(folder, "gmsep evaluation", title, body)


def _write_page(folder, heading, title, body):
    """``report.html``: heading, body (HTML) and the sorting script."""
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(heading)}: {html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{html.escape(heading)}</h1>
{body}
<script>{SCRIPT}</script>
</body>
</html>
"""
    (folder / REPORT).write_text(page, encoding="utf-8")


def write_separation_report(
    folder, title, recordings, listened, command="separate"
):
    """Writes the ``report.html`` of ``gmsep separate --report`` (or
    ``enhance --report``): recordings without references, so players and
    spectrograms but no metrics.

    Arguments
    ---------
    folder : pathlib.Path
        The (staged) report folder, holding the listened recordings' files
        (:func:`write_listening`).
    title : str
        The model and the number of recordings.
    recordings : list of dict
        One row per recording: ``recording`` (its name), ``duration``, ``seconds`` (the
        processing time; None when skipped or failed), ``rtf`` (likewise)
        and ``status``.
    listened : dict
        recording -> what :func:`write_listening` returned.
    command : str
        ``separate`` or ``enhance``: what the page says the outputs are
        (``RECORDING_REPORTS``).
    """
    heading, work, outputs = RECORDING_REPORTS[command]
    done = [r for r in recordings if r["status"] == "done"]
    audio = sum(r["duration"] for r in done)
    seconds = sum(r["seconds"] for r in done)
    counts = ", ".join(
        f"{sum(r['status'] == s for r in recordings)} {s}"
        for s in ("done", "skipped", "failed")
    )
    summary = [("recordings", f"{len(recordings)} ({counts})")]
    if done:
        summary.append(
            (
                work,
                f"{audio:.2f} s of audio in {seconds:.2f} s (real-time "
                f"factor {seconds / audio:.3f})",
            )
        )
    summary_rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in summary
    )
    sections = "\n".join(
        _listening(name, entry, "") for name, entry in listened.items()
    )
    body = f"""<p>{html.escape(title)}. No metrics: these recordings have no
references to measure against; listen. {outputs} played and drawn at the
level of its written file.</p>
<h2>Summary</h2>
<table id="summary">
{summary_rows}
</table>
<h2>Per recording</h2>
<p>Click a heading to sort; a linked name can be listened to below. Time
and real-time factor (processing time / duration) are those of this run:
n/a for a recording skipped (its outputs existed) or failed.</p>
<div class="scroll">
{_table(recordings, listened, "recording", RECORDING_COLUMNS, "recordings")}
</div>
<h2>Listen</h2>
{sections or "<p>No recording listed (--plots 0).</p>"}"""
    _write_page(folder, heading, title, body)
