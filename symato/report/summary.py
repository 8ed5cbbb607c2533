"""The sections of results/summary.md: the key results tables as plain Markdown.

Why besides the HTML report: people read results in a terminal or a repository
browser, and a Markdown table diffs well between pipeline runs. Each section function
turns one result (the runs, the fitted laws with their intervals or why a group was
not fitted, the compute-optimal frontier, the tokenizer comparison) into Markdown; the
document's layout (title, order, wording around them) is workflow/scripts/summary.py,
which the rule results_summary runs. The sections stay here because they are the
numbers themselves, formatted one way, and tests check them without Snakemake.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import pandas as pd

from symato.report.figures import budget_note, budget_size, equal_size_table, short_number
from symato.run.grid import format_value, parse_size

RUN_FIELDS = [("tokenizer", "tokenizer"), ("arch", "arch"), ("run", "run"),
              ("params", "params"), ("params_non_embedding", "non-emb. params"),
              ("tokens", "tokens"), ("flops", "FLOPs"), ("loss", "bits/byte"),
              ("bits_per_syllable", "bits/syllable"),
              ("restoration_accuracy", "restoration acc."),
              ("restoration_baseline_accuracy", "baseline acc."), ("recipe", "recipe"),
              ("head_size", "head size"), ("backend", "backend"),
              ("precision", "precision"), ("device_name", "device")]
# The head size each architecture's authors use, for the note under the runs table.
AUTHORS_HEAD_SIZE = {"rwkv7": 64}


def fmt(value: Any) -> str:
    """Numbers to 4 significant digits, big ones in engineering-ish form; blanks as '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, float)):
        v = float(value)
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(value).replace("|", "\\|")


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def runs_section(runs: pd.DataFrame) -> str:
    """Every run with its size, budget, compute and final metrics; runs without a loss counted."""
    if not len(runs):
        return "No runs yet."
    present = [(c, h) for c, h in RUN_FIELDS if c in runs.columns]
    rows = runs.sort_values(["tokenizer", "arch", "params", "tokens"])
    body = [[r[c] for c, _ in present] for _, r in rows.iterrows()]
    no_loss = int(runs["loss"].isna().sum()) if "loss" in runs.columns else 0
    note = f"\n\n{no_loss} run(s) have no bits per byte (not fitted)." if no_loss else ""
    return table([h for _, h in present], body) + note + _head_note(runs) + _restoration_note(runs)


def _restoration_note(runs: pd.DataFrame) -> str:
    """How many syllables restoration scored and what sampling noise that leaves.

    Why: an accuracy is a share of scored syllables; beside the baseline it only means
    something when the difference exceeds the binomial margin of the count scored.
    """
    if "restoration_syllables" not in runs.columns:
        return ""
    counts = runs["restoration_syllables"].dropna()
    counts = counts[counts > 0]
    if not len(counts):
        return ""
    n = int(counts.min())
    margin = 1.96 * math.sqrt(0.8 * 0.2 / n)
    return (f"\n\nRestoration accuracy is scored on {n}"
            f"{'' if counts.nunique() == 1 else f'–{int(counts.max())}'} validation syllables "
            f"per run; at an accuracy near 0.8 the 95% sampling margin is ±{margin:.3f}. "
            "\"baseline acc.\" restores each syllable with its sym's most frequent marktone "
            "in the training statistics.")


def lm_eval_section(runs: pd.DataFrame) -> str:
    """The pipeline's numbers beside lm-evaluation-harness's for the same exported models.

    Why: it shows that a model leaves the project with the numbers it had here; the two
    bits per byte differ by design (the pipeline also predicts each document's closing
    end-of-text token and reads across document boundaries; docs/export.md).
    """
    if "lmeval_bpb" not in runs.columns or runs["lmeval_bpb"].isna().all():
        return ("Not run (eval.lm_eval: false): `symato lm-eval run` scores an exported "
                "model with lm-evaluation-harness (docs/export.md).")
    rows = runs[runs["lmeval_bpb"].notna()].sort_values(["tokenizer", "arch", "params",
                                                         "tokens"])
    body = [[r["tokenizer"], r["arch"], r["run"], r.get("loss"), r["lmeval_bpb"],
             r["lmeval_bpb"] - r["loss"] if pd.notna(r.get("loss")) else None,
             r.get("restoration_accuracy"), r.get("lmeval_restore_acc")]
            for _, r in rows.iterrows()]
    return table(["tokenizer", "arch", "run", "bits/byte", "lm-eval bits/byte", "difference",
                  "restoration acc.", "lm-eval restoration acc."], body) + _not_exported(runs) + (
        "\n\nlm-eval scores each validation document alone after `<|endoftext|>` "
        "(task symato_vi_ppl); the pipeline reads the split as one stream, predicting the "
        "end-of-text token that starts each document and seeing the previous document's "
        "end: the difference is those two effects. lm-eval restoration accuracy is a "
        "choice among 4 mark variants of a sentence (symato_vi_restore; chance 0.25), not "
        "the pipeline's syllable-by-syllable restoration.")


