"""bench/recall.py scores labelled sites against the real linter on a tiny corpus."""

import os
import sys
import textwrap

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH)

import recall  # noqa: E402

PROGRAM = textwrap.dedent("""\
    import torch
    import torch.nn as nn

    model = nn.Linear(4, 2)
    test_x = torch.randn(8, 4)


    def evaluate(model, data):
        model.eval()
        outputs = model(
            data
        )
        return outputs.argmax(1)


    @torch.no_grad()
    def predict(model, data):
        model.eval()
        return model(data).argmax(1)


    evaluate(model, test_x)
    predict(model, test_x)
    """)

LABELS = textwrap.dedent("""\
    repo,revision,path,line,kind,label,expected,reason
    someone/demo,,demo.py,{split_call},no_grad,bug,TGL101,evaluate() without no_grad
    someone/demo,,demo.py,19,no_grad,correct,,predict() is decorated with no_grad
    someone/demo,,demo.py,19,eval,bug,TGL201,labelled wrong on purpose: this one is a miss
    """)

CLASSES = textwrap.dedent("""\
    repo,path,line,kind,class
    someone/demo,demo.py,19,eval,"wrong label, kept as a miss"
    """)


def test_statement_span_covers_a_call_split_over_lines():
    spans = recall.statement_spans(PROGRAM, [11, 10, 8])
    assert spans[11] == (10, 12)
    assert spans[10] == (10, 12)
    assert spans[8] == (8, 8)  # a def header: the header only


@pytest.mark.parametrize("split_call", [10, 11])
def test_bug_found_on_any_line_of_its_statement(tmp_path, capsys, split_call):
    repo = tmp_path / "corpus" / "someone+demo"
    repo.mkdir(parents=True)
    (repo / "demo.py").write_text(PROGRAM)
    labels = tmp_path / "labels.csv"
    labels.write_text(LABELS.format(split_call=split_call))
    classes = tmp_path / "classes.csv"
    classes.write_text(CLASSES)

    status = recall.main([str(tmp_path / "corpus"), "--labels", str(labels),
                          "--classes", str(classes), "--corpus-list", str(tmp_path / "none")])

    out = capsys.readouterr().out
    assert status == 0
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in out.splitlines()
            if line.startswith(("no_grad ", "eval "))}
    assert rows[("no_grad", "TGL101")][:3] == ["1", "1", "100"]
    assert rows[("no_grad", "TGL101")][-2:] == ["1", "0"]
    assert rows[("eval", "TGL201")][:3] == ["1", "0", "0"]
    assert "wrong label, kept as a miss" in out


def test_malformed_labels_are_refused(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("repo,revision,path,line,kind,label,expected,reason\n"
                      "a/b,,x.py,3,no_grad,bug,,a bug without its code\n")
    with pytest.raises(SystemExit):
        recall.read_labels(str(labels))
