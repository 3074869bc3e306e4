"""The prompt as the model reads it: raw text after <bos>, or Gemma's chat turns around it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokviz.providers.base import Request
from tokviz.run import Message

if TYPE_CHECKING:
    from llama_cpp import Llama

TURN_USER = "<start_of_turn>user\n"
TURN_END = "<end_of_turn>\n"
TURN_MODEL = "<start_of_turn>model\n"


def prompt_tokens(llm: Llama, request: Request) -> tuple[list[int], tuple[Message, ...]]:
    """The tokens fed to the model, and the chat messages they encode (none in raw mode).

    In chat mode Gemma's turn markers are tokenized as special tokens but the user's own text is
    not, so a prompt that contains "<end_of_turn>" cannot forge a turn.
    """
    if request.params.mode != "chat":
        return llm.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=False), ()
    messages = (Message("user", request.prompt),)
    user_text = request.prompt
    if request.system:
        messages = (Message("system", request.system), *messages)
        user_text = f"{request.system}\n\n{request.prompt}"  # Gemma has no system turn: it leads the user turn

    def special(s: str) -> list[int]:
        return llm.tokenize(s.encode("utf-8"), add_bos=False, special=True)

    ids = [llm.token_bos(), *special(TURN_USER)]
    ids += llm.tokenize(user_text.encode("utf-8"), add_bos=False, special=False)
    ids += special(TURN_END) + special(TURN_MODEL)
    return ids, messages
