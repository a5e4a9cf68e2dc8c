"""Text steps of the documents stage: extraction, normalisation, language, quality, PII."""