def _not_exported(runs: pd.DataFrame) -> str:
    """A sentence per reason for the runs lm-eval did not score: those transformers
    cannot hold (symato.interop.support, the same test the workflow applies)."""
    from symato.interop.support import hf_blocker

    if "n_layer" not in runs.columns:
        return ""
    why: dict[str, int] = {}
    for _, r in runs[runs["lmeval_bpb"].isna()].iterrows():
        reason = hf_blocker(str(r["arch"]), int(r["n_layer"]))
        if reason:
            key = f"{r['arch']}, {reason}"
            why[key] = why.get(key, 0) + 1
    return "".join(f"\n\nNot scored by lm-eval: {n} run(s) of {key}." for key, n in why.items())


def _head_note(runs: pd.DataFrame) -> str:
    """Say where runs use another head size than the architecture's authors."""
    if "head_size" not in runs.columns:
        return ""
    notes = []
    for arch, authors in AUTHORS_HEAD_SIZE.items():
        sizes = sorted({int(h) for h in runs.loc[runs["arch"] == arch, "head_size"].dropna()
                        if int(h) != authors})
        if sizes:
            notes.append(f"{arch} runs use head size {', '.join(map(str, sizes))} where its "
                         f"authors use {authors} (at widths under 128, 64-channel heads "
                         f"leave one head or none; docs/models.md)")
    return "".join(f"\n\nNote: {n}." for n in notes)


def _with_ci(fit: dict[str, Any], name: str) -> str:
    """A fitted value with its bootstrap interval in brackets (when there is one)."""
    if name not in fit:
        return "–"
    low, high = fit.get("ci", {}).get(name, (None, None))
    ci = f" [{fmt(low)}, {fmt(high)}]" if low is not None else ""
    return f"{fmt(fit[name])}{ci}"


def fits_section(fits: dict[str, Any]) -> str:
    """Both laws per group with intervals; unfitted or bound-pinned laws listed with why."""
    groups = fits.get("groups", {})
    if not groups:
        return "No fits (no fits file)."
    header = ["group", "law", "status", "runs", "E", "A", "alpha", "B", "beta"]
    rows, reasons = [], []
    for key, g in groups.items():
        for fit in g["fits"].values():
            law = fit["law"]
            if law == "L(N)" and "tokens" in fit:
                law = f"L(N) at D={fmt(fit['tokens'])}"
            if fit["status"] not in ("ok", "at_bound"):
                rows.append([key, law, fit["status"], fit["n_runs"]] + ["–"] * 5)
                reasons.append(f"- {key} {fit['law']}: {fit['reason']}")
                continue
            pinned = fit.get("at_bound", [])
            status = f"at bound ({', '.join(pinned)})" if pinned else fit["status"]
            rows.append([key, law, status, fit["n_runs"],
                         *(_with_ci(fit, p) for p in ("E", "A", "alpha", "B", "beta"))])
            if pinned:
                reasons.append(f"- {key} {fit['law']}: {', '.join(pinned)} at the edge of the "
                               "search box; the runs do not determine "
                               f"{'it' if len(pinned) == 1 else 'them'} (treat as unfitted)")
    level = next((f.get("ci_level") for g in groups.values() for f in g["fits"].values()
                  if "ci_level" in f), 0.95)
    intro = (f"Loss in bits per byte; N = {fits.get('params_column', 'total')} parameters, "
             f"D = training tokens. Brackets: {level:.0%} bootstrap intervals "
             f"({fits.get('bootstrap', '?')} resamples of runs); Huber δ = "
             f"{fits.get('huber_delta', '?')} on log-loss.\n\n")
    text = intro + table(header, rows)
    if reasons:
        text += "\n\nNot fitted, or not determined by the runs:\n" + "\n".join(reasons)
    return text


def frontier_section(fits: dict[str, Any]) -> str:
    """The runs on each group's compute frontier and the L(N, D) optimal allocation."""
    rows = []
    for key, g in fits.get("groups", {}).items():
        for f in g.get("frontier", []):
            rows.append([key, f.get("run", "–"), f.get("params"), f.get("tokens"), f["flops"],
                         f["loss"]])
        alloc = g.get("fits", {}).get("L_ND", {}).get("optimal_allocation", {})
        if alloc.get("status") == "ok":
            rows.append([key, f"L(N,D) optimum: N ∝ C^{alloc['n_opt_exponent']:.3f}, "
                              f"D ∝ C^{alloc['d_opt_exponent']:.3f}", None, None, None, None])
    if not rows:
        return "No run has training FLOPs recorded."
    return table(["group", "run", "params", "tokens", "FLOPs", "bits/byte"], rows)


