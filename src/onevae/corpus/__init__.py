"""Tokenizing a video corpus into webdataset shards (``onevae tokenize``); read them back with
:class:`onevae.data.TokenShards`. See docs/corpus.md."""

from .run import TokenizeOptions, TokenizeResult, tokenize_corpus
from .sources import ManifestColumns, Segment, expand_sources

__all__ = ["ManifestColumns", "Segment", "TokenizeOptions", "TokenizeResult", "expand_sources", "tokenize_corpus"]
