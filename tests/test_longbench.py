"""The 16 LongBench tasks as LongBench runs them: prompts, generation settings, truncation and scoring.

The templates and generation lengths below are THUDM/LongBench's config/dataset2prompt.json and
config/dataset2maxlen.json (LongBench/ at 2e00731), written out as data: the task YAMLs must reproduce
them. No model is needed except for the encoding check (a random 6-layer Llama).
"""

from __future__ import annotations

import json

import pytest

from harp.errors import HarpError
from harp.eval import longbench
from harp.eval.longbench import PREFIX
from harp.eval.tasks import LONGBENCH, SUITE

LONGBENCH_NAMES = [t.name.removeprefix(PREFIX) for t in SUITE.values() if t.category == LONGBENCH]

TEMPLATES = {
    "narrativeqa": "You are given a story, which can be either a novel or a movie script, and a question. Answer the question asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: {context}\n\nNow, answer the question based on the story asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",  # noqa: E501
    "qasper": 'You are given a scientific article and a question. Answer the question as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write "unanswerable". If the question is a yes/no question, answer "yes", "no", or "unanswerable". Do not provide any explanation.\n\nArticle: {context}\n\n Answer the question based on the above article as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write "unanswerable". If the question is a yes/no question, answer "yes", "no", or "unanswerable". Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:',  # noqa: E501
    "multifieldqa_en": "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following question based on the above text, only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",  # noqa: E501
    "hotpotqa": "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",  # noqa: E501
    "2wikimqa": "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",  # noqa: E501
    "musique": "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",  # noqa: E501
    "gov_report": "You are given a report by a government agency. Write a one-page summary of the report.\n\nReport:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",  # noqa: E501
    "qmsum": "You are given a meeting transcript and a query containing a question or instruction. Answer the query in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above meeting transcript in one or more sentences.\n\nQuery: {input}\nAnswer:",  # noqa: E501
    "multi_news": "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:",  # noqa: E501
    "trec": "Please determine the type of the question below. Here are some examples of questions.\n\n{context}\n{input}",  # noqa: E501
    "triviaqa": "Answer the question based on the given passage. Only give me the answer and do not output any other words. The following are some examples.\n\n{context}\n\n{input}",  # noqa: E501
    "samsum": "Summarize the dialogue into a few short sentences. The following are some examples.\n\n{context}\n\n{input}",  # noqa: E501
    "passage_count": "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please carefully read these paragraphs and determine how many unique paragraphs there are after removing duplicates. In other words, how many non-repeating paragraphs are there in total?\n\n{context}\n\nPlease enter the final count of unique paragraphs after removing duplicates. The output format should only contain the number, such as 1, 2, 3, and so on.\n\nThe final answer is: ",  # noqa: E501
    "passage_retrieval_en": 'Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\nPlease enter the number of the paragraph that the abstract is from. The answer format must be like "Paragraph 1", "Paragraph 2", etc.\n\nThe answer is: ',  # noqa: E501
    "lcc": "Please complete the code given below. \n{context}Next line of code:\n",
    "repobench-p": "Please complete the code given below. \n{context}{input}Next line of code:\n",
}
MAX_NEW_TOKENS = {
    "narrativeqa": 128,
    "qasper": 128,
    "multifieldqa_en": 64,
    "hotpotqa": 32,
    "2wikimqa": 32,
    "musique": 32,
    "gov_report": 512,
    "qmsum": 512,
    "multi_news": 512,
    "trec": 64,
    "triviaqa": 32,
    "samsum": 128,
    "passage_count": 32,
    "passage_retrieval_en": 32,
    "lcc": 64,
    "repobench-p": 64,
}
ANSWERS = {"trec": "Location", "passage_count": "2", "passage_retrieval_en": "Paragraph 1", "lcc": "x = 1"}
TREC_CLASSES = ["Description", "Entity", "Abbreviation", "Human being", "Location", "Numeric value"]


