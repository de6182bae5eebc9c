"""The questions a user asks of a benchmark, answered from its measured rows.

Every answer is computed from the table (`zoo.bench.aggregate` rows: one per variant, with
"<column>_low"/"<column>_high" intervals when there are several seeds or bootstrap intervals),
so the report's first section says only what the numbers say:

1. the best reconstruction (PSNR) at each code size;
2. the best codes for a linear probe and for k-NN, against raw pixels and PPCA of the same size;
3. the most robust variant under each noise, and for every variant trained with a noise how many
   dB it gains on that noise over the baseline variant (the plain autoencoder);
4. the best likelihood (NLL, among rows scored on the same data);
5. the cheapest to serve: fewest parameters, lowest latency, smallest TFLite file;

and the goals of the benchmark, each met or not by a stated margin.

A difference is called larger than the spread when the two intervals are disjoint
(`zoo.bench.aggregate.distinguishable`); without intervals the answer says so.
"""

from __future__ import annotations

import math

from zoo.bench.aggregate import distinguishable, interval

#: Gain in PSNR dB a model trained with a noise should have over the baseline on that noise.
DENOISING_GOAL_DB = 2.0
#: The largest code size of the linear-probe goal.
PROBE_GOAL_CODE_SIZE = 64
#: How far the mean activation ρ̂ of a sparse code may be from its target ρ, relative to ρ.
SPARSITY_GOAL_RELATIVE = 0.2
#: How much PSNR a sparse code may lose against the baseline.
SPARSITY_GOAL_PSNR_DB = 1.0


def _number(row: dict, column: str):
    value = row.get(column)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _value(row: dict, column: str, spec: str = ".2f") -> str:
    """"17.05 ± 0.12" (with a standard deviation), "17.05 [16.98, 17.11]" (a bootstrap interval) or "17.05"."""
    value = _number(row, column)
    if value is None:
        return "n/a"
    sd = _number(row, f"{column}_sd")
    if sd is not None:
        return f"{value:{spec}} ± {sd:{spec}}"
    bounds = interval(row, column)
    return f"{value:{spec}} [{bounds[0]:{spec}}, {bounds[1]:{spec}}]" if bounds else f"{value:{spec}}"


def _spread_phrase(a: dict, b: dict, column: str) -> str:
    verdict = distinguishable(a, b, column)
    if verdict is None:
        return "no interval to compare"
    return "larger than the spread" if verdict else "within the spread"


def _models(rows):
    return [r for r in rows if r.get("kind") == "model"]


def _best(rows, column, higher=True):
    scored = [r for r in rows if _number(r, column) is not None]
    return (max if higher else min)(scored, key=lambda r: _number(r, column)) if scored else None


def best_reconstruction(rows) -> list[str]:
    """Per code size: the model with the highest clean PSNR, and its margin over the runner-up."""
    lines = []
    sizes = sorted({int(r["code_size"]) for r in _models(rows) if _number(r, "psnr") is not None})
    for size in sizes:
        group = sorted((r for r in _models(rows) if r.get("code_size") == size and _number(r, "psnr") is not None),
                       key=lambda r: -_number(r, "psnr"))
        best = group[0]
        line = f"code size {size}: **{best['name']}**, {_value(best, 'psnr')} dB"
        if len(group) > 1:
            second = group[1]
            gap = _number(best, "psnr") - _number(second, "psnr")
            line += f"; {gap:.2f} dB over {second['name']} ({_spread_phrase(best, second, 'psnr')})"
        lines.append(line)
    return lines


def best_codes(rows) -> list[str]:
    """The best linear-probe and k-NN codes among the models, against raw pixels and PPCA of the same size."""
    lines = []
    raw = next((r for r in rows if r.get("kind") == "reference" and r.get("family") == "pixels"), None)
    for column, what in (("probe_accuracy", "linear probe"), ("knn_accuracy", "k-NN")):
        best = _best(_models(rows), column)
        if best is None:
            continue
        line = f"{what}: **{best['name']}** (code size {best.get('code_size')}), {_value(best, column, '.3f')}"
        if raw is not None and _number(raw, column) is not None:
            gap = _number(best, column) - _number(raw, column)
            line += f"; raw pixels {_number(raw, column):.3f} ({gap:+.3f})"
        size = best.get("code_size")
        ppca = next((r for r in rows if r.get("family") == "ppca" and r.get("code_size") == size), None)
        if ppca is not None and _number(ppca, column) is not None:
            gap = _number(best, column) - _number(ppca, column)
            line += f"; PPCA-{size} {_number(ppca, column):.3f} ({gap:+.3f})"
        lines.append(line)
    return lines


def noise_column(noise) -> str | None:
    """The corruption column of a training noise {"kind", "stddev" | "rate"}, e.g. "psnr_gaussian_0.3"."""
    if not isinstance(noise, dict) or "kind" not in noise:
        return None
    level = noise.get("stddev", noise.get("rate"))
    return None if level is None else f"psnr_{noise['kind']}_{float(level):g}"


def _noise_name(column: str) -> str:
    return column[len("psnr_"):].replace("_", " ")


def robustness(rows, baseline: str) -> list[str]:
    """The best model under each noise column, and each noise-trained model against `baseline` on its own noise."""
    models = _models(rows)
    lines = []
    columns = sorted({c for r in models for c in r
                      if c.startswith("psnr_") and not c.endswith(("_sd", "_low", "_high"))})
    for column in columns:
        best = _best(models, column)
        if best is not None:
            lines.append(f"under {_noise_name(column)}: **{best['name']}**, {_value(best, column)} dB")
    base = next((r for r in models if r["name"] == baseline), None)
    for row in models:
        column = noise_column(row.get("train_noise"))
        if column is None:
            continue
        if base is None or _number(base, column) is None or _number(row, column) is None:
            lines.append(f"{row['name']} (trained on {_noise_name(column)}): no {baseline} row to compare with")
            continue
        gain = _number(row, column) - _number(base, column)
        lines.append(f"{row['name']} on its own noise ({_noise_name(column)}): {gain:+.2f} dB over {baseline} "
                     f"({_value(row, column)} vs {_value(base, column)}; {_spread_phrase(row, base, column)})")
    return lines