def tokenizer_section(toks: pd.DataFrame, runs: pd.DataFrame) -> str:
    """Tokens per syllable and per byte, then bits per byte at equal model size."""
    parts = []
    if len(toks):
        rows = [[r["tokenizer"], r["split"], r.get("vocab_size"), r["tokens"],
                 r["tokens_per_syllable"], r["tokens_per_byte"]]
                for _, r in toks.sort_values(["tokenizer", "split"]).iterrows()]
        parts.append(table(["tokenizer", "split", "vocab", "tokens", "tokens/syllable",
                            "tokens/byte"], rows))
    else:
        parts.append("No shard manifests.")
    eq = equal_size_table(runs)
    if eq is not None and len(eq):
        cols = sorted(eq.columns)
        rows = [[f"{a} L{int(layer)}-D{int(d)}", b, *(row[c] for c in cols)]
                for (a, layer, d, b), row in eq.iterrows()]
        budgets = list(eq.index.get_level_values("budget"))
        parts.append("Bits per byte at equal model size (same layers and width), "
                     f"trained on {' / '.join(dict.fromkeys(budgets))}:\n\n"
                     + table(["model", "budget", *cols], rows)
                     + "\n\n" + budget_note(budgets))
    else:
        parts.append("No model size was trained with two or more tokenizers.")
    return "\n\n".join(parts)


# ------------------------------------------------------------------- the tokenizer study
def _kb(x: float | None) -> str:
    """Bytes of text as a short number: 612345 -> '612k'."""
    return "–" if x is None else short_number(float(x))


def study_fits_section(study: dict[str, Any]) -> str:
    """Per tokenizer: L(N, D) with D in bytes of training text, with intervals."""
    groups = study.get("groups", {})
    if not groups:
        return ("No tokenizer study: no architecture was trained with two or more "
                "tokenizers at a common model size.")
    header = ["tokenizer/arch", "status", "runs", "sizes", "text seen", "E", "A", "alpha", "B",
              "beta"]
    rows, reasons = [], []
    for key, g in groups.items():
        texts = [r["text"] for r in g.get("runs", [])]
        span = f"{_kb(min(texts))}–{_kb(max(texts))}" if texts else "–"
        sizes = ", ".join(s["size"] for s in g.get("sizes", []))
        if g["status"] not in ("ok", "at_bound"):
            rows.append([key, g["status"], g["n_runs"], sizes, span] + ["–"] * 5)
            reasons.append(f"- {key}: {g['reason']}")
            continue
        pinned = g.get("at_bound", [])
        rows.append([key, f"at bound ({', '.join(pinned)})" if pinned else g["status"],
                     g["n_runs"], sizes, span,
                     *(_with_ci(g, p) for p in ("E", "A", "alpha", "B", "beta"))])
        if g.get("at_bound"):
            reasons.append(f"- {key}: {', '.join(g['at_bound'])} at the edge of the search box: "
                           "not determined by these runs (the curve still describes them)")
    intro = ("L(N, D) = E + A/N^α + B/D^β per tokenizer, with D = **bytes of training text "
             "seen** (tokens trained × the tokenizer's train-split bytes per token), so every "
             f"tokenizer shares one axis; N = {study.get('params_column', 'total')} parameters. "
             f"Brackets: 95% bootstrap intervals ({study.get('bootstrap', '?')} resamples of "
             "runs).\n\n")
    text = intro + table(header, rows)
    if reasons:
        text += "\n\nNot fitted, or not determined:\n" + "\n".join(reasons)
    left_out = study.get("runs_without_loss", []) + study.get("set_aside", [])
    if left_out:
        text += ("\n\nRuns not in the study's fits:\n"
                 + "\n".join(f"- {note}" for note in left_out))
    return text


def study_losses_section(study: dict[str, Any]) -> str:
    """Measured bits per byte per model size and text budget, one column per tokenizer
    (the mean ± standard deviation over seeds where a cell has replicates)."""
    cells: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    toks: set[str] = set()
    for g in study.get("groups", {}).values():
        tok, arch = g["by"]["tokenizer"], g["by"]["arch"]
        toks.add(tok)
        for r in g.get("runs", []):
            cells.setdefault((arch, r["size"], r.get("budget") or "–"), {}).setdefault(
                tok, []).append(r["loss"])
    if not cells:
        return "No runs in the tokenizer study."
    cols = sorted(toks)

    def order(key: tuple[str, str, str]) -> tuple[Any, ...]:
        arch, size, budget = key
        return (arch, parse_size(size), budget_size(budget))

    rows, replicated = [], False
    for key in sorted(cells, key=order):
        means = {t: sum(v) / len(v) for t, v in cells[key].items()}
        best = min(means.values())
        replicated |= any(len(v) > 1 for v in cells[key].values())
        rows.append([key[0], key[1], _budget_text(key[2]),
                     *(_cell_text(cells[key].get(t), best) for t in cols)])
    note = (" A cell with seed replicates shows mean ± standard deviation (n seeds); "
            "whether a difference is resolved by them: the differences below."
            if replicated else "")
    return ("Validation bits per byte of each run (lowest of a row in bold); budgets in bytes "
            f"of training text (`B`) or tokens (`T`).{note}\n\n"
            + table(["arch", "size", "budget", *cols], rows))


