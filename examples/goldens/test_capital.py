"""A behaviour golden, as a project's own test suite would hold it (see docs/ci.md).

The first run with `pytest --tokviz-update` wrote goldens/test_capital/*.json; later runs generate
again on whatever machine and build they run on, and pass while the answers are within the
engines' noise. Run it with: pytest examples/goldens
"""

import tokviz


def test_the_capital_of_france(tokviz_golden):
    # a prompt: generated here with tokviz.predict (greedy), compared with its golden
    tokviz_golden.check("The capital of France is", max_tokens=12, top_k=5)


def test_a_story_opening_keeps_its_first_words(tokviz_golden):
    # a run made by the test itself; only the first 6 tokens must agree, what follows may part
    run = tokviz.predict("Once upon a time", max_tokens=16)
    tokviz_golden.check(run, name="story-opening", tokens="prefix:6")
