"""The prompt as the model reads it: raw text after <bos>, or Gemma's chat turns around it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokviz.providers.base import Request
from tokviz.run import Message

if TYPE_CHECKING:
    from llama_cpp import Llama

    from tokviz.providers.local.engine import Loaded

# Said (and recorded in the run) when --chat is asked of a model whose file has no chat template.
BASE_MODEL_CHAT = ("this model's file has no chat template (a base model, such as the embedded Gemma 3 270M): the chat "
                   "turns are Gemma's, which it was not trained to follow, so its answers may not be answers; raw text "
                   "(the default) is what it continues well")
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


def has_chat_template(m: Loaded) -> bool:
    """Whether the model's GGUF carries a chat template of its own (an instruction-tuned model)."""
    return bool(getattr(m.llm, "metadata", {}).get("tokenizer.chat_template"))
