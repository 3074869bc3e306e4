"""The prompt as the model reads it: raw text after the tokenizer's own BOS, or the tokenizer's own
chat template around the messages.

The template is rendered with a marker in place of each message's text, and only the template's
own parts are read with special tokens: a prompt that contains "<end_of_turn>" or "<|im_end|>" is
read as those characters, not as a turn marker, so it cannot forge a turn.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from tokviz.ground.errors import UsageError
from tokviz.providers.base import Request
from tokviz.run import Message

if TYPE_CHECKING:
    from tokviz.providers.hf.models import Model


def prompt_ids(m: Model, request: Request) -> tuple[list[int], tuple[Message, ...]]:
    """The tokens fed to the model, and the chat messages they encode (none in raw mode)."""
    tokenizer = m.tokenizer
    if request.params.mode != "chat":
        return ([m.bos] if m.bos is not None else []) + text_ids(m, request.prompt), ()
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError(f"{m.name} has no chat template in its tokenizer (a base model): it continues raw text",
                         hint="leave out --chat and --system")
    messages = (Message("user", request.prompt),)
    if request.system:
        messages = (Message("system", request.system), *messages)
    marks = {f"\x00tokviz{secrets.token_hex(8)}\x00": msg.content for msg in messages}
    try:
        rendered = tokenizer.apply_chat_template([{"role": msg.role, "content": mark}
                                                  for msg, mark in zip(messages, marks)],
                                                 tokenize=False, add_generation_prompt=True)
    except Exception as err:  # jinja's errors: a template that refuses a system turn, for one
        raise UsageError(f"{m.name}'s chat template refused the messages: {str(err).splitlines()[0][:200]}") from None
    ids: list[int] = []
    rest = rendered
    for mark, text in marks.items():
        before, found, rest = rest.partition(mark)
        if not found:
            raise UsageError(f"{m.name}'s chat template does not show a message as it was given",
                             hint="use raw mode (leave out --chat and --system)")
        ids += tokenizer(before, add_special_tokens=False).input_ids + text_ids(m, text)
    return ids + tokenizer(rest, add_special_tokens=False).input_ids, messages


def text_ids(m: Model, text: str) -> list[int]:
    """`text` as plain text: special-token names in it are read as characters."""
    if not text:
        return []
    try:
        return list(m.tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids)
    except TypeError:  # a tokenizer without split_special_tokens
        return list(m.tokenizer(text, add_special_tokens=False).input_ids)
