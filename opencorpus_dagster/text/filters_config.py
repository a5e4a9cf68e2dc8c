"""The `filters:` block of a source's catalog entry, and the text steps it builds.

```yaml
filters:
  language: {allowed: [en], min_confidence: 0.6}
  quality: {c4_max_curly_brackets: null, disabled_rules: [fineweb.line_punct_ratio]}
  pii: {kinds: [email, ip_address]}
  ocr: {min_quality: 0.8}      # OCR quality rule (text/ocr.py), OCR'd records only
```

Every block is optional and defaults to its model's defaults; unknown keys are errors. The
quality block starts from the defaults of the source's kind (`quality_defaults.py`): what the
entry sets wins, field by field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opencorpus_dagster.records import Document, Drop
from opencorpus_dagster.text.language import LanguageConfig, LanguageFilter
from opencorpus_dagster.text.normalise import Normalise, NormaliseConfig
from opencorpus_dagster.text.ocr import OcrQualityConfig, OcrQualityFilter
from opencorpus_dagster.text.pii import PiiConfig, RedactPii
from opencorpus_dagster.text.quality import QualityConfig, QualityFilter
from opencorpus_dagster.text.quality_defaults import quality_defaults

# A documents-stage step: the (possibly changed) document, or why it was dropped.
Step = Callable[[Document], Document | Drop]


class FiltersConfig(BaseModel):
    """The text-step configurations of one source (`ocr` applies to OCR'd records only)."""

    model_config = ConfigDict(extra="forbid")

    normalise: NormaliseConfig = Field(default_factory=NormaliseConfig)
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    ocr: OcrQualityConfig = Field(default_factory=OcrQualityConfig)  # OCR'd records only


def with_kind_defaults(filters: dict[str, Any], content_kind: str) -> dict[str, Any]:
    """The catalog's `filters:` mapping with `content_kind`'s quality defaults under what it sets.

    A `quality` value that is not a mapping is left as it is, for validation to report.
    KeyError for an unknown kind.
    """
    defaults = quality_defaults(content_kind)
    quality = filters.get("quality", {})
    if not defaults or not isinstance(quality, dict):
        return filters
    return {**filters, "quality": {**defaults, **quality}}


def build_steps(config: FiltersConfig | None = None) -> list[Step]:
    """The enabled steps in the order they must run: normalise -> language -> quality -> pii.

    Normalise first: every later step, and exact dedup, sees the canonical text. Language before
    quality: the quality rules depend on the language (stop words, languages without spaces).
    PII last: redaction changes the text, and the quality values must describe the text as
    written, not placeholders; it also spends no time on documents already dropped.
    """
    config = config or FiltersConfig()
    steps: list[Step] = []
    if config.normalise.enabled:
        steps.append(Normalise(config.normalise))
    if config.language.enabled:
        steps.append(LanguageFilter(config.language))
    if config.quality.enabled:
        steps.append(QualityFilter(config.quality))
    if config.ocr.enabled:  # after `quality`, which replaces metadata["quality"]; see text/ocr.py
        steps.append(OcrQualityFilter(config.ocr))
    if config.pii.enabled:
        steps.append(RedactPii(config.pii))
    return steps
