"""Optional semantic matching: sentence embeddings of papers and topics, fully offline.

`model` is the encoder (all-MiniLM-L6-v2 in numpy, from the weights package's files),
`vectors` their int8 form in the store and in memory, `similarity` the `Semantic` facade that
look-ups and digests ask. Embedding new papers while the bot runs is ingest's (`bot.ingest`).
Without the `semantic` extra `load_encoder()` returns None and paperbot matches words only.
"""

from bot.semantic.model import MODEL_NAME, Encoder, MiniLM, load_encoder, missing, model_dir
from bot.semantic.similarity import (
    EMBED_BATCH,
    PASSAGE_WEIGHT,
    Semantic,
    build_index,
    embed_missing,
    group_text,
    paper_texts,
)
from bot.semantic.vectors import VectorIndex, VectorStore, pack

__all__ = [
    "EMBED_BATCH",
    "MODEL_NAME",
    "PASSAGE_WEIGHT",
    "Encoder",
    "MiniLM",
    "Semantic",
    "VectorIndex",
    "VectorStore",
    "build_index",
    "embed_missing",
    "group_text",
    "load_encoder",
    "missing",
    "model_dir",
    "pack",
    "paper_texts",
]
