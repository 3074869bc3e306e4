"""What every provider shares when it weighs given answers (`predict --choice`): where the context
ends and each answer begins, the run that records one answer, and the bound an answer gets from a
provider that can only list the top k of the next token.

The split is lm-evaluation-harness's (`_encode_pair` in lm_eval/api/model.py): whitespace that ends
the context moves to the front of every continuation ("Sentiment: " + "positive" is read as
"Sentiment:" + " positive"), because tokenizers glue a space to the word after it; the
continuation's tokens are then those of the whole text after the context's own tokens. A choice is
one token sequence, so its log-likelihood is the sum of its tokens' logprobs.

A provider that cannot read a given continuation (a server that returns only the top k of generated
tokens) still says something true about each choice from one generated step (`from_step`):
- a choice whose text is exactly one listed token: that token's figure, exact;
- any other choice: an upper bound. Its first token is either listed, and then one of the listed
  tokens its text begins with, or not listed, and then no likelier than the least likely listed
  token; the choice is no likelier than its first token. Listed tokens whose bytes are not known
  (lossy) count as possible first tokens, so the bound never undercuts the truth.
"""

from __future__ import annotations

from dataclasses import replace

from tokviz.ground.errors import UsageError
from tokviz.providers.base import Request
from tokviz.run import Run, RunKind, Step, Token

EXACT = "exact"
BOUND = "upper bound"
# Source notes of one choice's run: the choice as given, whether its figure is exact or a bound, and how.
CHOICE, FIGURE, HOW, MOVED = "choice", "choice_figure", "choice_how", "choice_moved"
MAX_CHOICES = 100


def check(choices: list[str]) -> list[str]:
    """The choices as given, checked: at least two, none empty, none twice, not too many."""
    if len(choices) < 2:
        raise UsageError("give at least two answers to weigh (--choice A --choice B)",
                         hint="for the probability of one text, use tokviz score --context")
    if len(choices) > MAX_CHOICES:
        raise UsageError(f"at most {MAX_CHOICES} choices at once, got {len(choices)}")
    for c in choices:
        if not c:
            raise UsageError("a choice is empty", hint='a choice is the text that follows the prompt, e.g. --choice " yes"')
    seen: set[str] = set()
    for c in choices:
        if c in seen:
            raise UsageError(f"the choice {c!r} is given twice")
        seen.add(c)
    return choices


def split(request: Request) -> tuple[str, str]:
    """(the context as read, the whitespace moved from its end to the front of every choice).
    In chat mode the choices continue the assistant's turn, so nothing moves."""
    if request.params.mode == "chat":
        return request.prompt, ""
    context = request.prompt.rstrip()
    return context, request.prompt[len(context):]


def continuation(moved: str, choice: str) -> str:
    return moved + choice


def choice_run(request: Request, choice: str, steps: list[Step] | tuple[Step, ...], *, provider: str, model: str,
               figure: str, how: str, moved: str, source: dict[str, str] | None = None,
               usage: dict[str, int] | None = None) -> Run:
    """One choice as a scored run: its tokens (each with the alternatives at its position), and in
    its source notes the choice as given, whether its figure is exact, and how it was read."""
    notes = {**(source or {}), CHOICE: choice, FIGURE: figure, HOW: how}
    if moved:
        notes[MOVED] = (f"the context's trailing whitespace {moved!r} is read as the start of each choice "
                        "(lm-evaluation-harness's rule)")
    params = replace(request.params, max_tokens=max(1, len(steps)))
    return Run(provider=provider, model=model, prompt=request.prompt, params=params, steps=tuple(steps),
               kind=RunKind.SCORE, usage=dict(usage or {}), source=notes)


def from_step(request: Request, step: Step, choices: list[str], *, provider: str, model: str,
              source: dict[str, str] | None = None) -> list[Run]:
    """Each choice's run from one generated step's top-k list (see the module: exact when the choice
    is one listed token, else an upper bound). Refused in one line when the step lists nothing."""
    listed = step.alternatives
    if not listed:
        raise UsageError(f"{provider} returned no alternatives for the next token, so no choice can be weighed or bounded",
                         hint="give -k (--top-k) above 0, or use a provider that scores a given text")
    _, moved = split(request)
    floor = min(t.logprob for t in listed)
    runs = []
    for choice in choices:
        text = continuation(moved, choice)
        data = text.encode("utf-8")
        same = next((t for t in listed if not t.lossy and t.raw == data), None)
        if same is not None:
            runs.append(choice_run(request, choice, [Step(chosen=same, alternatives=listed)], provider=provider, model=model,
                                   figure=EXACT, how=f"one token, listed among the top {len(listed)} of the next token",
                                   moved=moved, source=source))
            continue
        firsts = [t.logprob for t in listed if t.lossy or not t.raw or (data.startswith(t.raw) and t.raw != data)]
        bound = max([*firsts, floor])
        whole = Token(text=text, raw=data, logprob=bound)
        how = (f"at most its likeliest possible first token among the top {len(listed)} listed"
               if firsts and max(firsts) > floor else
               f"its first token is not among the top {len(listed)} listed: at most the least likely of them")
        runs.append(choice_run(request, choice, [Step(chosen=whole, alternatives=listed)], provider=provider, model=model,
                               figure=BOUND, how=how, moved=moved, source=source))
    return runs
