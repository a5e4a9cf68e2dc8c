"""The catalog's `extraction:` block: what trafilatura keeps of an HTML page (text/html.py uses it).

Its own module so that loading a catalog does not import trafilatura.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator


class ExtractionOptions(BaseModel):
    """What trafilatura keeps of a page. Unknown keys are errors.

    Defaults (chosen by benchmarks/extraction_quality.py): favour precision, keep tables, drop
    comments, keep no link targets or formatting markup. `deduplicate` uses trafilatura's
    process-wide LRU cache of seen paragraphs, so its output depends on what the process saw
    before: leave it off when runs must be reproducible (corpus dedup happens later anyway).
    """

    model_config = ConfigDict(extra="forbid")

    favor_precision: bool = True
    favor_recall: bool = False
    include_tables: bool = True  # tables hold main text on many pages; +recall, no precision cost measured
    include_comments: bool = False
    include_links: bool = False
    include_formatting: bool = False
    deduplicate: bool = False
    fast: bool = False  # True skips trafilatura's fallback extractors (readability, jusText): faster, lower recall
    max_tree_size: int | None = None  # pages with more HTML elements than this are not extracted
    prune_xpath: list[str] | None = None  # XPath expressions of elements removed before extraction

    @model_validator(mode="after")
    def _one_bias(self) -> ExtractionOptions:
        if self.favor_precision and self.favor_recall:
            raise ValueError("favor_precision and favor_recall are mutually exclusive; set at most one")
        return self
