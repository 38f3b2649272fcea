"""Small GGUF files made for the tests, with llama.cpp's own `gguf` package."""

from __future__ import annotations

from pathlib import Path


def write_gguf(path: Path, architecture: str = "llama", tokenizer: str = "gpt2") -> Path:
    """A tiny, valid GGUF file written with llama.cpp's own `gguf` package: what a file
    of another architecture or vocabulary looks like to the converter."""
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model(tokenizer)
    writer.add_token_list(["a", "b", "c"])
    writer.add_tensor("token_embd.weight", np.zeros((3, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