def _row(name: str) -> dict:
    """One raw LongBench row, with what a template could mangle: braces, leading, trailing and double
    whitespace, an input that ends in a newline (lcc's input is empty, as in LongBench)."""
    context = {
        "trec": "Question: Who wrote {Hamlet}?\nType: Human being\nQuestion: Where is Rome?\nType: Location\n",
        "lcc": "def f(x):\n    return {x: 1}\n\n\nclass A:\n    ",
        "repobench-p": "# path: a.py\nimport os\n",
    }.get(name, "  Paragraph 1: The {first} one.\n\nParagraph 2: The  second one.  \n")
    question = {
        "trec": "Question: What is {DNA}?\nType:",
        "triviaqa": "Passage: Paris is in France.\nQuestion: Where is Paris?\nAnswer:",
        "samsum": "Dialogue: Ann: hi {Bob}\nBob: hi\nSummary:",
        "lcc": "",
        "repobench-p": "def main():\n    ",
    }.get(name, "Which one is {first}? \n")
    return {
        "input": question,
        "context": context,
        "answers": [ANSWERS.get(name, "The first one")],
        "length": len(context.split()),
        "dataset": name,
        "language": "en",
        "all_classes": TREC_CLASSES if name == "trec" else None,
        "_id": f"id-{name}",
    }


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> dict:
    """The 16 tasks built from our YAMLs on LongBench-format data, the path a real run takes."""
    from lm_eval.tasks import TaskManager

    data = tmp_path_factory.mktemp("longbench")
    for name in LONGBENCH_NAMES:
        (data / f"{name}.jsonl").write_text(json.dumps(_row(name)) + "\n")
    tm = TaskManager(include_defaults=False, include_path=str(longbench.TASK_DIR))
    loaded = tm.load([longbench.real_task(f"longbench_{n}", data) for n in LONGBENCH_NAMES])
    return {n: loaded["tasks"][f"longbench_{n}"] for n in LONGBENCH_NAMES}


def test_templates_are_longbench_s(tasks):
    """The request each task sends the model is LongBench's template filled with the row, to the character."""
    assert list(TEMPLATES) == LONGBENCH_NAMES
    for name, task in tasks.items():
        task.set_config("num_fewshot", 0)
        task.build_all_requests(limit=None)
        (request,) = task.instances
        prompt, gen_kwargs = request.args
        assert prompt == TEMPLATES[name].format(**_row(name)), name
        expected = {"max_gen_toks": MAX_NEW_TOKENS[name], "do_sample": False, "until": []}
        if name == "samsum":  # pred.py's min_length = prompt + 1
            expected["min_new_tokens"] = 1
        assert gen_kwargs == expected, name


def test_samsum_also_stops_at_the_newline_token(tasks):
    """pred.py: eos_token_id=[eos, id of "\\n"] for samsum only; the id comes from the tokenizer."""
    tokenizer = _bos_tokenizer()
    newline = tokenizer.encode("\n", add_special_tokens=False)[-1]
    for name, task in tasks.items():
        longbench.configure(task, tokenizer)
        kwargs = task.config.generation_kwargs
        if name == "samsum":
            assert kwargs["eos_token_id"] == [tokenizer.eos_token_id, newline] and kwargs["min_new_tokens"] == 1
        else:
            assert "eos_token_id" not in kwargs and "min_new_tokens" not in kwargs, name


@pytest.mark.parametrize(
    "name, output, score",
    [
        # trec, triviaqa, samsum: the first line once leading newlines are gone (lm-eval's stop at "\n" gives "")
        ("trec", "\nLocation\nQuestion: Who?", 1.0),
        ("trec", " Location or Entity", 0.5),
        ("triviaqa", "\n\nThe first one\nPassage: more", 1.0),
        ("triviaqa", "first\none", 2 / 3),
        ("samsum", "\nThe first one\nDialogue: Ann: hi", 1.0),
        ("samsum", "", 0.0),  # an empty summary scores 0 (rouge raises, LongBench catches it)
        # other tasks score the whole text
        ("narrativeqa", "\nThe first\none", 1.0),
        ("narrativeqa", "first one and more", 2 * (2 / 4) / (2 / 4 + 1)),
        ("passage_count", "2 and 2", 1.0),
        ("passage_count", "\n2, 3", 0.5),
        ("passage_retrieval_en", "Paragraph 1", 1.0),
        ("passage_retrieval_en", "Paragraph 2", 0.0),
        # code: the first line after leading newlines with no comment marker, a blank line included
        ("lcc", "\n\nx = 1\n", 1.0),
        ("lcc", "# comment\n\nx = 1", 0.0),
        ("lcc", "```python\nx = 1", 1.0),
    ],
)
def test_scoring_is_longbench_s(tasks, name, output, score):
    doc = tasks[name].dataset["test"][0]
    result = tasks[name].process_results(doc, [output])
    assert result["score"] == pytest.approx(score, abs=1e-6)
    assert set(result) == {"score", tasks[name].config.metric_list[1]["metric"]}


def test_scoring_counts_and_retrieves():
    from harp.eval.longbench import scoring

    assert scoring.count({"answers": ["3"], "all_classes": None}, ["3, then 3 and 4"])["count_score"] == 2 / 3
    assert scoring.retrieval({"answers": ["Paragraph 7"], "all_classes": None}, ["Paragraph 7"])["score"] == 1.0
    best = scoring.qa_f1({"answers": ["Rome", "Paris"], "all_classes": None}, ["Paris"])
    assert best["score"] == 1.0  # the best over the reference answers