def best_likelihood(rows) -> list[str]:
    """The lowest NLL among the rows scored on the same data ("nll_data")."""
    lines = []
    groups: dict[str, list] = {}
    for row in rows:
        if _number(row, "nll") is not None:
            groups.setdefault(str(row.get("nll_data", "")), []).append(row)
    for data, group in groups.items():
        best = _best(group, "nll", higher=False)
        line = f"**{best['name']}**, {_value(best, 'nll')} nats per example" + (f" ({data})" if data else "")
        others = sorted((r for r in group if r is not best), key=lambda r: _number(r, "nll"))
        if others:
            line += f"; next {others[0]['name']} {_value(others[0], 'nll')} ({_spread_phrase(best, others[0], 'nll')})"
        lines.append(line)
    return lines


def cheapest(rows) -> list[str]:
    """The model with the fewest parameters, the lowest latency and the smallest TFLite file."""
    lines = []
    for column, what, unit, spec in (("parameters", "fewest parameters", "", ",.0f"),
                                     ("latency_ms", "lowest latency", " ms per batch", ".2f"),
                                     ("tflite_bytes", "smallest TFLite file", " bytes", ",.0f")):
        best = _best(_models(rows), column, higher=False)
        if best is not None:
            lines.append(f"{what}: **{best['name']}**, {_value(best, column, spec)}{unit}")
    return lines


def goals(rows, baseline: str) -> list[str]:
    """The benchmark's goals, each "met" or "not met" with its margin."""
    models = _models(rows)
    lines = []
    base = next((r for r in models if r["name"] == baseline), None)
    for row in models:
        column = noise_column(row.get("train_noise"))
        if column is None or base is None or _number(row, column) is None or _number(base, column) is None:
            continue
        gain = _number(row, column) - _number(base, column)
        verdict = "met" if gain >= DENOISING_GOAL_DB else "not met"
        lines.append(f"{row['name']} ≥ {DENOISING_GOAL_DB:g} dB over {baseline} on its own noise: {verdict} "
                     f"({gain:+.2f} dB)")
    raw = next((r for r in rows if r.get("kind") == "reference" and r.get("family") == "pixels"), None)
    small = [r for r in models if int(r.get("code_size", 10 ** 9)) <= PROBE_GOAL_CODE_SIZE]
    best = _best(small, "probe_accuracy")
    if raw is not None and best is not None and _number(raw, "probe_accuracy") is not None:
        gap = _number(best, "probe_accuracy") - _number(raw, "probe_accuracy")
        lines.append(f"a code of ≤ {PROBE_GOAL_CODE_SIZE} dimensions at or above raw pixels on the linear probe: "
                     f"{'met' if gap >= 0 else 'not met'} (best {best['name']} {_number(best, 'probe_accuracy'):.3f} "
                     f"vs {_number(raw, 'probe_accuracy'):.3f}, {gap:+.3f})")
    for row in models:
        rho, rho_hat = _number(row, "rho"), _number(row, "mean_activation")
        if rho is None or rho_hat is None or rho <= 0:
            continue
        relative = abs(rho_hat - rho) / rho
        loss = None if base is None or _number(base, "psnr") is None or _number(row, "psnr") is None \
            else _number(base, "psnr") - _number(row, "psnr")
        met = relative <= SPARSITY_GOAL_RELATIVE and loss is not None and loss <= SPARSITY_GOAL_PSNR_DB
        psnr_part = "no baseline PSNR" if loss is None else f"PSNR {loss:.2f} dB below {baseline}"
        lines.append(f"{row['name']}: ρ̂ within {SPARSITY_GOAL_RELATIVE:.0%} of ρ with PSNR within "
                     f"{SPARSITY_GOAL_PSNR_DB:g} dB of {baseline}: {'met' if met else 'not met'} "
                     f"(ρ̂ = {rho_hat:.4f} vs ρ = {rho:g}, {relative:.0%} off; {psnr_part})")
    return lines


def answers(rows, baseline: str = "basic") -> list[tuple[str, list[str]]]:
    """(question, answer lines) in the order of the report's first section; questions the rows
    cannot answer are left out."""
    sections = [("Best reconstruction at a given code size", best_reconstruction(rows)),
                ("Best codes for a linear probe and k-NN", best_codes(rows)),
                ("Most robust to each noise", robustness(rows, baseline)),
                ("Best likelihood", best_likelihood(rows)),
                ("Cheapest to serve", cheapest(rows)),
                ("Goals", goals(rows, baseline))]
    return [(q, lines) for q, lines in sections if lines]


def answers_markdown(rows, baseline: str = "basic") -> str:
    """The answers as markdown: one heading-less bold question per block, a bullet per line."""
    blocks = []
    for question, lines in answers(rows, baseline):
        blocks.append(f"**{question}**\n\n" + "\n".join(f"- {line}" for line in lines))
    return "\n\n".join(blocks)


def pareto_front(points) -> list[int]:
    """Indices of the (cost, quality) points no other point dominates (cost no higher and quality no
    lower, one of them strictly), sorted by cost."""
    points = [(float(c), float(q)) for c, q in points]
    front = []
    for i, (c, q) in enumerate(points):
        dominated = any((c2 <= c and q2 >= q) and (c2 < c or q2 > q) for j, (c2, q2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])