def _cell_text(losses: list[float] | None, best: float) -> str:
    if not losses:
        return "–"
    mean = sum(losses) / len(losses)
    text = fmt(mean)
    if len(losses) > 1:
        text += f" ± {fmt(statistics.stdev(losses))} (n={len(losses)})"
    return f"**{text}**" if mean == best else text


def replicates_section(runs: pd.DataFrame) -> str:
    """Per replicated cell (runs that differ only in the seed): n, mean, standard deviation
    and min–max of bits per byte, and of restoration accuracy where present."""
    from symato.report.lrchoice import replicate_key

    if not len(runs) or "run" not in runs.columns:
        return "No runs."
    groups: dict[tuple[str, str], list[Any]] = {}
    for _, r in runs.iterrows():
        groups.setdefault((r["tokenizer"], replicate_key(str(r["run"]))[0]), []).append(r)
    rows = []
    for (tok, base), members in sorted(groups.items()):
        if len(members) < 2:
            continue
        row = [tok, base]
        for column in ("loss", "restoration_accuracy"):
            values = [float(m[column]) for m in members if column in m.index
                      and m[column] is not None and not pd.isna(m[column])]
            row += _replicate_stats(values)
        seeds = sorted(int(m["seed"]) for m in members
                       if "seed" in m.index and not pd.isna(m["seed"]))
        rows.append([*row[:2], ", ".join(map(str, seeds)) or "–", *row[2:]])
    if not rows:
        return ("No replicated runs (no sub-grid varies `seed`): no number here has a noise "
                "level.")
    return ("Runs that differ only in the seed (`vary: {seed: [...]}`; same tokenizer, "
            "architecture, size, budget and other settings). Standard deviation over seeds "
            "(n - 1); runs without a loss are not counted.\n\n"
            + table(["tokenizer", "cell", "seeds", "n", "bits/byte mean", "sd", "min–max",
                     "restoration n", "restoration mean", "sd", "min–max"], rows))


def _replicate_stats(values: list[float]) -> list[Any]:
    """[n, mean, sd, 'min–max'] of one column's replicate values ('–' where none)."""
    if not values:
        return [0, "–", "–", "–"]
    mean = sum(values) / len(values)
    sd = statistics.stdev(values) if len(values) > 1 else None
    return [len(values), mean, sd, f"{fmt(min(values))}–{fmt(max(values))}"]


# A WSD branch matches the cosine run of its cell when the two means differ by at most
# this many standard errors (the rule of the study's differences, study.DIFFERENCE_SE).
WSD_CHECK_SE = 2.0