def test_code_similarity_differs_from_lm_eval_s_only_on_blank_lines():
    from lm_eval.tasks.longbench import metrics

    from harp.eval.longbench.scoring import code_sim_score

    assert code_sim_score("# c\n\nx = 1", "x = 1") == 0.0 and metrics.code_sim_score("# c\n\nx = 1", "x = 1") == 1.0
    for text in ("x = 1\ny", "\n\n  x = 1", "// c\nx = 1", "`x`\nx = 2"):
        assert code_sim_score(text, "x = 1") == metrics.code_sim_score(text, "x = 1"), text


def _bos_tokenizer():
    """A word-level tokenizer that adds BOS, like Llama's, over words w0..w199."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2, "\n": 3} | {f"w{i}": i + 4 for i in range(200)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    split = pre_tokenizers.Split
    tok.pre_tokenizer = pre_tokenizers.Sequence([split(" ", "removed"), split("\n", "isolated")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_middle_truncation_counts_bos_as_longbench_does():
    """pred.py counts the prompt with BOS: 10 tokens keep BOS + 4 words, then the last 5 words."""
    tokenizer = _bos_tokenizer()
    prompt = " ".join(f"w{i}" for i in range(100))
    assert longbench.truncate_middle(tokenizer, prompt, 10) == "w0 w1 w2 w3" + "w95 w96 w97 w98 w99"
    short = " ".join(f"w{i}" for i in range(9))  # 9 words + BOS = 10 tokens: kept whole
    assert longbench.truncate_middle(tokenizer, short, 10) == short


def test_windowed_lm_encodes_the_cut_prompt_whole():
    """The LongBench prompt is cut in the middle only: lm-eval's left truncation would drop BOS."""
    from harp.eval.lm_eval_driver import WindowedHFLM
    from tests.helpers import random_model

    tokenizer = _bos_tokenizer()
    lm = WindowedHFLM(pretrained=random_model("llama", vocab_size=204), tokenizer=tokenizer, window=10)
    lm.middle_truncate = 10
    ids, _ = lm.tok_batch_encode([" ".join(f"w{i}" for i in range(100))], left_truncate_len=8)
    assert ids[0].tolist() == tokenizer("w0 w1 w2 w3w95 w96 w97 w98 w99")["input_ids"]


def test_real_data_path_runs_through_the_driver(tmp_path):
    """evaluate_tasks on LongBench-format files (not fixtures): our definitions, samsum's newline stop, scores."""
    from harp.eval.lm_eval_driver import evaluate_tasks
    from tests.helpers import random_model

    names = ["trec", "samsum", "lcc"]
    for name in names:
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(_row(name)) + "\n")
    model, tokenizer = random_model("llama", vocab_size=204), _bos_tokenizer()
    tasks = {f"longbench_{n}": 0 for n in names}
    results = dict(
        evaluate_tasks(model, tokenizer, tasks, window=64, longbench_window=16, max_gen_toks=4, longbench_data=tmp_path)
    )
    for task, r in results.items():
        assert r["task_versions"] == {task: 1.0} and r["n_samples"] == 1 and 0 <= r["score"] <= 1, task


def test_definitions_leave_lm_eval_s_tags_alone_and_ship_as_package_data():
    """No tag or group in our YAMLs (an include path's tag entry would replace lm-eval's `longbench_*` ones), the
    template's default data folder is DEFAULT_DATA, and every file beside the module is declared package data."""
    import fnmatch

    from lm_eval.tasks._yaml_loader import load_yaml
    from setuptools.config.pyprojecttoml import read_configuration

    from tests.helpers import ROOT

    for name in LONGBENCH_NAMES:
        cfg = load_yaml(longbench.task_yaml(f"longbench_{name}"), resolve_func=False)
        assert not {"tag", "group"} & set(cfg) and cfg["task"] == f"longbench_{name}", name
        assert (
            cfg["dataset_path"] == longbench.DEFAULT_DATA
            and cfg["dataset_kwargs"]["data_files"]["test"] == f"{name}.jsonl"
        )
    shipped = read_configuration(ROOT / "pyproject.toml")["tool"]["setuptools"]["package-data"]["harp.eval.longbench"]
    files = [f.name for f in longbench.TASK_DIR.iterdir() if f.is_file() and f.suffix != ".py"]
    assert len(files) == 17 and all(any(fnmatch.fnmatch(f, p) for p in shipped) for f in files), files


def test_missing_data_is_one_sentence(tmp_path):
    """Checked by the evaluate stage before anything loads (here: not even a pruning plan exists)."""
    from tests.helpers import run_stage

    with pytest.raises(HarpError, match=r"data files lcc.jsonl, trec.jsonl are not in .*data.zip"):
        longbench.check_data(tmp_path, ["longbench_lcc", "longbench_trec"])
    select = "eval.select=[longbench_trec,piqa]"
    proc = run_stage("evaluate", tmp_path, "eval=paper", select, f"eval.longbench_data={tmp_path}", "tracking=disabled")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"LongBench's data files trec.jsonl are not in {tmp_path}" in proc.stderr
