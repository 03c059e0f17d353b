"""One question about one image text -> one short answer: the path ``ask`` and ``vqa-eval`` share.

With no shots the question goes to the LLM's chat (``answer_messages``: its chat template
locally, chat completions remotely); with shots, the paper's completion prompt
(``vqa_prompt``), cut at the first newline. Either way ``extract_answer`` reduces the reply
to its answer phrase, so the 0-shot numbers of ``vqa-eval`` measure what ``ask`` prints.
"""
from __future__ import annotations

from typing import Sequence

from dediffusion.apps.llm_prompts import Example, answer_messages, extract_answer, vqa_prompt

MAX_TOKENS = 24  # 0-shot replies are sentences ("The blue square is located at the top left ...")

Query = tuple[str, str, Sequence[Example]]  # (context, question, few-shot examples)


def _chat(llm, conversations: list[list[dict]], max_tokens: int, batch_size: int) -> list[str]:
    if hasattr(llm, "chat_many"):  # the local backend batches
        return llm.chat_many(conversations, max_tokens, (), batch_size) if conversations else []
    return [llm.chat(m, max_tokens) for m in conversations]


def completions(llm, prompts: list[str], max_tokens: int, batch_size: int) -> list[str]:
    """Continuations of text prompts, cut at the first newline (batched where the backend batches)."""
    if hasattr(llm, "complete_many"):
        return llm.complete_many(prompts, max_tokens, ("\n",), batch_size) if prompts else []
    return [llm.complete(p, max_tokens, ("\n",)) for p in prompts]


def shown_prompt(llm, query: Query) -> str:
    """What the LLM is given for ``query``, as text (``ask --show-prompt``)."""
    context, question, shots = query
    if shots:
        return vqa_prompt(context, question, list(shots))
    messages = answer_messages(context, question)
    if hasattr(llm, "render_chat"):
        return llm.render_chat(messages)
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def replies(llm, queries: list[Query], max_tokens: int = MAX_TOKENS, batch_size: int = 8) -> list[str]:
    """The LLM's raw replies, in order; 0-shot queries go through chat, few-shot ones through completion."""
    chats = {i: answer_messages(c, q) for i, (c, q, shots) in enumerate(queries) if not shots}
    prompts = {i: vqa_prompt(c, q, list(shots)) for i, (c, q, shots) in enumerate(queries) if shots}
    out = dict(zip(chats, _chat(llm, list(chats.values()), max_tokens, batch_size)))
    out.update(zip(prompts, completions(llm, list(prompts.values()), max_tokens, batch_size)))
    return [out[i] for i in range(len(queries))]


def answers(llm, queries: list[Query], max_tokens: int = MAX_TOKENS, batch_size: int = 8) -> list[str]:
    """Answer phrases ("" where a reply holds none), in order."""
    return [extract_answer(r) for r in replies(llm, queries, max_tokens, batch_size)]
