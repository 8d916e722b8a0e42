"""Report details that matter once the page is shared: width, input names, stable colours."""

from __future__ import annotations

from pathlib import Path

from chromexpr.report.figures import BASELINE, model_colors
from chromexpr.report.run import make_report
from explain_toys import write_fake_eval_dir


def test_model_colours_do_not_depend_on_argument_order() -> None:
    forward = model_colors(["lasso", "fc", "activity", BASELINE])
    backward = model_colors([BASELINE, "activity", "fc", "lasso"])
    assert forward == backward
    assert len(set(forward.values())) == 4 and forward[BASELINE] == "#7f7f7f"


def test_inputs_and_width(tmp_path: Path) -> None:
    root = tmp_path / "private" / "layout"
    lasso = write_fake_eval_dir(root / "eval_lasso", "lasso", skill=0.5, noise=0.45, seed=1)
    fc = write_fake_eval_dir(root / "eval_fc", "fc", skill=0.8, noise=0.35, seed=2)
    shared = tmp_path / "shared"
    pages = []
    for i, order in enumerate(([lasso, fc], [fc, lasso])):
        out = shared / f"report{i}.html"
        make_report(order, out, embed="svg")
        pages.append(out.read_text())
    for page in pages:
        inputs = page[page.index("<h2>Inputs</h2>") :]
        assert str(tmp_path) not in inputs and "private" not in inputs
        assert "<code>eval_lasso</code>" in inputs and "<code>eval_fc</code>" in inputs
        # the wide metrics table scrolls in its own box, and its headers may wrap
        assert (
            '<div class="wide"><table>' in page and ".wide{max-width:100%;overflow-x:auto}" in page
        )
        assert "gene_<wbr>" in page
    # inputs inside the report's folder keep their relative path
    inside = shared / "eval_fc"
    write_fake_eval_dir(inside, "fc", skill=0.8, noise=0.35, seed=2)
    out = shared / "sub.html"
    make_report([inside], out)
    assert "<code>eval_fc</code>" in out.read_text()
