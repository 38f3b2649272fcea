"""Raw mlx_lm in this process: the limit every served system is measured against.

One stream is `stream_generate`; N concurrent streams are one `BatchGenerator`
(what `batch_generate` runs) with all prompts inserted at once, timed per token.
"""

from __future__ import annotations

import gc

import mlx.core as mx
from mlx_lm import load, stream_generate
from mlx_lm.generate import BatchGenerator
from mlx_lm.sample_utils import make_logits_processors

from .timing import Trace, now
from .workload import Workload


class RawMLX:
    label = "raw mlx_lm"

    def __init__(self, workload: Workload):
        self.workload = workload
        self.model, self.tokenizer = load(workload.path)
        self.processors = make_logits_processors(logit_bias=workload.logit_bias)

    def _prompt(self, messages: list[dict]) -> list[int]:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)

    async def streams(self, workload: Workload, chats: list[list[dict]], max_tokens: int) -> list[Trace]:
        if len(chats) == 1:
            return [self._stream(chats[0], max_tokens)]
        return self._batch(chats, max_tokens)

    def _stream(self, messages: list[dict], max_tokens: int) -> Trace:
        trace = Trace(now())
        for response in stream_generate(
            self.model,
            self.tokenizer,
            self._prompt(messages),
            max_tokens=max_tokens,
            logits_processors=self.processors,
        ):
            trace.arrived(response.text)
            trace.tokens, trace.prompt_tokens = response.generation_tokens, response.prompt_tokens
        return trace

    def _batch(self, chats: list[list[dict]], max_tokens: int) -> list[Trace]:
        sent = now()
        generator = BatchGenerator(self.model, stop_tokens=[[t] for t in self.tokenizer.eos_token_ids])
        uids = generator.insert(
            [self._prompt(m) for m in chats],
            max_tokens=[max_tokens] * len(chats),
            logits_processors=[self.processors] * len(chats),
        )
        traces = {uid: Trace(sent) for uid in uids}
        detokenizers = {uid: self.tokenizer.detokenizer for uid in uids}
        while responses := generator.next_generated():
            for r in responses:
                detokenizer = detokenizers[r.uid]
                if r.finish_reason != "stop":
                    detokenizer.add_token(r.token)
                    traces[r.uid].tokens += 1
                if r.finish_reason is not None:
                    detokenizer.finalize()
                traces[r.uid].arrived(detokenizer.last_segment)
        generator.close()
        return [traces[uid] for uid in uids]

    def load_seconds(self, path: str) -> float:
        """Time to load `path` and materialise its weights (then drop it)."""
        start = now()
        model, _ = load(path)
        mx.eval(model.parameters())
        elapsed = now() - start
        del model
        gc.collect()
        mx.clear_cache()
        return elapsed

    def adapter_copies_memory(self, adapters: list[str]) -> list[int]:
        """MLX active bytes of serving the base plus K adapters with plain mlx_lm,
        which applies an adapter to its own copy of the base, for K = 0..len."""
        start = mx.get_active_memory()
        held, sizes = [], []
        for adapter in [None, *adapters]:
            model, _ = load(self.workload.path, adapter_path=adapter)
            mx.eval(model.parameters())
            held.append(model)
            sizes.append(mx.get_active_memory() - start)
        del held, model
        gc.collect()
        mx.clear_cache()
        return sizes

    async def close(self) -> None:
        del self.model
        gc.collect()
        mx.clear_cache()
