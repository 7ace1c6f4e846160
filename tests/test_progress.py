"""Progress bars: a live bar on a terminal, plain lines in a log file."""

import io

from grover_jax.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_bar(stream, steps: int = 200, **kwargs) -> str:
    bar = progress_bar(total=steps, desc="pretrain", unit="step", file=stream, **kwargs)
    for step in range(steps):
        bar.set_postfix_str(f"loss {step}", refresh=False)
        bar.update(1)
    bar.close()
    return stream.getvalue()


def test_in_a_log_each_report_is_its_own_line_at_most_every_n_seconds(monkeypatch):
    monkeypatch.setenv("GROVER_JAX_PROGRESS_SECONDS", "3600")
    text = run_bar(io.StringIO(), leave=False)
    assert "\r" not in text
    lines = text.splitlines()
    # Within the hour: the first state and the last one only (kept although leave=False).
    assert len(lines) == 2 and text.endswith("\n")
    assert lines[0].startswith("pretrain:   0%") and lines[1].startswith("pretrain: 100%")
    assert "200/200" in lines[1] and "loss 199" in lines[1]


def test_every_redraw_is_a_line_when_the_interval_is_short(monkeypatch):
    monkeypatch.setenv("GROVER_JAX_PROGRESS_SECONDS", "0")
    percents = [line.split("|")[0] for line in run_bar(io.StringIO(), steps=5, miniters=1).splitlines()]
    # Each update a line; closing the bar repeats the last state as its final line.
    assert percents[:6] == [f"pretrain: {p:3d}%" for p in (0, 20, 40, 60, 80, 100)]
    assert set(percents[6:]) <= {"pretrain: 100%"}


def test_on_a_terminal_the_bar_redraws_in_place():
    text = run_bar(Terminal())
    assert text.count("\r") > 1 and "200/200" in text