def wsd_check_rows(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per cell with both WSD branches and cosine runs (same tokenizer, architecture,
    size, budget and other settings, seeds pooled): their bits per byte side by side.

    ``matches`` is True when |mean_wsd - mean_cosine| <= WSD_CHECK_SE x SE with
    SE = sqrt(s_w^2/n_w + s_c^2/n_c); None where either side has a single run (no noise
    level).
    """
    from symato.report.lrchoice import replicate_key, split_run_name, without_schedule

    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    for _, r in runs.iterrows():
        if "run" not in r.index or pd.isna(r.get("loss")):
            continue
        run = str(r["run"])
        wsd = "decay" in split_run_name(run)[1]
        key = (str(r["tokenizer"]), replicate_key(without_schedule(run))[0])
        cells.setdefault(key, {"wsd": [], "cosine": []})["wsd" if wsd else "cosine"].append(
            float(r["loss"]))
    out = []
    for (tok, cell), sides in sorted(cells.items()):
        w, c = sides["wsd"], sides["cosine"]
        if not w or not c:
            continue
        diff = statistics.fmean(w) - statistics.fmean(c)
        se = (math.sqrt(statistics.variance(w) / len(w) + statistics.variance(c) / len(c))
              if len(w) > 1 and len(c) > 1 else None)
        out.append({"tokenizer": tok, "cell": cell, "n_wsd": len(w), "n_cosine": len(c),
                    "wsd": statistics.fmean(w), "cosine": statistics.fmean(c),
                    "difference": diff, "se": se,
                    "matches": None if se is None else abs(diff) <= WSD_CHECK_SE * se})
    return out


def wsd_check_section(runs: pd.DataFrame) -> str:
    """WSD decay branches against separate cosine runs of the same cells."""
    rows = wsd_check_rows(runs)
    if not rows:
        return ("No cell has both WSD branches and cosine runs: the decay branches are not "
                "checked against separate runs here (docs/training.md, WSD branches).")
    judged = [r for r in rows if r["matches"] is not None]
    agree = sum(r["matches"] for r in judged)
    verdict = (f"{agree} of {len(judged)} cells with replicates on both sides match within "
               f"{WSD_CHECK_SE:g} standard errors"
               + (f"; mean difference {fmt(statistics.fmean(r['difference'] for r in rows))} "
                  "bits/byte (WSD − cosine)" if rows else ""))
    table_rows = [[r["tokenizer"], r["cell"], f"{r['n_wsd']} / {r['n_cosine']}", r["wsd"],
                   r["cosine"], r["difference"], r["se"],
                   "–" if r["matches"] is None else ("yes" if r["matches"] else "no")]
                  for r in rows]
    return ("Each budget as a decay branch of one stable run (`schedule: wsd`, runs "
            "`-wsd0.2`) against a separate cosine run per budget, seeds pooled. A cell "
            f"matches when |Δ| ≤ {WSD_CHECK_SE:g} SE, SE = √(s²_wsd/n + s²_cos/n): the "
            f"replicate noise does not tell the two apart. {verdict}. The fits use the "
            "cosine runs of these cells.\n\n"
            + table(["tokenizer", "cell", "n WSD / cosine", "WSD bits/byte", "cosine",
                     "Δ (WSD − cosine)", "SE", "match"], table_rows))


def differences_section(study: dict[str, Any]) -> str:
    """Differences between tokenizers at cells where both have seed replicates."""
    diffs = [d for d in study.get("differences", []) if d["status"] != "single_run"]
    if not diffs:
        return ("No cell has seed replicates of two tokenizers: differences between runs "
                "have no noise level.")
    rows = [[d["arch"], d["size"], _budget_text(d["budget"]), f"{d['a']} vs {d['b']}",
             f"{d['n_a']} / {d['n_b']}", d["difference"], d["se"],
             d["better"] if d["status"] == "resolved" else "not resolved"] for d in diffs]
    return (study.get("difference_rule", "") + "\n\n"
            + table(["arch", "size", "budget", "pair", "seeds", "Δ mean bits/byte (a − b)",
                     "SE", "better"], rows))


def ranking_section(study: dict[str, Any]) -> str:
    """How often the order of two tokenizers at the smallest size holds at the largest."""
    agreement = study.get("ranking_agreement") or {}
    pairs = agreement.get("pairs", [])
    if not pairs:
        return "No pair of tokenizers was trained at two sizes with a common budget and seed."
    overall = agreement["overall"]
    rows = [[p["arch"], _budget_text(p["budget"]), f"{p['a']} vs {p['b']}",
             f"{p['small']} → {p['large']}", f"{p['agree']}/{p['seeds']}", p["share"]]
            for p in pairs]
    return ("Does the ranking at the smallest size predict the ranking at the largest "
            "(DataDecide, Magnusson et al. 2025)? Per pair, the share of seeds whose order "
            "of the two tokenizers at the smallest model size is their order at the largest; "
            f"overall {overall['agree']} of {overall['comparisons']} comparisons "
            f"({fmt(overall['share'])}) over {overall['pairs']} pairs.\n\n"
            + table(["arch", "budget", "pair", "sizes", "seeds agreeing", "share"], rows))


def _budget_text(budget: str) -> str:
    if budget.startswith("B"):
        return f"{budget[1:]} bytes"
    if budget.startswith("T"):
        return f"{budget[1:]} tokens"
    return budget


def _bold_if(value: float | None, best: float) -> str:
    if value is None:
        return "–"
    return f"**{fmt(value)}**" if value == best else fmt(value)


def crossover_section(study: dict[str, Any]) -> str:
    """Where one tokenizer overtakes another at each size, or that it is not determined."""
    records = study.get("crossovers", [])
    if not records:
        return "No pairs of tokenizers to compare."
    crossing = [c for c in records if c["status"] == "crossover"]
    undetermined = [c for c in records if c["status"] in ("not_determined", "none")]
    unresolved = [c for c in records if c["status"] == "not_resolved"]
    failed = [c for c in records if c["status"] == "not_computed"]
    share = study.get("crossover_min_share", 0.5)
    parts = [f"Where two tokenizers' curves cross at one model size, inside the text range "
             f"both measured there. A crossover is a number only when at least {share:.0%} "
             "of the bootstrap pairs (fits paired by resampled grid cell) cross inside the "
             "range; the number is the median of those pairs' crossovers and the interval the "
             "2.5–97.5 percentiles over every pair, a pair that does not cross counted below or "
             "above the range (an open end, < or > the range). Otherwise the crossover is not "
             "determined in the range, and the share of pairs that cross is given."]
    if crossing:
        rows = []
        for c in crossing:
            where = f"{_kb(c['text_bytes'])} {_crossover_ci(c)}"
            boot = c.get("bootstrap", {})
            rows.append([c["arch"], c["size"], f"{c['a']} vs {c['b']}", where,
                         f"{boot.get('crossing', 0)}/{boot.get('pairs', 0)}",
                         c["better_below"], c["better_above"],
                         "; ".join(c.get("notes", [])) or "–"])
        parts.append(table(["arch", "size", "pair", "crossover (text bytes) [95% CI]",
                            "bootstrap pairs crossing", "better below", "better above",
                            "notes"], rows))
    else:
        parts.append("**No crossover determined in the measured range** for any pair at any "
                     "size.")
    if undetermined:
        lines = []
        for (arch, size), cs in _by_size(undetermined).items():
            rng = cs[0].get("range") or [None, None]
            pairs = ", ".join(f"{c['a']}–{c['b']} ({_share_text(c)}; {c.get('better')} better "
                              "mid-range)" for c in cs)
            lines.append(f"- {arch} {size} ({_kb(rng[0])}–{_kb(rng[1])} bytes of text): not "
                         f"determined in range for {pairs}")
        parts.append("\n".join(lines) + "\n\nAll pairs: `results/scaling/crossovers.csv`.")
    if unresolved:
        parts.append("Not resolved by the seed replicates (a crossover when only grid cells "
                     "are resampled, not once the replicates inside each cell are resampled "
                     "too):\n" + "\n".join(
                         f"- {c['arch']} {c['size']} {c['a']}–{c['b']}: "
                         f"{c['bootstrap']['crossing']} of {c['bootstrap']['pairs']} pairs cross "
                         f"(cells only: {c['bootstrap_cells']['crossing']} of "
                         f"{c['bootstrap_cells']['pairs']}); {c.get('better')} better mid-range"
                         for c in unresolved))
    if failed:
        parts.append("Not computed:\n" + "\n".join(
            f"- {c['arch']} {c['size']} {c['a']} vs {c['b']}: {c['reason']}" for c in failed))
    return "\n\n".join(parts)


def _share_text(c: dict[str, Any]) -> str:
    """'4 of 49 bootstrap pairs cross', or 'no bootstrap' (then the full fit did not cross)."""
    boot = c.get("bootstrap", {})
    if not boot.get("pairs"):
        return "no bootstrap; the fitted curves do not cross"
    return f"{boot['crossing']} of {boot['pairs']} bootstrap pairs cross"


def _crossover_ci(c: dict[str, Any]) -> str:
    """'[106k, 287k]', with open ends as '< 10k' / '> 300k' (the measured range)."""
    if not c.get("bootstrap", {}).get("pairs"):
        return "[no bootstrap]"
    ci, ci_open = c.get("ci") or [None, None], c.get("ci_open") or [False, False]
    rng = c.get("range") or [None, None]
    low = f"< {_kb(rng[0])}" if ci_open[0] else _kb(ci[0])
    high = f"> {_kb(rng[1])}" if ci_open[1] else _kb(ci[1])
    return f"[{low}, {high}]"


def _by_size(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in records:
        out.setdefault((c["arch"], c["size"]), []).append(c)
    return out


def split_section(runs: pd.DataFrame) -> str:
    """Runs trained with the split form (split_syllables = p > 0) next to their p = 0 run."""
    from symato.report.lrchoice import split_run_name

    if "split_syllables" not in runs.columns or not (runs["split_syllables"].fillna(0) > 0).any():
        return "No run varies `split_syllables`."
    by_name = {(r["tokenizer"], r["run"]): r for _, r in runs.iterrows()}
    rows = []
    split = runs[runs["split_syllables"].fillna(0) > 0]
    bases = sorted({(r["tokenizer"], split_run_name(r["run"])[0]) for _, r in split.iterrows()})
    for tok, base in bases:
        members = [by_name[(tok, base)]] if (tok, base) in by_name else []
        members += sorted((r for _, r in split.iterrows()
                           if r["tokenizer"] == tok and split_run_name(r["run"])[0] == base),
                          key=lambda r: r["split_syllables"])
        ref = by_name.get((tok, base))
        for r in members:
            p = r.get("split_syllables")
            p = 0.0 if p is None or (isinstance(p, float) and math.isnan(p)) else p
            delta = (r["loss"] - ref["loss"]) if ref is not None and p > 0 else None
            rows.append([tok, base, p, r["loss"], delta if delta is not None else "–",
                         r.get("restoration_accuracy"), r.get("restoration_accuracy_split"),
                         r.get("restoration_baseline_accuracy")])
    return ("One model for both jobs: symato+N runs whose training windows write each whole "
            "syllable as sym + marktone with probability p (`split_syllables`), beside the "
            "p = 0 run of the same size and text. Restoration (whole ids) scores a syllable "
            "with a whole id by its id; restoration (split form) asks for the marktone after "
            "a bare sym, which only a model that saw split forms can answer.\n\n"
            + table(["tokenizer", "run", "p", "bits/byte", "Δ bits/byte vs p = 0",
                     "restoration acc. (whole ids)", "restoration acc. (split form)",
                     "baseline acc."], rows))


def lr_sweep_section(fits: dict[str, Any]) -> str:
    """Each learning-rate sweep: bits per byte at every value, the choice and its edge flag."""
    choice = fits.get("lr_choice") or {}
    sweeps = choice.get("sweeps", [])
    if not sweeps:
        return "No learning-rate sweep (no sub-grid varies `lr` or `lr_min`)."
    rows, edges = [], []
    for sw in sweeps:
        swept = sw.get("swept") or ["lr"]
        values = []
        for r in sw["runs"]:
            label = " / ".join(fmt(r[k]) for k in swept)
            mark = "**" if r["run"] == sw["chosen"] else ""
            loss = "failed (no loss)" if r.get("failed") else fmt(r["loss"])
            values.append(f"{mark}{label}: {loss}{mark}")
        chosen = (" / ".join(fmt(sw[k]) for k in swept) if sw["chosen"] is not None
                  else "none (every run failed)")
        edge = ", ".join(f"{k} {side}" for k, side in sw["at_edge"].items()) or "inside"
        rows.append([sw["arch"], sw["tokenizer"], sw["base"], "; ".join(values), chosen, edge])
        for k, side in sw["at_edge"].items():
            edges.append(f"{sw['tokenizer']}/{sw['arch']} {sw['base']}: best {k} "
                         f"{fmt(sw[k])} is the {'lowest' if side == 'low' else 'highest'} swept")
    text = (choice.get("rule", "") + "\n\n"
            + table(["arch", "tokenizer", "runs", f"{' / '.join(sweeps[0].get('swept') or ['lr'])}"
                     ": bits/byte (chosen in bold)", "chosen", "edge"], rows))
    if edges:
        text += ("\n\nOptimum not bracketed (best value at the edge of the sweep; a wider sweep "
                 "may do better):\n" + "\n".join(f"- {e}" for e in edges))
    else:
        text += "\n\nEvery chosen value lies inside its sweep: each optimum is bracketed."
    return text


def sweep_bracket_section(decisions: list[dict[str, Any]]) -> str:
    """Each learning-rate sweep's final decision (results/sweeps/, rules/sweep.smk):
    the rates run, configured and added by extension, whether the optimum is bracketed,
    and the sweeps whose extension limit was reached with the best rate still at an edge.
    """
    if not decisions:
        return "No learning-rate sweep to extend (no sub-grid varies `lr`)."
    rows, stuck = [], []
    for d in sorted(decisions, key=lambda d: (d["tokenizer"], d["sweep"])):
        rates = "; ".join(("+" if r["extension"] else "") + f"{format_value(r['lr'])}: "
                          f"{fmt(r['bits_per_byte'])}" for r in d["rates"])
        rows.append([d["tokenizer"], d["sweep"], rates, format_value(d["best_lr"]),
                     "yes" if d["bracketed"] else f"no ({d['edge']} edge)",
                     f"{d['extensions_used']} of {d['max_extensions']}", d["reason"]])
        if not d["bracketed"]:
            side = "lowest" if d["edge"] == "low" else "highest"
            stuck.append(f"{d['tokenizer']}/{d['sweep']}: best rate "
                         f"{format_value(d['best_lr'])} is the {side} run; "
                         + _unbracketed_why(d))
    text = ("A sweep (runs that differ only in `lr`) whose best rate is its lowest or highest "
            "one runs one more rate past that edge (x the ratio to its neighbour), until the "
            "optimum is bracketed or `train.lr_bracket.max_extensions` rates were added "
            "(docs/scaling.md). Rates added by an extension are marked +.\n\n"
            + table(["tokenizer", "sweep", "lr: bits/byte (+: extension)", "best lr",
                     "bracketed", "extensions", "decision"], rows))
    if stuck:
        text += "\n\nOptimum still not bracketed:\n" + "\n".join(f"- {s}" for s in stuck)
    else:
        text += "\n\nEvery sweep brackets its optimum."
    return text


def _unbracketed_why(decision: dict[str, Any]) -> str:
    """Why an unbracketed sweep stopped, in words."""
    if decision["limit_reached"]:
        if decision["max_extensions"] == 0:
            return "extensions are off (`max_extensions: 0`)"
        return (f"the limit of {decision['max_extensions']} extension(s) was reached; raise "
                "`train.lr_bracket.max_extensions` to go on")
    return decision["reason"]


def repetition_section(runs: pd.DataFrame | None, fits: dict[str, Any]) -> str:
    """The repetition study: per tokenizer the data-constrained law (R_D*, the epochs at
    which a repetition is still worth half and nine-tenths of fresh text), then every
    cell's bits per byte by tokenizer with the fresh-data ranking against it.

    ``runs``: runs.csv with the repeated runs (``figures.load_runs(..., repeated=True)``).
    """
    from symato.report.constrained import KEY
    from symato.report.figures import repetition_runs

    study = repetition_runs(runs) if runs is not None else None
    if study is None or not len(study):
        return ("No run repeats its text (a sub-grid's `unique_bytes`, docs/training.md "
                "\"Repeated epochs\").")
    parts = [_constrained_table(fits, KEY, sorted(set(zip(study["tokenizer"], study["arch"],
                                                          strict=True))))]
    parts.append(_repetition_cells(study))
    return "\n\n".join(parts)


def _constrained_table(fits: dict[str, Any], key: str, groups: list[tuple[str, str]]) -> str:
    """One row per (tokenizer, arch): the data-constrained law's headline numbers."""
    rows = []
    for tok, arch in groups:
        fit = fits.get("groups", {}).get(f"{tok}/{arch}", {}).get("fits", {}).get(key)
        if fit is None:
            rows.append([tok, arch, "not fitted", "–", "–", "–", "–", "no fit in fits.json"])
            continue
        rows.append([tok, arch, fit["status"], fit.get("repeated_runs", "–"),
                     _with_ci(fit, "R_D_star"), _with_ci(fit, "epochs_worth_half"),
                     _with_ci(fit, "epochs_worth_nine_tenths"), fit.get("reason") or ""])
    head = ["tokenizer", "arch", "status", "repeated runs", "R_D* [95% CI]",
            "epochs worth 1/2", "epochs worth 9/10", "note"]
    return ("The data-constrained law L = E + A/N^α + B/D'^β, D' = U + U·R_D*·(1 − "
            "exp(−(epochs − 1)/R_D*)) (Muennighoff et al. 2023), fitted per tokenizer on its "
            "fresh and repeated runs (fits.json `L_NDU`; docs/scaling.md). A repetition is "
            "still worth half (nine-tenths) of fresh text up to the epochs given.\n\n"
            + table(head, rows))


def _repetition_cells(study: pd.DataFrame) -> str:
    """Bits per byte per (arch, size, unique bytes, trained bytes) and tokenizer, and
    whether each repeated cell orders the tokenizers as the fresh cell of its budget."""
    toks = sorted(set(study["tokenizer"]))
    keys = ["arch", "size", "unique_bytes", "text_bytes"]
    cells = study.groupby(keys, sort=True)
    order_of: dict[tuple[Any, ...], list[str]] = {}
    rows = []
    for (arch, size, unique, trained), cell in cells:
        loss = {r["tokenizer"]: r["loss"] for _, r in cell.iterrows()}
        order = sorted(loss, key=loss.get)
        epochs = float(cell["epochs"].mean())
        fresh = bool(cell["fresh"].all())
        if fresh:
            order_of[(arch, size, trained)] = order
        rows.append((arch, size, unique, trained, epochs, fresh, loss, order))
    body, held, broken = [], 0, 0
    for arch, size, unique, trained, epochs, fresh, loss, order in rows:
        ref = order_of.get((arch, size, trained))
        if fresh or ref is None or len(order) < 2:
            same = "fresh" if fresh else "–"
        else:
            same = "yes" if order == ref else "no"
            held, broken = held + (same == "yes"), broken + (same == "no")
        body.append([arch, size, f"{unique:.0f}", f"{trained:.0f}", epochs,
                     *(loss.get(t) for t in toks), " < ".join(order), same])
    head = ["arch", "size", "unique bytes", "trained bytes", "epochs", *toks,
            "ranking (lowest first)", "as on fresh text"]
    verdict = (f"The ranking of the tokenizers on fresh text of the same budget holds in "
               f"{held} of {held + broken} repeated cells." if held + broken else
               "No repeated cell has a fresh cell of its budget with two tokenizers to rank.")
    return table(head, body) + "\n\n" + verdict
