"""Build the lesson notebooks, in English and Korean, from one list of cells.

The code is the same in both (written once, here); the explanations are written in each language.
Run `python examples/make_notebooks.py` after editing; the test suite checks the committed
notebooks equal what this writes (outputs stripped, so diffs stay readable) and runs both in a
real kernel.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat

HERE = Path(__file__).resolve().parent
LANGS = ("en", "ko")

SETUP = '''\
import html
import os

from IPython.display import HTML, SVG, display

import tokviz
from tokviz import pipeline
from tokviz.measures.metrics import run_stats
from tokviz.measures.reshape import NOTE, Setting, reshape
from tokviz.providers.base import ScoreSpec, TreeSpec
from tokviz.run.generation import Generation
from tokviz.views import export

MODEL = "gemma-3-270m"  # the embedded model: no API key, no network
HAS_KEY = bool(os.environ.get("OPENAI_API_KEY"))


def skipped(what):
    print(f"skipped: {what} needs OPENAI_API_KEY (set it and run this cell again)")
'''

# Each cell: ("md", {lang: text}) or ("code", source) or ("code", {lang: source}).
CELLS: list[tuple[str, Any]] = [
    ("md", {
        "en": "# How a language model writes, token by token\n\n"
              "A runnable lesson with tokviz: tokenisation, one generation step by step, greedy "
              "decoding against sampling, temperature / top-k / top-p, how sure the model is on three prompts (in "
              "numbers), a tree of alternatives, and scoring a sentence you give it.\n\n"
              "Everything runs offline on the embedded model (Gemma 3 270M, a small *base* model: it continues text "
              "rather than answering). Cells that use `gpt-4.1-mini` run when `OPENAI_API_KEY` is set and say they "
              "were skipped when it is not.",
        "ko": "# 언어 모델은 토큰 하나씩 글을 씁니다\n\n"
              "tokviz로 직접 실행해 보는 수업입니다: 토큰화, 한 단계씩 살펴보는 생성, 그리디 "
              "디코딩과 샘플링의 차이, 온도(temperature)·top-k·top-p, 세 가지 프롬프트에서 모델이 얼마나 확신하는지"
              "(숫자로), 대안 토큰의 트리, 그리고 주어진 문장에 점수 매기기.\n\n"
              "모든 셀은 내장 모델(Gemma 3 270M, 작은 *기본(base)* 모델이라 질문에 답하기보다 글을 이어 씁니다)로 "
              "오프라인에서 실행됩니다. `gpt-4.1-mini`를 쓰는 셀은 `OPENAI_API_KEY`가 설정되어 있을 때만 실행되고, "
              "없으면 건너뛰었다고 알려 줍니다.",
    }),
    ("code", SETUP),
    ("md", {
        "en": "## 1. Tokenisation\n\nA model never sees letters: it sees *tokens*, pieces of text from a fixed "
              "vocabulary (262,144 of them for Gemma 3). `␣` marks a space; a word often carries the space before it.",
        "ko": "## 1. 토큰화\n\n모델은 글자를 보지 않습니다. 정해진 어휘(Gemma 3는 262,144개)에 있는 *토큰*, 즉 텍스트 조각을 "
              "봅니다. `␣`는 공백을 뜻하며, 단어는 흔히 앞의 공백을 함께 가집니다. 한국어는 영어보다 더 잘게 쪼개지는 "
              "경우가 많습니다.",
    }),
    ("code", {
        "en": 'text = "In one sentence, describe the color orange to someone who has never been able to see"\n'
              "tokens = pipeline.tokenize(text, MODEL).tokens\n"
              'print(len(tokens), "tokens (<bos> included):")\n'
              'print(" | ".join(t.label for t in tokens))',
        "ko": 'text = "앞을 볼 수 없는 사람에게 주황색을 한 문장으로 설명해 주세요"\n'
              "tokens = pipeline.tokenize(text, MODEL).tokens\n"
              'print(len(tokens), "개의 토큰 (<bos> 포함):")\n'
              'print(" | ".join(t.label for t in tokens))',
    }),
    ("code", '# gpt-4.1-mini cuts the same text with its own vocabulary (tiktoken, offline: no key needed)\n'
             'api_tokens = pipeline.tokenize(text, "gpt-4.1-mini").tokens\n'
             'print(len(api_tokens), "tokens:", " | ".join(t.label for t in api_tokens))'),
    ("md", {
        "en": "## 2. One generation, step by step\n\nAt every step the model gives a probability to every token of its "
              "vocabulary; greedy decoding takes the most likely one and appends it. Shown as a cell's value, a run "
              "draws itself: the text coloured by probability (hover a token for its alternatives) and the graph.",
        "ko": "## 2. 한 번의 생성을 한 단계씩\n\n모델은 매 단계마다 어휘의 모든 토큰에 확률을 매깁니다. 그리디 디코딩은 "
              "가장 확률이 높은 토큰을 골라 이어 붙입니다. 셀의 값으로 보여 주면 실행 결과가 스스로 그려집니다: 확률로 "
              "색칠된 텍스트(토큰에 마우스를 올리면 대안이 보입니다)와 그래프.",
    }),
    ("code", {
        "en": 'run = tokviz.predict("The capital of France is", max_tokens=8, top_k=5)\nrun',
        "ko": 'run = tokviz.predict("대한민국의 수도는", max_tokens=8, top_k=5)\nrun',
    }),
    ("code", 'for n, step in enumerate(run.steps, 1):\n'
             '    others = ", ".join(f"{a.label} {a.prob:.1%}" for a in step.alternatives if a != step.chosen)\n'
             '    print(f"{n}. {step.chosen.label:<12} {step.chosen.prob:6.1%}   | {others}")'),
    ("md", {
        "en": "## 3. Greedy decoding against sampling\n\nGreedy decoding (temperature 0) gives the same text every "
              "time. Sampling draws each token at random from the distribution, so each seed tells another story.",
        "ko": "## 3. 그리디 디코딩과 샘플링\n\n그리디 디코딩(온도 0)은 매번 같은 텍스트를 만듭니다. 샘플링은 분포에서 "
              "토큰을 무작위로 뽑으므로, 시드(seed)마다 다른 이야기가 나옵니다.",
    }),
    ("code", 'prompt = "Once upon a time"\n'
             'print("greedy  :", tokviz.predict(prompt, max_tokens=12).text)\n'
             "for seed in (1, 2, 3):\n"
             '    print(f"seed {seed}  :", tokviz.predict(prompt, max_tokens=12, temperature=1.0, seed=seed).text)'),
    ("md", {
        "en": "## 4. Temperature, top-k and top-p reshape one step\n\nThe same first step of the run above, as each "
              "setting would make it. Temperature below 1 sharpens the distribution, above 1 flattens it; top-k keeps "
              "the k most likely tokens; top-p keeps the fewest whose probabilities reach p. (Computed over the "
              "returned alternatives only: the unseen tail is left out.)",
        "ko": "## 4. 온도, top-k, top-p가 한 단계를 바꾸는 방식\n\n위 실행의 첫 단계를 각 설정이 어떻게 바꾸는지 봅니다. "
              "온도가 1보다 낮으면 분포가 뾰족해지고, 1보다 높으면 평평해집니다. top-k는 가장 그럴듯한 k개만 남기고, "
              "top-p는 확률의 합이 p에 이르는 가장 적은 토큰만 남깁니다. (돌려받은 대안 토큰만으로 계산합니다: 보이지 "
              "않는 나머지는 제외됩니다.)",
    }),
    ("code", 'step = run.steps[0]\n'
             'settings = [Setting("T", 0.2), Setting("T", 1.0), Setting("T", 1.5), Setting("top_k", 2), Setting("top_p", 0.9)]\n'
             'shaped = [reshape([a.logprob for a in step.alternatives], s) for s in settings]\n'
             'head = "<tr><th>token</th><th>model</th>" + "".join(f"<th>{s.label}</th>" for s in settings) + "</tr>"\n'
             'body = "".join(\n'
             '    f"<tr><td><code>{html.escape(a.label)}</code></td><td>{a.prob:.1%}</td>"\n'
             '    + "".join(f"<td>{col[i]:.1%}</td>" for col in shaped) + "</tr>"\n'
             '    for i, a in enumerate(step.alternatives))\n'
             'display(HTML(f"<table>{head}{body}</table><p><small>{NOTE}</small></p>"))'),
    ("md", {
        "en": "## 5. How sure is the model? Three prompts, in numbers\n\nThe lesson this notebook grew from described "
              "the model as sure on arithmetic and unsure on creative writing. Here are the numbers: the mean "
              "probability of the chosen tokens, the mean entropy (how spread the distribution is, in bits), and the "
              "perplexity (the number of equally likely choices the model behaved as if it had).",
        "ko": "## 5. 모델은 얼마나 확신할까? 세 가지 프롬프트를 숫자로\n\n이 노트북의 바탕이 된 수업은 모델이 산수에서는 "
              "확신하고 창작에서는 확신하지 못한다고 형용사로 설명했습니다. 여기서는 숫자로 봅니다: 선택된 토큰의 평균 "
              "확률, 평균 엔트로피(분포가 얼마나 퍼져 있는지, 비트 단위), 그리고 퍼플렉서티(모델이 마치 그만큼의 "
              "똑같이 그럴듯한 선택지를 가진 것처럼 행동했다는 수).",
    }),
    ("code", 'prompts = ["What is 2 + 2?",\n'
             '           "In one sentence, describe the color orange to someone who has never been able to see",\n'
             '           "Write a creative opening line for a mystery novel"]\n'
             "\n\ndef comparison(runs):\n"
             '    rows = ""\n'
             "    for r in runs:\n"
             "        st = run_stats(r)\n"
             '        rows += (f"<tr class=\\"row\\"><td>{html.escape(r.prompt[:50])}</td><td>{st.mean_chosen_prob:.1%}</td>"\n'
             '                 f"<td>{st.mean_entropy_bits:.2f}</td><td>{st.perplexity:.2f}</td>"\n'
             '                 f"<td><code>{html.escape(r.text[:60])}</code></td></tr>")\n'
             '    head = "<tr><th>prompt</th><th>mean p</th><th>entropy (bits)</th><th>perplexity</th><th>answer</th></tr>"\n'
             '    return HTML(f"<table class=\\"comparison\\">{head}{rows}</table>")\n'
             "\n\nruns = [tokviz.predict(p, max_tokens=16) for p in prompts]\n"
             "display(comparison(runs))"),
    ("code", "if HAS_KEY:  # the lesson's own model, a chat model: it answers instead of continuing\n"
             '    display(comparison([tokviz.predict(p, "gpt-4.1-mini", max_tokens=16) for p in prompts]))\n'
             "else:\n"
             '    skipped("comparing gpt-4.1-mini")'),
    ("md", {
        "en": "## 6. A tree of alternatives\n\nGreedy decoding follows one path. The tree follows the three most likely "
              "tokens at each of three steps, with the probability of each whole path.",
        "ko": "## 6. 대안의 트리\n\n그리디 디코딩은 한 길만 따라갑니다. 트리는 세 단계 각각에서 가장 그럴듯한 세 토큰을 "
              "따라가며, 각 경로 전체의 확률을 보여 줍니다.",
    }),
    ("code", {
        "en": 'tree = pipeline.tree(pipeline.plan(Generation(), "The capital of France is"), TreeSpec(depth=3, branch=3))\n'
              'display(SVG(export.render(tree, "svg")))',
        "ko": 'tree = pipeline.tree(pipeline.plan(Generation(), "대한민국의 수도는"), TreeSpec(depth=3, branch=3))\n'
              'display(SVG(export.render(tree, "svg")))',
    }),
    ("md", {
        "en": "## 7. Scoring a sentence you give it\n\nThe other way round: not what the model would write, but how "
              "likely it finds a text that already exists — each token's probability and its rank among all 262,144 "
              "(rank 1: the model's first choice). Here, gpt-4.1-mini's answer from the lesson, read by the small model.",
        "ko": "## 7. 주어진 문장에 점수 매기기\n\n반대 방향입니다: 모델이 무엇을 쓸지가 아니라, 이미 있는 텍스트를 모델이 "
              "얼마나 그럴듯하게 보는지 — 각 토큰의 확률과 262,144개 중 순위(1위: 모델의 첫 번째 선택). 여기서는 수업에 "
              "나온 gpt-4.1-mini의 답을 작은 모델이 읽습니다.",
    }),
    ("code", 'scored = pipeline.score(pipeline.plan(Generation(top_k=5), "What is 2 + 2?\\n"), "2 + 2 equals 4.",\n'
             "                        spec=ScoreSpec(exact=True))\n"
             "for s in scored.steps:\n"
             '    print(f"{s.chosen.label:<10} {s.chosen.prob:7.2%}  rank {s.rank:>4}   expected: {s.alternatives[0].label}")'),
    ("md", {
        "en": "## 8. Exercise: temperature, by hand\n\nMove the slider: the distribution of the run's second step is "
              "reshaped at once (over the returned alternatives). The button samples for real at that temperature.",
        "ko": "## 8. 연습: 온도를 직접 바꿔 보기\n\n슬라이더를 움직이면 실행의 두 번째 단계 분포가 바로 다시 계산됩니다"
              "(돌려받은 대안 토큰 기준). 버튼을 누르면 그 온도로 실제로 샘플링합니다.",
    }),
    ("code", "import ipywidgets as widgets\n\n"
             "step = run.steps[1]\n"
             "out = widgets.Output()\n"
             'slider = widgets.FloatSlider(value=1.0, min=0.05, max=2.0, step=0.05, description="T")\n'
             'button = widgets.Button(description="sample for real")\n'
             "\n\ndef draw(change=None):\n"
             "    probs = reshape([a.logprob for a in step.alternatives], Setting(\"T\", slider.value))\n"
             "    with out:\n"
             "        out.clear_output(wait=True)\n"
             "        for a, p in zip(step.alternatives, probs):\n"
             '            print(f"{a.label:<12} {p:6.1%} " + "█" * round(p * 40))\n'
             "\n\ndef sample(_):\n"
             "    with out:\n"
             '        print("sampled:", tokviz.predict(run.prompt, max_tokens=8, temperature=slider.value).text)\n'
             "\n\nslider.observe(draw, names=\"value\")\n"
             "button.on_click(sample)\n"
             "draw()\n"
             "display(widgets.VBox([slider, button, out]))"),
]


def build(lang: str) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    for kind, body in CELLS:
        text = body[lang] if isinstance(body, dict) else body
        nb.cells.append(nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text))
    for n, cell in enumerate(nb.cells):
        cell["id"] = f"{lang}-{n}"  # stable ids: regenerating changes nothing
    return nb


def path(lang: str) -> Path:
    return HERE / f"llm-inference.{lang}.ipynb"


def text(lang: str) -> str:
    return nbformat.writes(build(lang)) + "\n"


if __name__ == "__main__":
    for lang in LANGS:
        path(lang).write_text(text(lang), encoding="utf-8")
        print(path(lang), file=sys.stderr)
